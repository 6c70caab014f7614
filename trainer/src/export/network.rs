//! One network in int8, layer by layer from its calibrated float outputs: the encoder, the
//! decoder, and a second-stage prior's network.

use anyhow::Result;
use candle_core::Tensor;
use tinyvae_format::owned::{OwnedLayer, LATENT_FRAC_BITS};
use tinyvae_format::Activation;

use super::layer::{self, FloatMatrix, Output};
use super::report::{self, LayerReport};
use crate::layers::{run, Layer};
use crate::model::to_vec_f32;

/// The value at quantile `q` of `v` (sorted in place); 0 for an empty `v`.
pub fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// Per-layer outputs (after the activation) of a float network.
pub fn float_layers(layers: &[Layer], x: &Tensor) -> Result<Vec<Vec<f32>>> {
    run(layers, x, true)?.iter().map(to_vec_f32).collect()
}

/// What a network's last layer writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// The encoder's: int16 fixed point, no activation.
    Fixed,
    /// The decoder's: int8 logits over their calibrated range, then the pixel table.
    Pixels,
}

/// One network in int8.
pub struct QuantizedNetwork {
    /// Its layers.
    pub layers: Vec<OwnedLayer>,
    /// Their report lines.
    pub report: Vec<LayerReport>,
    /// The last int8 output's (zero-point, scale): the decoder's logits.
    pub output: (i8, f32),
}

/// Quantizes one network layer by layer from its calibrated float outputs, its input at
/// `(zero-point, scale)`; report lines are named `prefix.i`.
pub fn quantize_network(
    layers: &[Layer],
    outs: &[Vec<f32>],
    mut input: (i8, f32),
    head: Head,
    prefix: &str,
) -> Result<QuantizedNetwork> {
    let mut owned = Vec::with_capacity(layers.len());
    let mut report = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let m = FloatMatrix::of(l)?;
        let last = i + 1 == layers.len();
        let (output, act) = match (last, head) {
            (true, Head::Fixed) => (
                Output::I16 {
                    frac: LATENT_FRAC_BITS,
                },
                Activation::None,
            ),
            (true, Head::Pixels) => {
                let mut v = outs[i].clone();
                // max/min rather than clamp: a NaN quantile must not panic here.
                #[allow(clippy::manual_clamp)]
                let (lo, hi) = (
                    quantile(&mut v, 0.001).max(-12.0).min(-1.0),
                    quantile(&mut v, 0.999).min(12.0).max(1.0),
                );
                let s = (hi - lo) / 255.0;
                let zp = (-128.0 - lo / s).round().clamp(-128.0, 127.0) as i8;
                (Output::I8(zp, s), Activation::PixelTable)
            }
            (false, _) => {
                let max = outs[i].iter().fold(0f32, |a, &v| a.max(v)).max(1e-6);
                (Output::I8(-128, max / 255.0), Activation::Relu)
            }
        };
        let (layer, wsnr) = layer::quantize(&m, input, output, act)?;
        report.push(report::layer_report(
            format!("{prefix}.{i}"),
            &m.w,
            &layer.view(),
            wsnr,
        ));
        if let Output::I8(zp, s) = output {
            input = (zp, s);
        }
        owned.push(layer);
    }
    Ok(QuantizedNetwork {
        layers: owned,
        report,
        output: input,
    })
}
