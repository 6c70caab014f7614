//! The per-layer export report: weight ranges and scales, the weights' quantization SNR, and
//! each layer's output SNR against float with the network run end to end in int8 by the
//! engine's own kernels.

use tinyvae_engine::{dense, run_i8};
use tinyvae_format::owned::LATENT_FRAC_BITS;
use tinyvae_format::{Activation, Layer, Model, OutputType};

use crate::data::Split;

/// One line of the export report.
#[derive(Clone, Debug)]
pub struct LayerReport {
    /// "enc.0", "dec.1", ...
    pub name: String,
    /// What it computes: "784->400", "conv 28x28x1->14x14x32 k4 s2 p1", ...
    pub shape: String,
    /// Smallest and largest float weight.
    pub weight_range: (f32, f32),
    /// Smallest and largest per-channel weight scale.
    pub weight_scale_range: (f32, f32),
    /// Input and output activation scales (output: 2^-frac for the fixed-point head).
    pub scales: (f32, f32),
    /// Signal-to-quantization-noise ratio of the int8 weights, dB.
    pub weight_snr_db: f64,
    /// SNR of the engine's output of this layer against float, on calibration data, dB
    /// (each network run end to end in int8 up to this layer).
    pub output_snr_db: f64,
}

/// The report line of a quantized layer, before its output SNR is known.
pub fn layer_report(name: String, w: &[f32], l: &Layer<'_>, weight_snr_db: f64) -> LayerReport {
    let m = l.matrix();
    let (lo, hi) = w
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let (slo, shi) = m
        .weight_scale
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
    LayerReport {
        name,
        shape: l.to_string(),
        weight_range: (lo, hi),
        weight_scale_range: (slo, shi),
        scales: (m.input_scale, m.output_scale),
        weight_snr_db,
        output_snr_db: f64::NAN,
    }
}

/// Signal-to-noise ratio of `approx` against `reference`, dB.
pub fn snr_db(reference: &[f32], approx: &[f32]) -> f64 {
    let (mut s, mut n) = (0f64, 0f64);
    for (&r, &a) in reference.iter().zip(approx) {
        s += f64::from(r) * f64::from(r);
        n += (f64::from(r) - f64::from(a)).powi(2);
    }
    if n == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (s / n).log10()
    }
}

/// One dequantized engine output, comparable with the float layer's: int16 fixed point, u8
/// pixels through the table (against sigmoid of the float logits: logits beyond the clipped
/// range are 0 or 255 either way), or int8 at the layer's output scale.
fn dequantize(m: &Model<'_>, l: &Layer<'_>, y: i32) -> f32 {
    let d = l.matrix();
    match (d.output_type, d.activation) {
        (OutputType::I16, _) => y as f32 / (1u32 << LATENT_FRAC_BITS) as f32,
        (_, Activation::PixelTable) => {
            let table = m.pixel_table.as_slice();
            f32::from(table[usize::from((y as i8 as u8) ^ 0x80)]) / 255.0
        }
        _ => (y as f32 - f32::from(d.output_zero_point)) * d.output_scale,
    }
}

/// SNR of each layer's engine output against float, each network run end to end in int8:
/// `inputs` are (row in `float_outs`, int8 input) pairs.
fn network_snrs(
    m: &Model<'_>,
    layers: &[Layer<'_>],
    inputs: impl Iterator<Item = (usize, Vec<i8>)>,
    float_outs: &[Vec<f32>],
) -> Vec<f64> {
    let mut approx: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    let mut refs: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    let patch_len = layers
        .iter()
        .map(|l| usize::from(l.matrix().in_dim))
        .max()
        .unwrap_or(0);
    let mut patch = vec![0i8; patch_len];
    for (row, mut x) in inputs {
        for (k, l) in layers.iter().enumerate() {
            let width = l.out_len() as usize;
            let float = &float_outs[k][row * width..(row + 1) * width];
            if l.activation() == Activation::PixelTable {
                refs[k].extend(float.iter().map(|&v| 1.0 / (1.0 + (-v).exp())));
            } else {
                refs[k].extend_from_slice(float);
            }
            let y: Vec<i32> = match l {
                Layer::Dense(d) if d.output_type == OutputType::I16 => {
                    let mut y = vec![0i16; width];
                    dense::dense_i16(d, &x, &mut y, &mut []);
                    y.into_iter().map(i32::from).collect()
                }
                _ => {
                    let mut y = vec![0i8; width];
                    run_i8(l, &x, &mut y, &mut patch, &mut []);
                    x = y.clone();
                    y.into_iter().map(i32::from).collect()
                }
            };
            approx[k].extend(y.iter().map(|&v| dequantize(m, l, v)));
        }
    }
    refs.iter()
        .zip(&approx)
        .map(|(r, a)| snr_db(r, a))
        .collect()
}

/// Per-layer output SNRs: the encoder on calibration images, the decoder on the quantized
/// latent draws (the first 500).
pub fn layer_snrs(
    m: &Model<'_>,
    calib: &Split,
    idx: &[usize],
    (enc_outs, dec_outs): (&[Vec<f32>], &[Vec<f32>]),
    zq: &[f32],
    lat: usize,
) -> Vec<f64> {
    let pixels = m.data.len();
    let images = idx.iter().map(|&i| {
        (
            i,
            calib
                .image(i, pixels)
                .iter()
                .map(|&p| (p ^ 0x80) as i8)
                .collect(),
        )
    });
    let mut out = network_snrs(m, &m.encoder.layers, images, enc_outs);
    let codes = (0..(zq.len() / lat).min(500)).map(|s| {
        let code = zq[s * lat..(s + 1) * lat]
            .iter()
            .map(|&v| (v / m.latent.scale).round() as i8)
            .collect();
        (s, code)
    });
    out.extend(network_snrs(m, &m.decoder.layers, codes, dec_outs));
    out
}

/// Prints the report as a table.
pub fn print_report(report: &[LayerReport]) {
    let w = report
        .iter()
        .map(|r| r.shape.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<6} {:>w$}  {:>17}  {:>19}  {:>9} {:>9}  {:>8}  {:>9}",
        "layer",
        "shape",
        "weight range",
        "weight scales",
        "in scale",
        "out scale",
        "w SNR",
        "out SNR"
    );
    for r in report {
        println!(
            "{:<6} {:>w$}  [{:>7.3},{:>7.3}]  [{:>8.2e},{:>8.2e}]  {:>9.3e} {:>9.3e}  {:>5.1} dB  {:>6.1} dB",
            r.name,
            r.shape,
            r.weight_range.0,
            r.weight_range.1,
            r.weight_scale_range.0,
            r.weight_scale_range.1,
            r.scales.0,
            r.scales.1,
            r.weight_snr_db,
            r.output_snr_db
        );
    }
}
