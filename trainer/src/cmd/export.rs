//! `trainer export`.

use anyhow::{bail, Result};
use tinyvae_format::WeightLayout;
use tinyvae_trainer::atomic_write;
use tinyvae_trainer::export::{print_report, quantize, ExportOptions, Exported, Trained};
use tinyvae_trainer::prior::{second, MixtureReport, PriorChoice, PriorReport};

use super::load_run;
use crate::cli::{ExportArgs, LayoutArg, PerClassArg, PriorArg};

/// `trainer export`: the int8 model file (and optionally the float decoder).
pub(crate) fn cmd_export(a: ExportArgs) -> Result<()> {
    let ExportArgs {
        checkpoint,
        out,
        data,
        calibration,
        prior,
        prior_components,
        prior_bytes,
        prior_temperature,
        second_stage_epochs,
        per_class,
        layout,
        f32_decoder,
        decoder_only,
    } = a;
    if per_class != PerClassArg::Off && prior != Some(PriorArg::Mixture) {
        bail!("--per-class applies to --prior mixture only");
    }
    if prior_temperature != 1.0 && !matches!(prior, Some(PriorArg::Mixture | PriorArg::SecondStage))
    {
        bail!("--prior-temperature applies to --prior mixture and --prior second-stage only");
    }
    let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
    if net.arch.classes > 0 {
        bail!(
            "{}: a conditional VAE ({} classes): the model format has no class input, so it \
             does not export. It is trained and scored on the host (`trainer eval \
             --classifier`); on the chip, a prior per class draws a chosen class (`trainer \
             export --prior mixture --per-class` of an unconditional run)",
            checkpoint.display(),
            net.arch.classes
        );
    }
    let last = ck.progress.history.last();
    let opts = ExportOptions {
        calibration_images: calibration,
        prior: match (prior, prior_components) {
            (None, None | Some(0)) | (Some(PriorArg::Normal), None) => PriorChoice::StandardNormal,
            (Some(PriorArg::Normal), Some(k)) => {
                bail!("--prior normal takes no --prior-components (got {k})")
            }
            (None | Some(PriorArg::Aggregate), k) => PriorChoice::Aggregate {
                images: k.unwrap_or(256),
            },
            (Some(PriorArg::SecondStage), Some(k)) => {
                bail!("--prior second-stage takes no --prior-components (got {k}): its size is --prior-bytes")
            }
            (Some(PriorArg::SecondStage), None) => PriorChoice::SecondStage {
                max_bytes: prior_bytes,
                epochs: second_stage_epochs,
                temperature: prior_temperature,
            },
            (Some(PriorArg::Mixture), k) => PriorChoice::Mixture {
                max_components: k.unwrap_or(0),
                max_bytes: prior_bytes,
                temperature: prior_temperature,
                per_class: match per_class {
                    PerClassArg::Off => false,
                    PerClassArg::On => true,
                    PerClassArg::Auto => data.train.labels.is_some(),
                },
            },
        },
        layout: match layout {
            LayoutArg::Tiles => WeightLayout::Tiles4x4,
            LayoutArg::RowMajor => WeightLayout::RowMajor,
        },
        decoder_only,
        ..Default::default()
    };
    let trained = Trained {
        net: &net,
        config: &ck.config,
        epochs: ck.progress.epoch,
        test_neg_elbo: last.map_or(f64::NAN, |l| l.test_neg_elbo),
    };
    // Refuse a float decoder the format cannot hold before anything is written.
    let f32_bytes = f32_decoder
        .as_ref()
        .map(|_| tinyvae_trainer::export::float_decoder(&net))
        .transpose()?;
    let Exported {
        blob,
        report,
        prior,
        ..
    } = quantize(&trained, &data, &opts)?;
    print_report(&report);
    match prior {
        Some(PriorReport::Mixture(m)) => print_mixture(&m),
        Some(PriorReport::SecondStage(s)) => print_second_stage(&s),
        None => {}
    }
    atomic_write(&out, |mut f| {
        std::io::Write::write_all(&mut f, &blob)?;
        f.sync_all()?;
        Ok(())
    })?;
    println!("wrote {} ({} bytes)", out.display(), blob.len());
    if let (Some(path), Some(f)) = (f32_decoder, f32_bytes) {
        atomic_write(&path, |mut file| {
            std::io::Write::write_all(&mut file, &f)?;
            file.sync_all()?;
            Ok(())
        })?;
        println!(
            "wrote {} (float decoder, {} bytes)",
            path.display(),
            f.len()
        );
    }
    Ok(())
}

/// How the learned prior's size was chosen.
fn print_mixture(m: &MixtureReport) {
    println!(
        "prior: a mixture of diagonal Gaussians fitted to {} training encodings{}",
        m.points,
        if m.classes > 0 {
            format!(", one mixture for each of {} classes", m.classes)
        } else {
            String::new()
        }
    );
    for &(k, ll) in &m.held_out {
        let mark = if k == m.components { "  <- chosen" } else { "" };
        println!("  {k:>5} components: held-out log-likelihood {ll:.3} nats per image{mark}");
    }
    println!(
        "  refitted on all encodings: {} components, {} EM iterations",
        m.components, m.iterations
    );
}

/// What the second stage became.
fn print_second_stage(s: &second::Report) {
    println!(
        "prior: a second-stage VAE trained on {} training encodings for {} epochs, {} hidden \
         units (the widest within --prior-bytes); held-out loss {:.3} nats per code (KL {:.3}), \
         gamma {:.4}",
        s.points, s.epochs, s.hidden, s.held_out_loss, s.held_out_kl, s.gamma
    );
}
