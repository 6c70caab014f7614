//! `cargo xtask test [GROUP...]`: every test, in groups that also run alone, each check
//! reported as `ok` or `FAILED`, ending with `N passed, M failed`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::{firmware, pipeline, project_root, run, setup};

/// The groups, in the order a full run takes them, with what each checks.
pub const GROUPS: [(&str, &str); 5] = [
    (
        "lint",
        "rustfmt; clippy on the library crates as firmware builds them and on every board",
    ),
    (
        "host",
        "cargo test --workspace built once under clippy (warnings denied), the host never links cortex-m, the fuzz target compiles, the no_std builds",
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
    /// When the previous check was recorded: each check's line shows the seconds since,
    /// the time its work took (what a slow run spends its time on, read from its log).
    last: Instant,
}

impl Tally {
    fn record(&mut self, name: &str, r: Result<()>) {
        let took = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        match r {
            Ok(()) => {
                println!("[test] ok ({took:.0} s): {name}");
                self.passed.push(name.into());
            }
            Err(e) => {
                println!("[test] FAILED ({took:.0} s): {name}: {e:#}");
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

mod boards;
mod circles;
mod emulated;
mod host;
mod lint;
mod models;
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
            last: Instant::now(),
        },
        trained: None,
    };
    // The real boards' builds (the boards group, last; the Discovery kit's in the firmware
    // group) and their lints start in the background with the groups that mostly run the
    // emulator on one core.
    let background = !firmware::using_debian_toolchain()
        && selected.contains(&"boards")
        && selected
            .iter()
            .any(|g| matches!(*g, "firmware" | "pipeline"));
    let mut real_lints = background && selected.contains(&"lint");
    let mut warming: Option<std::thread::JoinHandle<lint::Checks>> = None;
    for group in &selected {
        println!("[test] group {group}");
        let begun = Instant::now();
        if warming.is_none() && background && matches!(*group, "firmware" | "pipeline") {
            if let Ok((probe, _)) = pipeline::probe_model() {
                let log = work_dir().join("boards-warm-up.log");
                println!(
                    "[test] the Discovery kit's and the real boards' dependencies compile in the background (log: {})",
                    crate::shown(&log)
                );
                // The Discovery kit first: the firmware group builds it after the
                // emulated boards, from the same target folder.
                let boards: Vec<_> = std::iter::once(firmware::discovery())
                    .chain(firmware::real_boards())
                    .collect();
                let lints = std::mem::take(&mut real_lints);
                warming = Some(std::thread::spawn(move || {
                    firmware::warm_up(&boards, &probe, &log);
                    if lints {
                        lint::real_boards(&lint::real_linted(), true)
                    } else {
                        vec![]
                    }
                }));
            }
        }
        if *group == "boards" {
            if let Some(h) = warming.take() {
                match h.join() {
                    Ok(lints) => {
                        for (name, r) in lints {
                            c.t.record(&name, r);
                        }
                    }
                    Err(_) => c.t.record(
                        "the background builds and lints",
                        Err(anyhow::anyhow!("the thread running them panicked")),
                    ),
                }
            }
            // Left to the background that did not start: run here.
            if std::mem::take(&mut real_lints) {
                for (name, r) in lint::real_boards(&lint::real_linted(), false) {
                    c.t.record(&name, r);
                }
            }
        }
        match *group {
            "lint" => lint::lint(&mut c.t, real_lints),
            "host" => host::host(&mut c.t),
            "firmware" => emulated::emulated(&mut c.t),
            "pipeline" => {
                if let Err(e) = models::pipeline_group(&mut c) {
                    // No build left running in the background behind the error.
                    if let Some(h) = warming.take() {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
            _ => boards::boards(&mut c),
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
