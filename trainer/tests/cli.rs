//! The `trainer` binary on bad input: a clear error naming the option, the value or the
//! file, a non-zero exit, and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the trainer; (success, standard error).
fn trainer(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--threads", "1"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fails_saying(args: &[&str], says: &str) {
    let (ok, err) = trainer(args);
    assert!(!ok, "{args:?} succeeded");
    assert!(err.contains(says), "{args:?}: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_options_fail_before_training_and_write_nothing() {
    let dir = tempdir("options");
    let run = dir.join("run");
    let r = s(&run);
    let tiny = ["train", "--epochs", "1", "--train-limit", "100", "--out", r];
    for (extra, says) in [
        (&["--batch", "0"][..], "--batch"),
        (&["--beta", "-1"], "--beta"),
        (&["--beta", "NaN"], "--beta"),
        (&["--latent", "0"], "--latent"),
        (&["--hidden", "0"], "--hidden: layer 1 has width 0"),
        (&["--lr", "0"], "--lr"),
        (&["--conv", "8:40:2:1"], "larger than the 28x28 images"),
        (
            &["--conv", "8:4:2:1,8:4:2:1,8:4:2:1,8:4:2:1,8:4:2:1"],
            "too small for the strides",
        ),
        (&["--conv", "8:4:2"], "CHANNELS:KERNEL:STRIDE:PADDING"),
        (&["--arch", "dense", "--preset", "conv"], "conflicts"),
        (&["--noise-mask", "2", "--kind", "dae"], "--noise-mask"),
        (&["--noise-mask", "0.5"], "--kind dae only"),
    ] {
        let mut args = tiny.to_vec();
        args.extend_from_slice(extra);
        fails_saying(&args, says);
        assert!(!run.exists(), "{extra:?} wrote {r}");
    }
}

#[test]
fn data_of_another_shape_is_refused_by_every_command() {
    let dir = tempdir("shape");
    let run = dir.join("run");
    let (ok, err) = trainer(&[
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--hidden",
        "8",
        "--latent",
        "2",
        "--out",
        s(&run),
    ]);
    assert!(ok, "{err}");
    // Ten 32x32 PNG images: another shape than the model's 28x28.
    let png = dir.join("png");
    std::fs::create_dir_all(&png).unwrap();
    for i in 0..10 {
        tinyvae_trainer::images::Canvas::new(32, 32, [i * 20, i * 20, i * 20])
            .save(&png.join(format!("{i}.png")))
            .unwrap();
    }
    let model = dir.join("m.tvae");
    for cmd in [
        vec!["eval", s(&run), "--data", s(&png)],
        vec!["export", s(&run), "--data", s(&png), "-o", s(&model)],
        vec![
            "pictures",
            s(&run),
            "--data",
            s(&png),
            "-o",
            s(&dir.join("pics")),
        ],
    ] {
        fails_saying(&cmd, "32x32");
        assert!(!model.exists() && !dir.join("pics").exists());
    }
}

#[test]
fn a_conv_model_says_it_cannot_be_exported_yet() {
    let dir = tempdir("conv-export");
    let run = dir.join("run");
    let (ok, err) = trainer(&[
        "train",
        "--conv",
        "4:4:2:1",
        "--latent",
        "2",
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--out",
        s(&run),
    ]);
    assert!(ok, "{err}");
    let model = dir.join("m.tvae");
    fails_saying(
        &["export", s(&run), "-o", s(&model)],
        "int8 export of convolutional models is not supported yet",
    );
    assert!(!model.exists());
    // Everything else works on it.
    for cmd in [
        vec!["eval", s(&run)],
        vec!["sample", s(&run), "-n", "4", "-o", s(&dir.join("s.png"))],
        vec!["pictures", s(&run), "-o", s(&dir.join("pics"))],
    ] {
        let (ok, err) = trainer(&cmd);
        assert!(ok, "{cmd:?}: {err}");
    }
}
