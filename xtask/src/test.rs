//! `cargo xtask test [GROUP...]`: every test, in groups that also run alone, each check
//! reported as `ok` or `FAILED`, ending with `N passed, M failed`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tinyvae_protocol::{exit_name, ExitCode};

use crate::{
    elf, examples, firmware, float, kernels, pipeline, project_root, run, setup, DEMO_SEED,
};

/// The groups, in the order a full run takes them, with what each checks.
pub const GROUPS: [(&str, &str); 5] = [
    (
        "lint",
        "rustfmt; clippy on the library crates as firmware builds them and on every board",
    ),
    (
        "host",
        "cargo test --workspace built once under clippy (warnings denied), the host never links cortex-m, the fuzz target builds, the no_std builds",
    ),
    (
        "firmware",
        "on the emulated boards: self-test, kernel checks, the harness's failures; the 32 KiB budget",
    ),
    (
        "pipeline",
        "dense, conv and decoder-only models trained, exported and run on the emulated boards, bit-exact with the host",
    ),
    ("boards", "the real boards' images build with the trained model and fit"),
];

/// The crates a user's firmware depends on, published from this repository.
pub const LIBRARY_CRATES: [&str; 5] = [
    "tinyvae-format",
    "tinyvae-engine",
    "tinyvae-display",
    "tinyvae-f32",
    "tinyvae-c",
];

struct Tally {
    passed: Vec<String>,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, r: Result<()>) {
        match r {
            Ok(()) => {
                println!("[test] ok: {name}");
                self.passed.push(name.into());
            }
            Err(e) => {
                println!("[test] FAILED: {name}: {e:#}");
                self.failed.push(name.into());
            }
        }
    }
}

/// The checks so far, and the default model the pipeline and board groups share (trained
/// once, by the first group that needs it).
struct Ctx {
    t: Tally,
    trained: Option<Option<PathBuf>>,
}

impl Ctx {
    /// The default model trained and exported for the tests (recorded as a check), or
    /// `None` when that failed.
    fn trained(&mut self) -> Option<PathBuf> {
        if self.trained.is_none() {
            let m = pipeline::train_and_export(&work_dir().join("run"), "default", 2, Some(2000));
            self.t.record(
                "pipeline: train and export a model",
                m.as_ref().map(|_| ()).map_err(|e| anyhow::anyhow!("{e:#}")),
            );
            self.trained = Some(m.ok());
        }
        self.trained.clone().flatten()
    }
}

mod user;

fn work_dir() -> PathBuf {
    project_root().join("target").join("xtask-test")
}

fn cargo(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    run(Command::new("cargo").current_dir(dir).args(args))
}

/// Runs the named groups (all of them when `args` is empty).
pub fn run_groups(args: &[String]) -> Result<()> {
    let names: Vec<&str> = GROUPS.iter().map(|g| g.0).collect();
    if let Some(bad) = args.iter().find(|a| !names.contains(&a.as_str())) {
        let list: Vec<String> = GROUPS
            .iter()
            .map(|(n, d)| format!("  {n:<9} {d}"))
            .collect();
        bail!(
            "no test group `{bad}`; the groups are:\n{}",
            list.join("\n")
        );
    }
    let selected: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| args.is_empty() || args.iter().any(|a| a == n))
        .collect();
    let start = Instant::now();
    setup::all()?;
    let mut times = Vec::new();
    let mut c = Ctx {
        t: Tally {
            passed: vec![],
            failed: vec![],
        },
        trained: None,
    };
    let mut warming = None;
    for group in &selected {
        println!("[test] group {group}");
        let begun = Instant::now();
        // The real boards' builds (the boards group, last) start in the background with
        // the groups that mostly run the emulator on one core.
        if warming.is_none()
            && matches!(*group, "firmware" | "pipeline")
            && selected.contains(&"boards")
            && !firmware::using_debian_toolchain()
        {
            if let Ok((probe, _)) = pipeline::probe_model() {
                let log = work_dir().join("boards-warm-up.log");
                println!(
                    "[test] the real boards' dependencies compile in the background (log: {})",
                    crate::shown(&log)
                );
                warming = Some(firmware::warm_up(firmware::real_boards(), probe, log));
            }
        }
        if *group == "boards" {
            if let Some(h) = warming.take() {
                let _ = h.join();
            }
        }
        match *group {
            "lint" => lint(&mut c.t),
            "host" => host(&mut c.t),
            "firmware" => emulated(&mut c.t),
            "pipeline" => pipeline_group(&mut c)?,
            _ => boards(&mut c),
        }
        times.push(format!("{group} {:.0} s", begun.elapsed().as_secs_f64()));
    }
    let t = &c.t;
    println!(
        "\n[test] {} checks in {:.0} s ({})",
        t.passed.len() + t.failed.len(),
        start.elapsed().as_secs_f64(),
        times.join(", ")
    );
    for f in &t.failed {
        println!("[test] failed: {f}");
    }
    println!("{} passed, {} failed", t.passed.len(), t.failed.len());
    if !t.failed.is_empty() {
        bail!("{} checks failed", t.failed.len());
    }
    Ok(())
}

/// clippy's compiler driver, to be the host workspace's compiler wrapper (`None` with the
/// Debian fallback toolchain, which has no clippy).
fn clippy_wrapper() -> Option<PathBuf> {
    if firmware::using_debian_toolchain() {
        return None;
    }
    let out = Command::new("rustup")
        .current_dir(project_root())
        .args(["which", "clippy-driver"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.exists()).then_some(path)
}

/// Builds every target of the host workspace for `cargo test` with clippy-driver as the
/// workspace's compiler (`linted` sets it): clippy's lints on the workspace's own crates in
/// the very build the tests then run, instead of a `cargo clippy` that checks every
/// dependency a second time (two minutes on a fresh two-core machine). Fails on any warning
/// in a workspace crate, as `cargo clippy -- -D warnings` does; Cargo replays a fresh crate's
/// warnings, so a warning is never lost to the cache.
fn host_build_linted(root: &Path, linted: &dyn Fn(&mut Command)) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "test",
        "--workspace",
        "--all-targets",
        "--no-run",
        "--message-format=json-diagnostic-rendered-ansi",
    ]);
    linted(&mut cmd);
    println!("$ {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("could not start cargo")?;
    let mut warnings = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let msg = &v["message"];
        let level = msg["level"].as_str().unwrap_or("");
        let ours = v["manifest_path"]
            .as_str()
            .is_some_and(|m| Path::new(m).starts_with(root));
        if v["reason"] == "compiler-message" && ours && matches!(level, "warning" | "error") {
            print!("{}", msg["rendered"].as_str().unwrap_or(""));
            if level == "warning" {
                warnings += 1;
            }
        }
    }
    if !out.status.success() {
        bail!("the host workspace's test build failed ({})", out.status);
    }
    if warnings > 0 {
        bail!("{warnings} warning(s) in the host workspace's crates (shown above)");
    }
    Ok(())
}

/// Formatting and lints: the library crates as firmware compiles them, every board.
fn lint(t: &mut Tally) {
    let (root, fw) = (project_root(), firmware::dir());
    t.record(
        "rustfmt (host)",
        cargo(&root, &["fmt", "--all", "--", "--check"]),
    );
    t.record(
        "rustfmt (firmware)",
        cargo(&fw, &["fmt", "--all", "--", "--check"]),
    );
    // The library crates as a firmware compiles them (the DSP kernel's Rust side exists on
    // thumbv7em only; thumbv6m has neither the DSP nor the widening multiply).
    for target in ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"] {
        let mut args = vec!["clippy", "--release", "--target", target];
        for c in LIBRARY_CRATES {
            args.extend(["-p", c]);
        }
        args.extend(["--", "-D", "warnings"]);
        t.record(
            &format!("clippy (library crates, {target})"),
            cargo(&root, &args),
        );
    }
    // The examples, each its own workspace.
    for e in examples::EXAMPLES {
        t.record(
            &format!("rustfmt (examples/{e})"),
            cargo(&root.join("examples").join(e), &["fmt", "--", "--check"]),
        );
    }
    // Every board, the real ones and the Discovery kit included, checked apart from the
    // builds the later groups run and flash (clippy-driver would change what they build).
    for b in firmware::selftest_boards()
        .iter()
        .copied()
        .chain(firmware::real_boards())
        // A board that runs another's code unchanged (the M7 the M4F's: same target and
        // flags, the board feature only chooses memory.x) has that board's lints.
        .filter(|b| b.same_code_as.is_none())
    {
        if firmware::using_debian_toolchain() {
            println!(
                "[test] skipped: clippy (firmware, {}): no clippy in the Debian fallback",
                b.name
            );
            continue;
        }
        t.record(
            &format!("clippy (firmware, {})", b.name),
            cargo(
                &fw,
                &[
                    "clippy",
                    "--release",
                    "--target",
                    b.target,
                    "--no-default-features",
                    "--features",
                    b.feature,
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
        );
    }
}

/// The host workspace's tests, its dependency boundary, the no_std builds.
fn host(t: &mut Tally) {
    let root = project_root();
    let wrapper = clippy_wrapper();
    if wrapper.is_none() {
        println!("[test] skipped: clippy (host): no clippy in the Debian fallback");
    }
    let linted = |cmd: &mut Command| {
        if let Some(driver) = &wrapper {
            cmd.env("RUSTC_WORKSPACE_WRAPPER", driver);
        }
    };
    if wrapper.is_some() {
        t.record(
            "clippy (host workspace, every target; warnings denied): the test build itself",
            host_build_linted(&root, &linted),
        );
    }
    let mut tests = Command::new("cargo");
    tests.current_dir(&root).args(["test", "--workspace"]);
    linted(&mut tests);
    t.record("host tests", run(&mut tests));
    // The pipeline group uses the trainer binary the host tests just built.
    pipeline::TEST_PROFILE_TRAINER.store(true, std::sync::atomic::Ordering::Relaxed);
    t.record("host never compiles cortex-m-rt", host_has_no_cortex_m_rt());
    // The fuzz target (its own workspace): built on stable, without the fuzzer's
    // instrumentation, so that a change to the reader or the engine cannot leave it behind.
    t.record(
        "fuzz target builds",
        cargo(
            &root,
            &[
                "build",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--bin",
                "from_bytes",
            ],
        ),
    );
    // The library crates as a user gets them: packaged (nothing outside each package read,
    // fixtures left out), each built from its tarball against the others' tarballs, and
    // checked against the registry's index (nothing uploaded).
    t.record(
        "library crates package and build from their tarballs (cargo publish --dry-run)",
        examples::package(),
    );
    t.record(
        "c/include/tinyvae.h is what cbindgen makes of c/src/lib.rs",
        examples::header_is_current(),
    );
    let mut doc = vec!["doc", "--no-deps", "--all-features"];
    for c in LIBRARY_CRATES {
        doc.extend(["-p", c]);
    }
    t.record(
        "cargo doc of the library crates: no warnings",
        run(Command::new("cargo")
            .current_dir(&root)
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(&doc)),
    );
    t.record(
        "a copied tree: xtask works in the copy, a trainer binary moved elsewhere trains and \
         exports from any folder, the original untouched",
        user::moved_tree(),
    );
    // Without the firmware's features (defmt): on the strictest core (no atomics, no DSP),
    // and on ARMv8-M without the DSP extension, which no firmware build covers; the
    // firmware builds cover thumbv7m and thumbv7em.
    for target in ["thumbv6m-none-eabi", "thumbv8m.main-none-eabihf"] {
        t.record(
            &format!("engine, format and display build no_std for {target}"),
            cargo(
                &root,
                &[
                    "build",
                    "--release",
                    "-p",
                    "tinyvae-engine",
                    "-p",
                    "tinyvae-format",
                    "-p",
                    "tinyvae-display",
                    "--no-default-features",
                    "--target",
                    target,
                ],
            ),
        );
    }
}

/// The firmware on the emulated boards without a trained model: builds, the engine's
/// self-test, the kernels against each other, the harness's own failures; the flash budget.
fn emulated(t: &mut Tally) {
    for board in firmware::selftest_boards() {
        // The binaries this group runs (clippy has compiled every binary for every board).
        let bins: &[&str] = if firmware::qemu_boards().contains(&board) {
            &[
                "selftest",
                "dspcheck",
                "fail-assert",
                "fail-panic",
                "fail-hang",
            ]
        } else {
            &["selftest", "fail-assert", "fail-panic", "fail-hang"]
        };
        let elfs = match firmware::build_bins(board, bins, &[]) {
            Ok(e) => e,
            Err(e) => {
                t.record(&format!("firmware build ({})", board.name), Err(e));
                continue;
            }
        };
        t.record(&format!("firmware build ({})", board.name), Ok(()));
        let limit = Duration::from_secs(120);
        t.record(&format!("selftest on {}", board.name), {
            firmware::run_qemu(board, &elfs.join("selftest"), limit).and_then(|o| {
                print!("{}", o.log);
                if o.code != Some(0) {
                    bail!("exit code {:?}", o.code);
                }
                firmware::check_expected("selftest", &o.log)
            })
        });
        // The DSP kernel against the portable ones on random layers (on the M3: the portable
        // tiled kernel against the row-major one).
        if firmware::qemu_boards().contains(&board) {
            let simd = board.dsp;
            t.record(
                &format!("kernels bit-exact on random layers on {}", board.name),
                firmware::run_qemu(board, &elfs.join("dspcheck"), limit).and_then(|o| {
                    print!("{}", o.log);
                    if o.code != Some(0) {
                        bail!("exit code {:?}", o.code);
                    }
                    let ran_dsp = !o.log.contains("; 0 ran the DSP kernel");
                    if ran_dsp != simd {
                        bail!("the DSP kernel should run here: {simd}; it ran: {ran_dsp}");
                    }
                    Ok(())
                }),
            );
        }
        // The harness must see failures: each of these is built to fail.
        for (bin, want, limit) in [
            ("fail-assert", Some(ExitCode::CheckFailed.code()), limit),
            ("fail-panic", Some(ExitCode::Panic.code()), limit),
            ("fail-hang", None, Duration::from_secs(1)),
        ] {
            t.record(
                &format!("harness reports {bin} on {} as a failure", board.name),
                firmware::run_qemu(board, &elfs.join(bin), limit).and_then(|o| {
                    // The log's own exit line says the same as the emulator's status (a
                    // hang prints none).
                    let logged = pipeline::parse(&o.log).exit;
                    if o.code == want && logged == want {
                        Ok(())
                    } else if o.code == want {
                        bail!(
                            "exit {want:?}, but the log's exit line says {logged:?}; log:\n{}",
                            o.log
                        )
                    } else {
                        bail!("expected exit {want:?}, got {:?}; log:\n{}", o.code, o.log)
                    }
                }),
            );
        }
    }

    // The flash budget, held: the product firmware, size profile, without its model.
    if !firmware::using_debian_toolchain() {
        t.record(
            "vae firmware (size profile, Cortex-M4F) fits 32 KiB of flash without its model",
            kernels::size_profile_flash().and_then(|flash| {
                println!("  {flash} bytes of {}", kernels::FLASH_BUDGET);
                if flash >= kernels::FLASH_BUDGET {
                    bail!(
                        "{flash} bytes: over the {}-byte budget",
                        kernels::FLASH_BUDGET
                    );
                }
                Ok(())
            }),
        );
    }
}

/// Trained models on the emulated boards: dense, conv and decoder-only, the f32 path.
fn pipeline_group(c: &mut Ctx) -> Result<()> {
    if let Some(model) = c.trained() {
        dense_on_chip(&mut c.t, &model)?;
        f32_path(&mut c.t, &model);
        discovery_kit(&mut c.t, &model);
    }
    conv_on_chip(&mut c.t);
    c.t.record(
        "cargo xtask demo --run on a run trained on 12x10 RGB images (not MNIST): exported \
         with its own data, every chip image equal to the host's, RGB pictures",
        user::own_data_demo(),
    );
    Ok(())
}

/// The default model on both boards: its golden vectors and every image bit-exact with the
/// host engine, a corrupted copy rejected at boot; and its refusal for the Cortex-M0.
fn dense_on_chip(t: &mut Tally, model_file: &Path) -> Result<()> {
    let corrupt = work_dir().join("corrupt.tvae");
    let mut blob = std::fs::read(model_file)?;
    let mid = blob.len() / 2;
    blob[mid] ^= 0x10;
    std::fs::write(&corrupt, &blob)?;
    t.record(
        "xtask refuses a model too large for a board, naming both sizes",
        match pipeline::check_fits(firmware::m0_board(), model_file) {
            Ok(_) => Err(anyhow::anyhow!(
                "the 680 KB model was accepted for a 256 KiB board"
            )),
            Err(e) => {
                let msg = format!("{e:#}");
                println!("  {msg}");
                if msg.contains(&firmware::m0_board().flash.to_string())
                    && msg.contains("bytes of flash")
                {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("unclear refusal: {msg}"))
                }
            }
        },
    );
    // A golden vector the engine does not reproduce (re-framed: a valid checksum): the
    // chip rejects it at boot, and the host's `trainer inspect` too, with the same words.
    t.record(
        "a model with a wrong golden vector: rejected at boot on mps2-an386 and by trainer \
         inspect, naming the same vector and element",
        user::bad_golden(model_file),
    );
    for board in firmware::qemu_boards() {
        t.record(
            &format!(
                "vae on {}: golden vectors and samples bit-exact with the host",
                board.name
            ),
            run_and_compare(board, model_file),
        );
        t.record(
            &format!("vae on {} rejects a corrupted model at boot", board.name),
            pipeline::run_on_board(board, &corrupt, DEMO_SEED).and_then(|(code, d)| {
                if code != ExitCode::BadModel.code() || !d.log.contains("ChecksumMismatch") {
                    bail!(
                        "expected exit 2 (bad model) and a checksum error, got {code} ({}); log:\n{}",
                        exit_name(code),
                        d.log
                    );
                }
                Ok(())
            }),
        );
    }
    Ok(())
}

/// A conv-mcu model trained and exported by the trainer: on the Cortex-M4F (DSP kernel) and
/// M3, its golden vectors and every image the chip makes equal the host engine's; its
/// decoder-only export generates on the Cortex-M0.
fn conv_on_chip(t: &mut Tally) {
    let conv_run = work_dir().join("conv");
    let conv = pipeline::train_and_export(&conv_run, "conv-mcu", 2, Some(2000));
    t.record(
        "pipeline: train and export a conv model",
        conv.as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    let Ok(model_file) = &conv else {
        return;
    };
    for board in firmware::qemu_boards() {
        t.record(
            &format!(
                "conv vae on {}: golden vectors and every image bit-exact with the host",
                board.name
            ),
            run_and_compare(board, model_file),
        );
    }
    for name in examples::EXAMPLES {
        t.record(
            &format!(
                "examples/{name}, built from the packaged crates, on {}: every image bit-exact \
                 with the host engine",
                firmware::default_board().name
            ),
            examples::check(name, model_file),
        );
    }
    t.record(
        &format!(
            "examples/c: the packaged tinyvae-c built for {} Cortex-M targets, the firmware \
             compiled by arm-none-eabi-gcc, on {}: every image bit-exact with the host engine",
            examples::C_TARGETS.len(),
            firmware::default_board().name
        ),
        pipeline::trainer().and_then(|trainer| examples::check_c(model_file, &trainer)),
    );
    for board in [firmware::default_board(), firmware::qemu_boards()[1]] {
        t.record(
            &format!(
                "a model one byte off its word boundary on {}: refused by Engine::new where the \
                 DSP kernel runs, run bit-exact by Engine::new_unaligned, the fallback named",
                board.name
            ),
            user::misaligned(board, model_file),
        );
    }
    if !firmware::using_debian_toolchain() {
        t.record(
            "conv vae built for size (opt-level z) on mps2-an386: golden vectors and every \
             image bit-exact with the host",
            run_size_profile_and_compare(model_file),
        );
    }
    t.record(
        &format!(
            "conv-mcu decoder-only on {} ({}): golden vectors and samples bit-exact",
            firmware::m0_board().name,
            firmware::m0_board().cpu
        ),
        pipeline::export_decoder_only(&conv_run)
            .and_then(|m| run_and_compare(firmware::m0_board(), &m)),
    );
}

/// The B-L475E-IOT01A image under QEMU's model of the kit: the default model's golden vectors
/// and samples bit-exact with the host, its log over the UART; and the image it ran is, byte
/// for byte, the one `cargo xtask flash --board b-l475e-iot01a --build-only` makes.
fn discovery_kit(t: &mut Tally, model: &Path) {
    let b = firmware::discovery();
    let elf = firmware::elf_dir(b).join("vae");
    let mut ran = None;
    t.record(
        &format!(
            "vae on {} ({}) under QEMU, log over its UART: golden vectors and samples bit-exact",
            b.name, b.cpu
        ),
        run_and_compare(b, model).and_then(|()| {
            ran = Some(std::fs::read(&elf)?);
            Ok(())
        }),
    );
    let Some(ran) = ran else { return };
    t.record(
        &format!(
            "the {} image QEMU ran is byte-identical to `cargo xtask flash --board {} --build-only`",
            b.name, b.name
        ),
        (|| {
            // As a user runs it: `cargo xtask flash`, its own process, its own printed hash.
            let out = Command::new("cargo")
                .current_dir(project_root())
                .args(["xtask", "flash", "--board", b.name, "--build-only", "--model"])
                .arg(model)
                .output()?;
            let said = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "flash --build-only failed:\n{said}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let want = crate::elf::sha256(&ran);
            let printed = said
                .lines()
                .find_map(|l| l.split("sha256 ").nth(1))
                .map(str::trim)
                .context("flash --build-only printed no sha256")?;
            let flashed = std::fs::read(&elf)?;
            if printed != want || flashed != ran {
                bail!(
                    "`flash --build-only` made {} (sha256 {printed}, {} bytes); QEMU ran sha256 \
                     {want} ({} bytes)",
                    elf.display(),
                    flashed.len(),
                    ran.len()
                );
            }
            println!("  sha256 {want} ({} bytes), the same in both", ran.len());
            Ok(())
        })(),
    );
}

/// The f32 decoder path on the Cortex-M4F: the same bits as on the host, near the float
/// decoder; the int8 path beside it on the same draws.
fn f32_path(t: &mut Tally, model_file: &Path) {
    let board = firmware::default_board();
    t.record(
        &format!(
            "f32 decoder path on {}: bit-exact with the host, PSNR",
            board.name
        ),
        float::compare(board, model_file, DEMO_SEED).and_then(|c| {
            println!(
                "  int8: {} instructions, PSNR {:.2} dB; f32: {} instructions, PSNR {:.2} dB",
                c.int8, c.int8_psnr, c.f32, c.f32_psnr
            );
            if c.f32_psnr < float::F32_PSNR_MIN_DB {
                bail!(
                    "f32 path PSNR {:.2} dB < {} dB",
                    c.f32_psnr,
                    float::F32_PSNR_MIN_DB
                );
            }
            Ok(())
        }),
    );
}

/// The real boards' images, built with the trained model.
fn boards(c: &mut Ctx) {
    // Real boards: the firmware with the trained model builds with each board's HAL and
    // defmt-rtt, and fits its flash and RAM; the RP2040 image starts with its bootloader.
    let trained = c.trained();
    let t = &mut c.t;
    if let Some(model_file) = &trained {
        for board in firmware::real_boards() {
            t.record(
                &format!(
                    "vae builds for {} ({}) and fits",
                    board.name, board.cpu
                ),
                pipeline::build_for_board(board, model_file).and_then(|(elf, f)| {
                    println!(
                        "  {}: flash {} of {} bytes, static RAM {} of {}",
                        board.name, f.flash, board.flash, f.ram, board.ram
                    );
                    if board.image_def {
                        // The boot ROM reads only the first 4 KiB of flash for it.
                        let block = elf::section(&elf, ".start_block")?;
                        let start = board.flash_origin;
                        match block {
                            Some((addr, len))
                                if u64::from(addr) >= start
                                    && u64::from(addr) + u64::from(len) <= start + 4096
                                    && len > 0 => {}
                            other => bail!(
                                "the {} image has no image definition in its first 4 KiB: {other:?}",
                                board.name
                            ),
                        }
                    }
                    if let Some((origin, len)) = board.boot2 {
                        let boot2 = elf::section(&elf, ".boot2")?;
                        if boot2.map(|(a, l)| (u64::from(a), u64::from(l))) != Some((origin, len)) {
                            bail!(
                                "the {} image has no {len}-byte .boot2 at {origin:#x}: {boot2:?}",
                                board.name
                            );
                        }
                    }
                    Ok(())
                }),
            );
        }
    }
}

/// Runs the `vae` firmware with `model` on `board` and holds every image it prints against
/// the host engine's; prints its decode count and peak RAM.
fn run_and_compare(board: firmware::Board, model: &Path) -> Result<()> {
    let (code, d) = pipeline::run_on_board(board, model, DEMO_SEED)?;
    compare(board, model, code, &d)
}

/// [`run_and_compare`] for the `vae` firmware built with the `size` profile (opt-level "z",
/// the engine's `tinyvae_small` paths: convolutions on the one-position kernel) on the
/// Cortex-M4F.
fn run_size_profile_and_compare(model: &Path) -> Result<()> {
    let board = firmware::default_board();
    let seed = [("TINYVAE_SEED", DEMO_SEED.to_string())];
    let elf = kernels::size_profile_with(&["vae"], model, &seed)?.join("vae");
    let out = firmware::run_qemu(board, &elf, Duration::from_secs(300))?;
    let Some(code) = out.code else {
        bail!(
            "the size-profile vae firmware did not finish in time; log:\n{}",
            out.log
        );
    };
    compare(board, model, code, &pipeline::parse(&out.log))
}

/// Checks a run of the `vae` firmware: exit 0, the golden vectors reported bit-exact, every
/// image equal to the host engine's, the boot validation under one decode.
fn compare(board: firmware::Board, model: &Path, code: i32, d: &pipeline::DeviceRun) -> Result<()> {
    if code != 0 {
        bail!("exit code {code} ({}); log:\n{}", exit_name(code), d.log);
    }
    if !d.log.contains("vectors bit-exact") {
        bail!("no golden-vector report in the log:\n{}", d.log);
    }
    let n = pipeline::check_outputs_match(model, DEMO_SEED, d, true)?;
    let count = |name: &str| d.count(name).unwrap_or(0);
    let ram = |name: &str| d.ram.iter().find(|c| c.0 == name).map_or(0, |c| c.1);
    // Validating the model at boot (checksum and every check) costs less than one decode.
    let (validate, decode) = (count("validate"), count("decode"));
    if validate == 0 || validate >= decode {
        bail!(
            "boot validation took {validate} instructions, a decode {decode}: not under one decode"
        );
    }
    println!(
        "  {n} images equal the host engine's; validate {validate}, decode {decode} instructions; \
         RAM {} static + {} stack of {}",
        ram("static"),
        ram("stack"),
        board.ram
    );
    Ok(())
}

fn host_has_no_cortex_m_rt() -> Result<()> {
    let out = Command::new("cargo")
        .current_dir(project_root())
        .args([
            "tree",
            "--workspace",
            "-e",
            "normal,build,dev",
            "--prefix",
            "none",
        ])
        .output()?;
    if !out.status.success() {
        bail!("cargo tree failed");
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = tree
        .lines()
        .find(|l| l.starts_with("cortex-m-rt ") || l.starts_with("cortex-m "))
    {
        bail!("the host workspace depends on {line}");
    }
    Ok(())
}
