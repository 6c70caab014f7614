//! Requantization: scaling an int32 accumulator by a real multiplier given as a Q31 integer
//! multiplier and a power-of-two shift, with the rounding of TensorFlow Lite and CMSIS-NN:
//! a saturating rounding doubling high multiply, then a rounding arithmetic right shift.
//!
//! Where the C reference has undefined behaviour (a left shift that overflows int32), this
//! saturates instead, so every input has one defined result on every target.
//!
//! Also a dense layer's output from its accumulator (the multiplier and shift of its row,
//! its zero-point and clamp), shared by every kernel, the assembly's wrappers included.

use tinyvae_format::{Activation, Dense};

/// `round(a * b / 2^31)` with ties away from zero, saturating the one overflowing case
/// `a = b = i32::MIN` to `i32::MAX` (gemmlowp's `SaturatingRoundingDoublingHighMul`).
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp adds 2^30 (ab >= 0) or 1 - 2^30 (ab < 0) and divides by 2^31 truncating
    // toward zero. For ab < 0 the numerator n is negative and trunc(n / 2^31) =
    // floor((n + 2^31 - 1) / 2^31) = floor((ab + 2^30) / 2^31): both cases are one
    // arithmetic shift, which compiles to a multiply-accumulate and two shifts. The quotient
    // fits an i32 for every input but the one excluded above.
    let ab = mul_wide(a, b);
    ((ab + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero (gemmlowp's `RoundingDivideByPOT`).
/// `exponent` is taken modulo 32 only in the sense that callers pass `0..=31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let exponent = exponent & 31;
    let mask = ((1u32 << exponent).wrapping_sub(1)) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `x * multiplier * 2^shift / 2^31`, rounded as TFLite's `MultiplyByQuantizedMultiplier`.
///
/// `shift` in `[-31, 30]`: positive shifts left before the multiply (saturating), negative
/// shifts right after it.
#[inline(always)]
pub fn requantize(x: i32, multiplier: i32, shift: i8) -> i32 {
    let left = shift.max(0) as u32;
    let right = (-(shift.min(0) as i32)) as u32;
    let x = if left == 0 {
        x
    } else {
        let wide = i64::from(x) << left.min(31);
        wide.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    };
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)
}

/// [`requantize`] for a multiplier other than `i32::MIN` (a validated model's are 0 or in
/// `[2^30, 2^31)`), where the high multiply cannot saturate: the same result without the
/// test for the one saturating case, for the kernels' once-per-output path.
#[inline(always)]
pub fn requantize_q31(x: i32, multiplier: i32, shift: i8) -> i32 {
    let x = if shift > 0 { shift_left(x, shift) } else { x };
    // |x * multiplier| < 2^62 and the quotient fits an i32 when multiplier != i32::MIN.
    let high = ((mul_wide(x, multiplier) + (1 << 30)) >> 31) as i32;
    rounding_divide_by_pot(high, (-(shift.min(0) as i32)) as u32)
}

/// `x * 2^shift`, saturating: out of the kernels' loops (trained layers shift right).
#[cold]
#[inline(never)]
fn shift_left(x: i32, shift: i8) -> i32 {
    let wide = i64::from(x) << (shift as u32).min(31);
    wide.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// `a * b` in 64 bits. ARMv6-M (Cortex-M0) has no 32 x 32 -> 64 multiply, and the compiler
/// calls the 64 x 64 `__aeabi_lmul` for it (about 40 instructions a call): four 16 x 16
/// products instead, about half.
#[inline(always)]
fn mul_wide(a: i32, b: i32) -> i64 {
    if cfg!(tinyvae_no_umull) {
        mul_wide_halves(a, b)
    } else {
        i64::from(a) * i64::from(b)
    }
}

/// `a * b` from the signed high and unsigned low halves: every partial product fits an i32
/// (or, low by low, a u32).
#[inline(always)]
fn mul_wide_halves(a: i32, b: i32) -> i64 {
    let (ah, al, bh, bl) = (a >> 16, a & 0xFFFF, b >> 16, b & 0xFFFF);
    let low = i64::from((al as u32) * (bl as u32));
    let cross = i64::from(ah * bl) + i64::from(al * bh);
    (i64::from(ah * bh) << 32) + (cross << 16) + low
}

/// Output channel `row`'s accumulator requantized with its multiplier and shift (a
/// validated layer's multipliers are never `i32::MIN`).
#[inline(always)]
pub(crate) fn requantized(layer: &Dense<'_>, row: usize, acc: i32) -> i32 {
    requantize_q31(
        acc,
        layer.multiplier.get(row).unwrap_or(0),
        layer.shift.get(row).unwrap_or(0),
    )
}

/// Output channel `row`'s accumulator (bias included) as the layer's int8 output:
/// requantized, the output zero point added, clamped to the activation's range. (`max` then
/// `min`, not `clamp`: `clamp` with a bound known only at run time carries a formatted panic
/// that would bring `core::fmt`, a kilobyte of flash, into the firmware.)
#[inline(always)]
#[cfg_attr(tinyvae_dsp, allow(dead_code))]
pub(crate) fn output_i8(layer: &Dense<'_>, row: usize, acc: i32) -> i8 {
    let zp = i32::from(layer.output_zero_point);
    let lo = match layer.activation {
        Activation::Relu => zp.max(-128),
        _ => -128,
    };
    requantized(layer, row, acc)
        .saturating_add(zp)
        .max(lo)
        .min(127) as i8
}

/// Output channel `row`'s accumulator (bias included) as the layer's int16 output (the
/// encoder's last layer: no zero-point, the int16 range).
#[inline(always)]
pub(crate) fn output_i16(layer: &Dense<'_>, row: usize, acc: i32) -> i16 {
    requantized(layer, row, acc).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// The output zero-point and the lower clamp of an int8 layer (its zero-point with ReLU).
#[inline(always)]
pub(crate) fn output_range(layer: &Dense<'_>) -> (i32, i32) {
    let zp = i32::from(layer.output_zero_point);
    let lo = match layer.activation {
        Activation::Relu => zp.max(-128),
        _ => -128,
    };
    (zp, lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Cortex-M0's product from halves equals the 64-bit product, edges and at random.
    #[test]
    fn mul_wide_halves_is_the_product() {
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -65536,
            -65535,
            -1,
            0,
            1,
            65535,
            65536,
            i32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(
                    mul_wide_halves(a, b),
                    i64::from(a) * i64::from(b),
                    "{a} {b}"
                );
            }
        }
        let mut r = crate::rng::Rng::new(7);
        for _ in 0..200_000 {
            let (a, b) = (r.next_u32() as i32, r.next_u32() as i32);
            assert_eq!(
                mul_wide_halves(a, b),
                i64::from(a) * i64::from(b),
                "{a} {b}"
            );
        }
    }

    /// The exact two-step rounding, in 128-bit arithmetic, for any shift.
    fn reference(x: i32, m: i32, shift: i8) -> i32 {
        let left = shift.max(0) as u32;
        let right = (-(shift.min(0) as i32)) as u32;
        let xs = (i128::from(x) << left).clamp(i128::from(i32::MIN), i128::from(i32::MAX));
        let ab = xs * i128::from(m);
        // first step: round half up (toward +inf) of ab / 2^31
        let q = if ab >= 0 {
            (ab + (1 << 30)) >> 31
        } else {
            -((-ab + (1 << 30) - 1) >> 31)
        };
        let q = q.clamp(i128::from(i32::MIN), i128::from(i32::MAX));
        // second step: round half away from zero of q / 2^right
        if right == 0 {
            return q as i32;
        }
        let d = 1i128 << right;
        let r = if q >= 0 {
            (q + d / 2) >> right
        } else {
            -((-q + d / 2) >> right)
        };
        r as i32
    }

    #[test]
    fn edge_values_match_reference() {
        let xs = [
            0,
            1,
            -1,
            2,
            -2,
            127,
            -128,
            1 << 20,
            -(1 << 20),
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            i32::MAX - 1,
        ];
        let ms = [
            0,
            1 << 30,
            (1 << 30) + 1,
            i32::MAX,
            i32::MAX - 1,
            1_518_500_250,
        ];
        for &x in &xs {
            for &m in &ms {
                for s in -31..=30i8 {
                    assert_eq!(requantize(x, m, s), reference(x, m, s), "x={x} m={m} s={s}");
                }
            }
        }
    }

    #[test]
    fn known_answers_hold() {
        for &(x, m, s, want) in crate::known_answers::REQUANTIZE {
            assert_eq!(reference(x, m, s), want, "reference: x={x} m={m} s={s}");
            assert_eq!(requantize(x, m, s), want, "engine: x={x} m={m} s={s}");
        }
    }

    #[test]
    fn saturating_case() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        // Left shifts saturate instead of overflowing (undefined in the C reference).
        assert_eq!(requantize(i32::MAX, 1 << 30, 30), i32::MAX / 2 + 1);
        assert_eq!(requantize(i32::MIN, 1 << 30, 30), i32::MIN / 2);
        assert_eq!(requantize(1 << 20, 1 << 30, 30), i32::MAX / 2 + 1);
    }

    #[test]
    fn the_fast_path_equals_the_full_one_but_for_the_saturating_multiplier() {
        for &(x, m, s, want) in crate::known_answers::REQUANTIZE {
            if m != i32::MIN {
                assert_eq!(requantize_q31(x, m, s), want, "x={x} m={m} s={s}");
            }
        }
    }

    /// The DSP kernels' fast path (`TINYVAE_REQ`, `TINYVAE_REQ2`, `TINYVAE_ROUND` in
    /// dense_dsp.s), instruction by instruction, for m in [2^30, 2^31) and a right shift
    /// (s < 0): `SMMLAR` of a by 2m read as signed with a as the high accumulator, then
    /// d = h + (h >> 31), `ASRS` by e = -s (the last bit out, bit e - 1 of d, in the carry)
    /// and `ADC` of the carry and the zero-point. The chip's `dspcheck` runs the assembly.
    fn kernel_fast_path(a: i32, m: i32, s: i8, zp: i32) -> i32 {
        let m2 = (m as u32).wrapping_shl(1) as i32;
        let sum = (i64::from(a) << 32)
            .wrapping_add(i64::from(a) * i64::from(m2))
            .wrapping_add(1 << 31);
        let h = (sum >> 32) as i32;
        let d = h.wrapping_add(h >> 31);
        let e = u32::from(s.unsigned_abs());
        let carry = (d >> (e - 1)) & 1;
        (d >> e) + carry + zp
    }

    #[test]
    fn the_kernels_fast_path_at_the_edges() {
        let xs = [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 30),
            -3,
            -2,
            -1,
            0,
            1,
            2,
            3,
            1 << 30,
            i32::MAX,
        ];
        let ms = [1 << 30, (1 << 30) + 1, 0x5a82_7999, i32::MAX - 1, i32::MAX];
        for x in xs {
            for m in ms {
                for s in -31i8..=-1 {
                    for zp in [-128, 0, 127] {
                        assert_eq!(
                            kernel_fast_path(x, m, s, zp),
                            requantize_q31(x, m, s) + zp,
                            "x={x} m={m} s={s} zp={zp}"
                        );
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_kernels_fast_path(
            x: i32, m in (1i32 << 30)..=i32::MAX, s in -31i8..=-1, zp in -128i32..=127,
        ) {
            proptest::prop_assert_eq!(kernel_fast_path(x, m, s, zp), requantize_q31(x, m, s) + zp);
        }

        #[test]
        fn random_values_match_reference(x: i32, m in (1i32 << 30)..=i32::MAX, s in -31i8..=30) {
            proptest::prop_assert_eq!(requantize(x, m, s), reference(x, m, s));
            proptest::prop_assert_eq!(requantize_q31(x, m, s), reference(x, m, s));
        }

        #[test]
        fn fast_path_over_every_multiplier(x: i32, m in (i32::MIN + 1)..=i32::MAX, s in -31i8..=30) {
            proptest::prop_assert_eq!(requantize_q31(x, m, s), requantize(x, m, s));
        }
    }
}
