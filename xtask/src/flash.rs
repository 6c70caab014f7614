//! `cargo xtask flash --board NAME [--model FILE] [--build-only] [--probe SELECTOR] [--port PATH]`:
//! builds the `vae` firmware for a real board with `FILE` embedded (by default the model `cargo
//! xtask demo` exported), refuses a model that does not fit, flashes and runs it with `probe-rs
//! run`, shows its defmt log line by line as it arrives, and holds the samples it generated
//! (from the seed it prints) against the host engine's.
//!
//! The log comes by RTT through probe-rs, or, on a board whose log is a UART (the
//! B-L475E-IOT01A), from the debug probe's virtual COM port, decoded by `defmt-print` as under
//! QEMU: the image is the one `cargo xtask test` runs there.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::firmware::{self, Board, Log};
use crate::{pipeline, project_root, setup};

/// How long a board may run before xtask stops waiting: a whole session on the slowest board
/// here takes well under a minute.
const DEADLINE: Duration = Duration::from_secs(300);

struct Args {
    board: Board,
    model: PathBuf,
    build_only: bool,
    probe: Option<String>,
    port: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let usage = "usage: cargo xtask flash --board NAME [--model FILE] [--build-only] \
                 [--probe VID:PID[:SERIAL]] [--port SERIAL_PORT]";
    let (mut board, mut model, mut build_only, mut probe, mut port) =
        (None, None, false, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--board" => board = Some(it.next().context(usage)?.clone()),
            "--model" => model = Some(PathBuf::from(it.next().context(usage)?)),
            "--build-only" => build_only = true,
            "--probe" => probe = Some(it.next().context(usage)?.clone()),
            "--port" => port = Some(PathBuf::from(it.next().context(usage)?)),
            other => bail!("unknown argument {other:?}\n{usage}"),
        }
    }
    Ok(Args {
        board: firmware::board(&board.context(usage)?)?,
        model: model.unwrap_or_else(|| project_root().join("out/demo-run/model.tvae")),
        build_only,
        probe,
        port,
    })
}

/// The command.
pub fn flash(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let board = a.board;
    let Some(chip) = board.probe else {
        bail!(
            "{} is an emulated board: use `cargo xtask demo` or `cargo xtask qemu {} vae --model FILE`",
            board.name,
            board.name
        );
    };
    setup::thumb_targets()?;
    if !a.model.exists() {
        bail!(
            "no model at {}: run `cargo xtask demo` first, or pass --model FILE",
            a.model.display()
        );
    }
    let (elf, _) = pipeline::build_for_board(board, &a.model)?;
    let fit = pipeline::fit(board, &a.model)?;
    println!(
        "[flash] {} ({}): {}",
        board.name,
        board.cpu,
        fit.line(board)
    );
    println!(
        "[flash] image {}: sha256 {}",
        elf.display(),
        crate::elf::sha256(&std::fs::read(&elf)?)
    );
    if a.build_only {
        return Ok(());
    }
    setup::probe_rs()?;
    let mut probe_rs = Command::new("probe-rs");
    // A HardFault reaches the firmware's own handler, which prints its exit line (probe-rs
    // would stop the core first and the reason would be lost).
    probe_rs.args(["run", "--chip", chip, "--no-catch-hardfault"]);
    if chip.starts_with("nRF52") {
        // A rev-3 nRF52840 whose debug port is locked (APPROTECT) can only be opened by a full
        // erase; the firmware then keeps it open across resets (src/board/nrf52840dk.rs). On a blank
        // UICR (what the erase leaves) the firmware programs it and resets itself once: the
        // run goes on across that reset.
        probe_rs.args(["--allow-erase-all", "--no-catch-reset"]);
    }
    if let Some(p) = &a.probe {
        probe_rs.args(["--probe", p]);
    }
    let (log, status) = match board.log {
        Log::Uart(baud) => run_over_uart(&mut probe_rs, &elf, baud, a.port.as_deref())?,
        _ => run_over_rtt(&mut probe_rs, &elf)?,
    };
    check_board_run(board, &a.model, &log, status)
}

/// Lines of `out` as they arrive, printed and kept, until `done` says the run is over (with
/// whether it succeeded) or the deadline passes. With `from_boot`, lines before the
/// firmware's `boot` line are a previous run's (a serial port opened before the board was
/// reset): shown as such, never kept.
fn stream(
    out: impl Read + Send + 'static,
    from_boot: bool,
    mut done: impl FnMut() -> Result<Option<bool>>,
) -> Result<(String, bool)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut log = String::new();
    let keep = |line: String, log: &mut String| {
        // defmt-print's location lines (" [...]") are left out of the echo.
        if !line.contains(" [") {
            println!("  {line}");
        }
        *log += &line;
        log.push('\n');
    };
    let mut booted = !from_boot;
    let status = loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if !booted {
                booted = line.split_whitespace().next() == Some(tinyvae_protocol::keyword::BOOT);
                if !booted {
                    println!("  (a previous run's output, ignored) {line}");
                    continue;
                }
            }
            // The firmware's `exit CODE` line ends the run, whether or not the probe sees the
            // semihosting exit that follows it (a board with no debugger to answer sleeps).
            let exit = tinyvae_protocol::log::parse(&line).exit;
            keep(line, &mut log);
            match exit {
                Some(code) => break code == 0,
                None => continue,
            }
        }
        if let Some(ok) = done()? {
            break ok;
        }
        if start.elapsed() > DEADLINE {
            bail!(
                "the board did not finish within {} s; its log so far:\n{log}",
                DEADLINE.as_secs()
            );
        }
    };
    // What is still on its way.
    let drain = Instant::now() + Duration::from_millis(500);
    while let Ok(line) = rx.recv_timeout(drain.saturating_duration_since(Instant::now())) {
        keep(line, &mut log);
    }
    Ok((log, status))
}

/// Stops the processes it holds when dropped (at the end, on an error, at the deadline).
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            stop(c);
        }
    }
}

/// Ends a child that has not ended: an interrupt first (probe-rs then detaches from the core
/// and leaves debug mode, as on Ctrl-C), a kill only if it is still there 3 s later.
fn stop(c: &mut Child) {
    if matches!(c.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// `probe-rs run` with its RTT log on standard output; it ends when the firmware's
/// semihosting exit reaches it.
fn run_over_rtt(probe_rs: &mut Command, elf: &Path) -> Result<(String, bool)> {
    let mut child = probe_rs
        .args(["--log-format", "{s}"])
        .arg(elf)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting probe-rs")?;
    let out = child.stdout.take().context("probe-rs stdout")?;
    let mut reap = Reap(vec![child]);
    stream(out, false, || {
        Ok(reap.0[0].try_wait()?.map(|s| s.success()))
    })
}

/// The debug probe's virtual COM port: the one named, else the only ST-LINK under
/// /dev/serial/by-id.
fn find_port(named: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = named {
        return Ok(p.to_path_buf());
    }
    let dir = Path::new("/dev/serial/by-id");
    let ports: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().to_ascii_lowercase().contains("stlink"))
                .collect()
        })
        .unwrap_or_default();
    match ports.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no ST-LINK virtual COM port under {} (is the board connected by its USB ST-LINK \
             connector?): name the port with --port, e.g. --port /dev/ttyACM0",
            dir.display()
        ),
        many => bail!(
            "several ST-LINK ports: {}; choose one with --port (and the probe with --probe)",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `probe-rs run` flashes and starts the board; its log arrives on the serial port, which
/// `defmt-print` decodes as it does QEMU's `-serial` output.
fn run_over_uart(
    probe_rs: &mut Command,
    elf: &Path,
    baud: u32,
    port: Option<&Path>,
) -> Result<(String, bool)> {
    let port = find_port(port)?;
    let ok = Command::new("stty")
        .arg("-F")
        .arg(&port)
        // 8 data bits, no parity, one stop bit (8N1), whatever the port was left at.
        .args([
            &baud.to_string(),
            "raw",
            "-echo",
            "cs8",
            "-parenb",
            "-cstopb",
        ])
        .status()
        .with_context(|| format!("stty on {}", port.display()))?
        .success();
    if !ok {
        bail!("cannot set {} to {baud} baud (stty failed)", port.display());
    }
    let serial = std::fs::File::open(&port)
        .with_context(|| format!("{}: cannot open the serial port", port.display()))?;
    let (decoder, out) = firmware::decode(elf, serial.into())?;
    // probe-rs's own messages (flashing, a probe error) go to the terminal.
    let runner = probe_rs
        .arg(elf)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting probe-rs")?;
    let mut reap = Reap(vec![runner, decoder]);
    // The firmware ends with a semihosting exit, which probe-rs, attached, turns into its own.
    stream(out, true, || Ok(reap.0[0].try_wait()?.map(|s| s.success())))
}

/// Holds a board's log to the host engine and writes its samples as a PNG.
fn check_board_run(board: Board, model: &Path, log: &str, status_ok: bool) -> Result<()> {
    let dev = pipeline::parse(log);
    if !status_ok {
        // probe-rs turns every non-zero exit into 1: the firmware's own exit line names it.
        match dev.exit {
            Some(code) => bail!(
                "the firmware on the board ended with exit {code} ({}); its log is above",
                tinyvae_protocol::exit_name(code)
            ),
            None => bail!(
                "probe-rs ended before the firmware printed its exit line: probe-rs's own \
                 messages above say why (a probe that is not connected or not found, a \
                 locked chip, a flashing error); the firmware's log so far is above too"
            ),
        }
    }
    let (_, seed) = dev.announced.context("the board printed no seed")?;
    let n = pipeline::check_outputs_match(model, seed, &dev, true)?;
    println!("[flash] the {n} images made on the board (seed {seed}) equal the host engine's");
    let blob = std::fs::read(model)?;
    let m =
        tinyvae_format::Model::from_bytes(&blob).with_context(|| format!("{}", model.display()))?;
    let png = project_root()
        .join("out")
        .join(format!("samples-{}.png", board.name));
    pipeline::write_samples_png(&png, &dev, pipeline::Shape::of(&m))?;
    println!("[flash] wrote {}", png.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines are kept in order as they arrive, those still in the pipe when the run ends
    /// included, and the run's status is the one `done` reports.
    #[test]
    fn stream_keeps_every_line_and_the_status() {
        let mut child = Command::new("sh")
            .args(["-c", "echo one; sleep 0.2; echo two; exit 3"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut reap = Reap(vec![child]);
        let (log, ok) = stream(out, false, || {
            Ok(reap.0[0].try_wait()?.map(|s| s.success()))
        })
        .unwrap();
        assert_eq!(log, "one\ntwo\n");
        assert!(!ok);
    }

    /// The log's `exit` line ends the run, with its code, even if the process goes on.
    #[test]
    fn the_exit_line_ends_the_run() {
        let mut child = Command::new("sh")
            .args(["-c", "echo one; echo 'exit 0'; sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut reap = Reap(vec![child]);
        let t = Instant::now();
        let (log, ok) = stream(out, false, || {
            Ok(reap.0[0].try_wait()?.map(|s| s.success()))
        })
        .unwrap();
        assert!(ok && log.starts_with("one\nexit 0\n"), "{log}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    /// A serial port opened before the reset holds the previous run's tail, its exit line
    /// included: with `from_boot`, the log starts at this run's `boot` line, and only this
    /// run's exit line ends it.
    #[test]
    fn a_previous_runs_lines_are_left_out() {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "echo 'sample 4 [1]'; echo 'exit 3'; echo 'boot vae'; echo 'sample 0 [2]'; \
                 echo 'exit 0'; sleep 30",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut reap = Reap(vec![child]);
        let (log, ok) =
            stream(out, true, || Ok(reap.0[0].try_wait()?.map(|s| s.success()))).unwrap();
        assert!(
            ok && log.starts_with("boot vae\nsample 0 [2]\nexit 0\n"),
            "{log}"
        );
    }

    /// A child is interrupted, not killed, where it ends on the interrupt (probe-rs then
    /// detaches).
    #[test]
    fn a_child_is_interrupted_first() {
        // The shell says when its trap is set: interrupted before that (a busy machine
        // can take longer than any fixed wait to start it), it would die of the signal.
        let mut sh = Command::new("sh");
        sh.args(["-c", "trap 'exit 7' INT; echo ready; sleep 30 & wait"])
            .stdout(Stdio::piped());
        // A shell cannot trap a signal ignored when it started, as SIGINT is under a
        // background job of a non-interactive shell (a CI script's `cmd &`): the child
        // starts with SIGINT's default disposition.
        // SAFETY: `signal` is async-signal-safe, as code between fork and exec must be; it
        // changes only the child's disposition of SIGINT.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut sh, || {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = sh.spawn().unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready, "ready\n");
        stop(&mut child);
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn a_named_port_is_taken_as_named() {
        let p = Path::new("/dev/ttyACM7");
        assert_eq!(find_port(Some(p)).unwrap(), p);
    }
}
