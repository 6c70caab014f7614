//! Evaluation of a float model on a test split.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::Model;

use crate::data::Split;
use crate::model::{recon_loss, to_vec_f32, Kind, Net, Recon};
use crate::rng::Rng;
use crate::train::{batch_tensor, test_losses};

/// What `trainer eval` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Metrics {
    /// Test images evaluated.
    pub images: usize,
    /// Reconstruction term, nats per example (one z draw per image).
    pub recon: f64,
    /// KL term, nats per example.
    pub kl: f64,
    /// recon + KL: the beta = 1 -ELBO, nats per example.
    pub neg_elbo: f64,
    /// Importance-weighted bound (K samples) on -log p(x), when asked for.
    pub iw_bound: Option<(usize, usize, f64)>,
    /// Dimensions whose posterior mean varies across the test set (variance > 0.01).
    pub active_units: usize,
    /// Mean KL per latent dimension, nats.
    pub kl_per_dim: Vec<f64>,
    /// Mean squared error per pixel of the reconstruction at z = mu, intensities in [0, 1].
    pub mse: f64,
    /// PSNR of that reconstruction, dB (peak 1).
    pub psnr_db: f64,
}

/// Evaluates `net` on `test`: [`test_losses`], and per batch the posterior means (for the
/// active units), the KL per dimension and the reconstruction at z = mu. `iw` =
/// Some((K, images)) adds the importance-weighted bound with K samples on the first
/// `images` test images.
pub fn evaluate(
    net: &Net,
    test: &Split,
    recon: Recon,
    iw: Option<(usize, usize)>,
) -> Result<Metrics> {
    let pixels = net.arch.pixels();
    let lat = net.arch.latent;
    let mut se = 0f64;
    let mut kl_dim = vec![0f64; lat];
    let mut mus: Vec<f32> = Vec::with_capacity(test.n * lat);
    let (r_sum, k_sum) = test_losses(net, test, recon, &mut |x, enc| {
        mus.extend(to_vec_f32(&enc.mu)?);
        if let Some(lv) = &enc.logvar {
            let kd = ((lv.affine(1.0, 1.0)? - enc.mu.sqr()?)? - lv.exp()?)?.affine(-0.5, 0.0)?;
            for (j, v) in to_vec_f32(&kd.sum(0)?)?.iter().enumerate() {
                kl_dim[j] += f64::from(*v);
            }
        }
        let at_mu = net.decode(&net.decoder_input(&enc.mu, enc.class.as_ref())?)?;
        se += f64::from((at_mu - x)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        Ok(())
    })?;
    let n = test.n as f64;
    let mse = se / (n * pixels as f64);
    // Active units: Var_x(E_q[z_j]) > 0.01 (Burda et al.).
    let mut active = 0;
    for j in 0..lat {
        let col: Vec<f64> = (0..test.n).map(|i| f64::from(mus[i * lat + j])).collect();
        let mean = col.iter().sum::<f64>() / n;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        if var > 0.01 {
            active += 1;
        }
    }
    let iw_bound = match (iw, net.arch.kind) {
        (Some((k, images)), Kind::Vae) => Some((
            k,
            images.min(test.n),
            iw_bound(net, test, k, images.min(test.n))?,
        )),
        _ => None,
    };
    Ok(Metrics {
        images: test.n,
        recon: r_sum / n,
        kl: k_sum / n,
        neg_elbo: (r_sum + k_sum) / n,
        iw_bound,
        active_units: active,
        kl_per_dim: kl_dim.iter().map(|v| v / n).collect(),
        mse,
        psnr_db: -10.0 * mse.log10(),
    })
}

/// -log p(x) estimated with K importance samples from q(z|x), averaged over `images` test
/// images: -mean_x log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)), Bernoulli likelihood on the
/// intensities (the same likelihood as the training loss).
fn iw_bound(net: &Net, test: &Split, k: usize, images: usize) -> Result<f64> {
    let dev = Device::Cpu;
    let pixels = net.arch.pixels();
    let lat = net.arch.latent;
    let mut rng = Rng::new(0x1A5);
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let mut total = 0f64;
    for i in 0..images {
        let x = batch_tensor(test, &[i], pixels, &dev)?;
        let enc =
            net.encode_labelled(&x, crate::train::batch_labels(net, test, &[i]).as_deref())?;
        let (mu, lv) = (
            to_vec_f32(&enc.mu)?,
            to_vec_f32(enc.logvar.as_ref().expect("vae"))?,
        );
        let mut weights = Vec::with_capacity(k);
        for start in (0..k).step_by(1000) {
            let m = (k - start).min(1000);
            let mut eps = vec![0f32; m * lat];
            rng.fill_normal(&mut eps);
            let mut z = vec![0f32; m * lat];
            let mut log_pz_minus_qz = vec![0f64; m];
            for s in 0..m {
                for j in 0..lat {
                    let sd = (0.5 * lv[j]).exp();
                    let e = eps[s * lat + j];
                    let zz = mu[j] + sd * e;
                    z[s * lat + j] = zz;
                    let lp = -0.5 * f64::from(zz).powi(2) - half_log_2pi;
                    let lq = -0.5 * f64::from(e).powi(2) - half_log_2pi - f64::from(0.5 * lv[j]);
                    log_pz_minus_qz[s] += lp - lq;
                }
            }
            let zt = Tensor::from_vec(z, (m, lat), &dev)?;
            let class = enc
                .class
                .as_ref()
                .map(|c| c.broadcast_as((m, net.arch.classes))?.contiguous())
                .transpose()?;
            let logits = net.decode_logits(&net.decoder_input(&zt, class.as_ref())?)?;
            let xb = x.broadcast_as((m, pixels))?;
            let ll = recon_loss(&logits, &xb.contiguous()?, Recon::Bce)?.neg()?;
            let ll = to_vec_f32(&ll)?;
            for s in 0..m {
                weights.push(f64::from(ll[s]) + log_pz_minus_qz[s]);
            }
        }
        let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + weights.iter().map(|w| (w - max).exp()).sum::<f64>().ln();
        total += -(lse - (k as f64).ln());
    }
    Ok(total / images as f64)
}

/// `n` images decoded from z ~ N(0, t^2 I) drawn with `seed` (t the `temperature`, 1 for
/// the prior itself): the decoder's mean image, as u8. A conditional model's classes take
/// turns (image `i` of class `i mod classes`).
pub fn float_prior_samples(
    net: &Net,
    n: usize,
    seed: u64,
    temperature: f32,
) -> Result<Vec<Vec<u8>>> {
    let z = normal_draws(n * net.arch.latent, seed, temperature);
    float_decode_labelled(net, &z, class_turns(net, n).as_deref())
}

/// For a conditional model, `n` classes taking turns (`i mod classes`); `None` for another.
pub fn class_turns(net: &Net, n: usize) -> Option<Vec<u8>> {
    let classes = net.arch.classes;
    (classes > 0).then(|| (0..n).map(|i| (i % classes) as u8).collect())
}

/// `len` values drawn from N(0, t^2) with `seed`.
fn normal_draws(len: usize, seed: u64, temperature: f32) -> Vec<f32> {
    let mut z = vec![0f32; len];
    Rng::new(seed).fill_normal(&mut z);
    if temperature != 1.0 {
        z.iter_mut().for_each(|v| *v *= temperature);
    }
    z
}

/// For a conditional model: about `n` images, as many of each class (`n / classes` rounded
/// up, returned first), class 0's first, each decoded from its own z ~ N(0, t^2 I) drawn
/// with `seed`; `None` for another model.
pub fn float_class_samples(
    net: &Net,
    n: usize,
    seed: u64,
    temperature: f32,
) -> Result<Option<(usize, Vec<ClassSample>)>> {
    let classes = net.arch.classes;
    if classes == 0 {
        return Ok(None);
    }
    let per_class = n.div_ceil(classes).max(1);
    let labels: Vec<u8> = (0..classes * per_class)
        .map(|i| (i / per_class) as u8)
        .collect();
    let z = normal_draws(labels.len() * net.arch.latent, seed, temperature);
    let images = float_decode_labelled(net, &z, Some(&labels))?;
    Ok(Some((
        per_class,
        labels.iter().map(|&l| usize::from(l)).zip(images).collect(),
    )))
}

/// The float model's reconstructions (the decoding of the posterior mean) of `images`, as
/// u8: digits in the model's own style that are not its training images, the baseline a
/// sample's distance to the training set is read against. `labels`: a conditional model's
/// classes of the images.
pub fn float_reconstructions(
    net: &Net,
    images: &[Vec<u8>],
    labels: Option<&[u8]>,
) -> Result<Vec<Vec<u8>>> {
    let mut z = Vec::with_capacity(images.len() * net.arch.latent);
    for (i, chunk) in images.chunks(500).enumerate() {
        let split = Split {
            images: chunk.concat(),
            labels: None,
            n: chunk.len(),
        };
        let idx: Vec<usize> = (0..chunk.len()).collect();
        let x = batch_tensor(&split, &idx, net.arch.pixels(), &Device::Cpu)?;
        let part = labels_of_chunk(labels, i, 500, chunk.len())?;
        z.extend(to_vec_f32(&net.encode_labelled(&x, part)?.mu)?);
    }
    float_decode_labelled(net, &z, labels)
}

/// The float decoder's mean images, as u8, of the codes `z` (`latent` values each, one after
/// the other).
pub fn float_decode(net: &Net, z: &[f32]) -> Result<Vec<Vec<u8>>> {
    float_decode_labelled(net, z, None)
}

/// The labels of chunk `i` (of `len` items) where items go `size` a chunk: `None` without
/// labels, an error where they run out.
fn labels_of_chunk(
    labels: Option<&[u8]>,
    i: usize,
    size: usize,
    len: usize,
) -> Result<Option<&[u8]>> {
    labels
        .map(|l| {
            l.get(i * size..i * size + len)
                .context("fewer labels than items")
        })
        .transpose()
}

/// [`float_decode`], with a conditional model's class of each code.
pub fn float_decode_labelled(net: &Net, z: &[f32], labels: Option<&[u8]>) -> Result<Vec<Vec<u8>>> {
    let lat = net.arch.latent;
    let mut out = Vec::with_capacity(z.len() / lat.max(1));
    for (i, chunk) in z.chunks(500 * lat).enumerate() {
        let n = chunk.len() / lat;
        let class = labels_of_chunk(labels, i, 500, n)?
            .map(|l| net.one_hot(l))
            .transpose()?;
        let zt = Tensor::from_slice(chunk, (n, lat), &Device::Cpu)?;
        let x = net.decode(&net.decoder_input(&zt, class.as_ref())?)?;
        out.extend(to_vec_f32(&x)?.chunks(net.arch.pixels()).map(|c| {
            c.iter()
                .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect()
        }));
    }
    Ok(out)
}

/// `n` images generated by the integer engine from a model file's bytes: z from the model's
/// prior by the engine's sampler seeded with `seed`, decoded in int8.
pub fn int8_prior_samples(blob: &[u8], n: usize, seed: u64) -> Result<Vec<Vec<u8>>> {
    Ok(int8_prior_draws(blob, n, seed)?.0)
}

/// An image drawn from a class asked for: the class, the pixels.
pub type ClassSample = (usize, Vec<u8>);

/// For a model whose prior is grouped by class: about `n` images, as many of each class
/// (`n / classes` rounded up, returned first), class 0's first, generated by the integer
/// engine (`Engine::sample_class`) with one sampler seeded with `seed`; `None` for any other
/// prior.
pub fn int8_class_samples(
    blob: &[u8],
    n: usize,
    seed: u64,
) -> Result<Option<(usize, Vec<ClassSample>)>> {
    let m = Model::from_bytes(blob).context("the int8 model")?;
    let engine = Engine::new(&m)?;
    if engine.classes() == 0 {
        return Ok(None);
    }
    let per_class = n.div_ceil(engine.classes()).max(1);
    let mut scratch = vec![0i8; engine.scratch_len()];
    let mut sampler = Sampler::new(seed);
    let mut code = vec![0i8; usize::from(m.latent.dim)];
    let mut out = Vec::with_capacity(engine.classes() * per_class);
    for class in 0..engine.classes() {
        for _ in 0..per_class {
            let mut px = vec![0u8; m.data.len()];
            engine.sample_class(&mut sampler, class, &mut code)?;
            engine.decode(&code, &mut scratch, &mut px, &mut NoProbe)?;
            out.push((class, px));
        }
    }
    Ok(Some((per_class, out)))
}

/// [`int8_prior_samples`], and the codes the int8 decoder decoded, as the real values they
/// stand for (the decoder's input scale and zero-point), `latent` values per image: what the
/// float decoder decodes to compare with int8 on the very same draws.
pub fn int8_prior_draws(blob: &[u8], n: usize, seed: u64) -> Result<(Vec<Vec<u8>>, Vec<f32>)> {
    let m = Model::from_bytes(blob).context("the int8 model")?;
    let engine = Engine::new(&m)?;
    let first = m
        .decoder
        .layers
        .first()
        .map(|l| *l.matrix())
        .context("the model has no decoder layer")?;
    let (zp, scale) = (i32::from(first.input_zero_point), first.input_scale);
    let mut scratch = vec![0i8; engine.scratch_len()];
    let mut sampler = Sampler::new(seed);
    let mut code = vec![0i8; usize::from(m.latent.dim)];
    let (mut out, mut z) = (Vec::with_capacity(n), Vec::with_capacity(n * code.len()));
    for _ in 0..n {
        let mut px = vec![0u8; m.data.len()];
        engine.sample_prior(&mut sampler, &mut code)?;
        engine.decode(&code, &mut scratch, &mut px, &mut NoProbe)?;
        out.push(px);
        z.extend(code.iter().map(|&c| (i32::from(c) - zp) as f32 * scale));
    }
    Ok((out, z))
}

/// What a model costs on a chip, from its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModelSize {
    /// Weights and biases of encoder and decoder.
    pub parameters: usize,
    /// Weights and biases of the decoder.
    pub decoder_parameters: usize,
    /// The decoder's int8 weights at one byte each, plus per output channel a 4-byte bias,
    /// a 4-byte multiplier and a 1-byte shift, as the model format stores dense layers.
    pub decoder_int8_bytes: usize,
    /// The largest input plus output of one decoder layer, one byte per value: the
    /// activation memory an int8 decoder needs at once.
    pub decoder_peak_activation_bytes: usize,
}

impl ModelSize {
    /// The figures of `arch`.
    pub fn of(arch: &crate::arch::Arch) -> ModelSize {
        let dec = arch.decoder_layers();
        let channels: usize = dec.iter().map(|l| l.kind.output_channels()).sum();
        let weights: usize = dec
            .iter()
            .map(|l| l.kind.parameters() - l.kind.output_channels())
            .sum();
        ModelSize {
            parameters: arch.parameters(),
            decoder_parameters: arch.decoder_parameters(),
            decoder_int8_bytes: weights + 9 * channels,
            decoder_peak_activation_bytes: arch.decoder_peak_activations(),
        }
    }
}
