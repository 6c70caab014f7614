//! The quantizer and tables every writer shares (std only): the Q31 multiplier of a real
//! scale, the sigma table, the logit-to-pixel table, the latent fixed point.

/// Splits a real multiplier into a Q31 multiplier in `[2^30, 2^31)` and a shift in
/// `[-31, 30]`, as TFLite's `QuantizeMultiplier` does, in f64. Multipliers too small for a
/// right shift of 31 become `(0, 0)` (the channel outputs its zero-point); too large ones
/// saturate at the largest representable value. Returns `None` for a negative or non-finite
/// input.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i8)> {
    if !real.is_finite() || real < 0.0 {
        return None;
    }
    if real == 0.0 {
        return Some((0, 0));
    }
    // real = frac * 2^exp with frac in [0.5, 1)
    let mut exp = real.log2().floor() as i32 + 1;
    let mut frac = real / 2f64.powi(exp);
    if frac >= 1.0 {
        frac /= 2.0;
        exp += 1;
    } else if frac < 0.5 {
        frac *= 2.0;
        exp -= 1;
    }
    let mut q = (frac * 2f64.powi(31)).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        exp += 1;
    }
    if exp < -31 {
        return Some((0, 0));
    }
    if exp > 30 {
        return Some((i32::MAX, 30));
    }
    Some((q as i32, exp as i8))
}

/// The sigma table every exporter writes for `frac_bits` fractional bits: log-variance in
/// [-16, 16) in steps of 1/8, sigma = exp(lv / 2) in Q16.
pub fn sigma_table(frac_bits: u8) -> (i16, u8, Vec<u32>) {
    let step_log2 = frac_bits - 3;
    let min = -16i32 << frac_bits;
    let values = (0..=256)
        .map(|i| {
            let lv = -16.0 + f64::from(i) / 8.0;
            ((lv / 2.0).exp() * 65536.0)
                .round()
                .min(f64::from(1u32 << 30)) as u32
        })
        .collect();
    (
        min.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
        step_log2,
        values,
    )
}

/// The table from int8 logits (scale `scale`, zero-point `zero_point`) to u8 pixels:
/// `round(255 * sigmoid(scale * (q - zero_point)))`, index `q + 128`.
pub fn pixel_table(scale: f32, zero_point: i8) -> Vec<u8> {
    (-128i32..=127)
        .map(|q| {
            let x = f64::from(scale) * f64::from(q - i32::from(zero_point));
            (255.0 / (1.0 + (-x).exp())).round() as u8
        })
        .collect()
}

/// Fractional bits of the latent fixed point that synthetic models and the exporter use.
pub const LATENT_FRAC_BITS: u8 = 11;
