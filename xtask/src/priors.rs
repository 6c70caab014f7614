//! `cargo xtask priors DATA_DIR [EPOCHS]`: the priors the chip samples from, side by side, for
//! the four presets: N(0, I), the aggregate posterior of 256 training images, the learned
//! mixture (as fitted, and at temperature 0.7) and a second-stage VAE (and beside them a
//! conditional VAE, in float on the host: the model format has no class input), each scored on the int8
//! engine's own samples by the classifier (share labelled with p >= 0.9, label entropy), by the Fréchet distance
//! of the classifier's features to the test set's, by the distance to the nearest training
//! image and the copy test (which tell new digits from replayed ones); the same measures of
//! real images and of the model's reconstructions of them beside; the prior's bytes in the
//! model file and its sampling instructions on the emulated Cortex-M4F and the Cortex-M0 build. Writes
//! `results/priors.md`. Runs and the classifier are shared with `cargo xtask quality`
//! (`target/quality/`): what is there is reused, what is missing trained with its settings.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bench::{capture, cpu_name, ours};
use crate::{firmware, pipeline, project_root, DEMO_SEED};

/// The presets, as `cargo xtask quality` trains them (seed 1).
const PRESETS: [&str; 4] = ["default", "mcu", "conv", "conv-mcu"];

/// One way to pick z: its name in the table, its file's stem, and `trainer export`'s options.
struct PriorKind {
    name: &'static str,
    stem: &'static str,
    args: &'static [&'static str],
}

/// The priors compared, N(0, I) first (the reference the others' bytes and counts are
/// measured against).
const PRIORS: [PriorKind; 6] = [
    PriorKind {
        name: "N(0, I)",
        stem: "prior-normal",
        args: &[],
    },
    PriorKind {
        name: "aggregate posterior, 256 images",
        stem: "prior-aggregate",
        args: &["--prior", "aggregate", "--prior-components", "256"],
    },
    PriorKind {
        name: "learned mixture",
        stem: "prior-mixture",
        args: &["--prior", "mixture"],
    },
    PriorKind {
        name: "learned mixture per class",
        stem: "prior-class",
        args: &["--prior", "mixture", "--per-class"],
    },
    PriorKind {
        name: "learned mixture per class, temperature 0.7",
        stem: "prior-class-t07",
        args: &[
            "--prior",
            "mixture",
            "--per-class",
            "--prior-temperature",
            "0.7",
        ],
    },
    PriorKind {
        name: "second-stage VAE",
        stem: "prior-second-stage",
        args: &["--prior", "second-stage"],
    },
];

/// Where a row's samples come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The int8 engine, from the model file's prior (`trainer eval --int8`).
    Int8,
    /// A conditional VAE's float decoder on the host, each class asked for in turn.
    Conditional,
}

/// One prior of one preset, as `trainer eval` measured it.
struct Row {
    preset: &'static str,
    prior: &'static str,
    source: Source,
    /// The model file's bytes (`Source::Int8`; 0 for a conditional VAE, which has no file:
    /// its row's bytes come from its evaluation's sizes).
    model_bytes: u64,
    /// Instructions of one draw (`sample_count`) on the emulated Cortex-M4F and on the
    /// Cortex-M0 build.
    sample_instructions: [u64; 2],
    /// Its picture, relative to `results/`.
    picture: String,
    eval: Value,
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, p| match p.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[p],
        })
        .as_f64()
        .unwrap_or(f64::NAN)
}

impl Row {
    fn f(&self, path: &[&str]) -> f64 {
        f(&self.eval, path)
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
        for prior in &PRIORS {
            let file = run.join(format!("{}.tvae", prior.stem));
            export(&trainer, &run, &data, &file, prior.args)?;
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
            let picture = picture(&file, preset, prior.stem)?;
            let sample_instructions = [
                sample_count(firmware::default_board(), &file)?,
                sample_count(firmware::m0_code_board(), &file)?,
            ];
            rows.push(Row {
                preset,
                prior: prior.name,
                source: Source::Int8,
                model_bytes: std::fs::metadata(&file)?.len(),
                sample_instructions,
                picture,
                eval: serde_json::from_str(&text).with_context(|| format!("{}", json.display()))?,
            });
        }
        rows.extend(conditional(
            &trainer,
            &data,
            &dir,
            preset,
            epochs,
            &classifier,
        )?);
    }
    let md = report(&data, epochs, &rows);
    let out = project_root().join("results").join("priors.md");
    std::fs::write(&out, &md)?;
    println!("\n{md}wrote {}", out.display());
    Ok(())
}

/// 16 samples of the int8 engine from `model`'s prior (the `vae` firmware's first 16, seed
/// [`DEMO_SEED`]; with four of each class below for a prior per class) as
/// `results/priors/PRESET-STEM.png`; returns that path relative to `results/`.
fn picture(model: &Path, preset: &str, stem: &str) -> Result<String> {
    let blob = std::fs::read(model)?;
    let m =
        tinyvae_format::Model::from_bytes(&blob).with_context(|| format!("{}", model.display()))?;
    let images = pipeline::host_outputs(&m, DEMO_SEED, tinyvae_protocol::SAMPLES)?;
    let get = |k: &str| images.get(k).cloned().unwrap_or_default();
    let (samples, classes) = (get("sample"), get("class"));
    let mut rows: Vec<Vec<&[u8]>> = samples
        .chunks(8)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let per = tinyvae_protocol::CLASS_SAMPLES;
    let n = classes.len() / per;
    // Two rows of class draws, for a prior per class only (no empty rows below the others).
    for j in 0..per.min(2) * usize::from(n > 0) {
        rows.push(
            (0..n)
                .filter_map(|c| classes.get(c * per + j).map(Vec::as_slice))
                .collect(),
        );
    }
    let rel = format!("priors/{preset}-{}.png", stem.trim_start_matches("prior-"));
    let path = project_root().join("results").join(&rel);
    std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
    pipeline::write_png(&path, &rows, pipeline::Shape::of(&m))?;
    Ok(rel)
}

/// The temperatures a conditional VAE's float samples are scored at: the prior itself, and
/// the learned mixture per class's other row.
const CONDITIONAL_TEMPERATURES: [(&str, &str, &str); 2] = [
    ("conditional VAE (float, on the host)", "1", "conditional"),
    (
        "conditional VAE (float, on the host), temperature 0.7",
        "0.7",
        "conditional-t07",
    ),
];

/// The preset trained as a conditional VAE (`trainer train --conditional`, otherwise the
/// quality runs' settings) in `PRESET-conditional`, reused when there; its float samples
/// of each class asked for in turn scored at each of [`CONDITIONAL_TEMPERATURES`], with a
/// picture of two of each class.
fn conditional(
    trainer: &Path,
    data: &Path,
    dir: &Path,
    preset: &'static str,
    epochs: u32,
    classifier: &Path,
) -> Result<Vec<Row>> {
    let run = dir.join(format!("{preset}-conditional"));
    if !run.join("checkpoint.safetensors").exists() {
        let ep = epochs.to_string();
        ours(
            trainer,
            data,
            &run,
            &[
                "--preset",
                preset,
                "--epochs",
                &ep,
                "--seed",
                "1",
                "--conditional",
            ],
        )?;
    }
    let mut rows = Vec::new();
    for (name, t, stem) in CONDITIONAL_TEMPERATURES {
        let json = run.join(format!("eval-{stem}.json"));
        capture(
            Command::new(trainer)
                .arg("eval")
                .arg(&run)
                .arg("--data")
                .arg(data)
                .arg("--classifier")
                .arg(classifier)
                .args(["--temperature", t])
                .arg("--json")
                .arg(&json),
        )?;
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("{}: cannot read", json.display()))?;
        let eval: Value =
            serde_json::from_str(&text).with_context(|| format!("{}", json.display()))?;
        let rel = format!("priors/{preset}-{stem}.png");
        let path = project_root().join("results").join(&rel);
        capture(
            Command::new(trainer)
                .arg("sample")
                .arg(&run)
                .args(["-n", "20", "--columns", "10", "--temperature", t])
                .args(["--seed", &DEMO_SEED.to_string()])
                .arg("-o")
                .arg(&path),
        )?;
        rows.push(Row {
            preset,
            prior: name,
            source: Source::Conditional,
            model_bytes: 0,
            sample_instructions: [0, 0],
            picture: rel,
            eval,
        });
    }
    Ok(rows)
}

/// `trainer export RUN --data DATA -o FILE ARGS`.
fn export(trainer: &Path, run: &Path, data: &Path, file: &Path, args: &[&str]) -> Result<()> {
    let mut export = Command::new(trainer);
    export
        .arg("export")
        .arg(run)
        .arg("--data")
        .arg(data)
        .arg("-o")
        .arg(file)
        .args(args);
    capture(&mut export)?;
    Ok(())
}

/// The `vae` firmware's count of one draw on `board` with `model`, after checking every
/// image it made against the host engine: `sample-class` (a class asked for) for a prior
/// per class, else `sample-prior`.
fn sample_count(board: firmware::Board, model: &Path) -> Result<u64> {
    let (code, dev) = pipeline::run_on_board(board, model, DEMO_SEED)?;
    if code != 0 {
        bail!(
            "the vae firmware on {} with {} ended with exit code {code}",
            board.name,
            model.display()
        );
    }
    pipeline::check_outputs_match(model, DEMO_SEED, &dev, false)?;
    let count = |want: &str| dev.counts.iter().find(|(name, _, _)| name == want);
    count("sample-class")
        .or_else(|| count("sample-prior"))
        .map(|c| c.1)
        .with_context(|| format!("{}: no sample-prior count in the log", board.name))
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
         exported to int8 once per prior (`trainer export`): N(0, I); the aggregate \
         posterior of 256 training images (`--prior aggregate --prior-components 256`: their \
         encoders' Gaussians, equal weights); the learned mixture (`--prior mixture`: \
         diagonal Gaussians fitted by EM to the 60,000 training images' posterior means, \
         their number chosen by the likelihood of held-out encodings within 8 KB); a mixture \
         per class of the training labels (`--per-class`: as many components for every \
         class, chosen the same way, stored grouped by class so that the chip draws a \
         chosen class), as fitted and sampled at temperature 0.7 (`--prior-temperature \
         0.7`: its standard deviations times 0.7); a second-stage VAE (`--prior \
         second-stage`, format version 6: a small dense VAE trained for 200 epochs on the \
         same posterior means, its decoder as wide as 8 KB allows stored, the chip drawing u \
         from N(0, I) and running that decoder in int8 to get z; Dai and Wipf 2019). Beside \
         them, not a prior: a conditional VAE (`trainer train --conditional`, the same \
         preset, epochs and seed: the class, one-hot, appended to the decoder's input z and \
         to the encoder's first dense layer's input), which the model format does not carry, \
         so its rows are its float decoder's samples on the host, z from N(0, I) (and N(0, \
         0.7^2 I)) with each class asked for in turn, 100 of each; its bytes are the int8 \
         weights its decoder's class inputs would add. Scored on 1,000 samples of the int8 engine (its own sampler \
         and draws, as the chip makes them) by `trainer eval --classifier --int8`: the share \
         the classifier labels with p >= 0.9 and the entropy of its labels (3.32 bits: all \
         ten equally); the Fréchet distance between the classifier's features (its last \
         hidden layer) of the samples and of the test set; the RMS pixel difference from \
         each sample to its nearest training image (median, and 10th to 90th percentile), \
         and the Euclidean distance between its classifier features and the nearest \
         training image's (the same features as the Fréchet distance's: there a smooth \
         rendering of a digit and a sharp one lie close, so blur alone does not read as \
         nearness); \
         for a prior per class, the share of 100 draws of each class asked for in turn \
         (`Engine::sample_class`) that the classifier labels as asked; \
         the copy test, the share of samples nearer some training image than any of the \
         5,000 odd-numbered test images (which no model saw): a copy of training images \
         scores 100%, real unseen digits score the baseline below. Baselines: 1,000 real \
         test images (the even-numbered; their Fréchet distance is 1,000 training images') \
         and the float model's reconstructions of them (new digits in the model's own smooth \
         style). Prior bytes: the model file's size less the N(0, I) file's. \
         Samples: the int8 engine's first 16 draws with the firmware's seed (and, for a \
         prior per class, two of each class asked for, one column per class). \
         Instructions: the `vae` firmware's count of one draw, before decoding (`sample-prior`, \
         the 16th sample's; for a prior per class `sample-class`, the last class asked \
         for), every image checked against the host engine, on the emulated Cortex-M4F \
         (mps2-an386) and the Cortex-M0 build (ARMv6-M, run and counted on the AN385: \
         `mps2-an385-m0`), each preset's whole model.\n\n\
         Reproduce: `cargo xtask priors {} {epochs}`\n\n\
         | preset | prior | labelled with p >= 0.9 | label entropy (bits) | Fréchet distance | nearest training image, median (10th-90th) | nearest training image in classifier features, median (10th-90th) | copy test | class asked for | prior bytes | instructions per draw, Cortex-M4F | instructions per draw, Cortex-M0 code | samples |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        crate::shown(data),
        cpu_name(),
        crate::shown(data),
    );
    let nearest = |v: &Value| {
        format!(
            "{:.3} ({:.3}-{:.3})",
            f(v, &["nearest_train_quantiles", "2"]),
            f(v, &["nearest_train_quantiles", "0"]),
            f(v, &["nearest_train_quantiles", "4"])
        )
    };
    let nearest_features = |v: &Value| {
        let q = |i: &str| f(v, &["nearest_train_features_quantiles", i]);
        format!("{:.2} ({:.2}-{:.2})", q("2"), q("0"), q("4"))
    };
    let (mut normal_bytes, mut normal_decoder) = (0, 0.0);
    for (i, r) in rows.iter().enumerate() {
        if r.prior == PRIORS[0].name {
            normal_bytes = r.model_bytes;
            normal_decoder = r.f(&["size", "decoder_int8_bytes"]);
        }
        let (score, fid, asked, bytes, counts) = match r.source {
            Source::Int8 => (
                &r.eval["score_int8"],
                &r.eval["fidelity_int8"],
                &r.eval["class_as_asked"],
                r.model_bytes.saturating_sub(normal_bytes).to_string(),
                format!(
                    "{} | {}",
                    r.sample_instructions[0], r.sample_instructions[1]
                ),
            ),
            Source::Conditional => (
                &r.eval["score_float_class"],
                &r.eval["fidelity_float_class"],
                &r.eval["class_as_asked_float"],
                format!(
                    "({:.0}: its decoder's class inputs in int8; not exported)",
                    r.f(&["size", "decoder_int8_bytes"]) - normal_decoder
                ),
                "not on the chip | not on the chip".to_string(),
            ),
        };
        md += &format!(
            "| {} | {} | {:.1}% | {:.2} | {:.1} | {} | {} | {:.1}% | {} | {} | {} | [picture]({}) |\n",
            r.preset,
            r.prior,
            100.0 * f(score, &["confident"]),
            f(score, &["label_entropy_bits"]),
            f(fid, &["frechet"]),
            nearest(fid),
            nearest_features(fid),
            100.0 * f(fid, &["nearer_train_share"]),
            asked
                .as_f64()
                .map_or(String::new(), |v| format!("{:.1}%", 100.0 * v)),
            bytes,
            counts,
            r.picture,
        );
        // After a preset's last row: its unconditional model's reconstructions.
        if rows.get(i + 1).is_none_or(|n| n.preset != r.preset) {
            let Some(base) = rows
                .iter()
                .find(|b| b.preset == r.preset && b.source == Source::Int8)
            else {
                continue;
            };
            let rec = &base.eval["fidelity_reconstructions"];
            md += &format!(
                "| {} | *reconstructions of the real images* | {:.1}% | {:.2} | {:.1} | {} | {} | {:.1}% | | | | | |\n",
                r.preset,
                100.0 * base.f(&["score_reconstructions", "confident"]),
                base.f(&["score_reconstructions", "label_entropy_bits"]),
                f(rec, &["frechet"]),
                nearest(rec),
                nearest_features(rec),
                100.0 * f(rec, &["nearer_train_share"]),
            );
        }
    }
    if let Some(r) = rows.first() {
        let real = &r.eval["fidelity_real_ceiling"];
        md += &format!(
            "| real test images | | | | {:.1} | {} | {} | {:.1}% | | | | | |\n",
            f(real, &["frechet"]),
            nearest(real),
            nearest_features(real),
            100.0 * f(real, &["nearer_train_share"]),
        );
    }
    md
}
