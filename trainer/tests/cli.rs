//! The `trainer` binary on bad input: a clear error naming the option, the value or the
//! file, a non-zero exit, and nothing written.

mod common;

use std::path::Path;
use std::process::Command;

fn tempdir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("cli-{name}"))
}

/// Runs the trainer; (success, standard error).
fn trainer(args: &[&str]) -> (bool, String) {
    let (ok, _, err) = common::run_trainer(args);
    (ok, err)
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
        // What the model format takes, before any training (each used to train, then fail
        // at export).
        (
            &["--conv", "32:3:1:1", "--latent", "4"],
            "encoder layer 0 (conv, 1 channels in, 32 out) reads or writes 25088 values",
        ),
        (&["--latent", "300"], "--latent 300: at most 256"),
        (
            &["--hidden", "8,8,8,8,8,8,8,8,8"],
            "make 10 encoder and 10 decoder layers; a network has at most 8",
        ),
        (
            &["--hidden", "20000"],
            "--hidden: layer 1 has width 20000; at most 16384",
        ),
        (
            &["--conv", "4:300:1:150"],
            "kernel, stride and padding at most 255",
        ),
        (&["--conv", "70000:4:2:1"], "channels at most 16384"),
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
fn a_conv_model_exports_runs_in_int8_and_exports_decoder_only() {
    let dir = tempdir("conv-export");
    let run = dir.join("run");
    let (ok, err) = trainer(&[
        "train",
        "--conv",
        "4:4:2:1,6:3:2:1",
        "--latent",
        "3",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--out",
        s(&run),
    ]);
    assert!(ok, "{err}");
    let model = dir.join("m.tvae");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["inspect", s(&model)])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no model yet");
    for cmd in [
        vec!["export", s(&run), "-o", s(&model)],
        vec![
            "sample",
            s(&model),
            "--int8",
            "-n",
            "4",
            "-o",
            s(&dir.join("s8.png")),
        ],
        vec!["eval", s(&run)],
        vec!["pictures", s(&run), "-o", s(&dir.join("pics"))],
    ] {
        let (ok, err) = trainer(&cmd);
        assert!(ok, "{cmd:?}: {err}");
    }
    let inspect = |m: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(["inspect", s(m)])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = inspect(&model);
    let version = format!("format version {}", tinyvae_format::FORMAT_VERSION);
    assert!(text.contains(&version), "{text}");
    assert!(text.contains("conv 28x28x1->14x14x4 k4 s2 p1"), "{text}");
    assert!(text.contains("convT 14x14x4->28x28x1 k4 s2 p1"), "{text}");
    // Decoder only: smaller, says so, and still generates.
    let dec = dir.join("d.tvae");
    let (ok, err) = trainer(&["export", s(&run), "--decoder-only", "-o", s(&dec)]);
    assert!(ok, "{err}");
    assert!(std::fs::metadata(&dec).unwrap().len() < std::fs::metadata(&model).unwrap().len());
    assert!(inspect(&dec).contains("decoder only"));
    let (ok, err) = trainer(&[
        "sample",
        s(&dec),
        "--int8",
        "-n",
        "4",
        "-o",
        s(&dir.join("d.png")),
    ]);
    assert!(ok, "{err}");
    // The f32 decoder format holds dense layers only: a clear error, nothing written.
    let f32 = dir.join("dec.f32");
    fails_saying(
        &[
            "export",
            s(&run),
            "-o",
            s(&dir.join("x.tvae")),
            "--f32-decoder",
            s(&f32),
        ],
        "dense layers only",
    );
    assert!(!f32.exists() && !dir.join("x.tvae").exists());
    // A second-stage prior: trained, stored, described; and what it takes no part of.
    let second = dir.join("s.tvae");
    let (ok, err) = trainer(&[
        "export",
        s(&run),
        "--prior",
        "second-stage",
        "--second-stage-epochs",
        "2",
        "-o",
        s(&second),
    ]);
    assert!(ok, "{err}");
    let text = inspect(&second);
    assert!(
        text.contains("prior: a second stage, 3 N(0, 1) draws through 3 dense layers"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("prior 2: ") && l.contains("->3 None I16")),
        "{text}"
    );
    fails_saying(
        &[
            "export",
            s(&run),
            "--prior",
            "second-stage",
            "--prior-components",
            "4",
            "-o",
            s(&dir.join("y.tvae")),
        ],
        "takes no --prior-components",
    );
}

/// `trainer inspect` reads what FORMAT.md says the host reads: versions 1 to 4 (the committed
/// files the version 1 and 2 writers wrote), and says what a chip needs for a target.
#[test]
fn inspect_reads_every_version_and_sizes_per_target() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-format/tests/fixtures");
    let inspect = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .arg("inspect")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    for v in [1, 2] {
        let file = fixtures.join(format!("v{v}.tvae"));
        let text = inspect(&[s(&file)]);
        assert!(text.contains(&format!("format version {v}")), "{text}");
        assert!(text.contains("with the DSP kernel"), "{text}");
    }
    // Version 3: version 4's payload under version 3's header (its CRC-32), made here from a
    // model the version 4 writer wrote (no version 3 writer is left).
    let dir = tempdir("v3");
    let v4 = tinyvae_format::owned::OwnedModel::synthetic(&Default::default(), 3)
        .to_bytes()
        .unwrap();
    let mut v3 = v4.clone();
    v3[4..6].copy_from_slice(&3u16.to_le_bytes());
    let crc = tinyvae_format::crc32(&v4[tinyvae_format::HEADER_LEN..]);
    v3[12..16].copy_from_slice(&crc.to_le_bytes());
    let v3_file = dir.join("v3.tvae");
    std::fs::write(&v3_file, &v3).unwrap();
    let text = inspect(&[s(&v3_file)]);
    assert!(text.contains("format version 3"), "{text}");
    let v2 = fixtures.join("v2.tvae");
    let m4 = inspect(&[s(&v2), "--target", "thumbv7em-none-eabihf"]);
    let m3 = inspect(&[s(&v2), "--target", "thumbv7m-none-eabi"]);
    let m33 = inspect(&[
        s(&v2),
        "--target",
        "thumbv8m.main-none-eabihf",
        "--target-cpu",
        "cortex-m33",
    ]);
    let bytes = |t: &str| -> usize {
        let line = t.lines().find(|l| l.contains("scratch on")).unwrap();
        let n = line.split(": ").nth(1).unwrap().split(' ').next().unwrap();
        n.parse().unwrap()
    };
    assert!(m4.contains("(the DSP kernel)") && m3.contains("(the portable kernels)"));
    // The same figure as a C header, for the C library's users.
    let dir = tempdir("c-header");
    let h = dir.join("sizes.h");
    inspect(&[
        s(&v2),
        "--target",
        "thumbv7em-none-eabihf",
        "--c-header",
        s(&h),
    ]);
    let header = std::fs::read_to_string(&h).unwrap();
    assert!(
        header.contains(&format!("#define TINYVAE_SCRATCH {}u\n", bytes(&m4))),
        "{header}"
    );
    assert!(bytes(&m4) > bytes(&m3), "{m4}{m3}");
    assert_eq!(bytes(&m33), bytes(&m4));
}

/// A run trained on data that is not MNIST (12x12 grey shapes) is exported, evaluated and
/// pictured with its own data, named in its configuration, without `--data`; once that data
/// is gone, each says so and asks for `--data`.
#[test]
fn a_run_on_other_data_uses_its_own_data_everywhere() {
    let dir = tempdir("own-data");
    let (data, run, model) = (dir.join("shapes"), dir.join("run"), dir.join("m.tvae"));
    let ok = |args: &[&str]| {
        let (ok, err) = trainer(args);
        assert!(ok, "{args:?}: {err}");
    };
    ok(&[
        "shapes",
        "-o",
        s(&data),
        "--width",
        "12",
        "--height",
        "12",
        "--count",
        "200",
    ]);
    ok(&[
        "train",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--hidden",
        "32",
        "--latent",
        "4",
        "--out",
        s(&run),
    ]);
    ok(&["export", s(&run), "-o", s(&model)]);
    // A golden vector the engine does not reproduce: what the chip rejects at boot,
    // inspect rejects too, naming it.
    let blob = std::fs::read(&model).unwrap();
    let mut owned = tinyvae_format::owned::OwnedModel::from_model(
        &tinyvae_format::Model::from_bytes(&blob).unwrap(),
    );
    owned.golden.as_mut().unwrap().decoder[0].1[5] ^= 1;
    let bad = dir.join("bad-golden.tvae");
    std::fs::write(&bad, owned.to_bytes().unwrap()).unwrap();
    fails_saying(
        &["inspect", "--check", s(&bad)],
        "golden decoder vector 0: element 5",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["inspect", s(&bad)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT reproduced") && text.contains("golden decoder vector 0"),
        "{text}"
    );
    // The int8 samples as raw bytes, and absurd counts refused before allocating.
    let raw = dir.join("samples.bin");
    ok(&[
        "sample",
        "--int8",
        s(&model),
        "-n",
        "3",
        "--raw",
        "-o",
        s(&raw),
    ]);
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 3 * 144);
    for n in ["18446744073709551615", "1000000000"] {
        fails_saying(
            &["sample", "--int8", s(&model), "-n", n, "-o", s(&raw)],
            &format!("-n {n}: "),
        );
    }
    ok(&["eval", s(&run)]);
    ok(&["pictures", s(&run), "-o", s(&dir.join("pics"))]);
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["inspect", s(&model)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("data 12x12x1") && text.contains("on shapes"),
        "{text}"
    );
    // The data moved: a clear error naming it, and --data still works.
    let moved = dir.join("moved");
    std::fs::rename(&data, &moved).unwrap();
    for cmd in [
        vec!["export", s(&run), "-o", s(&model)],
        vec!["eval", s(&run)],
    ] {
        fails_saying(&cmd, "which is not there any more: pass --data");
    }
    ok(&["export", s(&run), "-o", s(&model), "--data", s(&moved)]);
    fails_saying(
        &["train", "--train-limit", "0", "--out", s(&dir.join("none"))],
        "--train-limit 0: at least 1",
    );
    // Images larger than a model file takes: refused before training.
    let big = dir.join("big");
    ok(&[
        "shapes",
        "-o",
        s(&big),
        "--width",
        "130",
        "--height",
        "130",
        "--count",
        "10",
    ]);
    fails_saying(
        &[
            "train",
            "--data",
            s(&big),
            "--epochs",
            "1",
            "--out",
            s(&dir.join("big-run")),
        ],
        "have 16900 values; a model file takes at most 16384",
    );
    assert!(!dir.join("big-run").join("checkpoint.safetensors").exists());
}
