//! `cargo xtask`: the project's automation. Every command checks and installs its own
//! prerequisites first, so the README needs no set-up step.
//!
//! ```text
//! cargo xtask demo              the main job (see README.md)
//! cargo xtask test              every test: lints, host tests, firmware under QEMU
//! cargo xtask setup             only install or check the prerequisites
//! cargo xtask qemu BOARD BIN [--model FILE]  build and run one firmware binary under QEMU
//! ```

mod bench;
mod cycles;
mod elf;
mod firmware;
mod float;
mod kernels;
mod logs;
mod pipeline;
mod quality;
mod setup;

use std::path::{Path, PathBuf};
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
        Some("demo") => demo(&args[1..]),
        Some("qemu") => qemu(&args[1..]),
        Some("fallback-check") => fallback_check(),
        Some("bench-train") => bench::train(&args[1..]),
        Some("quality") => quality::run(&args[1..]),
        Some("bench-ops") => bench::ops(),
        Some("counts") => counts(),
        Some("bench") => kernels::bench(),
        Some("flash") => flash(&args[1..]),
        Some("f32") => float::bench(),
        Some("cycles") => cycles::bench(),
        Some("logs") => logs::regenerate(),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  demo [--run RUN_DIR]\n                    train (or take RUN_DIR's checkpoint), \
                 export, run on the emulated board, show samples and counts\n  test              every test: lints, host tests, firmware under QEMU\n  \
                 setup             install or check the prerequisites only\n  qemu BOARD BIN [--model FILE]\n                    \
                 build and run one firmware binary (boards: mps2-an386, mps2-an385, microbit)\n  \
                 fallback-check    build and run the self-test with the Debian toolchain fallback\n  \
                 bench-train DATA DENSE_SCRIPT CONV_SCRIPT [EPOCHS] [SEED]\n                    \
                 training speed and test -ELBO of both models beside the PyTorch reference scripts\n  \
                 bench-ops         training ops per call, candle's beside the fused ones (results/train-ops.md)\n  \
                 quality DATA DENSE_SCRIPT CONV_SCRIPT [EPOCHS]\n                    \
                 both VAEs beside PyTorch over three seeds; every preset's -ELBO, sample score and size\n  \
                 counts            instructions per inference and layer, flash and RAM, every preset and board\n  \
                 bench             instructions per dense layer and per MAC for each kernel (results/kernels.md)\n  \
                 f32               the f32 decoder path beside int8: instructions, flash, PSNR (results/f32-vs-int8.md)\n  \
                 cycles            Cortex-M4 cycles estimated from the executed instruction mix (results/m4-cycle-estimate.md)\n  \
                 logs              the firmware logs the shared log parser is tested on (protocol/tests/logs/)\n  \
                 flash --board NAME [--model FILE] [--build-only]\n                    \
                 build the firmware for a real board (nrf52840dk, rp2040) with a model, flash it\n                    \
                 with probe-rs, print its log and hold its samples against the host engine"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Exercises the fallback for machines where rustup cannot download the thumb targets:
/// extracts Debian's Rust, builds the firmware with `-Zbuild-std=core`, runs the self-test.
fn fallback_check() -> Result<()> {
    let start = Instant::now();
    setup::qemu()?;
    setup::defmt_print()?;
    let root = setup::debian_rust()?;
    println!(
        "[fallback] toolchain ready in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    firmware::use_debian_toolchain(root);
    let board = firmware::QEMU_BOARDS[0];
    let elfs = firmware::build(board, &[])?;
    println!(
        "[fallback] firmware built in {:.0} s in all",
        start.elapsed().as_secs_f64()
    );
    let out = firmware::run_qemu(board, &elfs.join("selftest"), Duration::from_secs(120))?;
    print!("{}", out.log);
    if out.code != Some(0) {
        bail!(
            "the self-test built with Debian's Rust ended with {:?}",
            out.code
        );
    }
    firmware::check_expected("selftest", &out.log)?;
    let size = |p: &std::path::Path| {
        Command::new("du").arg("-sh").arg(p).output().ok().map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string()
        })
    };
    println!(
        "[fallback] ok in {:.0} s; disk: toolchain {}, packages {}",
        start.elapsed().as_secs_f64(),
        size(&setup::debian_root()).unwrap_or_default(),
        size(&project_root().join(".tools/debs")).unwrap_or_default()
    );
    Ok(())
}

fn qemu(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask qemu BOARD BIN [--model FILE]";
    let (board, bin, model) = match args {
        [board, bin] => (board, bin, None),
        [board, bin, flag, file] if flag == "--model" => (board, bin, Some(PathBuf::from(file))),
        _ => bail!("{usage}"),
    };
    setup::all()?;
    let board = firmware::board(board)?;
    // The binaries that run a model embed one: the file given, or the demo's.
    let needs_model = matches!(bin.as_str(), "vae" | "cycles" | "f32dec");
    let elfs = match (model, needs_model) {
        (Some(m), _) => pipeline::build_with_model(board, &m, &[])?,
        (None, true) => {
            let demo = project_root().join("out/demo-run/model.tvae");
            if !demo.exists() {
                bail!(
                    "{bin} runs a model: pass --model FILE, or run `cargo xtask demo` first \
                     to export {}",
                    demo.display()
                );
            }
            pipeline::build_with_model(board, &demo, &[])?
        }
        (None, false) => firmware::build(board, &[])?,
    };
    let out = firmware::run_qemu(board, &elfs.join(bin), Duration::from_secs(300))?;
    print!("{}", out.log);
    match out.code {
        Some(0) => Ok(()),
        Some(c) => bail!("{bin} on {} exited with code {c}", board.name),
        None => bail!("{bin} on {} did not finish in time", board.name),
    }
}

/// `cargo xtask flash --board NAME [--model FILE] [--build-only]`: builds the `vae` firmware for
/// a real board with `FILE` embedded (by default the model `cargo xtask demo` exported), refuses
/// a model that does not fit, flashes it with `probe-rs run`, shows its defmt log, and holds the
/// samples it generated (from the seed its hardware RNG drew, which it prints) against the host
/// engine's.
fn flash(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask flash --board NAME [--model FILE] [--build-only]";
    let (mut board, mut model, mut build_only) = (None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--board" => board = Some(it.next().context(usage)?.clone()),
            "--model" => model = Some(PathBuf::from(it.next().context(usage)?)),
            "--build-only" => build_only = true,
            other => bail!("unknown argument {other:?}\n{usage}"),
        }
    }
    let board = firmware::board(&board.context(usage)?)?;
    let Some(chip) = board.probe else {
        bail!(
            "{} is an emulated board: use `cargo xtask demo` or `cargo xtask qemu {} vae`",
            board.name,
            board.name
        );
    };
    setup::thumb_targets()?;
    let model = model.unwrap_or_else(|| project_root().join("out/demo-run/model.tvae"));
    if !model.exists() {
        bail!(
            "no model at {}: run `cargo xtask demo` first, or pass --model FILE",
            model.display()
        );
    }
    let (elf, f) = pipeline::build_for_board(board, &model)?;
    println!(
        "[flash] {} ({}): {} bytes of flash of {}, {} bytes of static RAM of {}",
        board.name, board.cpu, f.flash, board.flash, f.ram, board.ram
    );
    if build_only {
        println!("[flash] built {}", elf.display());
        return Ok(());
    }
    setup::probe_rs()?;
    let out = Command::new("probe-rs")
        .args(["run", "--chip", chip, "--log-format", "{s}"])
        .arg(&elf)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting probe-rs")?;
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in log.lines().filter(|l| !l.contains(" [")) {
        println!("  {line}");
    }
    let dev = pipeline::parse(&log);
    if !out.status.success() {
        // probe-rs turns every non-zero exit into 1: the firmware's own exit line names it.
        match dev.exit {
            Some(code) => bail!(
                "the firmware on the board ended with exit {code} ({}); its log is above",
                exit_name(code)
            ),
            None => bail!(
                "probe-rs run ended with {} before the firmware's exit line (is the board connected?)",
                out.status
            ),
        }
    }
    let (_, seed) = dev.announced.context("the board printed no seed")?;
    let n = pipeline::check_outputs_match(&model, seed, &dev, true)?;
    println!("[flash] the {n} images made on the board (seed {seed}) equal the host engine's");
    let blob = std::fs::read(&model)?;
    let m = tinyvae_format::Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (w, h) = (usize::from(m.data.width), usize::from(m.data.height));
    let samples = dev.images.get("sample").cloned().unwrap_or_default();
    let rows: Vec<Vec<&[u8]>> = samples
        .chunks(4)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let png = project_root()
        .join("out")
        .join(format!("samples-{}.png", board.name));
    pipeline::write_png(&png, &rows, w, h)?;
    println!("[flash] wrote {}", png.display());
    Ok(())
}

/// The seed of the on-device generation in the demo and the tests.
const DEMO_SEED: u64 = tinyvae_protocol::session::DEFAULT_SEED;
/// The demo's model: the conv VAE, whose samples score best (results/mnist-full.md).
const DEMO_PRESET: &str = "conv";

/// The main job: train the conv model on the bundled data, export it, run it on the emulated
/// Cortex-M4F, hold every image it makes against the host engine, write the pictures and the
/// instruction counts.
fn demo(args: &[String]) -> Result<()> {
    // `--run DIR`: a run the user trained (e.g. on full MNIST) instead of the demo's training.
    let own_run = match args {
        [] => None,
        [flag, dir] if flag == "--run" => {
            let dir = PathBuf::from(dir);
            if !dir.join("checkpoint.safetensors").is_file() {
                bail!(
                    "--run {}: no checkpoint.safetensors there (a folder `trainer train --out` wrote)",
                    dir.display()
                );
            }
            Some(dir)
        }
        _ => bail!("usage: cargo xtask demo [--run RUN_DIR]"),
    };
    setup::all()?;
    let out = project_root().join("out");
    std::fs::create_dir_all(&out)?;
    let (run_dir, model_dir, model_file) = match &own_run {
        None => {
            println!(
                "\n== 1/3 train the conv VAE (conv 32 and 64 channels, latent 20) on the bundled \
                 MNIST subset, export int8"
            );
            let run_dir = out.join("demo-run");
            let model = pipeline::train_and_export(&run_dir, DEMO_PRESET, 50, None)?;
            (run_dir.clone(), run_dir, model)
        }
        Some(run_dir) => {
            println!("\n== 1/3 export {} to int8", run_dir.display());
            let model_dir = out.join("demo-own-run");
            std::fs::create_dir_all(&model_dir)?;
            let model = model_dir.join("model.tvae");
            pipeline::export(run_dir, &model)?;
            (run_dir.clone(), model_dir, model)
        }
    };
    let blob = std::fs::read(&model_file)?;
    let model = tinyvae_format::Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let board = firmware::QEMU_BOARDS[0];
    println!(
        "\n== 2/3 run it on the emulated {} ({})",
        board.name, board.cpu
    );
    let (code, dev) = pipeline::run_on_board(board, &model_file, DEMO_SEED)?;
    for line in dev.log.lines().filter(|l| !l.contains(" [")) {
        println!("  {line}");
    }
    if code != 0 {
        bail!("the firmware ended with exit code {code}");
    }
    let n = pipeline::check_outputs_match(&model_file, DEMO_SEED, &dev, true)?;
    println!(
        "  the {n} images made on the chip (samples, reconstruction, resamples, interpolation) equal the host engine's, byte for byte"
    );

    println!("\n== 3/3 pictures and counts");
    let (w, h) = (
        usize::from(model.data.width),
        usize::from(model.data.height),
    );
    let samples = dev.images.get("sample").cloned().unwrap_or_default();
    let rows: Vec<Vec<&[u8]>> = samples
        .chunks(4)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let png = out.join("samples.png");
    pipeline::write_png(&png, &rows, w, h)?;
    let mut rows: Vec<Vec<&[u8]>> = Vec::new();
    let get = |k: &str| {
        dev.images
            .get(k)
            .map(|v| v.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut first = get("input");
    first.extend(get("recon"));
    first.extend(get("resample"));
    rows.push(first);
    rows.push(get("interp"));
    let png2 = out.join("encode.png");
    pipeline::write_png(&png2, &rows, w, h)?;
    // The seed lecture's other way to pick z: the aggregate posterior of training encodings.
    let agg = pipeline::export_aggregate(&run_dir, &model_dir, 256)?;
    let (code, dev_agg) = pipeline::run_on_board(board, &agg, DEMO_SEED)?;
    if code != 0 {
        bail!("the firmware with the aggregate-posterior prior ended with exit code {code}");
    }
    let n = pipeline::check_outputs_match(&agg, DEMO_SEED, &dev_agg, true)?;
    println!("  aggregate-posterior prior: {n} images on the chip equal the host engine's");
    let samples = dev_agg.images.get("sample").cloned().unwrap_or_default();
    let rows: Vec<Vec<&[u8]>> = samples
        .chunks(4)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let png3 = out.join("samples-aggregate.png");
    pipeline::write_png(&png3, &rows, w, h)?;
    let table = pipeline::count_table(board, &model, &dev);
    std::fs::write(out.join("counts.md"), &table)?;
    println!("{table}");
    println!(
        "wrote {} (16 samples generated on the emulated chip, z ~ N(0, I))",
        png.display()
    );
    println!(
        "wrote {} (16 samples, z from the aggregate posterior of 256 training images)",
        png3.display()
    );
    println!(
        "wrote {} (an input, its reconstruction, 4 resamples z = mu + sigma eps; then an interpolation)",
        png2.display()
    );
    println!(
        "wrote {} (instructions retired under QEMU: instructions, not cycles)",
        out.join("counts.md").display()
    );
    Ok(())
}

/// The presets `cargo xtask counts` measures: (preset, architecture).
pub const COUNTED: [(&str, &str); 4] = [
    ("default", "dense 784-400-20"),
    ("mcu", "dense 784-256-16"),
    ("conv", "conv 32-64, latent 20"),
    ("conv-mcu", "conv 24-48, latent 16"),
];

/// `cargo xtask counts`: instructions per inference and per layer under QEMU, flash (code and
/// model apart) and RAM, for the dense and conv presets on the Cortex-M4F and M3 and the
/// conv-mcu decoder-only model on the Cortex-M0; writes `results/qemu-counts.md`. The
/// kernels' work depends on the weights only through the requantization's branch for
/// positive shifts (a few instructions per layer), so short training runs give the counts of
/// long ones to within that.
fn counts() -> Result<()> {
    setup::all()?;
    let dir = project_root().join("target").join("xtask-counts");
    let mut md = String::from(
        "# Instructions, flash and RAM under QEMU\n\n\
         Instructions retired (QEMU `-icount`, counted with SysTick: instructions, not cycles), \
         models exported with 4x4-tiled weights (the default): the DSP kernel on the Cortex-M4F, \
         the portable tiled kernel on the Cortex-M3 and M0; Rust 1.95.0, firmware `release` \
         profile (opt-level 3, fat LTO). MACs are the kernels' multiply-accumulates: a \
         convolution's once per output position, padding taps included; a transposed \
         convolution's only the taps of each position's phase. \
         Flash: the `vae` firmware's code and constants, and the model blob apart. RAM: static, \
         and the peak stack measured by painting (the model's buffers live on the stack). The \
         models were trained for one epoch: the counts depend on the weights only through the \
         requantization's branch for positive shifts, a few instructions per layer. \
         Reproduce: `cargo xtask counts`.\n\n",
    );
    let mut count = |board: firmware::Board, model: &Path, title: &str| -> Result<()> {
        let blob = std::fs::read(model)?;
        let m = tinyvae_format::Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
        let code = pipeline::check_fits(board, model)?;
        let (code_exit, d) = pipeline::run_on_board(board, model, DEMO_SEED)?;
        if code_exit != 0 {
            bail!(
                "the firmware on {} ended with {code_exit}:\n{}",
                board.name,
                d.log
            );
        }
        md += &format!("## {title} on {} ({})\n\n", board.name, board.cpu);
        md += &pipeline::count_table(board, &m, &d);
        md += &format!(
            "| flash: firmware code (bytes) | {} | |\n| flash: model (bytes) | {} | |\n\n",
            code.flash,
            blob.len()
        );
        Ok(())
    };
    for (preset, arch) in COUNTED {
        let model = pipeline::train_and_export(&dir.join(preset), preset, 1, Some(1000))?;
        for board in firmware::QEMU_BOARDS {
            count(board, &model, arch)?;
        }
    }
    let decoder = pipeline::export_decoder_only(&dir.join("conv-mcu"))?;
    count(
        firmware::M0_BOARD,
        &decoder,
        "conv 24-48, latent 16, decoder only",
    )?;
    md += "## Real boards: flash and RAM\n\n\
           The same `vae` firmware built with each board's HAL and defmt over RTT (cycles \
           need the board: `cargo xtask flash --board NAME` prints them, from the DWT cycle \
           counter on the nRF52840, from SysTick on the RP2040). Peak stack: as measured under \
           QEMU above (same code, same buffers).\n\n\
           | board | model | firmware code (bytes) | model (bytes) | flash used / size | static RAM (bytes) / size |\n\
           |---|---|---:|---:|---:|---:|\n";
    for (preset, arch) in COUNTED {
        let model = dir.join(preset).join("model.tvae");
        let bytes = std::fs::metadata(&model)?.len();
        for board in firmware::REAL_BOARDS {
            let code = pipeline::check_fits(board, &model)?;
            let (_, f) = pipeline::build_for_board(board, &model)?;
            md += &format!(
                "| {} ({}) | {arch} | {} | {bytes} | {} / {} | {} / {} |\n",
                board.name, board.cpu, code.flash, f.flash, board.flash, f.ram, board.ram
            );
        }
    }
    let out = project_root().join("results").join("qemu-counts.md");
    std::fs::create_dir_all(out.parent().context("results")?)?;
    std::fs::write(&out, &md)?;
    println!("{md}\nwrote {}", out.display());
    Ok(())
}

use tinyvae_protocol::{exit_name, ExitCode};

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
    for b in firmware::SELFTEST_BOARDS
        .iter()
        .chain(&firmware::REAL_BOARDS)
        .copied()
    {
        if firmware::using_debian_toolchain() {
            println!(
                "[test] skipped: clippy (firmware, {}): no clippy in the Debian fallback",
                b.name
            );
            continue;
        }
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
    pipeline::TEST_PROFILE_TRAINER.store(true, std::sync::atomic::Ordering::Relaxed);
    t.record("host never compiles cortex-m-rt", host_has_no_cortex_m_rt());
    for target in setup::THUMB_TARGETS {
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

    for board in firmware::SELFTEST_BOARDS {
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
        // The DSP kernel against the portable ones on random layers (on the M3: the portable
        // tiled kernel against the row-major one).
        if firmware::QEMU_BOARDS.contains(&board) {
            let simd = board.target.starts_with("thumbv7em");
            t.record(
                &format!("kernels bit-exact on random layers on {}", board.name),
                firmware::run_qemu(board, &elfs.join("dspcheck"), limit).and_then(|o| {
                    print!("{}", o.log);
                    if o.code != Some(0) {
                        bail!("exit code {:?}", o.code);
                    }
                    let ran_dsp = !o.log.contains("; 0 ran the DSP kernel");
                    if ran_dsp != simd {
                        bail!("the DSP kernel should run here: {simd}; it ran: {ran_dsp}");
                    }
                    Ok(())
                }),
            );
        }
        // The harness must see failures: each of these is built to fail.
        for (bin, want, limit) in [
            ("fail-assert", Some(ExitCode::CheckFailed.code()), limit),
            ("fail-panic", Some(ExitCode::Panic.code()), limit),
            ("fail-hang", None, Duration::from_secs(3)),
        ] {
            t.record(
                &format!("harness reports {bin} on {} as a failure", board.name),
                firmware::run_qemu(board, &elfs.join(bin), limit).and_then(|o| {
                    // The log's own exit line says the same as the emulator's status (a
                    // hang prints none).
                    let logged = pipeline::parse(&o.log).exit;
                    if o.code == want && logged == want {
                        Ok(())
                    } else if o.code == want {
                        bail!(
                            "exit {want:?}, but the log's exit line says {logged:?}; log:\n{}",
                            o.log
                        )
                    } else {
                        bail!("expected exit {want:?}, got {:?}; log:\n{}", o.code, o.log)
                    }
                }),
            );
        }
    }

    // The issue's flash budget, held: the product firmware, size profile, without its model.
    if !firmware::using_debian_toolchain() {
        t.record(
            "vae firmware (size profile, Cortex-M4F) fits 32 KiB of flash without its model",
            kernels::size_profile_flash().and_then(|flash| {
                println!("  {flash} bytes of {}", kernels::FLASH_BUDGET);
                if flash >= kernels::FLASH_BUDGET {
                    bail!(
                        "{flash} bytes: over the {}-byte budget",
                        kernels::FLASH_BUDGET
                    );
                }
                Ok(())
            }),
        );
    }

    // The whole pipeline on both boards: a model trained and exported by the trainer, its
    // golden vectors and on-device samples bit-exact with the host engine, and a corrupted
    // copy rejected at boot.
    let dir = root.join("target").join("xtask-test");
    let trained = pipeline::train_and_export(&dir.join("run"), "default", 2, Some(2000));
    t.record(
        "pipeline: train and export a model",
        trained
            .as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    if let Ok(model_file) = &trained {
        let model_file = model_file.as_path();
        let corrupt = dir.join("corrupt.tvae");
        let mut blob = std::fs::read(model_file)?;
        let mid = blob.len() / 2;
        blob[mid] ^= 0x10;
        std::fs::write(&corrupt, &blob)?;
        t.record(
            "xtask refuses a model too large for a board, naming both sizes",
            match pipeline::check_fits(firmware::M0_BOARD, model_file) {
                Ok(_) => Err(anyhow::anyhow!(
                    "the 680 KB model was accepted for a 256 KiB board"
                )),
                Err(e) => {
                    let msg = format!("{e:#}");
                    println!("  {msg}");
                    if msg.contains(&firmware::M0_BOARD.flash.to_string())
                        && msg.contains("bytes of flash")
                    {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!("unclear refusal: {msg}"))
                    }
                }
            },
        );
        for board in firmware::QEMU_BOARDS {
            t.record(
                &format!(
                    "vae on {}: golden vectors and samples bit-exact with the host",
                    board.name
                ),
                pipeline::run_on_board(board, model_file, DEMO_SEED).and_then(|(code, d)| {
                    if code != 0 {
                        bail!("exit code {code} ({}); log:\n{}", exit_name(code), d.log);
                    }
                    if !d.log.contains("vectors bit-exact") {
                        bail!("no golden-vector report in the log:\n{}", d.log);
                    }
                    let n = pipeline::check_outputs_match(model_file, DEMO_SEED, &d, true)?;
                    println!("  {n} device images (samples, reconstruction, resamples, interpolation) equal the host engine's");
                    Ok(())
                }),
            );
            t.record(
                &format!("vae on {} rejects a corrupted model at boot", board.name),
                pipeline::run_on_board(board, &corrupt, DEMO_SEED).and_then(|(code, d)| {
                    if code != ExitCode::BadModel.code() || !d.log.contains("CrcMismatch") {
                        bail!("expected exit 2 (bad model) and a CRC error, got {code} ({}); log:\n{}", exit_name(code), d.log);
                    }
                    Ok(())
                }),
            );
        }
    }

    // Convolutional models: a conv-mcu model trained and exported by the trainer; on the
    // Cortex-M4F (DSP kernel) and M3, its golden vectors and every image the chip makes equal
    // the host engine's; its decoder-only export generates on the Cortex-M0.
    let conv_run = dir.join("conv");
    let conv = pipeline::train_and_export(&conv_run, "conv-mcu", 2, Some(2000));
    t.record(
        "pipeline: train and export a conv model",
        conv.as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    if let Ok(model_file) = &conv {
        for board in firmware::QEMU_BOARDS {
            t.record(
                &format!(
                    "conv vae on {}: golden vectors and every image bit-exact with the host",
                    board.name
                ),
                run_and_compare(board, model_file),
            );
        }
        t.record(
            &format!(
                "conv-mcu decoder-only on {} ({}): golden vectors and samples bit-exact",
                firmware::M0_BOARD.name,
                firmware::M0_BOARD.cpu
            ),
            pipeline::export_decoder_only(&conv_run)
                .and_then(|m| run_and_compare(firmware::M0_BOARD, &m)),
        );
    }

    // The f32 decoder path on the Cortex-M4F: the same bits as on the host, near the float
    // decoder; the int8 path beside it on the same draws.
    if let Ok(model_file) = &trained {
        let board = firmware::QEMU_BOARDS[0];
        t.record(
            &format!(
                "f32 decoder path on {}: bit-exact with the host, PSNR",
                board.name
            ),
            float::compare(board, model_file, DEMO_SEED).and_then(|c| {
                println!(
                    "  int8: {} instructions, PSNR {:.2} dB; f32: {} instructions, PSNR {:.2} dB",
                    c.int8, c.int8_psnr, c.f32, c.f32_psnr
                );
                if c.f32_psnr < float::F32_PSNR_MIN_DB {
                    bail!(
                        "f32 path PSNR {:.2} dB < {} dB",
                        c.f32_psnr,
                        float::F32_PSNR_MIN_DB
                    );
                }
                Ok(())
            }),
        );
    }

    // Real boards: the firmware with the trained model builds with each board's HAL and
    // defmt-rtt, and fits its flash and RAM; the RP2040 image starts with its bootloader.
    if let Ok(model_file) = &trained {
        for board in firmware::REAL_BOARDS {
            t.record(
                &format!("vae builds for {} ({}) and fits", board.name, board.cpu),
                pipeline::build_for_board(board, model_file).and_then(|(elf, f)| {
                    println!(
                        "  {}: flash {} of {} bytes, static RAM {} of {}",
                        board.name, f.flash, board.flash, f.ram, board.ram
                    );
                    if board.name == "rp2040" {
                        let boot2 = elf::section(&elf, ".boot2")?;
                        if boot2 != Some((0x1000_0000, 256)) {
                            bail!(
                                "the RP2040 image has no 256-byte .boot2 at 0x10000000: {boot2:?}"
                            );
                        }
                    }
                    Ok(())
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

/// Runs the `vae` firmware with `model` on `board` and holds every image it prints against
/// the host engine's; prints its decode count and peak RAM.
fn run_and_compare(board: firmware::Board, model: &Path) -> Result<()> {
    let (code, d) = pipeline::run_on_board(board, model, DEMO_SEED)?;
    if code != 0 {
        bail!("exit code {code} ({}); log:\n{}", exit_name(code), d.log);
    }
    if !d.log.contains("vectors bit-exact") {
        bail!("no golden-vector report in the log:\n{}", d.log);
    }
    let n = pipeline::check_outputs_match(model, DEMO_SEED, &d, true)?;
    let count = |name: &str| d.counts.iter().find(|c| c.0 == name).map_or(0, |c| c.1);
    let ram = |name: &str| d.ram.iter().find(|c| c.0 == name).map_or(0, |c| c.1);
    println!(
        "  {n} images equal the host engine's; decode {} instructions; RAM {} static + {} stack of {}",
        count("decode"),
        ram("static"),
        ram("stack"),
        board.ram
    );
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
