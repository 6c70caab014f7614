//! Post-training quantization to the int8 model format, calibrated on training data, with
//! golden vectors computed by the integer engine and a per-layer report.
//!
//! - Weights: int8, symmetric per output channel (scale = max |w| / 127).
//! - Activations: asymmetric int8. The input is the u8 pixel minus 128 (scale 1/255,
//!   zero-point -128, exact); hidden ReLU outputs cover [0, max seen in calibration].
//! - The encoder's last layer writes int16 fixed point with [`LATENT_FRAC_BITS`] fractional
//!   bits (mu and log-variance, or z).
//! - The latent code is symmetric int8 over [-R, R], R = max(4, the 99.9th percentile of |z|
//!   over posterior and prior draws).
//! - The decoder's logits are asymmetric int8 over their calibrated range clipped to
//!   [-12, 12] (sigmoid is 0 or 255 in u8 beyond that), then a 256-entry table gives pixels.
//! - Biases: int32 at scale s_in * s_w, with the input zero-point term folded in.
//! - Requantization: Q31 multiplier and shift per channel, from f64.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use tinyvae_engine::{dense, Engine, NoProbe, Sampler};
use tinyvae_format::owned::{
    pixel_table, quantize_multiplier, Channels, OwnedDense, OwnedGolden, OwnedLatent, OwnedModel,
    OwnedPrior, OwnedProvenance, LATENT_FRAC_BITS,
};
use tinyvae_format::{
    Activation, DataShape, Dense, Model, OutputType, PixelEncoding, WeightLayout,
};

use crate::data::Split;
use crate::layers::{run, Layer};
use crate::model::{to_vec_f32, Kind, Linear, Net};
use crate::rng::Rng;
use crate::train::{batch_tensor, Config};

/// Export options.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Training images used for calibration.
    pub calibration_images: usize,
    /// Golden vectors of each kind to store.
    pub golden: usize,
    /// Seed of the calibration draws and of the sampler golden vector.
    pub seed: u64,
    /// 0: sample z from N(0, I). K > 0 (VAE only): sample from the aggregate posterior, the
    /// mixture of the posteriors N(mu_i, sigma_i^2) of K training images spread evenly over
    /// the training set, with equal weights (the seed lecture's first option, subsampled).
    pub prior_components: usize,
    /// Storage order of the weights: 4 x 4 tiles (the DSP kernel's order on Cortex-M4/M7;
    /// portable elsewhere) or row-major.
    pub layout: WeightLayout,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            calibration_images: 2000,
            golden: 4,
            seed: 2026,
            prior_components: 0,
            layout: WeightLayout::Tiles4x4,
        }
    }
}

/// One line of the export report.
#[derive(Clone, Debug)]
pub struct LayerReport {
    /// "enc.0", "dec.1", ...
    pub name: String,
    /// Inputs x outputs.
    pub shape: (usize, usize),
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

/// Float weights of a layer: (W row-major (out, in), b).
fn layer_f32(l: &Linear) -> Result<(Vec<f32>, Vec<f32>, usize, usize)> {
    let (out, inp) = l.w.as_tensor().dims2()?;
    Ok((
        to_vec_f32(l.w.as_tensor())?,
        to_vec_f32(l.b.as_tensor())?,
        inp,
        out,
    ))
}

/// Per-layer outputs (after the activation) of a float network.
fn float_layers(layers: &[Layer], x: &Tensor) -> Result<Vec<Vec<f32>>> {
    run(layers, x, true)?.iter().map(to_vec_f32).collect()
}

/// The dense layers of a network, or an error: the int8 format holds dense layers only.
fn dense_layers(layers: &[Layer]) -> Result<Vec<&Linear>> {
    layers
        .iter()
        .map(|l| {
            l.as_dense().context(
                "int8 export of convolutional models is not supported yet: the model format \
                 holds dense layers only. The float model trains, evaluates, samples and \
                 pictures as a dense one does",
            )
        })
        .collect()
}

fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

fn snr_db(reference: &[f32], approx: &[f32]) -> f64 {
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

/// Quantizes one layer. `output` is (zero-point, scale) for int8, or None for the I16 head.
fn quantize_layer(
    w: &[f32],
    b: &[f32],
    inp: usize,
    out: usize,
    (in_zp, in_scale): (i8, f32),
    output: Option<(i8, f32)>,
    activation: Activation,
) -> Result<(OwnedDense, f64)> {
    let mut c = Channels::default();
    let (mut sig, mut noise) = (0f64, 0f64);
    for o in 0..out {
        let row = &w[o * inp..(o + 1) * inp];
        let max = row.iter().fold(0f32, |m, &v| m.max(v.abs()));
        let s_w = if max > 0.0 { max / 127.0 } else { 1.0 };
        let q: Vec<i8> = row
            .iter()
            .map(|&v| (v / s_w).round().clamp(-127.0, 127.0) as i8)
            .collect();
        for (&v, &qv) in row.iter().zip(&q) {
            sig += f64::from(v).powi(2);
            noise += (f64::from(v) - f64::from(qv) * f64::from(s_w)).powi(2);
        }
        let acc_scale = f64::from(in_scale) * f64::from(s_w);
        let bq = (f64::from(b[o]) / acc_scale).round();
        let wsum: i64 = q.iter().map(|&v| i64::from(v)).sum();
        let folded = bq as i64 - i64::from(in_zp) * wsum;
        let folded = i32::try_from(folded).with_context(|| {
            format!("bias of channel {o} does not fit an int32 after folding the input offset")
        })?;
        let real = match output {
            Some((_, s_out)) => acc_scale / f64::from(s_out),
            None => acc_scale * f64::from(1u32 << LATENT_FRAC_BITS),
        };
        let (m, s) = quantize_multiplier(real).context("non-finite requantization multiplier")?;
        c.weights.extend(q);
        c.bias.push(folded);
        c.multiplier.push(m);
        c.shift.push(s);
        c.weight_scale.push(s_w);
    }
    let (ty, (out_zp, out_scale)) = match output {
        Some(o) => (OutputType::I8, o),
        None => (
            OutputType::I16,
            (0, 1.0 / (1u32 << LATENT_FRAC_BITS) as f32),
        ),
    };
    let layer = OwnedDense::new(
        u16::try_from(inp)?,
        u16::try_from(out)?,
        activation,
        ty,
        (in_zp, in_scale),
        (out_zp, out_scale),
        &c,
    );
    Ok((layer, 10.0 * (sig / noise.max(1e-30)).log10()))
}

/// The int8 model of a trained float model, with its report.
pub fn quantize(
    net: &Net,
    cfg: &Config,
    calib: &Split,
    test: &Split,
    test_neg_elbo: f64,
    epochs: usize,
    opts: &ExportOptions,
) -> Result<(OwnedModel, Vec<u8>, Vec<LayerReport>)> {
    let dev = Device::Cpu;
    let arch = &net.arch;
    let (enc_dense, dec_dense) = (dense_layers(&net.enc)?, dense_layers(&net.dec)?);
    let pixels = arch.pixels();
    if pixels > usize::from(u16::MAX) {
        bail!("images of {pixels} pixels are too large for the model format");
    }
    let n = opts.calibration_images.min(calib.n).max(1);
    let idx: Vec<usize> = (0..n).collect();
    let x = batch_tensor(calib, &idx, pixels, &dev)?;

    // Encoder calibration.
    let enc_outs = float_layers(&net.enc, &x)?;
    let head = enc_outs.last().context("encoder has no layer")?;
    let lat = arch.latent;
    let eo = arch.encoder_out();
    // Latent draws: posterior samples and prior samples.
    let mut rng = Rng::new(opts.seed);
    let mut z = Vec::with_capacity(2 * n * lat);
    let mut eps = vec![0f32; 2 * n * lat];
    rng.fill_normal(&mut eps);
    for i in 0..n {
        for j in 0..lat {
            let mu = head[i * eo + j];
            let sigma = if arch.kind == Kind::Vae {
                (0.5 * head[i * eo + lat + j]).exp()
            } else {
                0.0
            };
            z.push(mu + sigma * eps[i * lat + j]);
        }
    }
    if arch.kind == Kind::Vae {
        z.extend_from_slice(&eps[n * lat..]);
    }
    let mut absz: Vec<f32> = z.iter().map(|v| v.abs()).collect();
    let r = quantile(&mut absz, 0.999).max(4.0);
    let z_scale = r / 127.0;
    let zq: Vec<f32> = z
        .iter()
        .map(|&v| (v / z_scale).round().clamp(-127.0, 127.0) * z_scale)
        .collect();
    let nz = zq.len() / lat;
    let zt = Tensor::from_vec(zq.clone(), (nz, lat), &dev)?;
    let dec_outs = float_layers(&net.dec, &zt)?;

    let mut report = Vec::new();
    let mut encoder = Vec::new();
    let mut input = (-128i8, 1.0f32 / 255.0);
    for (i, l) in enc_dense.iter().enumerate() {
        let (w, b, inp, out) = layer_f32(l)?;
        let last = i + 1 == enc_dense.len();
        let output = if last {
            None
        } else {
            let max = enc_outs[i].iter().fold(0f32, |m, &v| m.max(v)).max(1e-6);
            Some((-128i8, max / 255.0))
        };
        let act = if last {
            Activation::None
        } else {
            Activation::Relu
        };
        let (layer, wsnr) = quantize_layer(&w, &b, inp, out, input, output, act)?;
        report.push(layer_report(format!("enc.{i}"), &w, &layer, wsnr));
        if let Some(o) = output {
            input = o;
        }
        encoder.push(layer);
    }
    let mut decoder = Vec::new();
    let mut input = (0i8, z_scale);
    let mut logit = (0i8, 1.0f32);
    for (i, l) in dec_dense.iter().enumerate() {
        let (w, b, inp, out) = layer_f32(l)?;
        let last = i + 1 == dec_dense.len();
        let output = if last {
            let mut v = dec_outs[i].clone();
            // max/min rather than clamp: a NaN quantile must not panic here.
            #[allow(clippy::manual_clamp)]
            let (lo, hi) = (
                quantile(&mut v, 0.001).max(-12.0).min(-1.0),
                quantile(&mut v, 0.999).min(12.0).max(1.0),
            );
            let s = (hi - lo) / 255.0;
            let zp = (-128.0 - lo / s).round().clamp(-128.0, 127.0) as i8;
            logit = (zp, s);
            (zp, s)
        } else {
            let max = dec_outs[i].iter().fold(0f32, |m, &v| m.max(v)).max(1e-6);
            (-128i8, max / 255.0)
        };
        let act = if last {
            Activation::PixelTable
        } else {
            Activation::Relu
        };
        let (layer, wsnr) = quantize_layer(&w, &b, inp, out, input, Some(output), act)?;
        report.push(layer_report(format!("dec.{i}"), &w, &layer, wsnr));
        input = output;
        decoder.push(layer);
    }

    let model = OwnedModel {
        kind: arch.kind.format(),
        data: DataShape {
            width: u16::try_from(arch.width)?,
            height: u16::try_from(arch.height)?,
            channels: u8::try_from(arch.channels)?,
            pixel: PixelEncoding::U8,
        },
        latent: OwnedLatent::symmetric(u16::try_from(lat)?, z_scale),
        encoder,
        decoder,
        pixel_table: pixel_table(logit.1, logit.0),
        prior: aggregate_posterior(net, calib, opts.prior_components)?,
        provenance: OwnedProvenance {
            dataset: cfg.dataset.clone(),
            architecture: arch.name(),
            epochs: epochs as u32,
            seed: cfg.seed,
            beta: cfg.beta as f32,
            test_neg_elbo: test_neg_elbo as f32,
            trainer: concat!("tinyvae-trainer ", env!("CARGO_PKG_VERSION")).into(),
        },
        golden: None,
    };

    // Output SNR per layer, with the engine's own kernels run end to end.
    let bufs = model.buffers();
    let view = model.view(&bufs)?;
    let snrs = layer_snrs(
        &view,
        calib,
        &idx[..n.min(500)],
        (&enc_outs, &dec_outs),
        &zq,
        lat,
    );
    for (r, s) in report.iter_mut().zip(snrs) {
        r.output_snr_db = s;
    }
    drop(view);

    let mut model = model.with_layout(opts.layout);
    if opts.golden > 0 {
        let golden = golden_vectors(&model, test, opts)?;
        model.golden = Some(golden);
    }
    let blob = model
        .to_bytes()
        .context("the quantized model does not validate")?;
    Ok((model, blob, report))
}

/// The prior to store: N(0, I), or the aggregate posterior of `k` training images.
fn aggregate_posterior(net: &Net, train: &Split, k: usize) -> Result<OwnedPrior> {
    if k == 0 {
        return Ok(OwnedPrior::StandardNormal);
    }
    if net.arch.kind != Kind::Vae {
        bail!("an aggregate-posterior prior needs a VAE (an autoencoder has no posterior)");
    }
    let k = k.min(train.n).min(usize::from(u16::MAX));
    let idx: Vec<usize> = (0..k).map(|i| i * train.n / k).collect();
    let x = batch_tensor(train, &idx, net.arch.pixels(), &Device::Cpu)?;
    let enc = net.encode(&x)?;
    let mu = to_vec_f32(&enc.mu)?;
    let lv = to_vec_f32(enc.logvar.as_ref().context("VAE without log-variance")?)?;
    let one = f64::from(1u32 << LATENT_FRAC_BITS);
    let means = mu
        .iter()
        .map(|&m| (f64::from(m) * one).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let sigmas = lv
        .iter()
        .map(|&l| {
            ((0.5 * f64::from(l)).exp() * 65536.0)
                .round()
                .clamp(1.0, f64::from(1u32 << 30)) as u32
        })
        .collect();
    // Equal weights: component i covers draws u < (i + 1) 2^32 / k.
    let cumulative = (1..=k as u64)
        .map(|i| ((i << 32) / k as u64).min(u64::from(u32::MAX)) as u32)
        .collect();
    Ok(OwnedPrior::Mixture {
        cumulative,
        means,
        sigmas,
    })
}

fn layer_report(name: String, w: &[f32], l: &OwnedDense, weight_snr_db: f64) -> LayerReport {
    let v = l.view();
    let (lo, hi) = w
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let (slo, shi) = v
        .weight_scale
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
    LayerReport {
        name,
        shape: (usize::from(l.in_dim), usize::from(l.out_dim)),
        weight_range: (lo, hi),
        weight_scale_range: (slo, shi),
        scales: (l.input_scale, l.output_scale),
        weight_snr_db,
        output_snr_db: f64::NAN,
    }
}

/// One dequantized engine output, comparable with the float layer's: int16 fixed point, u8
/// pixels through the table (against sigmoid of the float logits: logits beyond the clipped
/// range are 0 or 255 either way), or int8 at the layer's output scale.
fn dequantize(m: &Model<'_>, l: &Dense<'_>, y: i32) -> f32 {
    match (l.output_type, l.activation) {
        (OutputType::I16, _) => y as f32 / (1u32 << LATENT_FRAC_BITS) as f32,
        (_, Activation::PixelTable) => {
            let table = m.pixel_table.as_slice();
            f32::from(table[usize::from((y as i8 as u8) ^ 0x80)]) / 255.0
        }
        _ => (y as f32 - f32::from(l.output_zero_point)) * l.output_scale,
    }
}

/// SNR of each layer's engine output against float, each network run end to end in int8:
/// `inputs` are (row in `float_outs`, int8 input) pairs.
fn network_snrs(
    m: &Model<'_>,
    layers: &[Dense<'_>],
    inputs: impl Iterator<Item = (usize, Vec<i8>)>,
    float_outs: &[Vec<f32>],
) -> Vec<f64> {
    let mut approx: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    let mut refs: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    for (row, mut x) in inputs {
        for (k, l) in layers.iter().enumerate() {
            let width = usize::from(l.out_dim);
            let float = &float_outs[k][row * width..(row + 1) * width];
            if l.activation == Activation::PixelTable {
                refs[k].extend(float.iter().map(|&v| 1.0 / (1.0 + (-v).exp())));
            } else {
                refs[k].extend_from_slice(float);
            }
            let y: Vec<i32> = if l.output_type == OutputType::I16 {
                let mut y = vec![0i16; width];
                dense::dense_i16(l, &x, &mut y, &mut []);
                y.into_iter().map(i32::from).collect()
            } else {
                let mut y = vec![0i8; width];
                dense::dense_i8_portable(l, &x, &mut y);
                x = y.clone();
                y.into_iter().map(i32::from).collect()
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
fn layer_snrs(
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

/// Golden vectors computed by the integer engine: encodings of test images, decodings of
/// their mean codes, and the sampler's stream and first prior sample for a seed.
pub fn golden_vectors(
    model: &OwnedModel,
    test: &Split,
    opts: &ExportOptions,
) -> Result<OwnedGolden> {
    let bufs = model.buffers();
    let m = model.view(&bufs)?;
    let engine = Engine::new(&m);
    let pixels = m.data.len();
    let dim = usize::from(m.latent.dim);
    let mut scratch = vec![0i8; engine.scratch_len()];
    let mut g = OwnedGolden::default();
    for i in 0..opts.golden.min(test.n).min(tinyvae_format::MAX_GOLDEN) {
        let img = test.image(i, pixels).to_vec();
        let mut stats = vec![0i16; m.encoder_out_dim()];
        engine.encode(&img, &mut scratch, &mut stats, &mut NoProbe)?;
        let mut code = vec![0i8; dim];
        engine.mean_code(&stats, &mut code)?;
        let mut px = vec![0u8; pixels];
        engine.decode(&code, &mut scratch, &mut px, &mut NoProbe)?;
        g.encoder.push((img, stats));
        g.decoder.push((code, px));
    }
    let mut sampler = Sampler::new(opts.seed);
    let mut eps = vec![0i16; 16];
    sampler.fill_normal(&mut eps);
    let mut sampler = Sampler::new(opts.seed);
    let mut code = vec![0i8; dim];
    engine.sample_prior(&mut sampler, &mut code)?;
    let mut px = vec![0u8; pixels];
    engine.decode(&code, &mut scratch, &mut px, &mut NoProbe)?;
    g.sampler.push((opts.seed, eps, code, px));
    Ok(g)
}

/// Prints the report as a table.
pub fn print_report(report: &[LayerReport]) {
    println!(
        "{:<6} {:>9}  {:>17}  {:>19}  {:>9} {:>9}  {:>8}  {:>9}",
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
            "{:<6} {:>9}  [{:>7.3},{:>7.3}]  [{:>8.2e},{:>8.2e}]  {:>9.3e} {:>9.3e}  {:>5.1} dB  {:>6.1} dB",
            r.name,
            format!("{}x{}", r.shape.0, r.shape.1),
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

/// The float decoder as trained, in the f32 container the `tinyvae-f32` crate reads (for the
/// f32 path on boards with an FPU, and as the reference the int8 path is measured against).
pub fn float_decoder(net: &Net) -> Result<Vec<u8>> {
    let mut layers = Vec::with_capacity(net.dec.len());
    for l in dense_layers(&net.dec)? {
        let (out, inp) = l.w.as_tensor().dims2()?;
        if out > usize::from(u16::MAX) || inp > usize::from(u16::MAX) {
            bail!("layer {inp}x{out} too wide for the float decoder format");
        }
        layers.push((
            to_vec_f32(l.w.as_tensor())?,
            to_vec_f32(l.b.as_tensor())?,
            inp,
            out,
        ));
    }
    if layers.is_empty() || layers.len() > tinyvae_f32::MAX_LAYERS {
        bail!(
            "the float decoder format holds 1 to {} layers",
            tinyvae_f32::MAX_LAYERS
        );
    }
    let refs: Vec<_> = layers
        .iter()
        .map(|(w, b, i, o)| (w.as_slice(), b.as_slice(), *i, *o))
        .collect();
    Ok(tinyvae_f32::to_bytes(&refs))
}
