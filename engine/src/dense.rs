//! The int8 fully connected layer: int32 accumulation, per-channel requantization, fused
//! activation. Portable code; the loops are written so LLVM keeps them free of bounds checks.

use tinyvae_format::{Activation, Dense, OutputType};

use crate::requant::requantize;

/// The dot product of one weight row with the input, accumulated in int32.
///
/// The model validator guarantees `|bias| + 128 * sum |w|` fits an i32 for every row, so the
/// wrapping add never wraps for a validated model; it only makes the no-overflow rule explicit.
#[inline(always)]
pub fn dot_i8(w: &[i8], x: &[i8]) -> i32 {
    w.iter().zip(x).fold(0i32, |acc, (&a, &b)| {
        acc.wrapping_add(i32::from(a) * i32::from(b))
    })
}

/// Four rows at once: each input value is loaded once for four weight rows. `w` holds the four
/// rows back to back, `x.len()` values each.
#[inline(always)]
fn dot4_i8(w: &[i8], x: &[i8]) -> [i32; 4] {
    let n = x.len();
    let (w0, rest) = w.split_at(n);
    let (w1, rest) = rest.split_at(n);
    let (w2, w3) = rest.split_at(n);
    let mut acc = [0i32; 4];
    for ((((&xi, &a), &b), &c), &d) in x.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        let xi = i32::from(xi);
        acc[0] = acc[0].wrapping_add(i32::from(a) * xi);
        acc[1] = acc[1].wrapping_add(i32::from(b) * xi);
        acc[2] = acc[2].wrapping_add(i32::from(c) * xi);
        acc[3] = acc[3].wrapping_add(i32::from(d) * xi);
    }
    acc
}

/// Calls `f(row, acc)` with each output channel's accumulator `bias + sum w * x`, four rows per
/// pass over the input, then the remaining rows one by one. Integer addition wraps, so the
/// order of the sums cannot change a result: this is bit-exact with [`dot_i8`] row by row.
#[inline(always)]
fn for_each_accumulator(layer: &Dense<'_>, x: &[i8], mut f: impl FnMut(usize, i32)) {
    let n = usize::from(layer.in_dim);
    let w = layer.weights.as_i8_slice();
    let bias = |row: usize| layer.bias.get(row).unwrap_or(0);
    let mut groups = w.chunks_exact(4 * n);
    let mut row = 0;
    for g in &mut groups {
        let acc = dot4_i8(g, x);
        for (k, a) in acc.into_iter().enumerate() {
            f(row + k, bias(row + k).wrapping_add(a));
        }
        row += 4;
    }
    for r in groups.remainder().chunks_exact(n) {
        f(row, bias(row).wrapping_add(dot_i8(r, x)));
        row += 1;
    }
}

/// Runs a layer whose output is int8 (hidden layers, and the decoder's logits).
///
/// `x.len()` must equal `in_dim` and `y.len()` `out_dim` (the callers in this crate check).
/// For `Activation::PixelTable` this writes the int8 logits; the caller maps them to pixels.
pub fn dense_i8(layer: &Dense<'_>, x: &[i8], y: &mut [i8]) {
    let zp = i32::from(layer.output_zero_point);
    let lo = match layer.activation {
        Activation::Relu => zp.max(-128),
        _ => -128,
    };
    for_each_accumulator(layer, x, |row, acc| {
        let (m, s) = (
            layer.multiplier.get(row).unwrap_or(0),
            layer.shift.get(row).unwrap_or(0),
        );
        let v = requantize(acc, m, s).saturating_add(zp);
        if let Some(out) = y.get_mut(row) {
            *out = v.clamp(lo, 127) as i8;
        }
    });
}

/// Runs a layer whose output is int16 fixed point (the encoder's last layer).
pub fn dense_i16(layer: &Dense<'_>, x: &[i8], y: &mut [i16]) {
    debug_assert_eq!(layer.output_type, OutputType::I16);
    for_each_accumulator(layer, x, |row, acc| {
        let (m, s) = (
            layer.multiplier.get(row).unwrap_or(0),
            layer.shift.get(row).unwrap_or(0),
        );
        if let Some(out) = y.get_mut(row) {
            *out = requantize(acc, m, s).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tinyvae_format::owned::{Channels, OwnedDense};

    /// Row by row, the definition.
    fn reference(l: &Dense<'_>, x: &[i8]) -> Vec<i32> {
        let n = usize::from(l.in_dim);
        l.weights
            .as_i8_slice()
            .chunks_exact(n)
            .zip(l.bias.iter())
            .map(|(w, b)| {
                let acc = w
                    .iter()
                    .zip(x)
                    .fold(i64::from(b), |a, (&w, &x)| a + i64::from(w) * i64::from(x));
                i32::try_from(acc).unwrap()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn four_row_kernel_equals_row_by_row(
            inp in 1usize..40, out in 1usize..23, seed: u64,
            relu: bool, zp in -128i8..=127,
            shifts in proptest::collection::vec(-31i8..=30, 23),
            mults in proptest::collection::vec((1i32 << 30)..=i32::MAX, 23),
        ) {
            let mut r = crate::rng::Rng::new(seed);
            let c = Channels {
                weights: (0..inp * out).map(|_| r.next_u32() as i8).collect(),
                bias: (0..out).map(|_| (r.next_u32() as i32) >> 12).collect(),
                multiplier: mults[..out].to_vec(),
                shift: shifts[..out].to_vec(),
                weight_scale: vec![],
            };
            let act = if relu { Activation::Relu } else { Activation::None };
            let l8 = OwnedDense::new(inp as u16, out as u16, act, OutputType::I8, (0, 1.0), (zp, 1.0), &c);
            let l16 = OwnedDense::new(inp as u16, out as u16, Activation::None, OutputType::I16, (0, 1.0), (0, 1.0), &c);
            let x: Vec<i8> = (0..inp).map(|_| r.next_u32() as i8).collect();
            let acc = reference(&l8.view(), &x);
            let mut y = vec![0i8; out];
            dense_i8(&l8.view(), &x, &mut y);
            let lo = if relu { i32::from(zp) } else { -128 };
            for (o, (&a, &got)) in acc.iter().zip(&y).enumerate() {
                let want = requantize(a, c.multiplier[o], c.shift[o]).saturating_add(i32::from(zp)).clamp(lo, 127);
                prop_assert_eq!(i32::from(got), want, "row {}", o);
            }
            let mut y16 = vec![0i16; out];
            dense_i16(&l16.view(), &x, &mut y16);
            for (o, (&a, &got)) in acc.iter().zip(&y16).enumerate() {
                let want = requantize(a, c.multiplier[o], c.shift[o]).clamp(-32768, 32767);
                prop_assert_eq!(i32::from(got), want, "row {}", o);
            }
        }
    }
}
