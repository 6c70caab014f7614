//! One training step: the batch, its loss, its gradients over shards, the update; the test
//! split's loss.

use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::data::Split;
use crate::model::{kl_standard_normal, recon_loss, Encoded, Kind, Net, Recon};
use crate::rng::Rng;

use super::{Adam, Noise};

/// A batch of images as (batch x pixels) values in [0, 1].
pub fn batch_values(split: &Split, idx: &[usize], pixels: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(idx.len() * pixels);
    for &i in idx {
        v.extend(split.image(i, pixels).iter().map(|&p| f32::from(p) / 255.0));
    }
    v
}

/// A batch of images as a (batch, pixels) tensor in [0, 1].
pub fn batch_tensor(split: &Split, idx: &[usize], pixels: usize, dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        batch_values(split, idx, pixels),
        (idx.len(), pixels),
        dev,
    )?)
}

/// The loss of one batch: (recon, kl) tensors of shape (batch). `eps` holds the
/// reparameterization noise, (batch, latent) values (used by a VAE only); `labels` the
/// batch's classes (used by a conditional model only).
pub fn batch_loss(
    net: &Net,
    (x_in, labels): (&Tensor, Option<&[u8]>),
    x_target: &Tensor,
    recon: Recon,
    eps: &[f32],
) -> Result<(Tensor, Option<Tensor>)> {
    losses_of(
        net,
        &net.encode_labelled(x_in, labels)?,
        x_target,
        recon,
        eps,
    )
}

/// The labels of the examples `idx` of `split`, for a conditional model (`None` for
/// another, or where the split has none).
pub fn batch_labels(net: &Net, split: &Split, idx: &[usize]) -> Option<Vec<u8>> {
    let labels = split.labels.as_ref().filter(|_| net.arch.classes > 0)?;
    idx.iter().map(|&i| labels.get(i).copied()).collect()
}

/// [`batch_loss`] from the encoding `enc` of the batch: the reconstruction loss of
/// `x_target` from z = mu + sigma * eps, and the KL term (a VAE's).
pub fn losses_of(
    net: &Net,
    enc: &Encoded,
    x_target: &Tensor,
    recon: Recon,
    eps: &[f32],
) -> Result<(Tensor, Option<Tensor>)> {
    let (z, kl) = match &enc.logvar {
        Some(lv) => {
            let eps = Tensor::from_slice(eps, enc.mu.shape(), enc.mu.device())?;
            // Reparameterization: z = mu + sigma * eps, sigma = exp(logvar / 2).
            let z = (&enc.mu + (lv.affine(0.5, 0.0)?.exp()? * eps)?)?;
            (z, Some(kl_standard_normal(&enc.mu, lv)?))
        }
        None => (enc.mu.clone(), None),
    };
    let logits = net.decode_logits(&net.decoder_input(&z, enc.class.as_ref())?)?;
    Ok((recon_loss(&logits, x_target, recon)?, kl))
}

/// The reparameterization noise of `n` examples (none for an autoencoder).
pub(crate) fn noise_for(net: &Net, n: usize, rng: &mut Rng) -> Vec<f32> {
    if net.arch.kind != Kind::Vae {
        return Vec::new();
    }
    let mut eps = vec![0f32; n * net.arch.latent];
    rng.fill_normal(&mut eps);
    eps
}

/// Fewest examples in a shard: smaller products lose more to overhead than a thread gains.
pub(crate) const MIN_SHARD: usize = 32;

/// Shards of a batch of `n` examples: one per thread. Each shard runs its forward and
/// backward pass on its own thread and their gradients are summed in shard order: one
/// parallel region per step costs far less than one per op (measured: with two threads, the
/// conv model trains 1.5x faster sharded than with only its ops in parallel). The split
/// follows the thread count, so runs repeat bit for bit for the same `--threads`.
pub(crate) fn shards(n: usize) -> usize {
    rayon::current_num_threads().clamp(1, (n / MIN_SHARD).max(1))
}

/// One optimizer step on a batch: `x` the clean images, `x_in` the encoder's input when it
/// differs (denoising), `labels` their classes (a conditional model's), `eps` the
/// reparameterization noise of the whole batch. Returns the loss summed over the batch,
/// with `beta` on the KL term.
pub(crate) fn train_step(
    net: &Net,
    adam: &mut Adam,
    (x, x_in, labels): (&[f32], Option<&[f32]>, Option<&[u8]>),
    eps: &[f32],
    (recon, beta): (Recon, f64),
    nan_at_this_step: bool,
) -> Result<f64> {
    let pixels = net.arch.pixels();
    let n = x.len() / pixels;
    let per = n.div_ceil(shards(n)).max(1);
    let lat = if eps.is_empty() { 0 } else { net.arch.latent };
    let dev = Device::Cpu;
    let shards: Vec<(f64, candle_core::backprop::GradStore)> = (0..n.div_ceil(per))
        .into_par_iter()
        .map(|s| {
            let (a, b) = (s * per, ((s + 1) * per).min(n));
            let t =
                |v: &[f32]| Tensor::from_slice(&v[a * pixels..b * pixels], (b - a, pixels), &dev);
            let xs = t(x)?;
            let xi = x_in.map(t).transpose()?;
            let (rl, kl) = batch_loss(
                net,
                (xi.as_ref().unwrap_or(&xs), labels.map(|l| &l[a..b])),
                &xs,
                recon,
                &eps[a * lat..b * lat],
            )?;
            let loss = match kl {
                Some(kl) => (rl.sum_all()? + (kl.sum_all()? * beta)?)?,
                None => rl.sum_all()?,
            };
            let value = f64::from(loss.to_scalar::<f32>()?);
            Ok((value, loss.backward()?))
        })
        .collect::<Result<_>>()?;
    let value = if nan_at_this_step {
        f64::NAN
    } else {
        shards.iter().map(|(v, _)| v).sum()
    };
    if value.is_finite() {
        let grads: Vec<_> = shards.into_iter().map(|(_, g)| g).collect();
        adam.step_with(&grads)?;
    }
    Ok(value)
}

pub(crate) fn corrupt(x: &mut [f32], noise: Noise, rng: &mut Rng) {
    match noise {
        Noise::Gaussian(s) => {
            let mut e = vec![0f32; x.len()];
            rng.fill_normal(&mut e);
            for (v, e) in x.iter_mut().zip(e) {
                *v = (*v + s * e).clamp(0.0, 1.0);
            }
        }
        Noise::Mask(p) => {
            for v in x.iter_mut() {
                if rng.uniform() < f64::from(p) {
                    *v = 0.0;
                }
            }
        }
    }
}

/// The test split's losses as training reports them each epoch: (recon, KL) in nats summed
/// over the split, one z draw per example from a fixed seed so that evaluation is
/// repeatable, in batches of 500; `visit(x, encoding)` sees each batch first (for further
/// metrics).
pub fn test_losses(
    net: &Net,
    test: &Split,
    recon: Recon,
    visit: &mut dyn FnMut(&Tensor, &Encoded) -> Result<()>,
) -> Result<(f64, f64)> {
    let dev = Device::Cpu;
    let pixels = net.arch.pixels();
    let mut rng = Rng::new(0xE7A1);
    let (mut r, mut k) = (0.0, 0.0);
    let idx: Vec<usize> = (0..test.n).collect();
    for chunk in idx.chunks(500) {
        let x = batch_tensor(test, chunk, pixels, &dev)?;
        let eps = noise_for(net, chunk.len(), &mut rng);
        let enc = net.encode_labelled(&x, batch_labels(net, test, chunk).as_deref())?;
        visit(&x, &enc)?;
        let (rl, kl) = losses_of(net, &enc, &x, recon, &eps)?;
        r += f64::from(rl.sum_all()?.to_scalar::<f32>()?);
        if let Some(kl) = kl {
            k += f64::from(kl.sum_all()?.to_scalar::<f32>()?);
        }
    }
    Ok((r, k))
}
