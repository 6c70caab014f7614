//! The host workspace: its test build under clippy, its tests, the published crates as a user gets them, the no_std builds.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{examples, pipeline, project_root, run};

use super::{cargo, user, Tally, LIBRARY_CRATES};

/// Builds every target of the host workspace for `cargo test` with clippy-driver as the
/// workspace's compiler (`linted` sets it): clippy's lints on the workspace's own crates in
/// the very build the tests then run, instead of a `cargo clippy` that checks every
/// dependency a second time (two minutes on a fresh two-core machine). Fails on any warning
/// in a workspace crate, as `cargo clippy -- -D warnings` does; Cargo replays a fresh crate's
/// warnings, so a warning is never lost to the cache.
pub(super) fn host_build_linted(root: &Path, linted: &dyn Fn(&mut Command)) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "test",
        "--workspace",
        "--all-targets",
        "--no-run",
        "--message-format=json-diagnostic-rendered-ansi",
    ]);
    linted(&mut cmd);
    super::lint::warnings_denied(&mut cmd, "the host workspace's tests", false)
}

/// The host workspace's tests, its dependency boundary, the no_std builds.
pub(super) fn host(t: &mut Tally) {
    let root = project_root();
    let wrapper = super::lint::clippy_wrapper();
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
    // The fuzz target (its own workspace): checked on stable, without the fuzzer's
    // instrumentation and without libFuzzer (C++, half the time of a build), so that a
    // change to the reader or the engine cannot leave it behind.
    t.record(
        "fuzz target compiles",
        cargo(
            &root,
            &[
                "check",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--no-default-features",
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

pub(super) fn host_has_no_cortex_m_rt() -> Result<()> {
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
