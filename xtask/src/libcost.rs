//! `cargo xtask lib-cost`: what the library costs a firmware, per build profile, on the
//! emulated Cortex-M4F: the instructions of validating the model at boot, sampling a code
//! and decoding it; the peak stack; the firmware's code. The `vae` firmware (its buffers on
//! the stack) and the user-style `examples/minimal`, each built with the release, size and
//! debug profiles a user may pick; writes `results/library-cost.md`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{examples, firmware, pipeline, project_root, run, setup, DEMO_SEED};

/// A build profile: its name here, the cargo arguments that select it, what it is.
struct Profile {
    name: &'static str,
    args: &'static [&'static str],
    what: &'static str,
}

const PROFILES: [Profile; 4] = [
    Profile {
        name: "release",
        args: &["--profile", "release"],
        what: "opt-level 3, fat LTO, one codegen unit",
    },
    Profile {
        name: "size",
        // Defined here too, for the example, which has no `size` profile of its own: the
        // firmware's (firmware/Cargo.toml) says the same.
        args: &[
            "--profile",
            "size",
            "--config",
            "profile.size.inherits=\"release\"",
            "--config",
            "profile.size.opt-level=\"z\"",
        ],
        what: "opt-level z, fat LTO: the two-position conv kernel is left out",
    },
    Profile {
        name: "dev, the engine and format at opt-level 3",
        args: &[
            "--profile",
            "dev",
            "--config",
            "profile.dev.opt-level=0",
            "--config",
            "profile.dev.package.tinyvae-engine.opt-level=3",
            "--config",
            "profile.dev.package.tinyvae-format.opt-level=3",
        ],
        what: "a debug build with the two library crates optimized (what the examples set)",
    },
    Profile {
        name: "dev, opt-level 0",
        args: &[
            "--profile",
            "dev",
            "--config",
            "profile.dev.opt-level=0",
            "--config",
            "profile.dev.package.tinyvae-engine.opt-level=0",
            "--config",
            "profile.dev.package.tinyvae-format.opt-level=0",
        ],
        what: "a debug build as Cargo makes it by default",
    },
];

/// The cargo profile folder a profile's arguments build into.
fn profile_dir(p: &Profile) -> &'static str {
    match p.args[1] {
        "dev" => "debug",
        other => other,
    }
}

/// One measured build.
struct Row {
    validate: u64,
    sample: u64,
    decode: u64,
    stack: u64,
    code: u64,
}

/// Builds the `vae` firmware with `model` under profile `p` into its own target folder,
/// runs it on the emulated M4F (every image held against the host engine) and returns its
/// counts.
fn measure_vae(p: &Profile, n: usize, model: &Path) -> Result<Row> {
    let board = firmware::default_board();
    let target = project_root().join(format!("target/lib-cost/vae-{n}"));
    let mut cmd = Command::new("cargo");
    cmd.current_dir(firmware::dir())
        .env("TINYVAE_MODEL", model.canonicalize()?)
        .env("TINYVAE_SEED", DEMO_SEED.to_string())
        .args(["build", "--target", board.target, "--bin", "vae"])
        .args(p.args)
        .arg("--target-dir")
        .arg(&target)
        .args(firmware::remap_paths(board.target))
        .args(["--no-default-features", "--features", board.feature]);
    run(&mut cmd)?;
    let elf = target.join(board.target).join(profile_dir(p)).join("vae");
    let out = firmware::run_qemu(board, &elf, Duration::from_secs(600))?;
    if out.code != Some(0) {
        bail!("vae ({}) ended with {:?}:\n{}", p.name, out.code, out.log);
    }
    let d = pipeline::parse(&out.log);
    pipeline::check_outputs_match(model, DEMO_SEED, &d, true)?;
    let count = |k: &str| {
        d.count(k)
            .with_context(|| format!("no count {k} ({})", p.name))
    };
    let stack = d
        .ram
        .iter()
        .find(|r| r.0 == "stack")
        .map(|r| r.1)
        .context("no stack figure")?;
    let blob = std::fs::metadata(model)?.len();
    Ok(Row {
        validate: count("validate")?,
        sample: count("sample-prior")?,
        decode: count("decode")?,
        stack,
        code: pipeline::without_model(&elf, blob)?.flash,
    })
}

/// The minimal example's code (its flash without the model) under profile `p`.
fn minimal_code(p: &Profile, model: &Path) -> Result<u64> {
    let elf = examples::build_with("minimal", model, false, p.args, profile_dir(p))?;
    let blob = std::fs::metadata(model)?.len();
    Ok(pipeline::without_model(&elf, blob)?.flash)
}

/// `cargo xtask lib-cost`.
pub fn bench() -> Result<()> {
    setup::all()?;
    let dir = project_root().join("target/lib-cost");
    let model = pipeline::train_and_export(&dir.join("conv"), "conv", 1, Some(1000))?;
    let mut md = String::from(
        "# What the library costs a firmware, per build profile\n\n\
         The `vae` firmware (validation at boot, one prior sample, its decode) with the conv \
         preset (conv 32-64, latent 20; trained one epoch on 1,000 images: the counts depend \
         on the weights only through a few branches) on the emulated Cortex-M4F (QEMU \
         `mps2-an386`, instructions retired), every image bit-exact with the host engine in \
         every profile. Peak stack by painting (the model's buffers, about 19 KB here, live \
         on the stack). Code: flash without the model, for the `vae` firmware (with its \
         logging and checks) and for `examples/minimal` (the library, cortex-m-rt and \
         semihosting output only). Rust 1.95.0. Reproduce: `cargo xtask lib-cost`.\n\n\
         | profile | validate (instructions) | sample a code | decode | peak stack (bytes) | \
         vae code (bytes) | minimal example code (bytes) |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut notes = String::new();
    for (n, p) in PROFILES.iter().enumerate() {
        let r = measure_vae(p, n, &model)?;
        let minimal = minimal_code(p, &model)?;
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            p.name, r.validate, r.sample, r.decode, r.stack, r.code, minimal
        );
        notes += &format!("- {}: {}.\n", p.name, p.what);
    }
    md += "\n";
    md += &notes;
    let out = project_root().join("results/library-cost.md");
    std::fs::write(&out, &md)?;
    print!("{md}");
    println!("wrote {}", out.display());
    Ok(())
}
