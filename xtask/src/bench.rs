//! `cargo xtask bench-train`: seconds per training epoch and test -ELBO of the default VAE,
//! tinyvae's trainer beside the PyTorch reference script, in one run on one machine.
//!
//! usage: cargo xtask bench-train DATA_DIR REFERENCE_SCRIPT [TORCH_THREADS] [THREADS] [EPOCHS] [SEED]
//! (the reference is the `pytorch_vae_reference.py THREADS EPOCHS DATA_DIR` script; it needs
//! `pip install torch numpy`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::pipeline;
use crate::project_root;

struct Epochs {
    seconds: Vec<f64>,
    neg_elbo: Vec<f64>,
}

fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let tok: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    tok.parse().ok()
}

fn capture(cmd: &mut Command) -> Result<String> {
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

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Runs both trainers and writes `results/train-vs-pytorch.md`.
pub fn train(args: &[String]) -> Result<()> {
    let [data, script, rest @ ..] = args else {
        bail!(
            "usage: cargo xtask bench-train DATA_DIR REFERENCE_SCRIPT [TORCH_THREADS] [THREADS] [EPOCHS] [SEED]"
        );
    };
    let arg = |i: usize, default: u64, what: &str| -> Result<u64> {
        rest.get(i)
            .map_or(Ok(default), |s| s.parse().with_context(|| what.to_string()))
    };
    let torch_threads = arg(0, 2, "TORCH_THREADS")?;
    let threads = arg(1, 1, "THREADS")?;
    let epochs = arg(2, 10, "EPOCHS")? as u32;
    let seed = arg(3, 1, "SEED")?;
    let data = PathBuf::from(data)
        .canonicalize()
        .with_context(|| format!("{data}: no such folder"))?;
    let trainer = pipeline::trainer()?;
    let run = project_root().join("target").join("bench-train");
    let _ = std::fs::remove_dir_all(&run);

    let mut data_arg = data.display().to_string();
    if !data_arg.ends_with('/') {
        data_arg.push('/'); // the reference script concatenates file names to it
    }
    let torch = capture(
        Command::new("python3")
            .arg(script)
            .arg(torch_threads.to_string())
            .arg(epochs.to_string())
            .arg(&data_arg)
            .current_dir(run.parent().unwrap_or(Path::new("."))),
    )?;
    let ours = capture(
        Command::new(&trainer)
            .args(["--threads", &threads.to_string(), "train", "--data"])
            .arg(&data)
            .args([
                "--epochs",
                &epochs.to_string(),
                "--seed",
                &seed.to_string(),
                "--out",
            ])
            .arg(&run),
    )?;
    let t = parse(&torch, "train epoch", "test loss");
    let o = parse(&ours, ")", "test -ELBO");
    if t.seconds.len() != epochs as usize || o.seconds.len() != epochs as usize {
        bail!(
            "could not read {epochs} epochs from both logs (PyTorch {}, tinyvae {})",
            t.seconds.len(),
            o.seconds.len()
        );
    }
    let torch_version = torch.lines().next().unwrap_or("torch").to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mut md = format!(
        "# Training speed and quality: tinyvae beside PyTorch\n\n\
         Default VAE 784-400-20, Adam lr 1e-3, batch 128, summed BCE, beta 1, {epochs} epochs on \
         {}, on {cpu} (2 cores). PyTorch with {torch_threads} threads, seed 1 ({torch_version}); \
         tinyvae with {threads} thread(s), seed {seed}. Each at its fastest setting: PyTorch \
         gains from its second thread, tinyvae's candle kernels lose at these layer sizes.\n\n\
         Reproduce: `cargo xtask bench-train {} {} {torch_threads} {threads} {epochs} {seed}`\n\n\
         | epoch | PyTorch s | tinyvae s | PyTorch test -ELBO | tinyvae test -ELBO |\n|---:|---:|---:|---:|---:|\n",
        data.display(),
        data.display(),
        script
    );
    for i in 0..epochs as usize {
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
        "| mean | {tm:.2} | {om:.2} | | |\n\ntinyvae takes {:.2}x PyTorch's time per epoch; final test -ELBO {:.3} (PyTorch {:.3}).\n",
        om / tm,
        o.neg_elbo[epochs as usize - 1],
        t.neg_elbo[epochs as usize - 1]
    );
    let out = project_root().join("results").join("train-vs-pytorch.md");
    std::fs::create_dir_all(out.parent().context("results")?)?;
    std::fs::write(&out, &md)?;
    println!("\n{md}\nwrote {}", out.display());
    Ok(())
}
