//! Formatting and lints: rustfmt everywhere, clippy on the library crates as firmware builds them and on every board.

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
    // Every board, the real ones and the Discovery kit included, checked apart from the
    // builds the later groups run and flash (clippy-driver would change what they build).
    if firmware::using_debian_toolchain() {
        println!("[test] skipped: clippy (firmware): no clippy in the Debian fallback");
        return;
    }
    let (real, others) = linted_boards();
    // The real boards (each its own target folder, as their builds use): their device crates
    // compile one large crate at a time, which leaves a core idle. In a second lane beside
    // the others, or, when the later groups run the emulator on one core, in the background
    // there (`real_later`: the caller runs [`real_boards`] then).
    let lane = (!real_later).then(|| std::thread::spawn(move || real_boards(&real, false)));
    for b in others {
        t.record(
            &format!("clippy (firmware, {})", b.name),
            crate::run(&mut clippy(b, None)),
        );
    }
    match lane.map(|l| l.join()) {
        None => println!(
            "[test] the real boards' clippy runs in the background of the firmware and pipeline groups (reported in the boards group)"
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

/// The real boards' clippy, one after the other, each in its own target folder, its output
/// kept and shown with its result; `niced` at a lower priority (run in the background).
/// Returns each check's name and result.
pub(super) fn real_boards(
    real: &[firmware::Board],
    niced: bool,
) -> Vec<(String, anyhow::Result<()>)> {
    real.iter()
        .map(|&b| {
            let base = clippy(b, Some(firmware::target_dir(b)));
            let mut cmd = if niced { firmware::niced(&base) } else { base };
            (format!("clippy (firmware, {})", b.name), captured(&mut cmd))
        })
        .collect()
}

/// The real boards whose firmware is linted.
pub(super) fn real_linted() -> Vec<firmware::Board> {
    linted_boards().0
}

/// `cargo clippy` of the firmware for board `b`, warnings denied, in `target_dir` if given.
fn clippy(b: firmware::Board, target_dir: Option<std::path::PathBuf>) -> Command {
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
    if let Some(dir) = target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    cmd.args(["--", "-D", "warnings"]);
    cmd
}

/// Runs `cmd` (a clippy of the firmware) with its output kept, and shows it with the
/// result: the second lane's output would otherwise interleave with the first's.
fn captured(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("could not start {shown}: {e}"))?;
    println!("$ {shown}");
    print!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        anyhow::bail!("{shown} failed ({})", out.status);
    }
    Ok(())
}
