//! The examples in `examples/`: firmwares written as a user writes them, each its own Cargo
//! workspace outside the firmware's, depending on the library crates by version. The test
//! builds each from the packaged crates (`cargo publish --dry-run` leaves them unpacked in
//! `target/package/`), runs it under QEMU and holds every image it prints against the host
//! engine for the same seed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::Model;

use crate::{elf, firmware, project_root, run};

/// The seed and sample count every example uses (`Sampler::new(2026)`, four samples).
pub const SEED: u64 = 2026;
/// Images each example prints.
pub const SAMPLES: usize = 4;

/// The Rust examples' folders under `examples/` (`examples/c` is the C one: [`check_c`]).
pub const EXAMPLES: [&str; 2] = ["minimal", "embassy"];

/// The Rust targets the C library is built for in the test (one static library each).
pub const C_TARGETS: [&str; 4] = [
    "thumbv6m-none-eabi",
    "thumbv7m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
];

/// Where an example's build goes (kept out of the source tree).
fn target_dir(name: &str) -> PathBuf {
    project_root().join("target").join("examples").join(name)
}

/// The library crates the examples (and `tinyvae-c`) depend on: the ones their `[patch]`
/// tables name.
const PATCHED: [&str; 2] = ["tinyvae-engine", "tinyvae-format"];

/// The `--config` arguments that take each crate the examples use from the folder `cargo
/// package` unpacked it in (`target/package/NAME-VERSION`), over the example's own patch to
/// the sources (the same crates: the committed lock files stay as they are).
fn packaged_patches() -> Result<Vec<String>> {
    let version = env!("CARGO_PKG_VERSION");
    let mut args = vec![];
    for c in PATCHED {
        let dir = project_root()
            .join("target/package")
            .join(format!("{c}-{version}"));
        if !dir.join("Cargo.toml").exists() {
            // Run alone (`cargo xtask test pipeline`): package them now.
            package()?;
        }
        args.push("--config".into());
        args.push(format!(
            "patch.crates-io.{c}.path={:?}",
            dir.display().to_string()
        ));
    }
    Ok(args)
}

/// Packages the library crates and builds each from its tarball against the others'
/// (`cargo publish --dry-run`: nothing is uploaded), which leaves them unpacked in
/// `target/package/`.
pub fn package() -> Result<()> {
    forget_unpacked_packages()?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(project_root())
        .args(["publish", "--dry-run", "--allow-dirty"]);
    for c in crate::test::LIBRARY_CRATES {
        cmd.args(["-p", c]);
    }
    run(&mut cmd)
}

/// Removes what an earlier `cargo publish --dry-run` unpacked of these crates from its
/// temporary registry (`$CARGO_HOME/registry/src/-HASH/tinyvae-*`), and what it compiled of
/// them: Cargo unpacks and compiles a registry crate of a version once and reuses it, so a
/// later run would verify each crate against the earlier sources of the others (same
/// version, other contents).
fn forget_unpacked_packages() -> Result<()> {
    forget_compiled_packages();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let Ok(registries) = std::fs::read_dir(home.join("registry/src")) else {
        return Ok(());
    };
    for reg in registries.flatten() {
        // The local registries `cargo package` makes are named `-HASH`.
        if !reg.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for c in std::fs::read_dir(reg.path())?.flatten() {
            let name = c.file_name().to_string_lossy().into_owned();
            if crate::test::LIBRARY_CRATES
                .iter()
                .any(|l| name.starts_with(&format!("{l}-")))
            {
                std::fs::remove_dir_all(c.path())?;
            }
        }
    }
    Ok(())
}

/// The build records (fingerprints) of the library crates compiled from the temporary
/// registry, found by their sources' paths in the dependency files: without them Cargo
/// compiles those crates again.
fn forget_compiled_packages() {
    let target = project_root().join("target/debug");
    let Ok(deps) = std::fs::read_dir(target.join("deps")) else {
        return;
    };
    for d in deps.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".d") else {
            continue;
        };
        let Some((lib, hash)) = stem.rsplit_once('-') else {
            continue;
        };
        let ours = crate::test::LIBRARY_CRATES
            .iter()
            .any(|c| c.replace('-', "_") == lib);
        let from_registry =
            std::fs::read_to_string(d.path()).is_ok_and(|t| t.contains("registry/src/-"));
        if ours && from_registry {
            let crate_name = lib.replace('_', "-");
            let _ = std::fs::remove_dir_all(
                target
                    .join(".fingerprint")
                    .join(format!("{crate_name}-{hash}")),
            );
        }
    }
}

/// Builds `examples/NAME` in release with `model` embedded, from the packaged crates when
/// `packaged`; returns the ELF.
pub fn build(name: &str, model: &Path, packaged: bool) -> Result<PathBuf> {
    build_with(name, model, packaged, &["--release"], "release")
}

/// [`build`] with the cargo arguments `profile` that choose a build profile, whose output
/// folder is `profile_dir`.
pub fn build_with(
    name: &str,
    model: &Path,
    packaged: bool,
    profile: &[&str],
    profile_dir: &str,
) -> Result<PathBuf> {
    let dir = project_root().join("examples").join(name);
    let model = model
        .canonicalize()
        .with_context(|| format!("{}: no such model file", model.display()))?;
    // One target folder for the Rust examples: the crates they share (the packaged engine
    // and format, cortex-m-rt...) compile once where their versions and features agree.
    let target = target_dir("rust");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&dir)
        .env("TINYVAE_MODEL", &model)
        // The committed lock file, unchanged.
        .args(["build", "--locked"])
        .args(profile)
        .arg("--target-dir")
        .arg(&target);
    if packaged {
        cmd.args(packaged_patches()?);
    }
    run(&mut cmd)?;
    let elf = target
        .join("thumbv7em-none-eabihf")
        .join(profile_dir)
        .join(format!("tinyvae-example-{name}"));
    if !elf.exists() {
        bail!("no image at {}", elf.display());
    }
    Ok(elf)
}

/// The images the host engine makes for `model` with the examples' seed: prior draws,
/// decoded.
pub fn host_samples(model: &Path) -> Result<Vec<Vec<u8>>> {
    let blob = std::fs::read(model).with_context(|| format!("{}", model.display()))?;
    let m = Model::from_bytes(&blob).with_context(|| format!("{}", model.display()))?;
    let e = Engine::new(&m)?;
    let mut scratch = vec![0i8; e.scratch_len()];
    let mut code = vec![0i8; usize::from(m.latent.dim)];
    let mut sampler = Sampler::new(SEED);
    (0..SAMPLES)
        .map(|_| {
            let mut px = vec![0u8; m.data.len()];
            e.sample_prior(&mut sampler, &mut code)?;
            e.decode(&code, &mut scratch, &mut px, &mut NoProbe)?;
            Ok(px)
        })
        .collect()
}

/// The `sample K HEX` lines of an example's output, by K.
fn printed_samples(log: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = vec![];
    for line in log.lines().filter(|l| l.starts_with("sample ")) {
        let mut w = line.split_whitespace().skip(1);
        let (Some(k), Some(hex)) = (w.next(), w.next()) else {
            bail!("cannot read `{line}`");
        };
        if k.parse::<usize>()? != out.len() || hex.len() % 2 != 0 {
            bail!("sample {k} out of order or cut: `{line}`");
        }
        let px = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        out.push(px);
    }
    Ok(out)
}

/// The embassy example's own claim: during every decode, the other task ran (the generator
/// yielded between layers).
fn yielded_between_layers(log: &str) -> Result<()> {
    let runs: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("the other task ran ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    if runs.len() != SAMPLES || runs.contains(&0) {
        bail!("the other task did not run during every decode ({runs:?}):\n{log}");
    }
    Ok(())
}

/// Writes `c/include/tinyvae.h` with cbindgen (the pinned version) from `c/src/lib.rs`
/// into `out`.
pub fn header(out: &Path) -> Result<()> {
    let cbindgen = crate::setup::cbindgen()?;
    let c = project_root().join("c");
    run(Command::new(cbindgen)
        .current_dir(&c)
        .args([
            "--quiet",
            "--config",
            "cbindgen.toml",
            "--crate",
            "tinyvae-c",
            "--output",
        ])
        .arg(out)
        .arg("."))
}

/// The committed header is what cbindgen makes of the library's source now.
pub fn header_is_current() -> Result<()> {
    let fresh = project_root().join("target/tinyvae.h");
    header(&fresh)?;
    let committed = project_root().join("c/include/tinyvae.h");
    let (a, b) = (std::fs::read(&fresh)?, std::fs::read(&committed)?);
    let _ = std::fs::remove_file(&fresh);
    if a != b {
        bail!(
            "{} is not what cbindgen makes of c/src/lib.rs: run `cargo xtask header`",
            committed.display()
        );
    }
    Ok(())
}

/// The C example: the packaged `tinyvae-c` built as a static library for every Cortex-M
/// target (run on the M4F), the model's sizes written by `trainer` as a C header,
/// `examples/c` compiled and linked by `arm-none-eabi-gcc` through its Makefile, run on the
/// emulated Cortex-M4F, every image equal to the host engine's.
pub fn check_c(model: &Path, trainer: &Path) -> Result<()> {
    crate::setup::arm_gcc()?;
    let version = env!("CARGO_PKG_VERSION");
    let lib_dir = target_dir("c-lib");
    let manifest = project_root()
        .join("target/package")
        .join(format!("tinyvae-c-{version}/Cargo.toml"));
    let patches = packaged_patches()?;
    for t in C_TARGETS {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "--release", "--target", t, "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&lib_dir)
            .args(&patches);
        if t.starts_with("thumbv8m.main") {
            cmd.env("RUSTFLAGS", "-C target-cpu=cortex-m33");
        }
        run(&mut cmd)?;
    }
    let lib = lib_dir.join("thumbv7em-none-eabihf/release/libtinyvae_c.a");
    let out = target_dir("c");
    let model = model.canonicalize()?;
    run(Command::new("make")
        .current_dir(project_root().join("examples/c"))
        .arg(format!("MODEL={}", model.display()))
        .arg(format!("TINYVAE_LIB={}", lib.display()))
        .arg(format!("TRAINER={}", trainer.display()))
        .arg(format!("OUT={}", out.display()))
        .arg("-B"))?;
    let elf = out.join("tinyvae-example-c.elf");
    let board = firmware::default_board();
    let ran = firmware::run_qemu_text(board, &elf, Duration::from_secs(300))?;
    if ran.code != Some(0) {
        bail!("exit {:?}; output:\n{}", ran.code, ran.log);
    }
    let n = compare(&ran.log, &model)?;
    let f = elf::footprint(&elf)?;
    let model_bytes = std::fs::metadata(&model)?.len();
    println!(
        "  {}; {n} images equal the host's; flash {} bytes ({} of them the model, {} the \
         rest), static RAM {} bytes (the buffers and the model handle included)",
        ran.log.lines().next().unwrap_or("").trim(),
        f.flash,
        model_bytes,
        f.flash.saturating_sub(model_bytes),
        f.ram
    );
    Ok(())
}

/// The printed images against the host engine's for `model`; how many.
fn compare(log: &str, model: &Path) -> Result<usize> {
    let (got, want) = (printed_samples(log)?, host_samples(model)?);
    if got.len() != want.len() {
        bail!(
            "{} images printed, {} expected:\n{log}",
            got.len(),
            want.len()
        );
    }
    if let Some(k) = (0..got.len()).find(|&k| got[k] != want[k]) {
        bail!("sample {k} differs from the host engine's");
    }
    Ok(got.len())
}

/// Builds `examples/NAME` from the packaged crates with `model`, runs it on the emulated
/// Cortex-M4F and requires its images to equal the host engine's; prints its flash and RAM
/// beside the model's size.
pub fn check(name: &str, model: &Path) -> Result<()> {
    let elf = build(name, model, true)?;
    let board = firmware::default_board();
    let out = firmware::run_qemu_text(board, &elf, Duration::from_secs(300))?;
    if out.code != Some(0) {
        bail!("exit {:?}; output:\n{}", out.code, out.log);
    }
    let n = compare(&out.log, model)?;
    if name == "embassy" {
        yielded_between_layers(&out.log)?;
    }
    let f = elf::footprint(&elf)?;
    let model_bytes = std::fs::metadata(model)?.len();
    println!(
        "  {}; {} images equal the host's; flash {} bytes ({} of them the model, {} the rest), \
         static RAM {} bytes",
        out.log.lines().next().unwrap_or("").trim(),
        n,
        f.flash,
        model_bytes,
        f.flash.saturating_sub(model_bytes),
        f.ram
    );
    Ok(())
}
