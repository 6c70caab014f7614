//! Training: Adam on the summed per-example loss, checkpoints every epoch (atomically, with the
//! optimizer and generator state, so a resumed run equals an uninterrupted one), a clear stop
//! on a non-finite loss, Ctrl-C handling, a progress bar and a JSON-lines log.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;

use crate::data::Dataset;
use crate::model::{Arch, Kind, Net};
use crate::rng::Rng;

mod adam;
mod checkpoint;
mod config;
mod step;

pub use adam::*;
pub use checkpoint::*;
pub use config::*;
pub use step::*;

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
/// A conditional model's labels: on both splits, each below `classes`.
pub fn check_labels(data: &Dataset, classes: usize) -> Result<()> {
    if classes == 0 {
        return Ok(());
    }
    for (name, split) in [("training", &data.train), ("test", &data.test)] {
        let Some(labels) = &split.labels else {
            bail!(
                "a conditional model needs labels, and the {name} images of {} have none (an \
                 IDX label file beside the images, or PNG images in one subfolder per class)",
                data.name
            );
        };
        if let Some(l) = labels.iter().find(|&&l| usize::from(l) >= classes) {
            bail!(
                "{}: a {name} label is {l}; the conditional model has {classes} classes",
                data.name
            );
        }
    }
    Ok(())
}

fn check_run(
    cfg: &Config,
    data: &Dataset,
    run: &Path,
    resume: bool,
    opts: &RunOptions,
) -> Result<()> {
    cfg.validate()?;
    check_data_shape(data, &cfg.arch)?;
    check_labels(data, cfg.arch.classes)?;
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
            let labels = batch_labels(self.net, &data.train, idx);
            let nan = opts.inject_nan_at_batch == Some(self.adam.step + 1);
            let value = train_step(
                self.net,
                self.adam,
                (&x, x_in.as_deref(), labels.as_deref()),
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
    let (tr, tk) = test_losses(net, &data.test, cfg.recon, &mut |_, _| Ok(()))?;
    let (tr, tk) = (tr / data.test.n as f64, tk / data.test.n as f64);
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
