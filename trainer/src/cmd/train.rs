//! `trainer train`.

use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use tinyvae_trainer::arch::ArchFamily;
use tinyvae_trainer::model::{Arch, Kind};
use tinyvae_trainer::train::{self, Config, Noise, RunOptions};
use tinyvae_trainer::{preset, Preset, PRESETS};

use super::data_source;
use crate::cli::TrainArgs;

/// Images seen in training (epochs x training images) from which samples look sharp: the
/// default 10 epochs of full MNIST. With 1,600 images, 10 epochs give blobs, 300 digits.
pub(crate) const SEEN_FOR_SHARP_SAMPLES: usize = 600_000;

/// The preset a command line names, with its overrides applied.
pub(crate) fn chosen_preset(a: &TrainArgs) -> Result<Preset> {
    let name = match (&a.preset, a.arch) {
        (Some(p), _) => p.as_str(),
        (None, Some(ArchFamily::Conv)) => "conv",
        (None, None) if a.conv.is_some() => "conv",
        (None, _) => "default",
    };
    let mut p = preset(name).with_context(|| format!("unknown preset {name:?} ({PRESETS})"))?;
    if let Some(family) = a.arch {
        if family != p.family {
            bail!(
                "--arch {} conflicts with --preset {name}, a {} preset",
                if family == ArchFamily::Conv {
                    "conv"
                } else {
                    "dense"
                },
                if p.family == ArchFamily::Conv {
                    "conv"
                } else {
                    "dense"
                }
            );
        }
    }
    if let Some(c) = &a.conv {
        if a.arch == Some(ArchFamily::Dense) {
            bail!("--conv conflicts with --arch dense");
        }
        p.conv = c.clone();
        p.family = ArchFamily::Conv;
    }
    if let Some(h) = &a.hidden {
        p.hidden = h.clone();
    }
    if let Some(l) = a.latent {
        p.latent = l;
    }
    Ok(p)
}

/// `--conditional`'s classes: one past the training split's largest label.
fn conditional_classes(data: &tinyvae_trainer::data::Dataset) -> Result<usize> {
    let labels = data.train.labels.as_ref().with_context(|| {
        format!(
            "--conditional needs labels, and {} has none (an IDX label file beside the \
             images, or PNG images in one subfolder per class)",
            data.name
        )
    })?;
    Ok(labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| usize::from(m) + 1))
}

pub(crate) fn cmd_train(a: TrainArgs) -> Result<()> {
    let p = chosen_preset(&a)?;
    let source = data_source(a.data.as_deref())?;
    let mut data = source.load()?;
    if let Some(n) = a.train_limit {
        if n == 0 {
            bail!("--train-limit 0: at least 1 training image");
        }
        data.truncate(n, data.test.n);
    }
    let noise = match (a.noise_gaussian, a.noise_mask) {
        (Some(_), Some(_)) => bail!("choose one of --noise-gaussian and --noise-mask"),
        (Some(s), None) => Some(Noise::Gaussian(s)),
        (None, Some(p)) => Some(Noise::Mask(p)),
        (None, None) if a.kind == Kind::Dae => Some(Noise::Gaussian(0.3)),
        (None, None) => None,
    };
    let cfg = Config {
        arch: Arch {
            kind: a.kind,
            width: data.width,
            height: data.height,
            channels: data.channels,
            conv: p.conv,
            hidden: p.hidden,
            latent: p.latent,
            classes: if a.conditional {
                conditional_classes(&data)?
            } else {
                0
            },
        },
        recon: a.recon,
        beta: a.beta,
        warmup_epochs: a.warmup,
        noise,
        lr: a.lr,
        batch: a.batch,
        epochs: a.epochs,
        seed: a.seed,
        dataset: data.name.clone(),
        train_images: Some(data.train.n),
        data: Some(source),
    };
    println!(
        "training {:?} {} on {} ({} train, {} test images), {} epochs, batch {}, seed {}",
        cfg.arch.kind,
        cfg.arch.name(),
        data.name,
        data.train.n,
        data.test.n,
        cfg.epochs,
        cfg.batch,
        cfg.seed
    );
    let seen = cfg.epochs.saturating_mul(data.train.n);
    if seen < SEEN_FOR_SHARP_SAMPLES && !a.resume {
        println!(
            "note: {} epochs of {} images show the model {seen} images; samples sharpen with \
             about {SEEN_FOR_SHARP_SAMPLES} (--epochs {}). Train longer later with --resume \
             --epochs N.",
            cfg.epochs,
            data.train.n,
            SEEN_FOR_SHARP_SAMPLES.div_ceil(data.train.n.max(1))
        );
    }
    let opts = RunOptions {
        progress_bar: true,
        overwrite: a.overwrite,
        ..Default::default()
    };
    let stop = opts.stop.clone();
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing the current step, then saving (again to quit at once)");
    })?;
    let (_, ended) = train::train(&cfg, &data, &a.out, a.resume, &opts)?;
    println!(
        "checkpoint: {} ({ended:?})",
        train::checkpoint_path(&a.out).display()
    );
    Ok(())
}
