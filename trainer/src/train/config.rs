//! What a run is: its configuration, its progress and its log records.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::{Arch, Kind, Recon};

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
