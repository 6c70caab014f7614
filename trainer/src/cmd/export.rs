//! `trainer export`.

use anyhow::Result;
use tinyvae_format::WeightLayout;
use tinyvae_trainer::atomic_write;
use tinyvae_trainer::export::{print_report, quantize, ExportOptions, Exported, Trained};

use super::load_run;
use crate::cli::{ExportArgs, LayoutArg};

/// `trainer export`: the int8 model file (and optionally the float decoder).
pub(crate) fn cmd_export(a: ExportArgs) -> Result<()> {
    let ExportArgs {
        checkpoint,
        out,
        data,
        calibration,
        prior_components,
        layout,
        f32_decoder,
        decoder_only,
    } = a;
    let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
    let last = ck.progress.history.last();
    let opts = ExportOptions {
        calibration_images: calibration,
        prior_components,
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
    let Exported { blob, report, .. } = quantize(&trained, &data, &opts)?;
    print_report(&report);
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
