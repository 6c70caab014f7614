//! The checks of what a user meets outside this repository's own firmware and data: a run
//! trained on other images through the demo, a model whose golden vector is wrong, a model
//! one byte off its word boundary, a copied tree and a moved trainer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tinyvae_protocol::ExitCode;

use super::work_dir;
use crate::{firmware, pipeline, project_root, run, DEMO_SEED};

/// The demo's `--run` path with a run trained on data that is not MNIST: 12x10 RGB shapes
/// the trainer draws, in two class subfolders. The export must take the run's own data (its
/// name in the model's provenance), the learned prior must have the two classes, the chip's
/// images (each class drawn in turn among them) must equal the host's (the demo checks), and
/// the pictures must be RGB.
pub(super) fn own_data_demo() -> Result<()> {
    let dir = work_dir().join("own-data");
    let _ = std::fs::remove_dir_all(&dir);
    let (data, run_dir, out) = (dir.join("rgb-shapes"), dir.join("run"), dir.join("demo"));
    let trainer = pipeline::trainer()?;
    let s = |p: &Path| p.display().to_string();
    run(Command::new(&trainer).args([
        "shapes",
        "-o",
        &s(&data),
        "--width",
        "12",
        "--height",
        "10",
        "--rgb",
        "--count",
        "400",
        "--classes",
    ]))?;
    run(Command::new(&trainer).args([
        "--threads",
        "2",
        "train",
        "--data",
        &s(&data),
        "--epochs",
        "3",
        "--hidden",
        "64",
        "--latent",
        "8",
        "--out",
        &s(&run_dir),
    ]))?;
    crate::demo::run(Some(&run_dir), &out)?;
    let model = std::fs::read(out.join("demo-own-run/model.tvae"))?;
    let m = tinyvae_format::Model::from_bytes(&model)?;
    let (d, p) = (&m.data, &m.provenance);
    if (d.width, d.height, d.channels) != (12, 10, 3) || p.dataset != "rgb-shapes" {
        bail!(
            "the model is {}x{}x{} from {:?}: not the run's own data",
            d.width,
            d.height,
            d.channels,
            p.dataset
        );
    }
    let png = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(
        out.join("samples.png"),
    )?))
    .read_info()?;
    let info = png.info();
    if info.color_type != png::ColorType::Rgb {
        bail!("samples.png is {:?}, not RGB", info.color_type);
    }
    println!("  samples.png: {}x{} RGB", info.width, info.height);
    // The shapes in class subfolders: the learned prior is per class, and the chip's draws
    // of each class (checked against the host engine by the demo) make classes.png.
    let mixture = std::fs::read(out.join("demo-own-run/model-mixture.tvae"))?;
    let classes = tinyvae_format::Model::from_bytes(&mixture)?.prior.classes();
    if classes != 2 || !out.join("classes.png").is_file() {
        bail!(
            "the learned prior has {classes} classes (discs and squares: 2), classes.png: {}",
            out.join("classes.png").is_file()
        );
    }
    Ok(())
}

/// [`dense_on_chip`]'s wrong golden vector, on the chip and on the host.
pub(super) fn bad_golden(model_file: &Path) -> Result<()> {
    let blob = std::fs::read(model_file)?;
    let mut owned =
        tinyvae_format::owned::OwnedModel::from_model(&tinyvae_format::Model::from_bytes(&blob)?);
    let g = owned
        .golden
        .as_mut()
        .context("the model carries no golden vectors")?;
    g.decoder[0].1[5] ^= 1;
    let bad = work_dir().join("bad-golden.tvae");
    std::fs::write(&bad, owned.to_bytes()?)?;
    let words = "golden decoder vector 0: element 5 is";
    let (code, d) = pipeline::run_on_board(firmware::default_board(), &bad, DEMO_SEED)?;
    if code != ExitCode::GoldenMismatch.code() || !d.log.contains(words) {
        bail!(
            "the chip did not reject it as expected (exit {code}); log:\n{}",
            d.log
        );
    }
    let out = Command::new(pipeline::trainer()?)
        .args(["inspect", "--check"])
        .arg(&bad)
        .output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !said.contains(words) {
        bail!("trainer inspect did not reject it as the chip did: {said}");
    }
    println!("  both: {}", said.trim().lines().last().unwrap_or(""));
    Ok(())
}

/// The `misaligned` firmware with `model` on `board`: what the engine says of the model one
/// byte past a word boundary, and both decodes bit-exact (the firmware's own checks).
pub(super) fn misaligned(board: firmware::Board, model: &Path) -> Result<()> {
    let elf = pipeline::build_with_model(board, model, &["misaligned"], &[])?.join("misaligned");
    let out = firmware::run_qemu(board, &elf, Duration::from_secs(300))?;
    if out.code != Some(0) {
        bail!("exit {:?}; log:\n{}", out.code, out.log);
    }
    // Where an assembly kernel runs (the DSP extension's, ARMv6-M's), it needs the model
    // word-aligned; elsewhere every placement is the portable kernels' fast path.
    let fast = if board.dsp {
        Some("Dsp")
    } else if board.target.starts_with("thumbv6m") {
        Some("ArmV6M")
    } else {
        None
    };
    let want = match fast {
        Some(kernel) => [
            format!("kernel aligned: {kernel}"),
            "Engine::new refused the model off by one: Misaligned { offset: 1 }".to_string(),
            "kernel off by one: Portable(Misaligned { offset: 1 })".to_string(),
        ],
        None => [
            "kernel aligned: Portable(NoDspExtension)".to_string(),
            "Engine::new accepted the model off by one: Portable(NoDspExtension)".to_string(),
            "kernel off by one: Portable(NoDspExtension)".to_string(),
        ],
    };
    if let Some(line) = want.iter().find(|w| !out.log.contains(w.as_str())) {
        bail!("no line `{line}` in the log:\n{}", out.log);
    }
    let d = pipeline::parse(&out.log);
    let (fast, slow) = (d.count("decode-aligned"), d.count("decode-off-by-one"));
    let (Some(fast), Some(slow)) = (fast, slow) else {
        bail!("no decode counts in the log:\n{}", out.log);
    };
    println!(
        "  decode: {fast} instructions aligned, {slow} one byte off ({:.1}x)",
        slow as f64 / fast as f64
    );
    Ok(())
}

/// The tree and the tools carry no compiled-in path: a copy of the repository's files, with
/// this xtask binary run in it (as `cargo xtask` in a copied, already built tree runs it),
/// works in the copy; the trainer binary copied elsewhere (as `cargo install` puts it)
/// trains on its built-in data and exports from an unrelated folder. Nothing is written into
/// this tree; the copies are removed.
pub(super) fn moved_tree() -> Result<()> {
    let root = project_root();
    let tmp = std::env::temp_dir().join(format!("tinyvae-moved-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        let copy = tmp.join("tree");
        let files = Command::new("git")
            .current_dir(&root)
            .args(["ls-files", "-z"])
            .output()?;
        if !files.status.success() {
            bail!("git ls-files failed in {}", root.display());
        }
        for f in files.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            let rel = std::path::PathBuf::from(String::from_utf8_lossy(f).into_owned());
            if let Some(dir) = copy.join(&rel).parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(root.join(&rel), copy.join(&rel))?;
        }
        let xtask = std::env::current_exe()?;
        for (cwd, manifest_dir) in [
            (copy.join("firmware/src"), None),
            (tmp.clone(), Some(copy.join("xtask"))),
        ] {
            let mut cmd = Command::new(&xtask);
            cmd.current_dir(&cwd)
                .arg("where")
                .env_remove("CARGO_MANIFEST_DIR");
            if let Some(d) = &manifest_dir {
                cmd.env("CARGO_MANIFEST_DIR", d);
            }
            let out = cmd.output()?;
            let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if Path::new(&said) != copy {
                bail!(
                    "xtask run in the copy works in {said}, not {}",
                    copy.display()
                );
            }
        }
        // The trainer, moved out of its build tree, from a folder of its own.
        let bin = tmp.join("bin");
        std::fs::create_dir_all(&bin)?;
        let trainer = bin.join("trainer");
        std::fs::copy(pipeline::trainer()?, &trainer)?;
        let work = tmp.join("work");
        std::fs::create_dir_all(&work)?;
        for args in [
            &[
                "--threads",
                "2",
                "train",
                "--epochs",
                "1",
                "--train-limit",
                "300",
                "--hidden",
                "32",
                "--out",
                "run",
            ][..],
            &["export", "run", "-o", "m.tvae"],
            &["inspect", "m.tvae"],
        ] {
            run(Command::new(&trainer).current_dir(&work).args(args))?;
        }
        if !work.join("m.tvae").is_file() {
            bail!("the moved trainer wrote no model in {}", work.display());
        }
        Ok(())
    })();
    std::fs::remove_dir_all(&tmp)?;
    result
}
