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

/// Runs a layer whose output is int8 (hidden layers, and the decoder's logits).
///
/// `x.len()` must equal `in_dim` and `y.len()` `out_dim` (the callers in this crate check).
/// For `Activation::PixelTable` this writes the int8 logits; the caller maps them to pixels.
pub fn dense_i8(layer: &Dense<'_>, x: &[i8], y: &mut [i8]) {
    let n = usize::from(layer.in_dim);
    let zp = i32::from(layer.output_zero_point);
    let lo = match layer.activation {
        Activation::Relu => zp.max(-128),
        _ => -128,
    };
    let rows = layer.weights.as_i8_slice().chunks_exact(n);
    let params = layer
        .bias
        .iter()
        .zip(layer.multiplier.iter())
        .zip(layer.shift.iter());
    for ((w, ((b, m), s)), out) in rows.zip(params).zip(y.iter_mut()) {
        let acc = b.wrapping_add(dot_i8(w, x));
        let v = requantize(acc, m, s).saturating_add(zp);
        *out = v.clamp(lo, 127) as i8;
    }
}

/// Runs a layer whose output is int16 fixed point (the encoder's last layer).
pub fn dense_i16(layer: &Dense<'_>, x: &[i8], y: &mut [i16]) {
    debug_assert_eq!(layer.output_type, OutputType::I16);
    let n = usize::from(layer.in_dim);
    let rows = layer.weights.as_i8_slice().chunks_exact(n);
    let params = layer
        .bias
        .iter()
        .zip(layer.multiplier.iter())
        .zip(layer.shift.iter());
    for ((w, ((b, m), s)), out) in rows.zip(params).zip(y.iter_mut()) {
        let acc = b.wrapping_add(dot_i8(w, x));
        *out = requantize(acc, m, s).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
}
