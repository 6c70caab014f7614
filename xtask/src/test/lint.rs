//! Formatting and lints: rustfmt everywhere, clippy on the library crates as firmware builds them and on every board.

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
        let features = crate::firmware::features(b);
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
                    &features,
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
        );
    }
}
