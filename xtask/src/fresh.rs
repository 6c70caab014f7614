//! `cargo xtask time-fresh [--apt]`: the README's two commands timed as a new user meets
//! them, on this machine, each from its own fresh state: a clean clone of the repository's
//! committed HEAD, a fresh Cargo home (every crate downloaded and built again; defmt-print
//! and cbindgen installed again; nothing of this checkout's `target/` or `.tools/`), the
//! pinned toolchain's thumb targets removed first so that the command adds them again, and
//! with `--apt` (as root) QEMU and the Arm GCC removed with apt first, so that the command
//! installs them again. Times `cargo xtask demo`, then `cargo xtask test`, and writes
//! `results/fresh-times.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{project_root, run, setup};

/// Apt packages the commands install when missing.
const APT_PACKAGES: [&str; 3] = [
    "qemu-system-arm",
    "gcc-arm-none-eabi",
    "libnewlib-arm-none-eabi",
];

/// One timed command.
struct Timed {
    args: &'static str,
    seconds: f64,
    tail: Vec<String>,
}

/// A folder of links to the rustup proxies (cargo, rustc, rustup, ...) and nothing else,
/// for a PATH on which no tool of this machine's Cargo home is found.
fn proxies(home: &Path) -> Result<PathBuf> {
    let cargo = which("cargo").context("no cargo on the PATH")?;
    let from = cargo.parent().context("cargo's folder")?;
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin)?;
    for tool in [
        "cargo",
        "rustc",
        "rustup",
        "rustdoc",
        "rustfmt",
        "cargo-fmt",
        "cargo-clippy",
        "clippy-driver",
    ] {
        let src = from.join(tool);
        if src.exists() {
            std::os::unix::fs::symlink(&src, bin.join(tool))
                .with_context(|| format!("linking {}", src.display()))?;
        }
    }
    Ok(bin)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs `cargo xtask ARGS` in `clone` with the fresh Cargo home; its output to `log`.
fn timed(clone: &Path, home: &Path, path: &str, args: &'static str, log: &Path) -> Result<Timed> {
    println!(
        "[time-fresh] cargo xtask {args} (output in {})",
        log.display()
    );
    let out = std::fs::File::create(log)?;
    let start = Instant::now();
    let status = Command::new("cargo")
        .current_dir(clone)
        .env("CARGO_HOME", home)
        .env("PATH", path)
        .env_remove("CARGO_MANIFEST_DIR")
        .arg("xtask")
        .args(args.split_whitespace())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .status()?;
    let seconds = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<String> = text
        .lines()
        .rev()
        .filter(|l| l.contains(" checks in ") || l.contains(" passed, "))
        .take(2)
        .map(str::to_string)
        .collect();
    if !status.success() {
        bail!(
            "cargo xtask {args} failed after {seconds:.0} s ({status}); see {}",
            log.display()
        );
    }
    Ok(Timed {
        args,
        seconds,
        tail: tail.into_iter().rev().collect(),
    })
}

/// `s` seconds as minutes and seconds, rounded to the second (659.6 s: 11 min 00 s).
fn minutes(s: f64) -> String {
    let s = s.round() as u64;
    format!("{} min {:02} s", s / 60, s % 60)
}

/// A fresh state for one command: a clone of `root`'s HEAD in `tmp`, an empty Cargo home,
/// the thumb targets (and with `apt` the apt packages) removed; returns the clone, the Cargo
/// home and the PATH to run with.
fn fresh_state(root: &Path, tmp: &Path, apt: bool) -> Result<(PathBuf, PathBuf, String)> {
    let _ = std::fs::remove_dir_all(tmp);
    std::fs::create_dir_all(tmp)?;
    let (clone, home) = (tmp.join("tinyvae"), tmp.join("cargo-home"));
    run(Command::new("git")
        .args(["clone", "--quiet", "--no-local"])
        .arg(root)
        .arg(&clone))?;
    let bin = proxies(&home)?;
    let path = std::env::join_paths(
        std::iter::once(bin).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .filter(|p| !p.ends_with(".cargo/bin")),
        ),
    )?
    .to_string_lossy()
    .into_owned();
    let mut rustup = Command::new("rustup");
    rustup.current_dir(&clone).args(["target", "remove"]);
    rustup.args(setup::THUMB_TARGETS);
    run(&mut rustup)?;
    if apt {
        run(Command::new("apt-get")
            .args(["remove", "-y", "-qq"])
            .args(APT_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok((clone, home, path))
}

/// `cargo xtask time-fresh [--apt] [--keep]`: each command from its own fresh state.
pub fn time_fresh(args: &[String]) -> Result<()> {
    let apt = args.iter().any(|a| a == "--apt");
    let keep = args.iter().any(|a| a == "--keep");
    // `--only CMD`: that command alone, printed and not written to results/ (a table of
    // one command beside the other's older time would not be one measurement).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).map(String::as_str));
    let commands: Vec<&'static str> = match only {
        None => vec!["demo", "test"],
        Some(Some("demo")) => vec!["demo"],
        Some(Some("test")) => vec!["test"],
        Some(other) => bail!("--only takes demo or test, not {other:?}"),
    };
    let root = project_root();
    let commit = String::from_utf8_lossy(
        &Command::new("git")
            .current_dir(&root)
            .args(["rev-parse", "--short", "HEAD"])
            .output()?
            .stdout,
    )
    .trim()
    .to_string();
    let logs = root.join("target/time-fresh");
    std::fs::create_dir_all(&logs)?;
    let mut runs = Vec::new();
    for cmd in commands {
        let tmp = std::env::temp_dir().join(format!("tinyvae-fresh-{cmd}-{}", std::process::id()));
        let r = fresh_state(&root, &tmp, apt).and_then(|(clone, home, path)| {
            timed(&clone, &home, &path, cmd, &logs.join(format!("{cmd}.log")))
        });
        if !keep {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        runs.push(r?);
    }
    let mut removed = vec!["the pinned toolchain's thumb targets"];
    if apt {
        removed.push("QEMU and the Arm GCC (apt)");
    }
    let mut md = format!(
        "# The README's two commands, each from a clean clone\n\n\
         Commit {commit}, on {} ({} cores), {}. Each command from its own fresh state: a clone \
         of the commit, an empty Cargo home (every crate downloaded and compiled, defmt-print \
         and cbindgen installed again), and removed before it so that the command installs \
         them again: {}. The pinned Rust toolchain itself stays (the machine's one \
         toolchain), and apt may reinstall from its local cache of packages. Reproduce: \
         `cargo xtask time-fresh{}` (as root for `--apt`).\n\n\
         | command | wall-clock time | its summary |\n|---|---:|---|\n",
        crate::bench::cpu_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        String::from_utf8_lossy(
            &Command::new("date")
                .arg("-u")
                .arg("+%Y-%m-%d")
                .output()?
                .stdout
        )
        .trim(),
        removed.join(", "),
        if apt { " --apt" } else { "" }
    );
    for r in &runs {
        md += &format!(
            "| `cargo xtask {}` | {} | {} |\n",
            r.args,
            minutes(r.seconds),
            r.tail.join("; ")
        );
    }
    if only.is_some() {
        print!("{md}");
        println!("(--only: results/fresh-times.md left as it was)");
        return Ok(());
    }
    let out = root.join("results/fresh-times.md");
    std::fs::write(&out, &md)?;
    print!("{md}");
    println!("wrote {}", out.display());
    Ok(())
}
