//! The int8 fully connected layer: int32 accumulation, per-channel requantization, fused
//! activation.
//!
//! Three kernels compute the same accumulators, bit for bit (integer sums wrap, so their
//! order cannot change a result):
//! - row-major weights, portable: four output rows per pass sharing each input load;
//! - 4 x 4 tiled weights ([`WeightLayout::Tiles4x4`]), portable: the same, reading tiles;
//! - 4 x 4 tiled weights on Cortex-M4/M7 (thumbv7em, `cfg(tinyvae_dsp)`): the inputs are
//!   widened to int16 pairs once per layer, then an assembly loop does 16 multiply-accumulates
//!   per 4 x 4 tile with two `LDM`, eight `SXTB16` and eight `SMLAD` (the `dsp` module, on those cores);
//! - 4 x 4 tiled int8 layers on ARMv6-M (Cortex-M0, M0+, `cfg(tinyvae_v6m)`): an assembly
//!   routine reads a tile row as one word, sign-extends its bytes by shifts, and requantizes
//!   with a 64-bit product built from four 16 x 16 `MULS` (the `v6m` module).
//!
//! Requantization runs once per output, outside the multiply-accumulate loops.

use tinyvae_format::{Dense, OutputType, WeightLayout};

use crate::requant::{output_range, requantized};

/// True where [`dense_i8`] runs tiled layers with the DSP-extension kernel (thumbv7em).
pub const SIMD: bool = cfg!(tinyvae_dsp);

/// True where [`dense_i8`] runs tiled int8 layers with the ARMv6-M assembly kernel
/// (thumbv6m: Cortex-M0, M0+; thumbv8m.base).
pub const V6M: bool = cfg!(tinyvae_v6m);

/// True when [`dense_i8`] and [`dense_i16`] run `layer` with the ARMv6-M kernel (on ARMv6-M, for a
/// `Tiles4x4` layer whose tiles are word-aligned in memory; its blocks whose
/// requantization is off the kernel's fast path, a left shift or a small multiplier, then
/// take the definition).
pub fn uses_v6m(layer: &Dense<'_>) -> bool {
    V6M && layer.layout == WeightLayout::Tiles4x4
        && (layer.packed_weights().as_ptr() as usize).is_multiple_of(4)
}

/// Spare scratch bytes [`dense_i8`] and [`dense_i16`] need for a layer with `in_dim` inputs:
/// the inputs widened to int16 (padded to a multiple of 4), plus 3 bytes to align them.
pub const fn spare_len(in_dim: usize) -> usize {
    2 * in_dim.div_ceil(4) * 4 + 3
}

/// True when [`dense_i8`] and [`dense_i16`] run `layer` with the DSP kernel, given `spare`
/// (on thumbv7em, for a `Tiles4x4` layer whose tiles are word-aligned in memory).
pub fn uses_simd(layer: &Dense<'_>, spare: &[i8]) -> bool {
    #[cfg(tinyvae_dsp)]
    return layer.layout == WeightLayout::Tiles4x4 && dsp::ready(layer, spare);
    #[cfg(not(tinyvae_dsp))]
    {
        let _ = (layer, spare);
        false
    }
}

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

/// Row-major weights: four rows per pass over the input, then the remaining rows one by one.
/// `QUADS`: the outputs four at a time ([`Quads`]; faster, larger), else one by one.
#[inline(always)]
fn row_major<const QUADS: bool>(layer: &Dense<'_>, x: &[i8], f: &mut impl Sink) {
    let n = usize::from(layer.in_dim);
    let w = layer.packed_weights();
    let bias = |row: usize| layer.bias.get(row).unwrap_or(0);
    let mut groups = w.chunks_exact(4 * n);
    let mut row = 0;
    if QUADS {
        let mut quads = Quads::new(layer);
        while let Some(q) = quads.next() {
            let Some(g) = groups.next() else { break };
            let acc = dot4_i8(g, x);
            f.put4(row, add4(q.bias, acc), &q);
            row += 4;
        }
    }
    for g in &mut groups {
        put_rest(layer, row, dot4_i8(g, x), f);
        row += 4;
    }
    for r in groups.remainder().chunks_exact(n) {
        f.put(row, bias(row).wrapping_add(dot_i8(r, x)));
        row += 1;
    }
}

/// One 4 x 4 tile: `acc[r] += sum_c t[4r + c] * x[c]`.
#[inline(always)]
fn tile(t: &[i8], x: [i32; 4], acc: &mut [i32; 4]) {
    for (a, w) in acc.iter_mut().zip(t.chunks_exact(4)) {
        let s = i32::from(w[0]) * x[0]
            + i32::from(w[1]) * x[1]
            + i32::from(w[2]) * x[2]
            + i32::from(w[3]) * x[3];
        *a = a.wrapping_add(s);
    }
}

/// 4 x 4 tiled weights, portable: one block of four rows per pass, tile by tile. `QUADS` as
/// for [`row_major`].
#[inline(always)]
fn tiled<const QUADS: bool>(layer: &Dense<'_>, x: &[i8], f: &mut impl Sink) {
    let n = usize::from(layer.in_dim);
    let groups = n.div_ceil(4);
    let (full, tail) = x.split_at(n & !3);
    let mut last = [0i32; 4];
    for (k, &v) in tail.iter().enumerate() {
        last[k] = i32::from(v);
    }
    let block = |tiles: &[i8]| {
        let mut acc = [0i32; 4];
        let mut ts = tiles.chunks_exact(16);
        // The inputs first: zip must not take a tile when the full groups are done.
        for (xs, t) in full.chunks_exact(4).zip(&mut ts) {
            let xs = [xs[0], xs[1], xs[2], xs[3]].map(i32::from);
            tile(t, xs, &mut acc);
        }
        if let Some(t) = ts.next() {
            tile(t, last, &mut acc);
        }
        acc
    };
    let mut blocks = layer.packed_weights().chunks_exact(16 * groups);
    let mut row = 0;
    if QUADS {
        let mut quads = Quads::new(layer);
        while let Some(q) = quads.next() {
            let Some(tiles) = blocks.next() else { return };
            f.put4(row, add4(q.bias, block(tiles)), &q);
            row += 4;
        }
    }
    for tiles in blocks {
        put_rest(layer, row, block(tiles), f);
        row += 4;
    }
}

/// The requantization parameters of four output channels (the biases only where the DSP
/// kernels run: their sinks requantize through the layer).
struct Quad {
    bias: [i32; 4],
    #[cfg(not(tinyvae_dsp))]
    multiplier: [i32; 4],
    #[cfg(not(tinyvae_dsp))]
    shift: [i8; 4],
}

/// A layer's output channels four at a time, as long as four remain: the kernels' way to
/// read the parameters with one length check per four channels. (Not an `Iterator`: its
/// adapters are not always inlined, and this runs once per four outputs.)
struct Quads<'a> {
    bias: &'a [u8],
    multiplier: &'a [u8],
    shift: &'a [u8],
}

impl<'a> Quads<'a> {
    #[inline(always)]
    fn new(layer: &Dense<'a>) -> Self {
        Quads {
            bias: layer.bias.as_bytes(),
            multiplier: layer.multiplier.as_bytes(),
            shift: layer.shift.as_bytes(),
        }
    }

    #[inline(always)]
    fn next(&mut self) -> Option<Quad> {
        let (b, bias) = self.bias.split_first_chunk::<16>()?;
        let (m, multiplier) = self.multiplier.split_first_chunk::<16>()?;
        let (s, shift) = self.shift.split_first_chunk::<4>()?;
        (self.bias, self.multiplier, self.shift) = (bias, multiplier, shift);
        #[cfg(tinyvae_dsp)]
        let _ = (m, s);
        Some(Quad {
            bias: core::array::from_fn(|i| le_i32(b, i)),
            #[cfg(not(tinyvae_dsp))]
            multiplier: core::array::from_fn(|i| le_i32(m, i)),
            #[cfg(not(tinyvae_dsp))]
            shift: s.map(|v| v as i8),
        })
    }
}

/// A block of four channels one by one: `row..out_dim`, at most four (`acc` without the
/// biases).
#[inline(always)]
fn put_rest(layer: &Dense<'_>, row: usize, acc: [i32; 4], f: &mut impl Sink) {
    let out = usize::from(layer.out_dim);
    for (r, a) in acc.into_iter().enumerate().take(out.saturating_sub(row)) {
        f.put(
            row + r,
            layer.bias.get(row + r).unwrap_or(0).wrapping_add(a),
        );
    }
}

/// Element `i` of little-endian int32 bytes `b` (which hold at least `4 i + 4`).
#[inline(always)]
fn le_i32(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

#[inline(always)]
fn add4(a: [i32; 4], b: [i32; 4]) -> [i32; 4] {
    core::array::from_fn(|i| a[i].wrapping_add(b[i]))
}

/// Sends each output channel's accumulator `bias + sum w * x` to `f`, using the
/// DSP kernel where it applies and `portable` is false.
#[inline(always)]
fn for_each_accumulator(
    layer: &Dense<'_>,
    x: &[i8],
    spare: &mut [i8],
    portable: bool,
    f: &mut impl Sink,
) {
    #[cfg(not(tinyvae_dsp))]
    let _ = (spare, portable);
    match layer.layout {
        WeightLayout::RowMajor => {
            #[cfg(tinyvae_dsp)]
            if !portable {
                return fallback(f, layer, x);
            }
            row_major::<true>(layer, x, f)
        }
        WeightLayout::Tiles4x4 => {
            #[cfg(tinyvae_dsp)]
            if !portable {
                // The fused kernel did not run (its preconditions failed): the definition.
                let _ = spare;
                return fallback(f, layer, x);
            }
            tiled::<true>(layer, x, f)
        }
    }
}

/// Where the DSP kernel runs, the portable kernels behind one entry that is not generic over
/// the output: they serve only row-major layers and tiled layers whose DSP preconditions fail,
/// so one copy serves the int8 and int16 outputs (an indirect call per output channel) and the
/// flash goes to the DSP path, which stays specialised. A tiled layer lands here only with a
/// caller's spare too small for the widened inputs (a validated model's tiles are aligned):
/// it takes the definition, weight by weight, the least code.
#[cfg(tinyvae_dsp)]
#[inline(never)]
fn fallback(mut f: &mut dyn Sink, layer: &Dense<'_>, x: &[i8]) {
    match layer.layout {
        WeightLayout::RowMajor => row_major::<false>(layer, x, &mut f),
        WeightLayout::Tiles4x4 => {
            for o in 0..usize::from(layer.out_dim) {
                let acc = x.iter().enumerate().fold(0i32, |a, (j, &v)| {
                    a.wrapping_add(i32::from(layer.weight(o, j)) * i32::from(v))
                });
                f.put(o, layer.bias.get(o).unwrap_or(0).wrapping_add(acc));
            }
        }
    }
}

/// Where a kernel sends each output channel's accumulator `bias + sum w * x`: the
/// requantization and store of one output type. A trait rather than a closure so that its
/// method is `#[inline(always)]`: even when the firmware is optimised for size, the
/// requantization is inlined into the kernel's loop instead of costing a call per output.
trait Sink {
    /// Output channel `row`'s accumulator.
    fn put(&mut self, row: usize, acc: i32);

    /// The accumulators of output channels `row..row + 4`, with their parameters `q`.
    fn put4(&mut self, row: usize, acc: [i32; 4], q: &Quad);
}

/// A borrowed sink, `dyn` ones included, is a sink.
impl<S: Sink + ?Sized> Sink for &mut S {
    #[inline(always)]
    fn put(&mut self, row: usize, acc: i32) {
        (**self).put(row, acc)
    }

    #[inline(always)]
    fn put4(&mut self, row: usize, acc: [i32; 4], q: &Quad) {
        (**self).put4(row, acc, q)
    }
}

/// Requantizes to int8 with the output zero point and the activation's lower bound.
struct I8Out<'l, 'a, 'y> {
    layer: &'l Dense<'a>,
    y: &'y mut [i8],
    zp: i32,
    lo: i32,
}

impl Sink for I8Out<'_, '_, '_> {
    #[inline(always)]
    fn put(&mut self, row: usize, acc: i32) {
        let v = requantized(self.layer, row, acc).saturating_add(self.zp);
        if let Some(out) = self.y.get_mut(row) {
            *out = v.max(self.lo).min(127) as i8;
        }
    }

    /// Where the DSP kernels run, int8 layers go through the fused kernel and reach this
    /// sink only when its preconditions fail: four calls of `put` then, the least flash.
    #[cfg(tinyvae_dsp)]
    fn put4(&mut self, row: usize, acc: [i32; 4], _: &Quad) {
        for (i, a) in acc.into_iter().enumerate() {
            self.put(row + i, a);
        }
    }

    #[cfg(not(tinyvae_dsp))]
    #[inline(always)]
    fn put4(&mut self, row: usize, acc: [i32; 4], q: &Quad) {
        if let Some(y) = self.y.get_mut(row..row + 4) {
            for (i, out) in y.iter_mut().enumerate() {
                let v = crate::requant::requantize_q31(acc[i], q.multiplier[i], q.shift[i]);
                *out = v.saturating_add(self.zp).max(self.lo).min(127) as i8;
            }
        }
    }
}

/// Requantizes to int16 (the encoder's last layer: mu and log-variance in fixed point).
struct I16Out<'l, 'a, 'y> {
    layer: &'l Dense<'a>,
    y: &'y mut [i16],
}

impl Sink for I16Out<'_, '_, '_> {
    #[inline(always)]
    fn put(&mut self, row: usize, acc: i32) {
        if let Some(out) = self.y.get_mut(row) {
            *out = crate::requant::output_i16(self.layer, row, acc);
        }
    }

    /// One by one: the int16 layer is small (the encoder's last), its flash better saved.
    #[inline(always)]
    fn put4(&mut self, row: usize, acc: [i32; 4], _: &Quad) {
        for (r, a) in acc.into_iter().enumerate() {
            self.put(row + r, a);
        }
    }
}

#[inline(always)]
fn i8_output(layer: &Dense<'_>, x: &[i8], y: &mut [i8], spare: &mut [i8], portable: bool) {
    // The fused DSP kernel: the tile loop and the requantization in one assembly routine.
    #[cfg(tinyvae_dsp)]
    if !portable && layer.layout == WeightLayout::Tiles4x4 && dsp::tiled_i8(layer, x, y, spare) {
        return;
    }
    // The ARMv6-M kernel: the tile loop and the requantization in one assembly routine.
    #[cfg(tinyvae_v6m)]
    if !portable && layer.layout == WeightLayout::Tiles4x4 && v6m::tiled_i8(layer, x, y, spare) {
        return;
    }
    let (zp, lo) = output_range(layer);
    let mut sink = I8Out { layer, y, zp, lo };
    for_each_accumulator(layer, x, spare, portable, &mut sink);
}

/// Runs a layer whose output is int8 (hidden layers, and the decoder's logits).
///
/// `x.len()` must equal `in_dim` and `y.len()` `out_dim` (the callers in this crate check);
/// `spare` should hold [`spare_len`]`(in_dim)` bytes (with fewer, tiled layers run portably).
/// For `Activation::PixelTable` this writes the int8 logits; the caller maps them to pixels.
pub fn dense_i8(layer: &Dense<'_>, x: &[i8], y: &mut [i8], spare: &mut [i8]) {
    i8_output(layer, x, y, spare, false)
}

/// [`dense_i8`] with the portable kernels only, whatever the target: the reference the DSP
/// kernel is tested against on the chip, and the baseline of the benchmarks.
pub fn dense_i8_portable(layer: &Dense<'_>, x: &[i8], y: &mut [i8]) {
    i8_output(layer, x, y, &mut [], true)
}

/// Runs a layer whose output is int16 fixed point (the encoder's last layer).
pub fn dense_i16(layer: &Dense<'_>, x: &[i8], y: &mut [i16], spare: &mut [i8]) {
    debug_assert_eq!(layer.output_type, OutputType::I16);
    // The fused DSP kernel, made for int16 outputs.
    #[cfg(tinyvae_dsp)]
    if layer.layout == WeightLayout::Tiles4x4 && dsp::tiled_i16(layer, x, y, spare) {
        return;
    }
    // The ARMv6-M tile loop, its sums requantized in Rust.
    #[cfg(tinyvae_v6m)]
    if layer.layout == WeightLayout::Tiles4x4 && v6m::tiled_i16(layer, x, y, spare) {
        return;
    }
    for_each_accumulator(layer, x, spare, false, &mut I16Out { layer, y });
}

/// The Cortex-M4/M7 kernel for 4 x 4 tiled weights (DSP extension: `SXTB16`, `SMLAD`):
/// [`crate::arm`]'s, where the engine's `unsafe` code lives.
#[cfg(tinyvae_dsp)]
pub use crate::arm::dsp;

#[cfg(tinyvae_v6m)]
use crate::arm::v6m;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requant::requantize;
    use proptest::prelude::*;
    use tinyvae_format::owned::{Channels, OwnedDense};
    use tinyvae_format::testkit::random::{self, MatrixMut, Params, SplitMix};
    use tinyvae_format::Activation;

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
        fn every_kernel_equals_row_by_row(
            inp in 1usize..40, out in 1usize..23, seed: u64, kind in 0u32..3,
        ) {
            // The layer from the generator the chip's kernel check also draws from.
            let mut r = SplitMix(seed);
            let mut c = Channels {
                weights: vec![0; inp * out],
                bias: vec![0; out],
                multiplier: vec![0; out],
                shift: vec![0; out],
                weight_scale: vec![],
            };
            let bufs = MatrixMut { weights: &mut c.weights, bias: &mut c.bias, multiplier: &mut c.multiplier, shift: &mut c.shift };
            let drawn = random::dense(&mut r, Params::kernel_test(kind), (inp, out), bufs).unwrap();
            let (relu, zp) = (drawn.relu, drawn.output_zero_point);
            let act = if relu { Activation::Relu } else { Activation::None };
            let l8 = OwnedDense::new(inp as u16, out as u16, act, OutputType::I8, (0, 1.0), (zp, 1.0), &c);
            let l16 = OwnedDense::new(inp as u16, out as u16, Activation::None, OutputType::I16, (0, 1.0), (0, 1.0), &c);
            let mut x = vec![0i8; inp];
            random::inputs(&mut r, &mut x);
            let acc = reference(&l8.view(), &x);
            let lo = if relu { i32::from(zp) } else { -128 };
            let mut spare = vec![0i8; spare_len(inp)];
            for layout in [WeightLayout::RowMajor, WeightLayout::Tiles4x4] {
                let (l8, l16) = (l8.with_layout(layout), l16.with_layout(layout));
                let mut y = vec![0i8; out];
                dense_i8(&l8.view(), &x, &mut y, &mut spare);
                let mut yp = vec![0i8; out];
                dense_i8_portable(&l8.view(), &x, &mut yp);
                prop_assert_eq!(&y, &yp);
                for (o, (&a, &got)) in acc.iter().zip(&y).enumerate() {
                    let want = requantize(a, c.multiplier[o], c.shift[o]).saturating_add(i32::from(zp)).clamp(lo, 127);
                    prop_assert_eq!(i32::from(got), want, "{:?} row {}", layout, o);
                }
                let mut y16 = vec![0i16; out];
                dense_i16(&l16.view(), &x, &mut y16, &mut spare);
                for (o, (&a, &got)) in acc.iter().zip(&y16).enumerate() {
                    let want = requantize(a, c.multiplier[o], c.shift[o]).clamp(-32768, 32767);
                    prop_assert_eq!(i32::from(got), want, "{:?} row {}", layout, o);
                }
            }
        }
    }
}
