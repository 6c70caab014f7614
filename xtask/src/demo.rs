//! `cargo xtask demo [--run RUN_DIR]`: train (or take a run), export, run on the emulated
//! Cortex-M4F, hold every image against the host engine, write the pictures and counts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::{firmware, pipeline, project_root, setup, DEMO_SEED};

/// The demo's model: the conv VAE, whose samples score best (results/mnist-full.md).
const DEMO_PRESET: &str = "conv";

/// The main job: train the conv model on the bundled data, export it, run it on the emulated
/// Cortex-M4F, hold every image it makes against the host engine, write the pictures and the
/// instruction counts.
pub fn demo(args: &[String]) -> Result<()> {
    let own_run = demo_run_arg(args)?;
    setup::all()?;
    run(own_run.as_deref(), &project_root().join("out"))
}

/// The demo with `own_run` (or the demo's own training), writing into `out`: the model's
/// pictures in the run's own image shape (grey or RGB), its data set being the one the
/// trainer recorded for the run (`trainer export` uses it).
pub fn run(own_run: Option<&Path>, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let (run_dir, model_dir, model_file) = demo_model(own_run, out)?;
    let blob = std::fs::read(&model_file)?;
    let model = tinyvae_format::Model::from_bytes(&blob)
        .with_context(|| format!("{}", model_file.display()))?;
    let board = firmware::default_board();
    println!(
        "\n== 2/3 run it on the emulated {} ({})",
        board.name, board.cpu
    );
    let (code, dev) = pipeline::run_on_board(board, &model_file, DEMO_SEED)?;
    for line in dev.log.lines().filter(|l| !l.contains(" [")) {
        println!("  {line}");
    }
    if code != 0 {
        bail!("the firmware ended with exit code {code}");
    }
    let n = pipeline::check_outputs_match(&model_file, DEMO_SEED, &dev, true)?;
    println!(
        "  the {n} images made on the chip (samples, reconstruction, resamples, interpolation) equal the host engine's, byte for byte"
    );

    println!("\n== 3/3 pictures and counts");
    let shape = pipeline::Shape::of(&model);
    let png = out.join("samples.png");
    pipeline::write_samples_png(&png, &dev, shape)?;
    let png2 = out.join("encode.png");
    write_encode_png(&png2, &dev, shape)?;
    // The learned prior: a Gaussian mixture fitted to the training encodings, sampled by the
    // same firmware (results/priors.md: digits like the model's reconstructions, not copies).
    let mix = pipeline::export_mixture(&run_dir, &model_dir)?;
    let (code, dev_mix) = pipeline::run_on_board(board, &mix, DEMO_SEED)?;
    if code != 0 {
        bail!("the firmware with the learned prior ended with exit code {code}");
    }
    let n = pipeline::check_outputs_match(&mix, DEMO_SEED, &dev_mix, true)?;
    println!("  learned prior: {n} images on the chip equal the host engine's");
    let png3 = out.join("samples-mixture.png");
    pipeline::write_samples_png(&png3, &dev_mix, shape)?;
    let png4 = out.join("classes.png");
    let classes = pipeline::write_classes_png(&png4, &dev_mix, shape)?;
    let table = pipeline::count_table(board, &model, &dev);
    std::fs::write(out.join("counts.md"), &table)?;
    println!("{table}");
    for (file, what) in [
        (
            png,
            "16 samples generated on the emulated chip, z ~ N(0, I)",
        ),
        (
            png3,
            "16 samples, z from the learned prior (Gaussian mixtures fitted to the training encodings, temperature 0.7)",
        ),
        (
            png4.clone(),
            "each class asked for in turn, one column per class, generated on the chip",
        ),
        (
            png2,
            "an input, its reconstruction, 4 resamples z = mu + sigma eps; then an interpolation",
        ),
        (
            out.join("counts.md"),
            "instructions retired under QEMU: instructions, not cycles",
        ),
    ] {
        if file == png4 && !classes {
            println!("(no classes.png: the data set has no labels, so the prior is not per class)");
            continue;
        }
        println!("wrote {} ({what})", file.display());
    }
    Ok(())
}

/// `--run DIR`: a run the user trained (e.g. on full MNIST) instead of the demo's training.
fn demo_run_arg(args: &[String]) -> Result<Option<PathBuf>> {
    match args {
        [] => Ok(None),
        [flag, dir] if flag == "--run" => {
            let dir = PathBuf::from(dir);
            if !dir.join("checkpoint.safetensors").is_file() {
                bail!(
                    "--run {}: no checkpoint.safetensors there (a folder `trainer train --out` wrote)",
                    dir.display()
                );
            }
            Ok(Some(dir))
        }
        _ => bail!("usage: cargo xtask demo [--run RUN_DIR]"),
    }
}

/// The demo's model: trained on the bundled subset, or the user's run exported. Returns the
/// run folder, the folder the model files go to, and the model file.
fn demo_model(own_run: Option<&Path>, out: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    match own_run {
        None => {
            println!(
                "\n== 1/3 train the conv VAE (conv 32 and 64 channels, latent 20) on the bundled \
                 MNIST subset, export int8"
            );
            let run_dir = out.join("demo-run");
            let model = pipeline::train_and_export(&run_dir, DEMO_PRESET, 50, None)?;
            Ok((run_dir.clone(), run_dir, model))
        }
        Some(run_dir) => {
            println!("\n== 1/3 export {} to int8", run_dir.display());
            let model_dir = out.join("demo-own-run");
            std::fs::create_dir_all(&model_dir)?;
            let model = model_dir.join("model.tvae");
            pipeline::export(run_dir, &model)?;
            Ok((run_dir.to_path_buf(), model_dir, model))
        }
    }
}

/// The encoder picture: an input, its reconstruction and resamples in a row; the
/// interpolation below.
fn write_encode_png(path: &Path, dev: &pipeline::DeviceRun, shape: pipeline::Shape) -> Result<()> {
    let get = |k: &str| {
        dev.images
            .get(k)
            .map(|v| v.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut first = get("input");
    first.extend(get("recon"));
    first.extend(get("resample"));
    pipeline::write_png(path, &[first, get("interp")], shape)
}
