//! `cargo xtask bench-train`: seconds per training epoch and test -ELBO, tinyvae's trainer
//! beside the PyTorch reference scripts, the dense and the conv model, in one run on one
//! machine.
//!
//! usage: cargo xtask bench-train DATA_DIR DENSE_SCRIPT CONV_SCRIPT [EPOCHS] [SEED]
//! (the references are `pytorch_vae_reference.py` and `pytorch_conv_vae_reference.py`, each
//! called as `SCRIPT THREADS EPOCHS DATA_DIR`; they need `pip install torch numpy`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::pipeline;
use crate::project_root;

/// Threads on both sides: the machine's two cores.
pub const THREADS: usize = 2;

/// Per-epoch figures read from a log.
pub struct Epochs {
    /// Seconds of training.
    pub seconds: Vec<f64>,
    /// Test -ELBO after the epoch.
    pub neg_elbo: Vec<f64>,
}

/// The number after `key` in `line`.
pub fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let tok: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    tok.parse().ok()
}

/// Runs a command, echoing it and its output; its standard output.
pub fn capture(cmd: &mut Command) -> Result<String> {
    println!("$ {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd
        .output()
        .context("could not start the benchmark command")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        bail!(
            "benchmark command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Epoch lines of a PyTorch reference log: `epoch N: ... <elbo_key> X ... train epoch Ys`.
pub fn parse_torch(text: &str, elbo_key: &str) -> Epochs {
    parse(text, "train epoch", elbo_key)
}

/// Epoch lines of `trainer train`: `epoch N: ... test -ELBO X (...)  Ys`.
pub fn parse_ours(text: &str) -> Epochs {
    parse(text, ")", "test -ELBO")
}

fn parse(text: &str, time_key: &str, elbo_key: &str) -> Epochs {
    let mut e = Epochs {
        seconds: vec![],
        neg_elbo: vec![],
    };
    for line in text.lines().filter(|l| l.trim_start().starts_with("epoch")) {
        if let (Some(s), Some(v)) = (number_after(line, time_key), number_after(line, elbo_key)) {
            e.seconds.push(s);
            e.neg_elbo.push(v);
        }
    }
    e
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// A data folder argument made absolute, and an optional EPOCHS argument (default 10, at
/// least 1): what `quality` and `priors` take after their own arguments.
pub fn data_and_epochs(data: &str, epochs: Option<&String>) -> Result<(PathBuf, u32)> {
    let epochs: u32 = epochs
        .map_or(Ok(10), |s| s.parse())
        .with_context(|| format!("EPOCHS {epochs:?}"))?;
    if epochs == 0 {
        bail!("EPOCHS must be at least 1");
    }
    let data = PathBuf::from(data)
        .canonicalize()
        .with_context(|| format!("{data}: no such folder"))?;
    Ok((data, epochs))
}

/// Fails with what to install unless `python3` can import PyTorch and NumPy.
pub fn require_torch() -> Result<()> {
    let ok = Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "the PyTorch side needs python3 with PyTorch and NumPy: `pip install torch numpy` \
             (the CPU build is enough)"
        );
    }
    Ok(())
}

/// The PyTorch reference: `SCRIPT THREADS EPOCHS DATA/`, run from `dir`.
pub fn torch(script: &Path, epochs: u32, data: &Path, dir: &Path) -> Result<String> {
    let mut data_arg = data.display().to_string();
    if !data_arg.ends_with('/') {
        data_arg.push('/'); // the reference scripts concatenate file names to it
    }
    std::fs::create_dir_all(dir)?;
    capture(
        Command::new("python3")
            .arg(script)
            .arg(THREADS.to_string())
            .arg(epochs.to_string())
            .arg(&data_arg)
            .current_dir(dir),
    )
}

/// `trainer train` with `args`, into `run`.
pub fn ours(trainer: &Path, data: &Path, run: &Path, args: &[&str]) -> Result<String> {
    let _ = std::fs::remove_dir_all(run);
    capture(
        Command::new(trainer)
            .args(["--threads", &THREADS.to_string(), "train", "--data"])
            .arg(data)
            .args(args)
            .arg("--out")
            .arg(run),
    )
}

/// The machine's CPU, from /proc/cpuinfo.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

fn table(name: &str, t: &Epochs, o: &Epochs, epochs: usize) -> (String, f64) {
    let mut md = format!(
        "## {name}\n\n| epoch | PyTorch s | tinyvae s | PyTorch test -ELBO | tinyvae test -ELBO |\n\
         |---:|---:|---:|---:|---:|\n"
    );
    for i in 0..epochs {
        md += &format!(
            "| {} | {:.2} | {:.2} | {:.3} | {:.3} |\n",
            i + 1,
            t.seconds[i],
            o.seconds[i],
            t.neg_elbo[i],
            o.neg_elbo[i]
        );
    }
    let (tm, om) = (mean(&t.seconds), mean(&o.seconds));
    md += &format!(
        "| mean | {tm:.2} | {om:.2} | | |\n\n{name}: tinyvae takes **{:.2}x** PyTorch's time per epoch; \
         final test -ELBO {:.3} (PyTorch {:.3}).\n\n",
        om / tm,
        o.neg_elbo[epochs - 1],
        t.neg_elbo[epochs - 1]
    );
    (md, om / tm)
}

/// Runs both trainers on both models and writes `results/train-vs-pytorch.md`.
pub fn train(args: &[String]) -> Result<()> {
    let [data, dense_script, conv_script, rest @ ..] = args else {
        bail!("usage: cargo xtask bench-train DATA_DIR DENSE_SCRIPT CONV_SCRIPT [EPOCHS] [SEED]");
    };
    let arg = |i: usize, default: u64, what: &str| -> Result<u64> {
        rest.get(i)
            .map_or(Ok(default), |s| s.parse().with_context(|| what.to_string()))
    };
    let epochs = arg(0, 10, "EPOCHS")? as u32;
    let seed = arg(1, 1, "SEED")?;
    if epochs == 0 {
        bail!("EPOCHS must be at least 1");
    }
    let data = PathBuf::from(data)
        .canonicalize()
        .with_context(|| format!("{data}: no such folder"))?;
    require_torch()?;
    let trainer = pipeline::trainer()?;
    let dir = project_root().join("target").join("bench-train");
    let (seed_s, epochs_s) = (seed.to_string(), epochs.to_string());
    let common = ["--epochs", &epochs_s, "--seed", &seed_s];

    // Alternate the two trainers, so that a slow spell of the shared machine is less
    // likely to fall on one side only.
    let torch_dense = torch(Path::new(dense_script), epochs, &data, &dir)?;
    let ours_dense = ours(&trainer, &data, &dir.join("dense"), &common)?;
    let torch_conv = torch(Path::new(conv_script), epochs, &data, &dir)?;
    let mut conv_args = vec!["--preset", "conv"];
    conv_args.extend(common);
    let ours_conv = ours(&trainer, &data, &dir.join("conv"), &conv_args)?;

    let n = epochs as usize;
    let runs = [
        (
            parse_torch(&torch_dense, "test loss"),
            parse_ours(&ours_dense),
        ),
        (
            parse_torch(&torch_conv, "test -ELBO"),
            parse_ours(&ours_conv),
        ),
    ];
    for (t, o) in &runs {
        if t.seconds.len() != n || o.seconds.len() != n {
            bail!(
                "could not read {n} epochs from every log (PyTorch {}, tinyvae {})",
                t.seconds.len(),
                o.seconds.len()
            );
        }
    }
    let torch_version = torch_dense.lines().next().unwrap_or("torch").to_string();
    let mut md = format!(
        "# Training speed and quality: tinyvae beside PyTorch\n\n\
         Both models of the PyTorch reference scripts, the same data, epochs, batch (128), \
         optimizer (Adam, lr 1e-3), loss (summed BCE + KL, beta 1), {epochs} epochs on {}, \
         on {} ({THREADS} cores), {THREADS} threads on each side. PyTorch: seed 1 ({torch_version}); \
         tinyvae: seed {seed}. The runs alternate (PyTorch dense, tinyvae dense, PyTorch conv, \
         tinyvae conv). Seconds are the training pass of each epoch; test -ELBO is one z \
         draw per test image, as the scripts compute it.\n\n\
         Reproduce: `cargo xtask bench-train {} {} {} {epochs} {seed}`\n\n",
        crate::shown(&data),
        cpu_name(),
        crate::shown(&data),
        crate::shown(Path::new(dense_script)),
        crate::shown(Path::new(conv_script)),
    );
    let names = [
        "Dense VAE 784-400-20",
        "Conv VAE (conv 32, 64, kernel 4, stride 2; latent 20)",
    ];
    let mut ratios = Vec::new();
    for (name, (t, o)) in names.iter().zip(&runs) {
        let (section, ratio) = table(name, t, o, n);
        md += &section;
        ratios.push(ratio);
    }
    let out = project_root().join("results").join("train-vs-pytorch.md");
    std::fs::write(&out, &md)?;
    println!("\n{md}wrote {}", out.display());
    if ratios.iter().any(|&r| r > 1.2) {
        println!("note: above the 1.2x target: {ratios:?}");
    }
    Ok(())
}

/// Runs the per-op benchmark (`trainer/examples/bench_ops.rs`) and writes
/// `results/train-ops.md`.
pub fn ops() -> Result<()> {
    let root = project_root();
    let table = capture(Command::new("cargo").current_dir(&root).args([
        "run",
        "--release",
        "-q",
        "-p",
        "tinyvae-trainer",
        "--example",
        "bench_ops",
        "--",
        &THREADS.to_string(),
        "10",
    ]))?;
    let md = format!(
        "# Training ops: candle's beside the trainer's fused ones\n\n\
         The `conv` preset's layers at batch 128, on {} ({THREADS} cores, {THREADS} threads), \
         the same data on both sides: milliseconds per call, best of 10, forward and forward \
         + backward of `sum(y * r)` with respect to every input. candle: `conv2d` / \
         `conv_transpose2d` (NCHW) or `matmul` + `broadcast_add`, and candle's backward. \
         Fused: `trainer/src/ops` (NHWC; im2col or col2im and one matrix product per \
         operand). Per op, not per epoch: `results/train-vs-pytorch.md` has whole epochs.\n\n\
         Reproduce: `cargo xtask bench-ops`\n\n{table}",
        cpu_name()
    );
    let out = root.join("results").join("train-ops.md");
    std::fs::write(&out, &md)?;
    println!("wrote {}", out.display());
    Ok(())
}
