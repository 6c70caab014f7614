//! The second-stage VAE (Dai and Wipf 2019, "Diagnosing and Enhancing VAE Models"): a small
//! dense VAE trained on the first stage's latent codes, whose decoder maps `u ~ N(0, I)` to
//! a z the first decoder was trained on. Where the aggregate posterior leaves holes in N(0,
//! I), the second stage's own posterior fills its prior far better (its codes have the
//! dimension of the data it models), so its decoder carries N(0, I) onto the encodings.
//!
//! Both networks are dense: `L -> 256 -> 256 -> 2L` (mu and log-variance of u; trained, not
//! stored) and `L -> H -> H -> L` (z), ReLU between, `H` the widest multiple of 8 (at most
//! [`MAX_HIDDEN`]) whose decoder fits the byte budget. The decoder's Gaussian likelihood has one learned variance
//! gamma^2 shared by every dimension, as in the paper:
//!
//! ```text
//! loss = |z - z'|^2 / (2 gamma^2) + L log gamma + KL(q(u|z) || N(0, I))
//! ```
//!
//! per code (its constant `L/2 log 2 pi` left out). Generation takes the decoder's mean.
//! Only the decoder is stored ([`quantize`]): the chip draws u and runs it in int8
//! (FORMAT.md, section 3, Prior `SecondStage`).

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use tinyvae_format::owned::{quantize_multiplier, OwnedPrior};

use crate::arch::LayerKind;
use crate::export::{float_layers, quantize_network, Head};
use crate::layers::{named_vars, run, Layer};
use crate::rng::Rng;
use crate::train::Adam;

/// Widest hidden layer of the decoder.
pub const MAX_HIDDEN: usize = 128;
/// Hidden width of the encoder, which is trained only (not stored).
const ENCODER_HIDDEN: usize = 256;
/// Codes per training step.
const BATCH: usize = 128;
/// Adam's learning rate, divided by 10 for the last quarter of the epochs.
const LR: f64 = 1e-3;
/// Every `HOLD_OUT`-th code is held out to report the fit.
const HOLD_OUT: usize = 10;
/// The int8 input of the decoder covers u in [-U_RANGE, U_RANGE].
const U_RANGE: f32 = 4.0;
/// Draws of u the decoder's activations are calibrated on.
const CALIBRATION: usize = 8192;

/// How to fit a second stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Bytes the decoder may add to the model file.
    pub max_bytes: usize,
    /// Passes over the training codes.
    pub epochs: usize,
    /// Seed of the initialisation, the batches and the draws.
    pub seed: u64,
}

/// What fitting chose and reached, for the export's report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Codes fitted (the training images less the held-out ones).
    pub points: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// The loss above on the held-out codes, nats per code, after training.
    pub held_out_loss: f64,
    /// Its KL part.
    pub held_out_kl: f64,
    /// The learned gamma (the decoder's standard deviation in z).
    pub gamma: f64,
}

/// A trained second stage: both networks and the learned log gamma.
pub struct SecondStage {
    /// `L -> 256 -> 256 -> 2L`.
    pub enc: Vec<Layer>,
    /// `L -> H -> H -> L`.
    pub dec: Vec<Layer>,
    log_gamma: Var,
    dim: usize,
}

/// Bytes a decoder of `hidden` units over `dim` latent dimensions adds to the model file:
/// tiled int8 weights (with up to 3 lead bytes each), 9 bytes per output (bias, multiplier,
/// shift), about 24 bytes of fields per layer and 8 for the input conversion.
pub fn decoder_bytes(dim: usize, hidden: usize) -> usize {
    let tiles = |i: usize, o: usize| 4 * i.div_ceil(4) * 4 * o.div_ceil(4) + 3;
    tiles(dim, hidden)
        + tiles(hidden, hidden)
        + tiles(hidden, dim)
        + 9 * (2 * hidden + dim)
        + 3 * 24
        + 8
}

fn dense(inputs: usize, outputs: usize, rng: &mut Rng) -> Result<Layer> {
    Layer::new(LayerKind::Dense { inputs, outputs }, rng, &Device::Cpu)
}

impl SecondStage {
    fn new(dim: usize, hidden: usize, rng: &mut Rng) -> Result<SecondStage> {
        Ok(SecondStage {
            enc: vec![
                dense(dim, ENCODER_HIDDEN, rng)?,
                dense(ENCODER_HIDDEN, ENCODER_HIDDEN, rng)?,
                dense(ENCODER_HIDDEN, 2 * dim, rng)?,
            ],
            dec: vec![
                dense(dim, hidden, rng)?,
                dense(hidden, hidden, rng)?,
                dense(hidden, dim, rng)?,
            ],
            log_gamma: Var::new(0f32, &Device::Cpu)?,
            dim,
        })
    }

    fn vars(&self) -> Vec<(String, Var)> {
        let mut v = named_vars(&[("enc", &self.enc), ("dec", &self.dec)]);
        v.push(("log_gamma".into(), self.log_gamma.clone()));
        v
    }

    /// The loss of a batch of codes `x` (n, L) with noise `eps` (n, L), summed over the
    /// batch: (total, its KL part).
    fn loss(&self, x: &Tensor, eps: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = run(&self.enc, x, false)?
            .pop()
            .context("no encoder output")?;
        let mu = h.narrow(1, 0, self.dim)?;
        let lv = h.narrow(1, self.dim, self.dim)?;
        let u = (&mu + (lv.affine(0.5, 0.0)?.exp()? * eps)?)?;
        let zhat = run(&self.dec, &u, false)?
            .pop()
            .context("no decoder output")?;
        let n = x.dim(0)? as f64;
        let lg = self.log_gamma.as_tensor();
        let sq = (x - zhat)?.sqr()?.sum_all()?;
        let recon = (sq / lg.affine(2.0, 0.0)?.exp()?.affine(2.0, 0.0)?)?
            .add(&lg.affine(n * self.dim as f64, 0.0)?)?;
        let kl = ((mu.sqr()? + lv.exp()?)? - lv.affine(1.0, 1.0)?)?
            .sum_all()?
            .affine(0.5, 0.0)?;
        Ok(((recon + &kl)?, kl))
    }
}

/// Trains a second stage on `points` (`n * dim` latent codes).
pub fn fit(points: &[f64], dim: usize, opts: &Options) -> Result<(SecondStage, Report)> {
    let hidden = (1..=MAX_HIDDEN / 8)
        .rev()
        .map(|k| 8 * k)
        .find(|&h| decoder_bytes(dim, h) <= opts.max_bytes)
        .with_context(|| {
            format!(
                "no second stage fits: the narrowest (8 hidden units over {dim} dimensions) \
                 takes {} bytes, the budget is {}",
                decoder_bytes(dim, 8),
                opts.max_bytes
            )
        })?;
    if opts.epochs == 0 {
        bail!("a second stage needs at least one epoch of training");
    }
    let (mut fit_part, mut held) = (Vec::new(), Vec::new());
    for (i, x) in points.chunks_exact(dim).enumerate() {
        let to = if i % HOLD_OUT == HOLD_OUT - 1 {
            &mut held
        } else {
            &mut fit_part
        };
        to.extend(x.iter().map(|&v| v as f32));
    }
    let n = fit_part.len() / dim;
    if n < BATCH {
        bail!("a second stage needs at least {BATCH} training codes, not {n}");
    }
    let dev = Device::Cpu;
    let mut rng = Rng::new(opts.seed);
    let stage = SecondStage::new(dim, hidden, &mut rng)?;
    let mut adam = Adam::new(stage.vars(), LR)?;
    let mut order: Vec<usize> = (0..n).collect();
    let mut batch = vec![0f32; BATCH * dim];
    let mut eps = vec![0f32; BATCH * dim];
    for epoch in 0..opts.epochs {
        if epoch == opts.epochs * 3 / 4 {
            adam.set_lr(LR / 10.0);
        }
        rng.shuffle(&mut order);
        for chunk in order.chunks_exact(BATCH) {
            for (row, &i) in batch.chunks_exact_mut(dim).zip(chunk) {
                row.copy_from_slice(&fit_part[i * dim..(i + 1) * dim]);
            }
            rng.fill_normal(&mut eps);
            let x = Tensor::from_slice(&batch, (BATCH, dim), &dev)?;
            let e = Tensor::from_slice(&eps, (BATCH, dim), &dev)?;
            let (loss, _) = stage.loss(&x, &e)?;
            let loss = loss.affine(1.0 / BATCH as f64, 0.0)?;
            adam.backward_step(&loss)?;
        }
    }
    let m = held.len() / dim;
    let (held_out_loss, held_out_kl) = if m == 0 {
        (f64::NAN, f64::NAN)
    } else {
        let mut e = vec![0f32; held.len()];
        rng.fill_normal(&mut e);
        let x = Tensor::from_slice(&held, (m, dim), &dev)?;
        let e = Tensor::from_slice(&e, (m, dim), &dev)?;
        let (loss, kl) = stage.loss(&x, &e)?;
        (
            f64::from(loss.to_scalar::<f32>()?) / m as f64,
            f64::from(kl.to_scalar::<f32>()?) / m as f64,
        )
    };
    if !held_out_loss.is_finite() && m > 0 {
        bail!("the second stage diverged (held-out loss {held_out_loss})");
    }
    let gamma = f64::from(stage.log_gamma.as_tensor().to_scalar::<f32>()?).exp();
    Ok((
        stage,
        Report {
            points: n,
            hidden,
            epochs: opts.epochs,
            held_out_loss,
            held_out_kl,
            gamma,
        },
    ))
}

/// The decoder of a trained second stage in int8, as the model file stores it: its input
/// the N(0, 1) draws times `temperature`, its activations calibrated on draws of u seeded by
/// `seed`.
pub fn quantize(s: &SecondStage, temperature: f64, seed: u64) -> Result<OwnedPrior> {
    if !(temperature > 0.0 && temperature <= 4.0) {
        bail!("prior temperature {temperature}: it must be in (0, 4]");
    }
    let u_scale = U_RANGE / 127.0;
    let mut u = vec![0f32; CALIBRATION * s.dim];
    Rng::new(seed).fill_normal(&mut u);
    for v in &mut u {
        *v = (*v * temperature as f32 / u_scale)
            .round()
            .clamp(-127.0, 127.0)
            * u_scale;
    }
    let ut = Tensor::from_vec(u, (CALIBRATION, s.dim), &Device::Cpu)?;
    let outs = float_layers(&s.dec, &ut)?;
    let mut q = quantize_network(&s.dec, &outs, (0, u_scale), Head::Fixed, "prior")?;
    // The per-channel weight scales are metadata; the prior's budget is better spent on
    // weights.
    for l in &mut q.layers {
        let mut c = l.channels();
        c.weight_scale.clear();
        *l = l.with_channels(&c);
    }
    // An N(0, 1) draw in Q12 to the input code: eps / 4096 * temperature / u_scale.
    let real = temperature / (4096.0 * f64::from(u_scale));
    let (input_multiplier, input_shift) =
        quantize_multiplier(real).context("non-finite input multiplier")?;
    Ok(OwnedPrior::SecondStage {
        input_multiplier,
        input_shift,
        input_zero_point: 0,
        layers: q.layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes on a curve in 4 dimensions: a second stage learns to put N(0, I) onto it.
    fn curve(n: usize) -> Vec<f64> {
        let mut rng = Rng::new(3);
        let mut t = vec![0f32; n];
        rng.fill_normal(&mut t);
        t.iter()
            .flat_map(|&t| {
                let t = f64::from(t);
                [t, 0.5 * t * t - 0.5, (1.5 * t).sin(), -t]
            })
            .collect()
    }

    #[test]
    fn the_budget_chooses_the_width() {
        let o = |max_bytes| Options {
            max_bytes,
            epochs: 1,
            seed: 1,
        };
        let pts = curve(2000);
        let (_, r) = fit(&pts, 4, &o(8192)).unwrap();
        assert!(decoder_bytes(4, r.hidden) <= 8192);
        assert!(r.hidden == MAX_HIDDEN || decoder_bytes(4, r.hidden + 8) > 8192);
        assert!(fit(&pts, 4, &o(100)).is_err());
    }

    #[test]
    fn a_trained_second_stage_fits_held_out_codes_and_quantizes() {
        let pts = curve(4000);
        let opts = Options {
            max_bytes: 4096,
            epochs: 1,
            seed: 5,
        };
        let (_, short) = fit(&pts, 4, &opts).unwrap();
        let (s, long) = fit(&pts, 4, &Options { epochs: 30, ..opts }).unwrap();
        assert!(
            long.held_out_loss < short.held_out_loss,
            "{long:?} vs {short:?}"
        );
        assert!(long.gamma < 1.0, "{long:?}");
        let OwnedPrior::SecondStage { layers, .. } = quantize(&s, 1.0, 9).unwrap() else {
            panic!("not a second stage");
        };
        assert_eq!(layers.len(), 3);
    }
}
