//! `cargo xtask`: the project's automation. Every command checks and installs its own
//! prerequisites first, so the README needs no set-up step.
//!
//! ```text
//! cargo xtask demo              the main job (see README.md)
//! cargo xtask test              every test: lints, host tests, firmware under QEMU
//! cargo xtask setup             only install or check the prerequisites
//! cargo xtask qemu BOARD BIN    build and run one firmware binary under QEMU
//! ```

mod firmware;
mod setup;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The repository root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Runs a command, echoing it; fails with its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Runs a command and says whether it succeeded.
pub fn status_ok(cmd: &mut Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

fn main() {
    // `cargo install` puts tools here; make sure this process and its children find them.
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        let bin = home.join("bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut parts: Vec<PathBuf> = std::env::split_paths(&path).collect();
        if !parts.contains(&bin) {
            parts.push(bin);
            if let Ok(joined) = std::env::join_paths(parts) {
                std::env::set_var("PATH", joined);
            }
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::all(),
        Some("test") => test(),
        Some("demo") => demo(),
        Some("qemu") => qemu(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  demo              train, export, run on the emulated board, \
                 show samples and counts\n  test              every test: lints, host tests, firmware under QEMU\n  \
                 setup             install or check the prerequisites only\n  qemu BOARD BIN    \
                 build and run one firmware binary (boards: mps2-an386, mps2-an385)"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn qemu(args: &[String]) -> Result<()> {
    let [board, bin] = args else {
        bail!("usage: cargo xtask qemu BOARD BIN");
    };
    setup::all()?;
    let board = firmware::board(board)?;
    let elfs = firmware::build(board, &[])?;
    let out = firmware::run_qemu(board, &elfs.join(bin), Duration::from_secs(300))?;
    print!("{}", out.log);
    match out.code {
        Some(0) => Ok(()),
        Some(c) => bail!("{bin} on {} exited with code {c}", board.name),
        None => bail!("{bin} on {} did not finish in time", board.name),
    }
}

/// The main job. Today: the on-device engine self-test on both emulated boards. Training,
/// export and on-device sampling join it as they land (see ARCHITECTURE.md, "Status").
fn demo() -> Result<()> {
    setup::all()?;
    for board in firmware::QEMU_BOARDS {
        let elfs = firmware::build(board, &[])?;
        println!("\n== {} ({}) under QEMU: selftest", board.name, board.cpu);
        let out = firmware::run_qemu(board, &elfs.join("selftest"), Duration::from_secs(300))?;
        print!("{}", out.log);
        if out.code != Some(0) {
            bail!("selftest on {} ended with {:?}", board.name, out.code);
        }
    }
    println!(
        "\nNot yet part of the demo: training, export, on-device sampling and the samples PNG \
         (open issues 4, 5 and 6)."
    );
    Ok(())
}

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

fn cargo(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    run(Command::new("cargo").current_dir(dir).args(args))
}

/// Every test: formatting, lints, host tests, the dependency boundaries, the no_std builds,
/// and the firmware under QEMU on both boards, including the harness's own test.
fn test() -> Result<()> {
    let start = Instant::now();
    setup::all()?;
    let root = project_root();
    let fw = firmware::dir();
    let mut t = Tally {
        passed: vec![],
        failed: vec![],
    };

    t.record(
        "rustfmt (host)",
        cargo(&root, &["fmt", "--all", "--", "--check"]),
    );
    t.record(
        "rustfmt (firmware)",
        cargo(&fw, &["fmt", "--all", "--", "--check"]),
    );
    t.record(
        "clippy (host)",
        cargo(
            &root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    );
    for b in firmware::QEMU_BOARDS {
        t.record(
            &format!("clippy (firmware, {})", b.name),
            cargo(
                &fw,
                &[
                    "clippy",
                    "--release",
                    "--target",
                    b.target,
                    "--features",
                    b.feature,
                    "--",
                    "-D",
                    "warnings",
                ],
            ),
        );
    }
    t.record("host tests", cargo(&root, &["test", "--workspace"]));
    t.record("host never compiles cortex-m-rt", host_has_no_cortex_m_rt());
    for target in setup::THUMB_TARGETS {
        t.record(
            &format!("engine and format build no_std for {target}"),
            cargo(
                &root,
                &[
                    "build",
                    "--release",
                    "-p",
                    "tinyvae-engine",
                    "-p",
                    "tinyvae-format",
                    "--no-default-features",
                    "--target",
                    target,
                ],
            ),
        );
    }

    for board in firmware::QEMU_BOARDS {
        let elfs = match firmware::build(board, &[]) {
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
        // The harness must see failures: each of these is built to fail.
        for (bin, want, limit) in [
            ("fail-assert", Some(1), limit),
            ("fail-panic", Some(101), limit),
            ("fail-hang", None, Duration::from_secs(3)),
        ] {
            t.record(
                &format!("harness reports {bin} on {} as a failure", board.name),
                firmware::run_qemu(board, &elfs.join(bin), limit).and_then(|o| {
                    if o.code == want {
                        Ok(())
                    } else {
                        bail!("expected exit {want:?}, got {:?}; log:\n{}", o.code, o.log)
                    }
                }),
            );
        }
    }

    println!(
        "\n[test] {} checks in {:.0} s",
        t.passed.len() + t.failed.len(),
        start.elapsed().as_secs_f64()
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
