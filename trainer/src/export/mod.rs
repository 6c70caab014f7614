//! Post-training quantization to the int8 model format, calibrated on training data, with
//! golden vectors computed by the integer engine and a per-layer report.
//!
//! - Weights: int8, symmetric per output channel (scale = max |w| / 127); a convolution's
//!   weights are its matrix of one row per output channel (FORMAT.md, section 3).
//! - Activations: asymmetric int8. The input is the u8 pixel minus 128 (scale 1/255,
//!   zero-point -128, exact); hidden ReLU outputs cover [0, max seen in calibration], one
//!   scale per tensor.
//! - The encoder's last layer writes int16 fixed point with
//!   [`LATENT_FRAC_BITS`](tinyvae_format::owned::LATENT_FRAC_BITS) fractional bits (mu and
//!   log-variance, or z).
//! - The latent code is symmetric int8 over [-R, R], R = max(4, the 99.9th percentile of |z|
//!   over posterior and prior draws).
//! - The decoder's logits are asymmetric int8 over their calibrated range clipped to
//!   [-12, 12] (sigmoid is 0 or 255 in u8 beyond that), then a 256-entry table gives pixels.
//! - Biases: int32 at scale s_in * s_w, with the input zero-point term folded in.
//! - Requantization: Q31 multiplier and shift per channel, from f64.
//!
//! The steps: [`calibrate`] (float activations and latent draws), [`quantize_network`]
//! layer by layer, the model assembled, the output SNRs measured, golden vectors computed
//! with the engine ([`golden_vectors`]), the blob written.

mod layer;
mod network;
mod report;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::owned::{pixel_table, OwnedGolden, OwnedLatent, OwnedModel, OwnedProvenance};
use tinyvae_format::{DataShape, PixelEncoding, WeightLayout};

pub use layer::FloatMatrix;
pub use network::{float_layers, quantile, quantize_network, Head, QuantizedNetwork};
pub use report::{print_report, LayerReport};

use crate::data::{Dataset, Split};
use crate::layers::Layer;
use crate::model::{to_vec_f32, Kind, Net};
use crate::prior::{PriorChoice, PriorReport};
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
    /// The prior generation samples z from: N(0, I), the aggregate posterior of some
    /// training images, or a learned mixture ([`PriorChoice`]).
    pub prior: PriorChoice,
    /// Storage order of the weights: 4 x 4 tiles (the DSP kernel's order on Cortex-M4/M7;
    /// portable elsewhere) or row-major.
    pub layout: WeightLayout,
    /// Leave the encoder out: a model that generates only (format version 3 and later).
    pub decoder_only: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            calibration_images: 2000,
            golden: 4,
            seed: 2026,
            prior: PriorChoice::StandardNormal,
            layout: WeightLayout::Tiles4x4,
            decoder_only: false,
        }
    }
}

/// A trained model to export: its network, configuration and where training ended.
pub struct Trained<'a> {
    /// The float model.
    pub net: &'a Net,
    /// Its training configuration.
    pub config: &'a Config,
    /// Epochs trained.
    pub epochs: usize,
    /// Its last test -ELBO (NaN when unknown).
    pub test_neg_elbo: f64,
}

/// What [`quantize`] makes.
pub struct Exported {
    /// The int8 model.
    pub model: OwnedModel,
    /// Its file contents.
    pub blob: Vec<u8>,
    /// One line per layer.
    pub report: Vec<LayerReport>,
    /// How a learned prior was fitted, when one was.
    pub prior: Option<PriorReport>,
}

/// Float activations for calibration: every layer's output on calibration images (encoder)
/// and on latent draws (decoder), and the latent code's scale.
pub struct Calibration {
    /// Calibration images used.
    pub images: usize,
    /// Per encoder layer, its outputs after activation, row-major over the images.
    pub enc_outs: Vec<Vec<f32>>,
    /// Per decoder layer, its outputs on `zq`.
    pub dec_outs: Vec<Vec<f32>>,
    /// Latent draws (posterior, then prior for a VAE), quantized to the code's grid.
    pub zq: Vec<f32>,
    /// Real value of one step of the int8 latent code.
    pub z_scale: f32,
}

/// Runs the float model on calibration images and on latent draws.
pub fn calibrate(net: &Net, calib: &Split, opts: &ExportOptions) -> Result<Calibration> {
    let dev = Device::Cpu;
    let arch = &net.arch;
    let n = opts.calibration_images.min(calib.n).max(1);
    let idx: Vec<usize> = (0..n).collect();
    let x = batch_tensor(calib, &idx, arch.pixels(), &dev)?;
    let enc_outs = float_layers(&net.enc, &x)?;
    let head = enc_outs.last().context("encoder has no layer")?;
    let (lat, eo) = (arch.latent, arch.encoder_out());
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
    let z_scale = quantile(&mut absz, 0.999).max(4.0) / 127.0;
    let zq: Vec<f32> = z
        .iter()
        .map(|&v| (v / z_scale).round().clamp(-127.0, 127.0) * z_scale)
        .collect();
    let zt = Tensor::from_vec(zq.clone(), (zq.len() / lat, lat), &dev)?;
    let dec_outs = float_layers(&net.dec, &zt)?;
    Ok(Calibration {
        images: n,
        enc_outs,
        dec_outs,
        zq,
        z_scale,
    })
}

/// The int8 model of a trained float model, its blob and its report.
pub fn quantize(t: &Trained<'_>, data: &Dataset, opts: &ExportOptions) -> Result<Exported> {
    let (net, cfg) = (t.net, t.config);
    let arch = &net.arch;
    crate::train::check_data_shape(data, arch)?;
    check_finite(net)?;
    let c = calibrate(net, &data.train, opts)?;
    let enc = quantize_network(
        &net.enc,
        &c.enc_outs,
        (-128, 1.0 / 255.0),
        Head::Fixed,
        "enc",
    )?;
    let dec = quantize_network(&net.dec, &c.dec_outs, (0, c.z_scale), Head::Pixels, "dec")?;
    let logit = dec.output;
    let mut report = enc.report;
    report.extend(dec.report);
    let (prior, prior_report) = crate::prior::build(net, &data.train, &opts.prior)?;
    let u16_of = |v: usize, what: &str| {
        u16::try_from(v).with_context(|| format!("{what} {v} does not fit the model format"))
    };
    let model = OwnedModel {
        kind: arch.kind.format(),
        data: DataShape {
            width: u16_of(arch.width, "image width")?,
            height: u16_of(arch.height, "image height")?,
            channels: u8::try_from(arch.channels).context("more than 255 channels")?,
            pixel: PixelEncoding::U8,
        },
        latent: OwnedLatent::symmetric(u16_of(arch.latent, "latent size")?, c.z_scale),
        encoder: enc.layers,
        decoder: dec.layers,
        pixel_table: pixel_table(logit.1, logit.0),
        prior,
        provenance: OwnedProvenance {
            dataset: cfg.dataset.clone(),
            architecture: arch.name(),
            epochs: u32::try_from(t.epochs).unwrap_or(u32::MAX),
            seed: cfg.seed,
            beta: cfg.beta as f32,
            test_neg_elbo: t.test_neg_elbo as f32,
            trainer: concat!("tinyvae-trainer ", env!("CARGO_PKG_VERSION")).into(),
        },
        golden: None,
    };

    // Output SNR per layer, with the engine's own kernels run end to end.
    {
        let bufs = model.buffers();
        let view = model
            .view(&bufs)
            .context("the quantized model does not fit the format")?;
        let idx: Vec<usize> = (0..c.images.min(500)).collect();
        let snrs = report::layer_snrs(
            &view,
            &data.train,
            &idx,
            (&c.enc_outs, &c.dec_outs),
            &c.zq,
            arch.latent,
        );
        for (r, s) in report.iter_mut().zip(snrs) {
            r.output_snr_db = s;
        }
    }

    let mut model = model.with_layout(opts.layout);
    if opts.golden > 0 {
        model.golden = Some(golden_vectors(&model, &data.test, opts)?);
    }
    if opts.decoder_only {
        model.encoder.clear();
        if let Some(g) = &mut model.golden {
            g.encoder.clear();
        }
    }
    let blob = model
        .to_bytes()
        .context("the quantized model does not validate")?;
    Ok(Exported {
        model,
        blob,
        report,
        prior: prior_report,
    })
}

/// An error naming the first non-finite weight (layer, index): such a checkpoint would
/// export to a model that validates and generates flat grey.
pub fn check_finite(net: &Net) -> Result<()> {
    for (name, v) in net.named_vars() {
        let values = to_vec_f32(v.as_tensor())?;
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            bail!(
                "{name} holds a non-finite value ({}) at index {i}: the model diverged",
                values[i]
            );
        }
    }
    Ok(())
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
    let engine = Engine::new(&m)?;
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

/// The float decoder as trained, in the f32 container the `tinyvae-f32` crate reads (for the
/// f32 path on boards with an FPU, and as the reference the int8 path is measured against).
/// Dense decoders only.
pub fn float_decoder(net: &Net) -> Result<Vec<u8>> {
    check_finite(net)?;
    let mut layers = Vec::with_capacity(net.dec.len());
    for l in &net.dec {
        let Layer::Dense(d) = l else {
            bail!("the f32 decoder format holds dense layers only; this decoder has convolutions");
        };
        let (out, inp) = d.w.as_tensor().dims2()?;
        if out > usize::from(u16::MAX) || inp > usize::from(u16::MAX) {
            bail!("layer {inp}x{out} too wide for the float decoder format");
        }
        layers.push((
            to_vec_f32(d.w.as_tensor())?,
            to_vec_f32(d.b.as_tensor())?,
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
