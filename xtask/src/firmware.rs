//! Building the firmware and running it under QEMU with its defmt log decoded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{project_root, run};

/// Every board, from the one description firmware/build.rs also reads.
mod boards {
    #![allow(dead_code)]
    include!("../../firmware/boards/boards.rs");
}
pub use boards::{Board, Log, Role, BOARDS};

/// The boards with `role`, in the table's order.
pub fn with_role(role: Role) -> Vec<Board> {
    BOARDS.iter().copied().filter(|b| b.role == role).collect()
}

/// The emulated boards the models run on (Cortex-M4F, M3, M7, M33, and the Cortex-M0 build
/// on the AN385).
pub fn qemu_boards() -> Vec<Board> {
    with_role(Role::Emulated)
}

/// Every command's default board: the first emulated one (the Cortex-M4F).
pub fn default_board() -> Board {
    qemu_boards()[0]
}

/// The small emulated board (Cortex-M0, 256 KiB flash, 16 KiB RAM): too small for the
/// default model, it runs the self-test and the `conv-mcu` decoder-only model.
pub fn m0_board() -> Board {
    with_role(Role::EmulatedSmall)[0]
}

/// The emulated board that runs the Cortex-M0 build (ARMv6-M) with room for every model:
/// QEMU's AN385, whose Cortex-M3 runs and counts the very instructions an M0 would.
pub fn m0_code_board() -> Board {
    let m0 = m0_board();
    qemu_boards()
        .into_iter()
        .find(|b| b.target == m0.target)
        .unwrap_or(m0)
}

/// Real boards: built with their HAL (defmt over RTT), flashed with probe-rs by
/// `cargo xtask flash --board NAME`.
pub fn real_boards() -> Vec<Board> {
    with_role(Role::Real)
}

/// The B-L475E-IOT01A Discovery kit: a real board that QEMU emulates, one image for both
/// (defmt over its UART, the counter's unit found at boot). 96 KiB of RAM: no room for the
/// kernel checks' layers.
pub fn discovery() -> Board {
    with_role(Role::EmulatedKit)[0]
}

/// Every emulated board, for the self-test and the harness checks.
pub fn selftest_boards() -> Vec<Board> {
    let mut v = qemu_boards();
    v.push(m0_board());
    v.push(discovery());
    v
}

/// Looks a board up by name.
pub fn board(name: &str) -> Result<Board> {
    boards::board_named(name).with_context(|| {
        let names: Vec<_> = BOARDS.iter().map(|b| b.name).collect();
        format!("unknown board {name:?}; boards: {}", names.join(", "))
    })
}

/// The firmware workspace.
pub fn dir() -> PathBuf {
    project_root().join("firmware")
}

static DEBIAN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// From now on, build for thumb targets with the Debian fallback toolchain extracted at `root`.
pub fn use_debian_toolchain(root: PathBuf) {
    let _ = DEBIAN.set(root);
}

/// True when thumb builds use the Debian fallback instead of rustup's targets.
pub fn using_debian_toolchain() -> bool {
    DEBIAN.get().is_some()
}

/// Where `board`'s build goes: the firmware's `target/` (`target/debian-rust/` with the
/// fallback toolchain); boards with a debug probe (real boards, emulated or not) in a folder of
/// their own, because they share targets with the emulated boards but not dependencies.
pub fn target_dir(board: Board) -> PathBuf {
    let base = if using_debian_toolchain() {
        dir().join("target").join("debian-rust")
    } else {
        dir().join("target")
    };
    if board.probe.is_none() {
        base
    } else {
        base.join(board.name)
    }
}

/// Cargo `--config` arguments that remap the checkout's and cargo's source paths in the
/// firmware (panic locations keep file names): the image, its flash size included, is the same
/// wherever the repository and the registry live.
pub fn remap_paths(target: &str) -> [String; 2] {
    let root = project_root();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    [
        "--config".into(),
        format!(
            "target.{target}.rustflags=[\"--remap-path-prefix={}=/tinyvae\", \
             \"--remap-path-prefix={}=/cargo\"]",
            root.display(),
            cargo_home.join("registry").join("src").display()
        ),
    ]
}

/// A `cargo build` for `board` in `cwd`: rustup's cargo, or with the Debian fallback,
/// Debian's cargo and rustc building `core` from source, linked by Debian's lld.
pub fn thumb_cargo(cwd: &Path, board: Board) -> Command {
    let target = board.target;
    let mut cmd;
    match DEBIAN.get() {
        None => {
            cmd = Command::new("cargo");
            cmd.current_dir(cwd)
                .args(["build", "--release", "--target", target])
                .arg("--target-dir")
                .arg(target_dir(board))
                .args(remap_paths(target));
        }
        Some(root) => {
            let usr = root.join("usr");
            let lld = std::fs::read_dir(usr.join("lib"))
                .ok()
                .and_then(|d| {
                    d.flatten()
                        .map(|e| e.path().join("bin/ld.lld"))
                        .find(|p| p.exists())
                })
                .unwrap_or_else(|| usr.join("bin/ld.lld"));
            let lib = |p: &str| usr.join(p).display().to_string();
            let llvm_lib = lld.parent().and_then(Path::parent).map(|p| p.join("lib"));
            let mut ld_path = vec![lib("lib/x86_64-linux-gnu")];
            if let Some(l) = llvm_lib {
                ld_path.push(l.display().to_string());
            }
            cmd = Command::new(usr.join("bin/cargo"));
            cmd.current_dir(cwd)
                .env_remove("RUSTUP_TOOLCHAIN")
                .env("RUSTC", usr.join("bin/rustc"))
                .env("RUSTC_BOOTSTRAP", "1")
                .env("LD_LIBRARY_PATH", ld_path.join(":"))
                .args(["build", "--release", "--target", target])
                .arg("--target-dir")
                .arg(target_dir(board))
                .args(remap_paths(target))
                .args([
                    "-Zbuild-std=core,compiler_builtins",
                    "-Zbuild-std-features=compiler-builtins-mem",
                ])
                .arg("--config")
                .arg(format!("target.{target}.linker=\"{}\"", lld.display()));
        }
    }
    cmd
}

/// Builds every firmware binary for `board` (release profile) and returns the ELF folder.
pub fn build(board: Board, envs: &[(&str, String)]) -> Result<PathBuf> {
    build_bins(board, &[], envs)
}

/// Builds the firmware binaries named (all of them when `bins` is empty) for `board` and
/// returns the ELF folder. Each binary is linked with fat LTO on one core: building only the
/// one a run needs saves seconds per model in `cargo xtask test`.
///
/// Every build has the firmware's `classes` feature (drawing each class of a prior grouped
/// by class) but the size-profile budget build (`kernels::size_profile_with`); a build of a
/// model with a second-stage prior has `second-stage` too.
pub fn build_bins(board: Board, bins: &[&str], envs: &[(&str, String)]) -> Result<PathBuf> {
    let mut cmd = thumb_cargo(&dir(), board);
    if bins.is_empty() {
        cmd.arg("--bins");
    } else {
        for b in bins {
            cmd.args(["--bin", b]);
        }
    }
    cmd.args([
        "--no-default-features",
        "--features",
        &features_for(board, envs),
    ]);
    // Never through clippy-driver: it builds with MIR optimizations off, so a linted build
    // is not the image a user flashes (88 bytes of .text apart on the Discovery kit). The
    // lint group runs `cargo clippy` on every board instead.
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run(&mut cmd).with_context(|| format!("building the firmware for {}", board.name))?;
    Ok(elf_dir(board))
}

/// The firmware features of a build for `board`: the board's and `classes`.
pub fn features(board: Board) -> String {
    format!("{},classes", board.feature)
}

/// [`features`], and `second-stage` when the model a build embeds (`TINYVAE_MODEL` in
/// `envs`) has a second-stage prior: a firmware pays for that code only with such a model.
fn features_for(board: Board, envs: &[(&str, String)]) -> String {
    let second_stage = envs
        .iter()
        .filter(|(k, _)| *k == "TINYVAE_MODEL")
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .any(|blob| {
            tinyvae_format::Model::from_bytes(&blob).is_ok_and(|m| m.prior.second_stage().is_some())
        });
    if second_stage {
        format!("{},second-stage", features(board))
    } else {
        features(board)
    }
}

/// Builds `boards`' `vae` firmware with `model` at a lower priority, its output to `log`:
/// run in a background thread, the boards' HALs and the engine compile on the core the
/// emulated boards' runs leave idle, and the real build later (with another model) recompiles
/// only the firmware crate. Errors are left to that later build, which reports them.
pub fn warm_up(boards: &[Board], model: &Path, log: &Path) {
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let Ok(file) = std::fs::File::create(log) else {
        return;
    };
    for &board in boards {
        let mut cmd = niced(&thumb_cargo(&dir(), board));
        cmd.args(["--bin", "vae", "--no-default-features", "--features"])
            .arg(features(board))
            .env("TINYVAE_MODEL", model);
        let (Ok(out), Ok(err)) = (file.try_clone(), file.try_clone()) else {
            return;
        };
        let _ = cmd.stdout(out).stderr(err).status();
    }
}

/// `base` under `nice`, so that what runs in the foreground always comes first.
pub fn niced(base: &Command) -> Command {
    let mut cmd = Command::new("nice");
    cmd.arg("-n").arg("15").arg(base.get_program());
    cmd.args(base.get_args());
    if let Some(cwd) = base.get_current_dir() {
        cmd.current_dir(cwd);
    }
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// The folder of `board`'s release ELFs (where [`build`] puts them).
pub fn elf_dir(board: Board) -> PathBuf {
    target_dir(board).join(board.target).join("release")
}

/// `defmt-print` decoding `elf`'s frames from `frames` (QEMU's output, or a serial port);
/// returns it and its decoded output.
pub fn decode(
    elf: &Path,
    frames: Stdio,
) -> Result<(std::process::Child, std::process::ChildStdout)> {
    let mut decoder = Command::new("defmt-print")
        .arg("-e")
        .arg(elf)
        .arg("stdin")
        .stdin(frames)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting defmt-print")?;
    let decoded = decoder.stdout.take().context("defmt-print stdout")?;
    Ok((decoder, decoded))
}

/// What a firmware run ended with.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code from semihosting, or None when the run was stopped at its time limit.
    pub code: Option<i32>,
    /// The decoded defmt log.
    pub log: String,
}

/// Runs `elf` on the board's QEMU machine, decodes its defmt output, stops it after `limit`.
pub fn run_qemu(board: Board, elf: &Path, limit: Duration) -> Result<Outcome> {
    run_qemu_with(board, elf, limit, &[])
}

/// [`run_qemu`] with extra QEMU arguments (a TCG plugin, say).
pub fn run_qemu_with(
    board: Board,
    elf: &Path,
    limit: Duration,
    extra: &[String],
) -> Result<Outcome> {
    run_qemu_as(board, elf, limit, extra, true)
}

/// [`run_qemu`] for a firmware that prints text (not defmt frames) over semihosting: the
/// examples, written as a user would.
pub fn run_qemu_text(board: Board, elf: &Path, limit: Duration) -> Result<Outcome> {
    run_qemu_as(board, elf, limit, &[], false)
}

/// Runs `elf` under QEMU, its output decoded as defmt (`defmt`) or read as text.
fn run_qemu_as(
    board: Board,
    elf: &Path,
    limit: Duration,
    extra: &[String],
    defmt: bool,
) -> Result<Outcome> {
    let machine = board
        .machine
        .with_context(|| format!("{} is not an emulated board", board.name))?;
    // The defmt frames on QEMU's standard output: semihosting writes, or the first UART.
    let serial = match board.log {
        Log::Uart(_) => "stdio",
        _ => "none",
    };
    let mut qemu = Command::new("qemu-system-arm")
        .args([
            "-machine",
            machine,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            serial,
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-icount")
        .arg(format!("shift={},align=off,sleep=off", board.icount_shift))
        .args(extra)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-arm")?;
    let frames = qemu.stdout.take().context("qemu stdout")?;
    let (mut decoder, mut decoded): (Option<std::process::Child>, Box<dyn Read + Send>) = if defmt {
        let (d, out) = decode(elf, frames.into())?;
        (Some(d), Box::new(out))
    } else {
        (None, Box::new(frames))
    };
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = decoded.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = qemu.try_wait()? {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(d) = decoder.as_mut() {
        let _ = d.wait();
    }
    let log = reader.join().unwrap_or_default();
    if code.is_some() {
        let mut err = String::new();
        if let Some(mut e) = qemu.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        if !err.trim().is_empty() {
            eprint!("{err}");
        }
    }
    Ok(Outcome { code, log })
}

/// Compares a run's log with the committed expected output `firmware/expected/NAME.out`.
/// With `BLESS=1` in the environment, writes the file instead.
pub fn check_expected(name: &str, log: &str) -> Result<()> {
    let path = dir().join("expected").join(format!("{name}.out"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(&path, log)?;
        println!("  blessed {}", path.display());
        return Ok(());
    }
    let want = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run with BLESS=1 to create it)", path.display()))?;
    if want != log {
        bail!(
            "output differs from {}:\n--- expected\n{want}--- got\n{log}---",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared table and the firmware's Cargo features agree, and the groups above are
    /// the boards they say.
    #[test]
    fn every_board_has_its_feature_and_its_place() {
        let toml = std::fs::read_to_string(dir().join("Cargo.toml")).unwrap();
        for b in BOARDS {
            assert!(
                toml.lines()
                    .any(|l| l.starts_with(&format!("{} = [", b.feature))),
                "firmware/Cargo.toml declares no feature {}",
                b.feature
            );
            assert!(b.machine.is_some() || b.probe.is_some(), "{}", b.name);
            // One image for QEMU and the chip needs a log both can carry.
            if b.machine.is_some() && b.probe.is_some() {
                assert!(matches!(b.log, Log::Uart(_)), "{}", b.name);
            }
            let log_feature = match b.log {
                Log::Semihosting => "semihosting-log",
                Log::Rtt => "rtt-log",
                Log::Uart(_) => "uart-log",
            };
            let line = toml
                .lines()
                .find(|l| l.starts_with(&format!("{} = [", b.feature)))
                .unwrap();
            assert!(line.contains(log_feature), "{}: {line}", b.name);
        }
        assert!(toml.contains("default = [\"qemu-mps2-an386\", \"classes\"]"));
    }

    /// Every board's role agrees with its facts, and every board is exercised by the test:
    /// the roles' lists cover the table, one board each where a single one is expected.
    #[test]
    fn every_board_has_a_role_its_facts_allow() {
        for b in BOARDS {
            let emulated = b.machine.is_some();
            let real = b.probe.is_some();
            let ok = match b.role {
                Role::Emulated | Role::EmulatedSmall => emulated && !real,
                Role::EmulatedKit => emulated && real,
                Role::Real => !emulated && real,
            };
            assert!(
                ok,
                "{}: role {:?} with machine {:?}, probe {:?}",
                b.name, b.role, b.machine, b.probe
            );
            if let Some(other) = b.same_code_as {
                let o = boards::board_named(other).expect("same_code_as names a board");
                assert_eq!((o.target, o.dsp), (b.target, b.dsp), "{}", b.name);
            }
        }
        assert_eq!(with_role(Role::EmulatedSmall).len(), 1);
        assert_eq!(with_role(Role::EmulatedKit).len(), 1);
        assert_eq!(default_board().name, "mps2-an386");
        assert_eq!(m0_board().target, "thumbv6m-none-eabi");
        assert_eq!(m0_code_board().target, m0_board().target);
        assert_eq!(m0_code_board().role, Role::Emulated);
        let mut tested: Vec<&str> = selftest_boards().iter().map(|b| b.name).collect();
        tested.extend(real_boards().iter().map(|b| b.name));
        tested.sort_unstable();
        let mut all: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        all.sort_unstable();
        assert_eq!(
            tested, all,
            "every board is in exactly one of the test's lists"
        );
    }

    /// The rustflags firmware/.cargo/config.toml gives `target`, encoded as Cargo passes them
    /// to build scripts (separated by 0x1f).
    fn config_rustflags(target: &str) -> String {
        let cfg = std::fs::read_to_string(dir().join(".cargo/config.toml")).unwrap();
        let header = format!("[target.{target}]");
        let section = cfg.split(&header).nth(1).unwrap_or("");
        let line = section
            .lines()
            .take_while(|l| !l.starts_with('['))
            .find(|l| l.starts_with("rustflags"))
            .unwrap_or("");
        let flags: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        flags.join("\x1f")
    }

    /// Each board's `dsp` is what the engine decides for its target and its flags: the boards
    /// that claim the DSP kernel build it, and the others cannot run it by surprise.
    #[test]
    fn every_board_says_whether_the_dsp_kernel_runs() {
        for b in BOARDS {
            let flags = config_rustflags(b.target);
            assert_eq!(
                tinyvae_engine::dsp_rule::has_dsp_extension(b.target, &flags, ""),
                b.dsp,
                "{}: target {}, flags {flags:?}",
                b.name,
                b.target
            );
        }
        assert!(config_rustflags("thumbv8m.main-none-eabihf").contains("target-cpu=cortex-m33"));
    }

    /// The memory.x build.rs writes: the RP2040's bootloader region in front of its program.
    #[test]
    fn memory_x() {
        let rp = boards::board_named("rp2040").unwrap();
        let m = boards::memory_x(&rp);
        assert!(
            m.contains("BOOT2 : ORIGIN = 0x10000000, LENGTH = 0x100"),
            "{m}"
        );
        assert!(
            m.contains("FLASH : ORIGIN = 0x10000100, LENGTH = 0x1fff00"),
            "{m}"
        );
        assert!(m.contains("KEEP(*(.boot2))"));
        let m33 = boards::memory_x(&boards::board_named("mps2-an505").unwrap());
        assert!(
            m33.contains(
                "FLASH : ORIGIN = 0x10000000, LENGTH = 0x400000\n  RAM   : ORIGIN = 0x38000000"
            ),
            "{m33}"
        );
        let rp2350 = boards::memory_x(&boards::board_named("rp2350").unwrap());
        assert!(
            rp2350.contains("KEEP(*(.start_block))")
                && rp2350.contains("INSERT AFTER .vector_table"),
            "{rp2350}"
        );
        let m0 = boards::memory_x(&m0_board());
        assert!(
            m0.contains("LENGTH = 0x40000\n  RAM   : ORIGIN = 0x20000000, LENGTH = 0x4000"),
            "{m0}"
        );
    }
}
