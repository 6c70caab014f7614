//! Training: Adam on the summed per-example loss, checkpoints every epoch (atomically, with the
//! optimizer and generator state, so a resumed run equals an uninterrupted one), a clear stop
//! on a non-finite loss, Ctrl-C handling, a progress bar and a JSON-lines log.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::model::{kl_standard_normal, recon_loss, Arch, Kind, Net, Recon};
use crate::ops::adam::{AdamStep, Moments};
use crate::rng::Rng;

/// Input noise for the denoising autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Noise {
    /// Add N(0, sigma^2) to every pixel, then clamp to [0, 1].
    Gaussian(f32),
    /// Set each pixel to 0 with this probability.
    Mask(f32),
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Model shape.
    pub arch: Arch,
    /// Reconstruction loss.
    pub recon: Recon,
    /// Weight of the KL term (VAE only; 1 is the ELBO).
    pub beta: f64,
    /// Epochs over which beta ramps up linearly from 0 (0: no warm-up).
    pub warmup_epochs: usize,
    /// Denoising noise (DAE only).
    pub noise: Option<Noise>,
    /// Adam learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Data set name (provenance).
    pub dataset: String,
    /// Training images used (after `--train-limit`): it shapes the run, so a resumed run
    /// must use as many (absent in checkpoints of earlier versions: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images: Option<usize>,
    /// Where the data comes from, for `export`, `eval` and `pictures` (absent in runs of
    /// earlier versions: the bundled subset when `dataset` names it, else they need
    /// `--data`). A resumed run may name the same data by another path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::data::Source>,
}

impl Config {
    /// Checks every option before anything is trained or written, naming the option.
    pub fn validate(&self) -> Result<()> {
        self.arch.validate()?;
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number, not {}", self.lr);
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            bail!("--beta must be a number of at least 0, not {}", self.beta);
        }
        match self.noise {
            Some(Noise::Gaussian(s)) if !(s.is_finite() && s >= 0.0) => {
                bail!("--noise-gaussian must be a standard deviation of at least 0, not {s}")
            }
            Some(Noise::Mask(p)) if !(0.0..=1.0).contains(&p) => {
                bail!("--noise-mask must be a probability in [0, 1], not {p}")
            }
            Some(_) if self.arch.kind != Kind::Dae => {
                bail!("input noise is for --kind dae only")
            }
            _ => Ok(()),
        }
    }
}

/// One epoch's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss per example (with the beta in force).
    pub train_loss: f64,
    /// Test reconstruction term, nats per example.
    pub test_recon: f64,
    /// Test KL term, nats per example (0 for autoencoders).
    pub test_kl: f64,
    /// Test -ELBO (recon + KL, beta = 1), nats per example.
    pub test_neg_elbo: f64,
    /// Seconds spent training this epoch.
    pub seconds: f64,
}

/// Adam (Kingma and Ba) without weight decay, as PyTorch computes it, updating each
/// parameter in place in one fused pass; its moments are kept for checkpoints.
pub struct Adam {
    vars: Vec<(String, Var)>,
    moments: Vec<Mutex<Moments>>,
    /// Steps taken.
    pub step: u64,
    lr: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

impl Adam {
    /// An optimizer over `vars` with zero moments.
    pub fn new(vars: Vec<(String, Var)>, lr: f64) -> Result<Adam> {
        let moments = vars
            .iter()
            .map(|(_, v)| {
                let n = v.elem_count();
                Mutex::new(Moments {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                })
            })
            .collect();
        Ok(Adam {
            vars,
            moments,
            step: 0,
            lr,
        })
    }

    /// One update from the gradients of `loss`.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step_with(&[grads])
    }

    /// One update from the gradients of several losses (the shards of one batch), summed in
    /// the order given.
    pub fn step_with(&mut self, shards: &[candle_core::backprop::GradStore]) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let corrections = ((1.0 - BETA1.powi(t)) as f32, (1.0 - BETA2.powi(t)) as f32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let mut parts = shards.iter().filter_map(|g| g.get(var.as_tensor()));
            let Some(first) = parts.next() else {
                continue;
            };
            let g = parts.try_fold(first.clone(), |sum, g| sum + g)?;
            var.as_tensor().inplace_op2(
                &g.contiguous()?,
                &AdamStep {
                    moments: &self.moments[i],
                    lr: self.lr as f32,
                    betas: (BETA1 as f32, BETA2 as f32, ADAM_EPS as f32),
                    corrections,
                },
            )?;
        }
        Ok(())
    }

    /// The moments of parameter `i` as (m, v) tensors of its shape.
    fn moment_tensors(&self, i: usize) -> Result<(Tensor, Tensor)> {
        let var = &self.vars[i].1;
        let g = self.moments[i]
            .lock()
            .map_err(|_| anyhow::anyhow!("adam state poisoned"))?;
        Ok((
            Tensor::from_vec(g.m.clone(), var.shape(), var.device())?,
            Tensor::from_vec(g.v.clone(), var.shape(), var.device())?,
        ))
    }

    /// Restores the moments of parameter `i`.
    fn set_moments(&mut self, i: usize, m: &Tensor, v: &Tensor) -> Result<()> {
        let n = self.vars[i].1.elem_count();
        let (m, v) = (
            m.flatten_all()?.to_vec1::<f32>()?,
            v.flatten_all()?.to_vec1::<f32>()?,
        );
        if m.len() != n || v.len() != n {
            bail!(
                "checkpoint: optimizer state of {} has the wrong size",
                self.vars[i].0
            );
        }
        self.moments[i] = Mutex::new(Moments { m, v });
        Ok(())
    }
}

/// Where a run is, for checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches completed in the current epoch (0 at an epoch boundary).
    pub batch: usize,
    /// The shuffle generator's state at the start of the current epoch.
    pub shuffle_state: [u64; 4],
    /// The noise generator's state now.
    pub noise_state: [u64; 4],
    /// Adam steps taken.
    pub step: u64,
    /// Per-epoch logs so far.
    pub history: Vec<EpochLog>,
    /// The current epoch's training loss summed over its completed batches, and the images
    /// they held (0 at an epoch boundary), so that a resumed epoch logs the loss the
    /// uninterrupted one would (absent in checkpoints of earlier versions: 0).
    #[serde(default)]
    pub partial: (f64, usize),
}

/// Writes `path` through a temporary file and a rename, so that an interrupted write never
/// leaves a half-written file in its place.
pub fn atomic_write(path: &Path, write: impl FnOnce(std::fs::File) -> Result<()>) -> Result<()> {
    let mut name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?
        .to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let done = write(f).and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    Ok(())
}

/// The checkpoint file of a run folder.
pub fn checkpoint_path(run: &Path) -> PathBuf {
    run.join("checkpoint.safetensors")
}

/// Saves weights, Adam moments, the config and the progress in one safetensors file.
pub fn save_checkpoint(
    run: &Path,
    cfg: &Config,
    net: &Net,
    adam: &Adam,
    p: &Progress,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, v) in net.named_vars() {
        tensors.push((name, v.as_tensor().clone()));
    }
    for (i, (name, _)) in adam.vars.iter().enumerate() {
        let (m, v) = adam.moment_tensors(i)?;
        tensors.push((format!("adam.m.{name}"), m));
        tensors.push((format!("adam.v.{name}"), v));
    }
    let mut meta = HashMap::new();
    meta.insert("config".to_string(), serde_json::to_string(cfg)?);
    meta.insert("progress".to_string(), serde_json::to_string(p)?);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))?;
    // Never write a checkpoint that would not load (a NaN in the history is JSON null).
    let path = checkpoint_path(run);
    parse_checkpoint(&bytes, &path, &Device::Cpu)
        .context("the checkpoint about to be written does not read back; nothing was written")?;
    atomic_write(&path, |mut f| {
        f.write_all(&bytes)?;
        f.sync_all()?;
        Ok(())
    })
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The run's configuration.
    pub config: Config,
    /// Where the run stopped.
    pub progress: Progress,
    /// Every tensor by name.
    pub tensors: HashMap<String, Tensor>,
}

/// Loads a checkpoint file (or the checkpoint of a run folder).
pub fn load_checkpoint(path: &Path, dev: &Device) -> Result<Checkpoint> {
    let file = if path.is_dir() {
        checkpoint_path(path)
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
    parse_checkpoint(&bytes, &file, dev)
}

/// A checkpoint from its bytes; errors name `file`.
fn parse_checkpoint(bytes: &[u8], file: &Path, dev: &Device) -> Result<Checkpoint> {
    let f = file.display();
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .with_context(|| format!("{f}: not a safetensors checkpoint"))?;
    let meta = meta
        .metadata()
        .clone()
        .with_context(|| format!("{f}: checkpoint without metadata"))?;
    let field = |name: &str| {
        meta.get(name)
            .with_context(|| format!("{f}: no {name} in the checkpoint"))
    };
    let config: Config = serde_json::from_str(field("config")?)
        .with_context(|| format!("{f}: corrupt run configuration in the checkpoint"))?;
    // The stored options, named as the file's (not the command line's).
    config.validate().with_context(|| {
        format!(
            "{f}: the run configuration stored in the checkpoint is not valid (damaged, or \
                 written by another version)"
        )
    })?;
    let progress: Progress = serde_json::from_str(field("progress")?)
        .with_context(|| format!("{f}: corrupt progress record in the checkpoint"))?;
    let tensors = candle_core::safetensors::load_buffer(bytes, dev)
        .with_context(|| format!("{f}: corrupt tensors"))?;
    Ok(Checkpoint {
        config,
        progress,
        tensors,
    })
}

/// Rebuilds the model of a checkpoint: every tensor of the shape its layer needs (so the
/// layers chain), every weight finite.
pub fn net_from_checkpoint(ck: &Checkpoint, dev: &Device) -> Result<Net> {
    let net = Net::new(ck.config.arch.clone(), &mut Rng::new(0), dev)?;
    for (name, var) in net.named_vars() {
        let t = ck
            .tensors
            .get(&name)
            .with_context(|| format!("checkpoint lacks {name}"))?;
        if t.dims() != var.dims() {
            bail!(
                "checkpoint: {name} is {:?}, but its layer in {} needs {:?}",
                t.dims(),
                ck.config.arch.name(),
                var.dims()
            );
        }
        let values = crate::model::to_vec_f32(t)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "checkpoint: {name} holds a non-finite value ({}) at index {i}: the run diverged \
                 before this checkpoint was written",
                values[i]
            );
        }
        var.set(t)?;
    }
    Ok(net)
}

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
/// reparameterization noise, (batch, latent) values (used by a VAE only).
pub fn batch_loss(
    net: &Net,
    x_in: &Tensor,
    x_target: &Tensor,
    recon: Recon,
    eps: &[f32],
) -> Result<(Tensor, Option<Tensor>)> {
    let enc = net.encode(x_in)?;
    let (z, kl) = match &enc.logvar {
        Some(lv) => {
            let eps = Tensor::from_slice(eps, enc.mu.shape(), enc.mu.device())?;
            // Reparameterization: z = mu + sigma * eps, sigma = exp(logvar / 2).
            let z = (&enc.mu + (lv.affine(0.5, 0.0)?.exp()? * eps)?)?;
            (z, Some(kl_standard_normal(&enc.mu, lv)?))
        }
        None => (enc.mu.clone(), None),
    };
    let logits = net.decode_logits(&z)?;
    Ok((recon_loss(&logits, x_target, recon)?, kl))
}

/// The reparameterization noise of `n` examples (none for an autoencoder).
fn noise_for(net: &Net, n: usize, rng: &mut Rng) -> Vec<f32> {
    if net.arch.kind != Kind::Vae {
        return Vec::new();
    }
    let mut eps = vec![0f32; n * net.arch.latent];
    rng.fill_normal(&mut eps);
    eps
}

/// Fewest examples in a shard: smaller products lose more to overhead than a thread gains.
const MIN_SHARD: usize = 32;

/// Shards of a batch of `n` examples: one per thread. Each shard runs its forward and
/// backward pass on its own thread and their gradients are summed in shard order: one
/// parallel region per step costs far less than one per op (measured: with two threads, the
/// conv model trains 1.5x faster sharded than with only its ops in parallel). The split
/// follows the thread count, so runs repeat bit for bit for the same `--threads`.
fn shards(n: usize) -> usize {
    rayon::current_num_threads().clamp(1, (n / MIN_SHARD).max(1))
}

/// One optimizer step on a batch: `x` the clean images, `x_in` the encoder's input when it
/// differs (denoising), `eps` the reparameterization noise of the whole batch. Returns the
/// loss summed over the batch, with `beta` on the KL term.
fn train_step(
    net: &Net,
    adam: &mut Adam,
    (x, x_in): (&[f32], Option<&[f32]>),
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
                xi.as_ref().unwrap_or(&xs),
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

fn corrupt(x: &mut [f32], noise: Noise, rng: &mut Rng) {
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

/// Test-set metrics: (recon, kl) in nats per example, one z draw per example from a fixed
/// seed so that evaluation is repeatable.
pub fn evaluate(
    net: &Net,
    data: &Split,
    pixels: usize,
    recon: Recon,
    dev: &Device,
) -> Result<(f64, f64)> {
    let mut rng = Rng::new(0xE7A1);
    let (mut r, mut k) = (0.0, 0.0);
    let idx: Vec<usize> = (0..data.n).collect();
    for chunk in idx.chunks(500) {
        let x = batch_tensor(data, chunk, pixels, dev)?;
        let eps = noise_for(net, chunk.len(), &mut rng);
        let (rl, kl) = batch_loss(net, &x, &x, recon, &eps)?;
        r += f64::from(rl.sum_all()?.to_scalar::<f32>()?);
        if let Some(kl) = kl {
            k += f64::from(kl.sum_all()?.to_scalar::<f32>()?);
        }
    }
    Ok((r / data.n as f64, k / data.n as f64))
}

/// Rewrites a run's `log.jsonl` with `history`, atomically.
fn write_log(run: &Path, history: &[EpochLog]) -> Result<()> {
    let mut text = String::new();
    for h in history {
        text += &serde_json::to_string(h)?;
        text.push('\n');
    }
    atomic_write(&run.join("log.jsonl"), |mut f| {
        f.write_all(text.as_bytes())?;
        Ok(())
    })
}

/// Which options differ between two configurations, for the resume error.
fn config_difference(saved: &Config, given: &Config) -> String {
    let (a, b) = (
        serde_json::to_value(saved).unwrap_or_default(),
        serde_json::to_value(given).unwrap_or_default(),
    );
    let mut keys: Vec<String> = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, v) in a {
            if b.get(k) != Some(v) {
                keys.push(k.clone());
            }
        }
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    }
    format!("they differ in: {}", keys.join(", "))
}

/// An error unless the data set's images have the model's width, height and channels.
pub fn check_data_shape(data: &Dataset, arch: &Arch) -> Result<()> {
    let (d, m) = (
        (data.width, data.height, data.channels),
        (arch.width, arch.height, arch.channels),
    );
    if d != m {
        bail!(
            "the data set {} has {}x{} images with {} channel(s); the model takes {}x{} with {}",
            data.name,
            d.0,
            d.1,
            d.2,
            m.0,
            m.1,
            m.2
        );
    }
    Ok(())
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// All epochs done.
    Finished,
    /// Stopped by Ctrl-C after saving.
    Interrupted,
}

/// Options that do not change the result.
pub struct RunOptions {
    /// Show the progress bar.
    pub progress_bar: bool,
    /// Set by Ctrl-C: finish the step, save, stop.
    pub stop: Arc<AtomicBool>,
    /// Stop (as if interrupted) after this many batches in all: for tests of resuming.
    pub stop_after_batches: Option<u64>,
    /// Fault injection for tests of the failure path: the loss of this (1-based, counted
    /// over the whole run) batch is replaced by NaN.
    pub inject_nan_at_batch: Option<u64>,
    /// Start over in a run folder that holds a checkpoint (otherwise refused).
    pub overwrite: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            progress_bar: false,
            stop: Arc::new(AtomicBool::new(false)),
            stop_after_batches: None,
            inject_nan_at_batch: None,
            overwrite: false,
        }
    }
}

/// Trains from scratch (or resumes when the run folder holds a checkpoint and `resume`).
pub fn train(
    cfg: &Config,
    data: &Dataset,
    run: &Path,
    resume: bool,
    opts: &RunOptions,
) -> Result<(Net, Ended)> {
    let dev = Device::Cpu;
    check_run(cfg, data, run, resume, opts)?;
    let (net, mut adam, mut progress) = if resume {
        resume_run(cfg, run, &dev)?
    } else {
        start_run(cfg, run, &dev)?
    };
    let mut noise_rng = Rng::from_state(progress.noise_state);
    let mut batches_run: u64 = 0;
    let stop_now = |batches_run: u64| {
        opts.stop.load(Ordering::SeqCst)
            || opts.stop_after_batches.is_some_and(|n| batches_run >= n)
    };
    while progress.epoch < cfg.epochs {
        let epoch = progress.epoch + 1;
        let mut shuffle = Rng::from_state(progress.shuffle_state);
        let mut order: Vec<usize> = (0..data.train.n).collect();
        shuffle.shuffle(&mut order);
        let mut session = EpochSession {
            run,
            net: &net,
            adam: &mut adam,
            noise_rng: &mut noise_rng,
            batches_run: &mut batches_run,
        };
        let t0 = Instant::now();
        let (sum, seen) = match session.batches(cfg, data, &order, epoch, &mut progress, opts)? {
            Some(totals) => totals,
            None => {
                save_checkpoint(run, cfg, &net, &adam, &progress)?;
                eprintln!(
                    "stopped at epoch {epoch}, batch {}; checkpoint saved: resume with --resume",
                    progress.batch
                );
                return Ok((net, Ended::Interrupted));
            }
        };
        let totals = (sum, seen, t0.elapsed().as_secs_f64());
        progress.partial = (0.0, 0);
        end_epoch(cfg, data, run, &net, epoch, totals, &mut progress)?;
        progress.shuffle_state = shuffle.state();
        progress.noise_state = noise_rng.state();
        progress.step = adam.step;
        save_checkpoint(run, cfg, &net, &adam, &progress)?;
        if stop_now(batches_run) && progress.epoch < cfg.epochs {
            eprintln!("stopped after epoch {epoch}; checkpoint saved: resume with --resume");
            return Ok((net, Ended::Interrupted));
        }
    }
    Ok((net, Ended::Finished))
}

/// Everything checked before a run starts: the options, the data's shape, the training
/// images the configuration names, and the run folder (a checkpoint to resume, or none to
/// overwrite unless asked).
fn check_run(
    cfg: &Config,
    data: &Dataset,
    run: &Path,
    resume: bool,
    opts: &RunOptions,
) -> Result<()> {
    cfg.validate()?;
    check_data_shape(data, &cfg.arch)?;
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    if let Some(n) = cfg.train_images.filter(|&n| n != data.train.n) {
        bail!(
            "the configuration names {n} training images, the data set has {} (--train-limit)",
            data.train.n
        );
    }
    let ck_path = checkpoint_path(run);
    if resume && !ck_path.exists() {
        bail!(
            "{}: no checkpoint to resume; leave out --resume to start a new run",
            run.display()
        );
    }
    if !resume && ck_path.exists() && !opts.overwrite {
        bail!(
            "{} holds a run already: continue it with --resume, or start over with --overwrite",
            run.display()
        );
    }
    Ok(())
}

/// The network, optimizer and progress of the checkpoint in `run`, which must have been
/// trained with `cfg`; the log is cut back to the checkpoint's epochs.
fn resume_run(cfg: &Config, run: &Path, dev: &Device) -> Result<(Net, Adam, Progress)> {
    let ck = load_checkpoint(run, dev)?;
    // The same options, but for the data's path and the number of epochs: a finished run
    // can be trained longer, and nothing else depends on the total, so that 10 epochs
    // resumed to 20 are the 20 epochs of one run.
    let same = Config {
        epochs: cfg.epochs,
        data: cfg.data.clone(),
        ..ck.config.clone()
    };
    if same != *cfg {
        bail!(
            "{} was trained with a different configuration; resume with the same options ({})",
            run.display(),
            config_difference(&ck.config, cfg)
        );
    }
    if cfg.epochs < ck.progress.epoch {
        bail!(
            "{} has trained {} epochs already: --epochs {} would end before it (give at \
             least {}, or more to train longer)",
            run.display(),
            ck.progress.epoch,
            cfg.epochs,
            ck.progress.epoch
        );
    }
    if ck.config.epochs != cfg.epochs {
        println!(
            "resuming {} from epoch {} of {}, to {} epochs",
            run.display(),
            ck.progress.epoch,
            ck.config.epochs,
            cfg.epochs
        );
        write_config(run, cfg)?;
    }
    let net = net_from_checkpoint(&ck, dev)?;
    let mut adam = Adam::new(net.named_vars(), cfg.lr)?;
    for (i, (name, _)) in net.named_vars().iter().enumerate() {
        let m = ck
            .tensors
            .get(&format!("adam.m.{name}"))
            .context("adam state")?;
        let v = ck
            .tensors
            .get(&format!("adam.v.{name}"))
            .context("adam state")?;
        for (what, t) in [("adam.m", m), ("adam.v", v)] {
            if crate::model::to_vec_f32(t)?.iter().any(|x| !x.is_finite()) {
                bail!(
                    "{}: the optimizer state {what}.{name} holds a non-finite value: the file is \
                     damaged there (its weights are checked apart: export still works); resume \
                     from a copy, or start over with --overwrite",
                    checkpoint_path(run).display()
                );
            }
        }
        adam.set_moments(i, m, v)?;
    }
    adam.step = ck.progress.step;
    // The log holds the checkpoint's epochs, no more: a run killed between writing an
    // epoch's line and its checkpoint would otherwise log that epoch twice.
    write_log(run, &ck.progress.history)?;
    Ok((net, adam, ck.progress))
}

/// Writes the run folder's `config.json`, atomically.
fn write_config(run: &Path, cfg: &Config) -> Result<()> {
    let json = serde_json::to_string_pretty(cfg)?;
    atomic_write(&run.join("config.json"), |mut f| {
        f.write_all(json.as_bytes())?;
        Ok(())
    })
}

/// A new network from `cfg`'s seed, a fresh optimizer, and the run folder's configuration
/// and empty log.
fn start_run(cfg: &Config, run: &Path, dev: &Device) -> Result<(Net, Adam, Progress)> {
    let mut init = Rng::new(cfg.seed);
    let net = Net::new(cfg.arch.clone(), &mut init, dev)?;
    let adam = Adam::new(net.named_vars(), cfg.lr)?;
    let progress = Progress {
        epoch: 0,
        batch: 0,
        shuffle_state: Rng::new(cfg.seed ^ 0x5348_5546).state(),
        noise_state: Rng::new(cfg.seed ^ 0x4E4F_4953).state(),
        step: 0,
        history: vec![],
        partial: (0.0, 0),
    };
    write_config(run, cfg)?;
    write_log(run, &[])?;
    Ok((net, adam, progress))
}

/// What one epoch's batches change: the optimizer, the noise stream, the run's batch count.
struct EpochSession<'a> {
    run: &'a Path,
    net: &'a Net,
    adam: &'a mut Adam,
    noise_rng: &'a mut Rng,
    batches_run: &'a mut u64,
}

impl EpochSession<'_> {
    /// The epoch's batches in `order` from `progress.batch` on: the sum of their losses and
    /// the images seen, or `None` when a stop was asked before the last batch (then
    /// `progress` holds where to resume, for the caller to save).
    fn batches(
        &mut self,
        cfg: &Config,
        data: &Dataset,
        order: &[usize],
        epoch: usize,
        progress: &mut Progress,
        opts: &RunOptions,
    ) -> Result<Option<(f64, usize)>> {
        let pixels = data.pixels();
        let beta = if cfg.warmup_epochs > 0 {
            cfg.beta * (epoch as f64 / cfg.warmup_epochs as f64).min(1.0)
        } else {
            cfg.beta
        };
        let nb = order.len().div_ceil(cfg.batch);
        let bar = opts
            .progress_bar
            .then(|| epoch_bar(nb, epoch, cfg.epochs, progress.batch));
        // Where an interrupted epoch left its sums (0 at an epoch boundary).
        let (mut sum, mut seen) = progress.partial;
        for (bi, idx) in order.chunks(cfg.batch).enumerate().skip(progress.batch) {
            let x = batch_values(&data.train, idx, pixels);
            let x_in = match (cfg.arch.kind, cfg.noise) {
                (Kind::Dae, Some(n)) => {
                    let mut v = x.clone();
                    corrupt(&mut v, n, self.noise_rng);
                    Some(v)
                }
                _ => None,
            };
            let eps = noise_for(self.net, idx.len(), self.noise_rng);
            let nan = opts.inject_nan_at_batch == Some(self.adam.step + 1);
            let value = train_step(
                self.net,
                self.adam,
                (&x, x_in.as_deref()),
                &eps,
                (cfg.recon, beta),
                nan,
            )?;
            if !value.is_finite() {
                let saved = checkpoint_path(self.run);
                let last = if saved.exists() {
                    format!(
                        "The last good checkpoint is {} (epoch {}).",
                        saved.display(),
                        progress.epoch
                    )
                } else {
                    "No checkpoint was saved before it (the first epoch had not ended).".into()
                };
                bail!(
                    "the loss became {value} at epoch {epoch}, step {} (batch {bi}); training \
                     stopped. {last} Try a lower --lr.",
                    self.adam.step + 1,
                );
            }
            sum += value;
            seen += idx.len();
            *self.batches_run += 1;
            if let Some(b) = &bar {
                b.inc(1);
                b.set_message(format!("{:.2}", sum / seen as f64));
            }
            let stop = opts.stop.load(Ordering::SeqCst)
                || opts
                    .stop_after_batches
                    .is_some_and(|n| *self.batches_run >= n);
            if stop && bi + 1 < nb {
                progress.batch = bi + 1;
                progress.partial = (sum, seen);
                progress.noise_state = self.noise_rng.state();
                progress.step = self.adam.step;
                if let Some(b) = bar {
                    b.abandon();
                }
                return Ok(None);
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(Some((sum, seen)))
    }
}

/// The progress bar of one epoch of `nb` batches, starting at batch `at`.
fn epoch_bar(nb: usize, epoch: usize, epochs: usize, at: usize) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(nb as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} loss {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_prefix(format!("{epoch}/{epochs}"));
    b.set_position(at as u64);
    b
}

/// The end of an epoch whose batches summed `sum` over `seen` images in `seconds`: the test
/// set's loss, the printed line, the log's line, and the epoch recorded in `progress` (the
/// caller adds the streams' states and saves).
fn end_epoch(
    cfg: &Config,
    data: &Dataset,
    run: &Path,
    net: &Net,
    epoch: usize,
    (sum, seen, seconds): (f64, usize, f64),
    progress: &mut Progress,
) -> Result<()> {
    let (tr, tk) = evaluate(net, &data.test, data.pixels(), cfg.recon, &Device::Cpu)?;
    // The epoch's loss covers only the batches of this session when resumed mid-epoch.
    let log = EpochLog {
        epoch,
        train_loss: if seen > 0 {
            sum / seen as f64
        } else {
            f64::NAN
        },
        test_recon: tr,
        test_kl: tk,
        test_neg_elbo: tr + tk,
        seconds,
    };
    println!(
        "epoch {epoch:>3}: train loss {:.3}  test -ELBO {:.3} (recon {:.3} + KL {:.3})  {:.2} s",
        log.train_loss, log.test_neg_elbo, log.test_recon, log.test_kl, log.seconds
    );
    let log_path = run.join("log.jsonl");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .and_then(|mut f| writeln!(f, "{}", serde_json::to_string(&log)?))
        .with_context(|| format!("{}: cannot append", log_path.display()))?;
    progress.history.push(log);
    progress.epoch = epoch;
    progress.batch = 0;
    Ok(())
}
