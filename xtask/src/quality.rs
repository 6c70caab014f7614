//! `cargo xtask quality`: tinyvae's dense and conv VAEs against the PyTorch references on
//! full MNIST (three seeds on each side; every model of a family then scored by one
//! evaluation with the same test images and z draws; the importance-weighted bound beside
//! PyTorch's), and the four presets side by side: test -ELBO, the sample score of a
//! classifier, parameters, int8 decoder bytes and peak activation bytes.
//!
//! usage: cargo xtask quality DATA_DIR DENSE_SCRIPT CONV_SCRIPT [EPOCHS]
//! (the reference scripts, each called as `SCRIPT THREADS EPOCHS DATA_DIR`, unmodified:
//! `xtask/python/seeded_reference.py` gives their `torch.manual_seed` call each seed and
//! keeps the trained weights; `xtask/python/evaluate_elbo.py` scores both sides).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bench::{capture, cpu_name, number_after, ours, parse_ours, parse_torch, Epochs};
use crate::pipeline;
use crate::project_root;

const SEEDS: [u64; 3] = [1, 2, 3];
/// Test images for the importance-weighted bound, as the references take them.
const IW_IMAGES: &str = "500";
/// z draws per test image in the shared evaluation.
const DRAWS: usize = 10;

/// One model family beside its reference script.
struct Family {
    /// Preset name.
    preset: &'static str,
    /// Title in the report.
    title: &'static str,
    /// The reference's log key before its test -ELBO.
    torch_key: &'static str,
    /// Importance samples, as the reference's bound takes them.
    iw_samples: &'static str,
}

const FAMILIES: [Family; 2] = [
    Family {
        preset: "default",
        title: "Dense VAE 784-400-20",
        torch_key: "test loss",
        iw_samples: "5000",
    },
    Family {
        preset: "conv",
        title: "Conv VAE (conv 32 and 64 channels, kernel 4, stride 2; latent 20)",
        torch_key: "test -ELBO",
        iw_samples: "1000",
    },
];

/// A `trainer eval --json` record.
struct Evaluated(Value);

impl Evaluated {
    fn f(&self, path: &[&str]) -> f64 {
        path.iter()
            .fold(&self.0, |v, p| &v[p])
            .as_f64()
            .unwrap_or(f64::NAN)
    }

    fn iw(&self) -> f64 {
        self.0["metrics"]["iw_bound"][2]
            .as_f64()
            .unwrap_or(f64::NAN)
    }

    fn score(&self, which: &str) -> String {
        let s = &self.0[which];
        if s.is_null() {
            return "n/a".into();
        }
        format!(
            "{:.1}% / {:.2}",
            100.0 * s["confident"].as_f64().unwrap_or(f64::NAN),
            s["label_entropy_bits"].as_f64().unwrap_or(f64::NAN)
        )
    }
}

fn eval(trainer: &Path, run: &Path, data: &Path, extra: &[&str]) -> Result<Evaluated> {
    let json = run.join("eval.json");
    capture(
        Command::new(trainer)
            .arg("eval")
            .arg(run)
            .arg("--data")
            .arg(data)
            .args(extra)
            .arg("--json")
            .arg(&json),
    )?;
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("{}: cannot read", json.display()))?;
    Ok(Evaluated(
        serde_json::from_str(&text).with_context(|| format!("{}", json.display()))?,
    ))
}

/// One family's runs: the reference's epochs and bound per seed, ours per seed, and both
/// sides scored by the one evaluation (PyTorch's seeds first, then ours).
struct Compared {
    torch: Vec<(Epochs, f64)>,
    ours: Vec<(Epochs, Evaluated)>,
    shared: Vec<Scored>,
    /// Test images in the shared evaluation.
    images: u64,
}

/// One model in the shared evaluation (`evaluate_elbo.py`).
struct Scored {
    /// Test -ELBO per draw, nats per image.
    per_draw: Vec<f64>,
    /// The KL term (deterministic).
    kl: f64,
    /// Squared error per pixel at z = mu (deterministic).
    mse: f64,
}

impl Scored {
    fn mean(&self) -> f64 {
        crate::bench::mean(&self.per_draw)
    }

    /// Standard deviation over the draws.
    fn sd(&self) -> f64 {
        sd(&self.per_draw)
    }
}

/// Sample standard deviation.
fn sd(v: &[f64]) -> f64 {
    let m = crate::bench::mean(v);
    let n = v.len().max(2) as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// The project's Python helper `name` (in xtask/python).
fn helper(name: &str) -> PathBuf {
    project_root().join("xtask").join("python").join(name)
}

/// Runs everything and writes `results/mnist-full.md` and its sample pictures.
pub fn run(args: &[String]) -> Result<()> {
    let [data, dense_script, conv_script, rest @ ..] = args else {
        bail!("usage: cargo xtask quality DATA_DIR DENSE_SCRIPT CONV_SCRIPT [EPOCHS]");
    };
    let (data, epochs) = crate::bench::data_and_epochs(data, rest.first())?;
    crate::bench::require_torch()?;
    // The scripts run from the work folder: their paths are made absolute first.
    let scripts = [dense_script, conv_script].map(|s| {
        Path::new(s)
            .canonicalize()
            .with_context(|| format!("{s}: no such reference script"))
    });
    let [dense_path, conv_path] = scripts;
    let (dense_path, conv_path) = (dense_path?, conv_path?);
    let dir = project_root().join("target").join("quality");
    std::fs::create_dir_all(&dir)?;
    let q = Session {
        trainer: pipeline::trainer()?,
        data,
        dir,
        epochs,
    };
    let (classifier, cls_line) = q.classifier()?;
    let cls = classifier.display().to_string();
    let scored = ["--classifier", cls.as_str()];
    let mut compared = Vec::new();
    for (family, script) in FAMILIES.iter().zip([&dense_path, &conv_path]) {
        compared.push(q.compare(family, script, &scored)?);
    }
    let n = epochs as usize;
    for c in &compared {
        let logs = c
            .torch
            .iter()
            .map(|(e, _)| e)
            .chain(c.ours.iter().map(|(e, _)| e));
        if logs.clone().any(|e| e.neg_elbo.len() != n)
            || c.shared.iter().any(|s| s.per_draw.len() != DRAWS)
        {
            bail!("could not read {n} epochs from every log");
        }
    }
    let presets = q.presets(&scored)?;
    let mut md = header(&q.data, (dense_script, conv_script), epochs);
    for (family, c) in FAMILIES.iter().zip(&compared) {
        md += &family_section(family, c, n);
    }
    md += &presets_section(&cls_line, &presets);
    let out = project_root().join("results").join("mnist-full.md");
    std::fs::write(&out, &md)?;
    println!("\n{md}wrote {}", out.display());
    Ok(())
}

/// What every step of a quality run shares.
struct Session {
    trainer: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    epochs: u32,
}

impl Session {
    /// Trains the classifier that scores samples; returns its file and its report ("10
    /// classes, test accuracy 98.36%").
    fn classifier(&self) -> Result<(PathBuf, String)> {
        let classifier = self.dir.join("classifier.safetensors");
        let log = capture(
            Command::new(&self.trainer)
                .args(["classifier", "--data"])
                .arg(&self.data)
                .arg("--out")
                .arg(&classifier),
        )?;
        // "wrote FILE (10 classes, test accuracy 98.36%)": the part in parentheses.
        let last = log.lines().last().unwrap_or("");
        let line = last
            .rsplit_once('(')
            .map_or(last, |(_, r)| r.trim_end_matches(')'))
            .to_string();
        Ok((classifier, line))
    }

    /// One family: the PyTorch reference, then ours over the seeds, scored; a picture of
    /// seed 1's samples in results/.
    fn compare(&self, family: &Family, script: &Path, scored: &[&str]) -> Result<Compared> {
        let ep = self.epochs.to_string();
        let iw_key = format!("IW bound k={}", family.iw_samples);
        let mut torch_runs = Vec::new();
        let mut weights = Vec::new();
        for seed in SEEDS {
            let file = self.dir.join(format!("torch-{}-{seed}.pt", family.preset));
            let log = self.torch_seeded(script, seed, &file)?;
            let iw = log
                .lines()
                .find(|l| l.starts_with(&iw_key))
                .and_then(|l| number_after(l, "images:"))
                .unwrap_or(f64::NAN);
            torch_runs.push((parse_torch(&log, family.torch_key), iw));
            weights.push(file);
        }
        let mut runs = Vec::new();
        for seed in SEEDS {
            let run = self.dir.join(format!("{}-{seed}", family.preset));
            let seed = seed.to_string();
            let log = ours(
                &self.trainer,
                &self.data,
                &run,
                &["--preset", family.preset, "--epochs", &ep, "--seed", &seed],
            )?;
            let mut extra = vec!["--iw-samples", family.iw_samples, "--iw-images", IW_IMAGES];
            extra.extend(scored);
            runs.push((
                parse_ours(&log),
                eval(&self.trainer, &run, &self.data, &extra)?,
            ));
            weights.push(run.join("checkpoint.safetensors"));
        }
        let (shared, images) = self.evaluate(family, script, &weights)?;
        // The moved weights are checked: the deterministic terms of each tinyvae checkpoint
        // must be what `trainer eval` computed.
        for ((_, e), s) in runs.iter().zip(&shared[SEEDS.len()..]) {
            let (kl, mse) = (e.f(&["metrics", "kl"]), e.f(&["metrics", "mse"]));
            if (s.kl - kl).abs() > 1e-3 * kl.abs().max(1.0) || (s.mse - mse).abs() > 1e-3 * mse {
                bail!(
                    "{}: the shared evaluation reads a tinyvae checkpoint differently from \
                     `trainer eval` (KL {} vs {kl}, MSE {} vs {mse})",
                    family.preset,
                    s.kl,
                    s.mse
                );
            }
        }
        let picture = project_root()
            .join("results")
            .join(format!("mnist-{}-samples.png", family.preset));
        capture(
            Command::new(&self.trainer)
                .arg("sample")
                .arg(self.dir.join(format!("{}-1", family.preset)))
                .args(["-n", "64", "-o"])
                .arg(&picture),
        )?;
        Ok(Compared {
            torch: torch_runs,
            ours: runs,
            shared,
            images,
        })
    }

    /// The reference script, unmodified, under `seed`; its trained weights to `weights`.
    fn torch_seeded(&self, script: &Path, seed: u64, weights: &Path) -> Result<String> {
        let mut data_arg = self.data.display().to_string();
        if !data_arg.ends_with('/') {
            data_arg.push('/'); // the reference scripts concatenate file names to it
        }
        capture(
            Command::new("python3")
                .arg(helper("seeded_reference.py"))
                .arg(seed.to_string())
                .arg(weights)
                .arg(script)
                .arg(crate::bench::THREADS.to_string())
                .arg(self.epochs.to_string())
                .arg(&data_arg)
                .current_dir(&self.dir),
        )
    }

    /// Every model of a family scored by one evaluation: the same test images, the same
    /// z draws.
    fn evaluate(
        &self,
        family: &Family,
        script: &Path,
        models: &[PathBuf],
    ) -> Result<(Vec<Scored>, u64)> {
        let json = self.dir.join(format!("shared-{}.json", family.preset));
        capture(
            Command::new("python3")
                .arg(helper("evaluate_elbo.py"))
                .arg(script)
                .arg(&self.data)
                .arg(DRAWS.to_string())
                .arg(&json)
                .args(models),
        )?;
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("{}: cannot read", json.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{}", json.display()))?;
        let images = v["images"].as_u64().unwrap_or(0);
        let models = v["models"]
            .as_array()
            .context("no models in the evaluation")?;
        let scored = models
            .iter()
            .map(|m| Scored {
                per_draw: m["neg_elbo_per_draw"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default(),
                kl: m["kl"].as_f64().unwrap_or(f64::NAN),
                mse: m["mse"].as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        Ok((scored, images))
    }

    /// Every preset, seed 1 (trained here unless a family run has it): exported to int8,
    /// whole and decoder-only, and scored as float and as int8.
    fn presets(&self, scored: &[&str]) -> Result<Vec<(&'static str, Evaluated, u64)>> {
        let ep = self.epochs.to_string();
        let mut presets = Vec::new();
        for preset in ["default", "mcu", "conv", "conv-mcu"] {
            let seeded = self.dir.join(format!("{preset}-1"));
            let run = if seeded.exists() {
                seeded
            } else {
                let run = self.dir.join(preset);
                ours(
                    &self.trainer,
                    &self.data,
                    &run,
                    &["--preset", preset, "--epochs", &ep, "--seed", "1"],
                )?;
                run
            };
            let mut extra: Vec<String> = scored.iter().map(|s| s.to_string()).collect();
            let model = run.join("model.tvae");
            let decoder = run.join("decoder.tvae");
            for (file, only) in [(&model, false), (&decoder, true)] {
                let mut export = Command::new(&self.trainer);
                export
                    .arg("export")
                    .arg(&run)
                    .arg("--data")
                    .arg(&self.data)
                    .arg("-o")
                    .arg(file);
                if only {
                    export.arg("--decoder-only");
                }
                capture(&mut export)?;
            }
            extra.extend(["--int8".into(), model.display().to_string()]);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let decoder_bytes = std::fs::metadata(&decoder)?.len();
            presets.push((
                preset,
                eval(&self.trainer, &run, &self.data, &extra)?,
                decoder_bytes,
            ));
        }
        Ok(presets)
    }
}

fn header(data: &Path, (dense, conv): (&str, &str), epochs: u32) -> String {
    format!(
        "# Dense and conv VAEs on full MNIST, beside PyTorch; the presets side by side\n\n\
         Full MNIST ({}), {epochs} epochs, batch 128, Adam lr 1e-3, summed BCE + KL (beta 1), \
         on {} (2 cores, 2 threads each side). The `default` and `conv` presets are the \
         reference scripts' architectures (`{dense}`, `{conv}`). Both sides run with seeds 1, 2 \
         and 3 (the scripts unmodified: `xtask/python/seeded_reference.py` hands their \
         `torch.manual_seed` call each seed). Per epoch: test -ELBO in nats per example, one z \
         draw per test image, as each side's own log prints it. Then every final model of a \
         family, PyTorch's and tinyvae's, is scored by one evaluation \
         (`xtask/python/evaluate_elbo.py`, tinyvae's weights moved into the reference's \
         class): the same test images and the same {DRAWS} z draws per image for every model; it reproduces `trainer eval`'s KL and reconstruction error for each tinyvae \
         checkpoint, which xtask checks. The importance-weighted bound with the scripts' own K \
         on the first {IW_IMAGES} test images.\n\n\
         Reproduce: `cargo xtask quality {} {dense} {conv} {epochs}`\n\n",
        crate::shown(data),
        cpu_name(),
        crate::shown(data),
        dense = crate::shown(Path::new(dense)),
        conv = crate::shown(Path::new(conv)),
    )
}

fn family_section(family: &Family, c: &Compared, n: usize) -> String {
    let seeds = SEEDS.len();
    let mut md = format!(
        "## {}\n\n| epoch | PyTorch seed 1 | seed 2 | seed 3 | tinyvae seed 1 | seed 2 | seed 3 |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
        family.title
    );
    for i in 0..n {
        md += &format!("| {} |", i + 1);
        for e in c
            .torch
            .iter()
            .map(|(e, _)| e)
            .chain(c.ours.iter().map(|(e, _)| e))
        {
            md += &format!(" {:.3} |", e.neg_elbo[i]);
        }
        md += "\n";
    }
    let (theirs, ours) = c.shared.split_at(seeds);
    md += &format!(
        "\nOne evaluation, the same {DRAWS} z draws for each of the {} test images for every \
         model: test -ELBO, mean over the draws (and its spread over the draws).\n\n\
         | seed | PyTorch | tinyvae | PyTorch KL | tinyvae KL |\n|---:|---:|---:|---:|---:|\n",
        c.images
    );
    for (seed, (t, o)) in SEEDS.iter().zip(theirs.iter().zip(ours)) {
        md += &format!(
            "| {seed} | {:.3} (+-{:.3}) | {:.3} (+-{:.3}) | {:.3} | {:.3} |\n",
            t.mean(),
            t.sd(),
            o.mean(),
            o.sd(),
            t.kl,
            o.kl
        );
    }
    let t: Vec<f64> = theirs.iter().map(Scored::mean).collect();
    let o: Vec<f64> = ours.iter().map(Scored::mean).collect();
    let (mt, mo) = (crate::bench::mean(&t), crate::bench::mean(&o));
    let (st, so) = (sd(&t), sd(&o));
    md += &format!(
        "| mean (sd over seeds) | **{mt:.3}** ({st:.3}) | **{mo:.3}** ({so:.3}) | | |\n\n"
    );
    // Two standard errors of the difference of the two means over seeds.
    let margin = 2.0 * ((st * st + so * so) / seeds as f64).sqrt();
    let d = mo - mt;
    let verdict = if d.abs() <= margin {
        format!(
            "**equal within seed noise**: tinyvae {d:+.3} nats, two standard errors {margin:.3}"
        )
    } else if d < 0.0 {
        format!(
            "tinyvae **lower** (better) by {:.3} nats, beyond two standard errors ({margin:.3})",
            -d
        )
    } else {
        format!(
            "tinyvae **higher** (worse) by {d:.3} nats, beyond two standard errors ({margin:.3})"
        )
    };
    let list = |v: Vec<f64>| {
        v.iter()
            .map(|v| format!("{v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    md += &format!(
        "Over three seeds each side: {verdict}.\n\n\
         Importance-weighted bound, K = {}: PyTorch {}; tinyvae {}.\n\n\
         ![64 samples from N(0, I), seed 1, float model](mnist-{}-samples.png)\n\n",
        family.iw_samples,
        list(c.torch.iter().map(|(_, iw)| *iw).collect()),
        list(c.ours.iter().map(|(_, e)| e.iw()).collect()),
        family.preset,
    );
    md
}

fn presets_section(classifier: &str, presets: &[(&str, Evaluated, u64)]) -> String {
    let mut md = format!(
        "## The presets side by side (seed 1)\n\n\
         Sample score: a classifier trained on the labelled training split (`trainer \
         classifier`; {classifier}) labels 1,000 samples from N(0, I): the share it \
         labels with probability >= 0.9, then the entropy in bits of the histogram of its \
         labels (3.32: all ten digits equally). Int8: the integer engine's own samples from \
         the exported model (its fixed-point sampler's draws, not the float model's); beside \
         it, the float model decoding those very draws, so that the two differ by the \
         decoder's quantization alone. Decoder-only model: the size of the file `trainer export \
         --decoder-only` writes (weights, biases, requantization, golden vectors), what a \
         firmware that only generates embeds. Peak activations: the largest input plus output of \
         one decoder layer, one byte per value.\n\n\
         | preset | model | test -ELBO | sample score, float | sample score, int8 | float on the int8 draws | parameters | decoder parameters | decoder-only model (bytes) | peak activation bytes |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (name, e, decoder_bytes) in presets {
        md += &format!(
            "| {name} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} |\n",
            e.0["model"].as_str().unwrap_or(""),
            e.f(&["metrics", "neg_elbo"]),
            e.score("score_float"),
            e.score("score_int8"),
            e.score("score_float_on_int8_draws"),
            e.f(&["size", "parameters"]),
            e.f(&["size", "decoder_parameters"]),
            decoder_bytes,
            e.f(&["size", "decoder_peak_activation_bytes"]),
        );
    }
    md
}
