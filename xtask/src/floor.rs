//! The estimated floor of a layer on a Cortex-M4, which `cargo xtask cycles` puts beside each
//! layer's estimate: a model of the best a kernel could do, not a measurement.

/// A layer's estimated floor on a Cortex-M4, in cycles, in the model the chip issue states:
/// a dense layer's best blocking (4 x 4 tiles, two `LDM` and 16 single-cycle `SXTB16` /
/// `SMLAD`) costs 24 cycles per 16 MACs, a convolution whose two positions share each
/// weight's widening 1.2 per MAC, one with fewer than four output channels (its taps
/// multiplied where they lie, the scatter form's) 24 per 16; padding taps skipped (useful
/// MACs only, as a kernel could); and every output about 10 more for its requantization,
/// zero-point, clamp and store.
pub fn floor_cycles(l: &tinyvae_format::Layer<'_>) -> f64 {
    let (outputs, per_mac) = match l {
        tinyvae_format::Layer::Dense(d) => (u64::from(d.out_dim), 1.5),
        tinyvae_format::Layer::Conv2d(c) | tinyvae_format::Layer::ConvTranspose2d(c) => {
            let s = &c.shape;
            let outputs =
                u64::from(s.out_height) * u64::from(s.out_width) * u64::from(s.out_channels);
            if usize::from(s.out_channels) < tinyvae_engine::conv::FEW_CHANNELS {
                (outputs, 1.5)
            } else {
                (outputs, 1.2)
            }
        }
    };
    per_mac * l.useful_macs() as f64 + 10.0 * outputs as f64
}
