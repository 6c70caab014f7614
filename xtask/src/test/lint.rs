//! Formatting and lints: rustfmt everywhere, clippy on the library crates as firmware builds them and on every board.

use std::process::Command;

use crate::{examples, firmware, project_root};

use super::{cargo, Tally, LIBRARY_CRATES};

/// Formatting and lints: the library crates as firmware compiles them, every board.
pub(super) fn lint(t: &mut Tally) {
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
    // The real boards (each its own target folder, as their builds use) in a second lane
    // beside the others: their device crates compile one large crate at a time, which
    // leaves a core idle.
    if firmware::using_debian_toolchain() {
        println!("[test] skipped: clippy (firmware): no clippy in the Debian fallback");
        return;
    }
    let (real, others): (Vec<_>, Vec<_>) = firmware::selftest_boards()
        .iter()
        .copied()
        .chain(firmware::real_boards())
        // A board that runs another's code unchanged (the M7 the M4F's: same target and
        // flags, the board feature only chooses memory.x) has that board's lints.
        .filter(|b| b.same_code_as.is_none())
        .partition(|b| b.probe.is_some() && b.machine.is_none());
    let lane = std::thread::spawn(move || {
        real.into_iter()
            .map(|b| {
                (
                    b.name,
                    captured(&mut clippy(b, Some(firmware::target_dir(b)))),
                )
            })
            .collect::<Vec<_>>()
    });
    for b in others {
        t.record(
            &format!("clippy (firmware, {})", b.name),
            crate::run(&mut clippy(b, None)),
        );
    }
    match lane.join() {
        Ok(results) => {
            for (name, r) in results {
                t.record(&format!("clippy (firmware, {name})"), r);
            }
        }
        Err(_) => t.record(
            "clippy (firmware, the real boards)",
            Err(anyhow::anyhow!("the lane running them panicked")),
        ),
    }
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
