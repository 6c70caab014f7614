//! Formatting and lints: rustfmt everywhere, clippy on the library crates as firmware builds them and on every board.

use std::path::PathBuf;
use std::process::Command;

use crate::{examples, firmware, project_root};

use super::{cargo, Tally, LIBRARY_CRATES};

/// Formatting and lints: the library crates as firmware compiles them, every board (the real
/// ones left to the caller when `real_later`).
pub(super) fn lint(t: &mut Tally, real_later: bool) {
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
    // thumbv7em only; thumbv6m has neither the DSP nor the widening multiply); the opt-in
    // second stage on one target, its absence on the other.
    for (target, features) in [
        ("thumbv7em-none-eabihf", None),
        ("thumbv6m-none-eabi", Some("tinyvae-engine/second-stage")),
    ] {
        let mut args = vec!["clippy", "--release", "--target", target];
        if let Some(f) = features {
            args.extend(["--features", f]);
        }
        for c in LIBRARY_CRATES {
            args.extend(["-p", c]);
        }
        args.extend(["--", "-D", "warnings"]);
        t.record(
            &format!("clippy (library crates, {target})"),
            cargo(&root, &args),
        );
    }
    // No import circle between any crate's modules.
    t.record(
        "no import circle between modules (every crate)",
        super::circles::check(
            &root,
            &[
                "model-format",
                "engine",
                "protocol",
                "display",
                "float-decoder",
                "c",
                "trainer",
                "tests",
                "xtask",
                "firmware",
            ],
        ),
    );
    // The examples, each its own workspace.
    for e in examples::EXAMPLES {
        t.record(
            &format!("rustfmt (examples/{e})"),
            cargo(&root.join("examples").join(e), &["fmt", "--", "--check"]),
        );
    }
    // Every board, the real ones and the Discovery kit included. The emulated ones checked
    // apart from the builds the later groups run (clippy-driver would change what they
    // build), the real ones in their own builds' target folders, built linted.
    if firmware::using_debian_toolchain() {
        println!("[test] skipped: clippy (firmware): no clippy in the Debian fallback");
        return;
    }
    let (real, others) = linted_boards();
    // The real boards: their device crates compile one large crate at a time, which leaves
    // a core idle. In a second lane beside the others, or, when the later groups run the
    // emulator on one core, in the background there, after their unlinted builds have
    // compiled every dependency (`real_later`: the caller runs [`real_boards`] then).
    let lane = (!real_later).then(|| std::thread::spawn(move || real_boards(&real, false)));
    for b in others {
        t.record(
            &format!("clippy (firmware, {})", b.name),
            crate::run(&mut clippy(b)),
        );
    }
    match lane.map(|l| l.join()) {
        None => println!(
            "[test] the real boards' lints run in the background of the firmware and pipeline groups, after their builds (reported in the boards group)"
        ),
        Some(Ok(results)) => {
            for (name, r) in results {
                t.record(&name, r);
            }
        }
        Some(Err(_)) => t.record(
            "clippy (firmware, the real boards)",
            Err(anyhow::anyhow!("the lane running them panicked")),
        ),
    }
}

/// The boards whose firmware is linted, the real ones (run by a probe, never emulated)
/// apart: a board that runs another's code unchanged (the M7 the M4F's: same target and
/// flags, the board feature only chooses memory.x) has that board's lints.
fn linted_boards() -> (Vec<firmware::Board>, Vec<firmware::Board>) {
    firmware::selftest_boards()
        .iter()
        .copied()
        .chain(firmware::real_boards())
        .filter(|b| b.same_code_as.is_none())
        .partition(|b| b.probe.is_some() && b.machine.is_none())
}

/// clippy's compiler driver, to be a workspace's compiler wrapper (`None` with the Debian
/// fallback toolchain, which has no clippy).
pub(super) fn clippy_wrapper() -> Option<PathBuf> {
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

/// Checks run apart from the tally: each one's name and result.
pub(super) type Checks = Vec<(String, anyhow::Result<()>)>;

/// The real boards' lints, one after the other: each board's firmware built in its own
/// target folder with clippy-driver as the firmware crate's compiler ([`linted_build`]), so
/// that every dependency (a device crate is the largest thing compiled for a board) is the
/// one its unlinted build uses, compiled once for both, where `cargo clippy` would check it
/// a second time. `niced` at a lower priority (run in the background), the output kept
/// and shown only with a failure. Returns each check's name and result.
pub(super) fn real_boards(real: &[firmware::Board], niced: bool) -> Checks {
    real.iter()
        .map(|&b| {
            (
                format!("clippy (firmware, {}): its library built linted", b.name),
                linted_build(b, niced),
            )
        })
        .collect()
}

/// Board `b`'s firmware built with clippy-driver as the firmware crate's compiler
/// (`RUSTC_WORKSPACE_WRAPPER`), in the target folder its builds use, warnings denied
/// ([`warnings_denied`]): the library, where every board's own code lives (the binaries
/// have none, and each would cost a link-time optimization of the whole image: the emulated
/// boards' lints cover them). Cargo keeps the linted crate's artifacts
/// apart from the unlinted build's (it hashes the wrapper into them) and links the
/// unlinted build's binaries again when it runs, so that what a flash writes is unchanged:
/// clippy-driver changes the generated code.
fn linted_build(b: firmware::Board, niced: bool) -> anyhow::Result<()> {
    let Some(driver) = clippy_wrapper() else {
        anyhow::bail!("no clippy-driver in the toolchain");
    };
    let mut base = firmware::thumb_cargo(&firmware::dir(), b);
    base.args(["--lib", "--no-default-features", "--features"])
        .arg(firmware::features(b))
        .arg("--message-format=json-diagnostic-rendered-ansi")
        .env("RUSTC_WORKSPACE_WRAPPER", driver)
        .env_remove("TINYVAE_MODEL");
    let mut cmd = if niced { firmware::niced(&base) } else { base };
    warnings_denied(&mut cmd, &format!("the firmware for {}", b.name), true)
}

/// Runs `cmd`, a Cargo build with clippy-driver as the workspace's compiler and
/// `--message-format=json-diagnostic-rendered-ansi`, and fails on any warning in a crate of
/// the workspace (a path package; every dependency comes from the registry), as `cargo
/// clippy -- -D warnings` does; Cargo replays a fresh crate's warnings, so that a warning is
/// never lost to the cache. The diagnostics printed as they come, or with `quiet` (a
/// build in the background) kept, with Cargo's own output, for the error.
pub(super) fn warnings_denied(cmd: &mut Command, what: &str, quiet: bool) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    if !quiet {
        println!("$ {shown}");
        cmd.stderr(std::process::Stdio::inherit());
    }
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("could not start {shown}: {e}"))?;
    let (mut warnings, mut rendered) = (0, String::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let msg = &v["message"];
        let level = msg["level"].as_str().unwrap_or("");
        let ours = v["package_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("path+file://"));
        if v["reason"] == "compiler-message" && ours && matches!(level, "warning" | "error") {
            let text = msg["rendered"].as_str().unwrap_or("");
            if quiet {
                rendered += text;
            } else {
                print!("{text}");
            }
            warnings += usize::from(level == "warning");
        }
    }
    let context = if quiet {
        format!(
            "\n$ {shown}\n{}{rendered}",
            String::from_utf8_lossy(&out.stderr)
        )
    } else {
        String::new()
    };
    if !out.status.success() {
        anyhow::bail!("the build of {what} failed ({}){context}", out.status);
    }
    if warnings > 0 {
        anyhow::bail!("{warnings} warning(s) in the build of {what}{context}");
    }
    Ok(())
}

/// The real boards whose firmware is linted.
pub(super) fn real_linted() -> Vec<firmware::Board> {
    linted_boards().0
}

/// `cargo clippy` of the firmware for board `b`, warnings denied.
fn clippy(b: firmware::Board) -> Command {
    let features = firmware::features(b);
    let mut cmd = Command::new("cargo");
    cmd.current_dir(firmware::dir()).args([
        "clippy",
        "--release",
        "--target",
        b.target,
        "--no-default-features",
        "--features",
        &features,
    ]);
    cmd.args(["--", "-D", "warnings"]);
    cmd
}
