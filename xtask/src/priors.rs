//! `cargo xtask priors DATA_DIR [EPOCHS]`: the priors the chip samples from, side by side, for
//! the four presets: N(0, I) and the aggregate posterior of 256 training images, each scored
//! on the int8 engine's own samples by the classifier (share labelled with p >= 0.9, label
//! entropy), by the Fréchet distance of the classifier's features to the test set's, and by
//! the distance to the nearest training image (which tells new digits from replayed ones);
//! the same measures of real images beside; the prior's bytes in the model file. Writes
//! `results/priors.md`. Runs and the classifier are shared with `cargo xtask quality`
//! (`target/quality/`): what is there is reused, what is missing trained with its settings.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bench::{capture, cpu_name, ours};
use crate::{pipeline, project_root};

/// The presets, as `cargo xtask quality` trains them (seed 1).
const PRESETS: [&str; 4] = ["default", "mcu", "conv", "conv-mcu"];
/// Training encodings in the aggregate-posterior prior.
const COMPONENTS: &str = "256";

/// One prior of one preset, as `trainer eval --int8` measured it.
struct Row {
    preset: &'static str,
    prior: &'static str,
    model_bytes: u64,
    eval: Value,
}

impl Row {
    fn f(&self, path: &[&str]) -> f64 {
        path.iter()
            .fold(&self.eval, |v, p| &v[p])
            .as_f64()
            .unwrap_or(f64::NAN)
    }
}

/// Runs everything and writes `results/priors.md`.
pub fn run(args: &[String]) -> Result<()> {
    let [data, rest @ ..] = args else {
        bail!("usage: cargo xtask priors DATA_DIR [EPOCHS]");
    };
    let (data, epochs) = crate::bench::data_and_epochs(data, rest.first())?;
    let trainer = pipeline::trainer()?;
    let dir = project_root().join("target").join("quality");
    std::fs::create_dir_all(&dir)?;
    let classifier = dir.join("classifier.safetensors");
    if !classifier.exists() {
        capture(
            Command::new(&trainer)
                .args(["classifier", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(&classifier),
        )?;
    }
    let mut rows = Vec::new();
    for preset in PRESETS {
        let run = run_dir(&trainer, &data, &dir, preset, epochs)?;
        for (prior, extra) in [("N(0, I)", None), ("aggregate posterior", Some(COMPONENTS))] {
            let file = run.join(if extra.is_some() {
                "prior-aggregate.tvae"
            } else {
                "prior-normal.tvae"
            });
            let mut export = Command::new(&trainer);
            export
                .arg("export")
                .arg(&run)
                .arg("--data")
                .arg(&data)
                .arg("-o")
                .arg(&file);
            if let Some(k) = extra {
                export.args(["--prior-components", k]);
            }
            capture(&mut export)?;
            let json = file.with_extension("json");
            capture(
                Command::new(&trainer)
                    .arg("eval")
                    .arg(&run)
                    .arg("--data")
                    .arg(&data)
                    .arg("--classifier")
                    .arg(&classifier)
                    .arg("--int8")
                    .arg(&file)
                    .arg("--json")
                    .arg(&json),
            )?;
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("{}: cannot read", json.display()))?;
            rows.push(Row {
                preset,
                prior,
                model_bytes: std::fs::metadata(&file)?.len(),
                eval: serde_json::from_str(&text).with_context(|| format!("{}", json.display()))?,
            });
        }
    }
    let md = report(&data, epochs, &rows);
    let out = project_root().join("results").join("priors.md");
    std::fs::write(&out, &md)?;
    println!("\n{md}wrote {}", out.display());
    Ok(())
}

/// The preset's seed-1 run of `cargo xtask quality`, or one trained the same way.
fn run_dir(trainer: &Path, data: &Path, dir: &Path, preset: &str, epochs: u32) -> Result<PathBuf> {
    for name in [format!("{preset}-1"), preset.to_string()] {
        let run = dir.join(name);
        if run.join("checkpoint.safetensors").exists() {
            return Ok(run);
        }
    }
    let run = dir.join(preset);
    let ep = epochs.to_string();
    ours(
        trainer,
        data,
        &run,
        &["--preset", preset, "--epochs", &ep, "--seed", "1"],
    )?;
    Ok(run)
}

fn report(data: &Path, epochs: u32, rows: &[Row]) -> String {
    let mut md = format!(
        "# The priors the chip samples from, side by side\n\n\
         {} ({epochs} epochs, seed 1, the runs of `cargo xtask quality`), on {}. Each model \
         exported to int8 twice: with the N(0, I) prior, and with the aggregate posterior of \
         {COMPONENTS} training images (`trainer export --prior-components {COMPONENTS}`). \
         Scored on 1,000 samples of the int8 engine (its own sampler and draws, as the chip \
         makes them) by `trainer eval --classifier --int8`: the share the classifier labels \
         with p >= 0.9 and the entropy of its labels (3.32 bits: all ten equally); the \
         Fréchet distance between the classifier's features (its last hidden layer) of the \
         samples and of the test set; the mean RMS pixel difference from each sample to its \
         nearest training image (a replayed training image is at 0). Real images, the \
         ceiling: 1,000 training images' Fréchet distance to the test set, and 1,000 test \
         images' distance to the nearest training image.\n\n\
         Reproduce: `cargo xtask priors {} {epochs}`\n\n\
         | preset | prior | labelled with p >= 0.9 | label entropy (bits) | Fréchet distance | nearest training image (RMS) | model file (bytes) |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        crate::shown(data),
        cpu_name(),
        crate::shown(data),
    );
    for r in rows {
        md += &format!(
            "| {} | {} | {:.1}% | {:.2} | {:.1} | {:.4} | {} |\n",
            r.preset,
            r.prior,
            100.0 * r.f(&["score_int8", "confident"]),
            r.f(&["score_int8", "label_entropy_bits"]),
            r.f(&["fidelity_int8", "frechet"]),
            r.f(&["fidelity_int8", "nearest_train_rms"]),
            r.model_bytes
        );
    }
    if let Some(r) = rows.first() {
        md += &format!(
            "| real images | | | | {:.1} | {:.4} | |\n",
            r.f(&["fidelity_real_ceiling", "frechet"]),
            r.f(&["fidelity_real_ceiling", "nearest_train_rms"])
        );
    }
    // What the table says, computed per preset: the aggregate posterior against N(0, I),
    // and its samples' distance to the training set against real test digits'.
    let real_nearest = rows.first().map_or(f64::NAN, |r| {
        r.f(&["fidelity_real_ceiling", "nearest_train_rms"])
    });
    md += "\n";
    for pair in rows.chunks(2) {
        let [normal, aggregate] = pair else { continue };
        let near = aggregate.f(&["fidelity_int8", "nearest_train_rms"]);
        md += &format!(
            "- {}: the aggregate posterior {:.1}% labelled (N(0, I): {:.1}%), Fréchet {:.1} \
             ({:.1}); its samples are {} the training images than real test digits are \
             ({:.4} against {real_nearest:.4}){}.\n",
            normal.preset,
            100.0 * aggregate.f(&["score_int8", "confident"]),
            100.0 * normal.f(&["score_int8", "confident"]),
            aggregate.f(&["fidelity_int8", "frechet"]),
            normal.f(&["fidelity_int8", "frechet"]),
            if near < real_nearest {
                "nearer"
            } else {
                "no nearer"
            },
            near,
            if near < real_nearest {
                ": it replays the encodings it stores"
            } else {
                ""
            },
        );
    }
    md
}
