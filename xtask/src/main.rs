//! `cargo xtask`: the project's automation. Every command checks and installs its own
//! prerequisites first, so the README needs no set-up step.
//!
//! ```text
//! cargo xtask demo              the main job (see README.md)
//! cargo xtask test [GROUP...]   every test, or the groups named (lint, host, firmware, pipeline, boards)
//! cargo xtask setup             only install or check the prerequisites
//! cargo xtask qemu BOARD BIN [--model FILE]  build and run one firmware binary under QEMU
//! ```

mod bench;
mod cycles;
mod elf;
mod examples;
mod firmware;
mod flash;
mod float;
mod kernels;
mod logs;
mod pipeline;
mod quality;
mod setup;
mod test;

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
        Some("test") => test::run_groups(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("qemu") => qemu(&args[1..]),
        Some("fallback-check") => fallback_check(),
        Some("bench-train") => bench::train(&args[1..]),
        Some("quality") => quality::run(&args[1..]),
        Some("bench-ops") => bench::ops(),
        Some("counts") => counts(),
        Some("bench") => kernels::bench(),
        Some("flash") => flash::flash(&args[1..]),
        Some("f32") => float::bench(),
        Some("cycles") => cycles::bench(&args[1..]),
        Some("logs") => logs::regenerate(),
        Some("header") => examples::header(&project_root().join("c/include/tinyvae.h")),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  demo [--run RUN_DIR]\n                    train (or take RUN_DIR's checkpoint), \
                 export, run on the emulated board, show samples and counts\n  test [GROUP...]   every test, or the groups named: lint, host, firmware, pipeline, boards\n  \
                 setup             install or check the prerequisites only\n  qemu BOARD BIN [--model FILE]\n                    \
                 build and run one firmware binary (boards: mps2-an386, mps2-an385, mps2-an500, mps2-an505, microbit)\n  \
                 fallback-check    build and run the self-test with the Debian toolchain fallback\n  \
                 bench-train DATA DENSE_SCRIPT CONV_SCRIPT [EPOCHS] [SEED]\n                    \
                 training speed and test -ELBO of both models beside the PyTorch reference scripts\n  \
                 bench-ops         training ops per call, candle's beside the fused ones (results/train-ops.md)\n  \
                 quality DATA DENSE_SCRIPT CONV_SCRIPT [EPOCHS]\n                    \
                 both VAEs beside PyTorch over three seeds; every preset's -ELBO, sample score and size\n  \
                 counts            instructions per inference and layer, flash and RAM, every preset and board\n  \
                 bench             instructions per dense layer and per MAC for each kernel (results/kernels.md)\n  \
                 f32               the f32 decoder path beside int8: instructions, flash, PSNR (results/f32-vs-int8.md)\n  \
                 cycles [--profile] Cortex-M4 cycles estimated from the executed instruction mix (results/m4-cycle-estimate.md); --profile: per function too\n  \
                 logs              the firmware logs the shared log parser is tested on (protocol/tests/logs/)\n  \
                 header            c/include/tinyvae.h, the C API's header, from c/src/lib.rs with cbindgen\n  \
                 flash --board NAME [--model FILE] [--build-only] [--probe SELECTOR] [--port PATH]\n                    \
                 build the firmware for a real board (nrf52840dk, rp2040, rp2350, b-l475e-iot01a) with a model,\n                    \
                 flash it with probe-rs, print its log (RTT, or the ST-LINK's serial port) and hold\n                    \
                 its samples against the host engine"
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
    let needs_model = matches!(bin.as_str(), "vae" | "cycles" | "f32dec" | "misaligned");
    let elfs = match (model, needs_model) {
        (Some(m), _) => pipeline::build_with_model(board, &m, &[bin.as_str()], &[])?,
        (None, true) => {
            let demo = project_root().join("out/demo-run/model.tvae");
            if !demo.exists() {
                bail!(
                    "{bin} runs a model: pass --model FILE, or run `cargo xtask demo` first \
                     to export {}",
                    demo.display()
                );
            }
            pipeline::build_with_model(board, &demo, &[bin.as_str()], &[])?
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

/// The seed of the on-device generation in the demo and the tests.
const DEMO_SEED: u64 = tinyvae_protocol::session::DEFAULT_SEED;
/// The demo's model: the conv VAE, whose samples score best (results/mnist-full.md).
const DEMO_PRESET: &str = "conv";

/// The main job: train the conv model on the bundled data, export it, run it on the emulated
/// Cortex-M4F, hold every image it makes against the host engine, write the pictures and the
/// instruction counts.
fn demo(args: &[String]) -> Result<()> {
    let own_run = demo_run_arg(args)?;
    setup::all()?;
    let out = project_root().join("out");
    std::fs::create_dir_all(&out)?;
    let (run_dir, model_dir, model_file) = demo_model(own_run.as_deref(), &out)?;
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
    let png = out.join("samples.png");
    pipeline::write_samples_png(&png, &dev, w, h)?;
    let png2 = out.join("encode.png");
    write_encode_png(&png2, &dev, w, h)?;
    // The seed lecture's other way to pick z: the aggregate posterior of training encodings.
    let agg = pipeline::export_aggregate(&run_dir, &model_dir, 256)?;
    let (code, dev_agg) = pipeline::run_on_board(board, &agg, DEMO_SEED)?;
    if code != 0 {
        bail!("the firmware with the aggregate-posterior prior ended with exit code {code}");
    }
    let n = pipeline::check_outputs_match(&agg, DEMO_SEED, &dev_agg, true)?;
    println!("  aggregate-posterior prior: {n} images on the chip equal the host engine's");
    let png3 = out.join("samples-aggregate.png");
    pipeline::write_samples_png(&png3, &dev_agg, w, h)?;
    let table = pipeline::count_table(board, &model, &dev);
    std::fs::write(out.join("counts.md"), &table)?;
    println!("{table}");
    for (file, what) in [
        (
            png,
            "16 samples generated on the emulated chip, z ~ N(0, I)",
        ),
        (
            png3,
            "16 samples, z from the aggregate posterior of 256 training images",
        ),
        (
            png2,
            "an input, its reconstruction, 4 resamples z = mu + sigma eps; then an interpolation",
        ),
        (
            out.join("counts.md"),
            "instructions retired under QEMU: instructions, not cycles",
        ),
    ] {
        println!("wrote {} ({what})", file.display());
    }
    Ok(())
}

/// `--run DIR`: a run the user trained (e.g. on full MNIST) instead of the demo's training.
fn demo_run_arg(args: &[String]) -> Result<Option<PathBuf>> {
    match args {
        [] => Ok(None),
        [flag, dir] if flag == "--run" => {
            let dir = PathBuf::from(dir);
            if !dir.join("checkpoint.safetensors").is_file() {
                bail!(
                    "--run {}: no checkpoint.safetensors there (a folder `trainer train --out` wrote)",
                    dir.display()
                );
            }
            Ok(Some(dir))
        }
        _ => bail!("usage: cargo xtask demo [--run RUN_DIR]"),
    }
}

/// The demo's model: trained on the bundled subset, or the user's run exported. Returns the
/// run folder, the folder the model files go to, and the model file.
fn demo_model(own_run: Option<&Path>, out: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    match own_run {
        None => {
            println!(
                "\n== 1/3 train the conv VAE (conv 32 and 64 channels, latent 20) on the bundled \
                 MNIST subset, export int8"
            );
            let run_dir = out.join("demo-run");
            let model = pipeline::train_and_export(&run_dir, DEMO_PRESET, 50, None)?;
            Ok((run_dir.clone(), run_dir, model))
        }
        Some(run_dir) => {
            println!("\n== 1/3 export {} to int8", run_dir.display());
            let model_dir = out.join("demo-own-run");
            std::fs::create_dir_all(&model_dir)?;
            let model = model_dir.join("model.tvae");
            pipeline::export(run_dir, &model)?;
            Ok((run_dir.to_path_buf(), model_dir, model))
        }
    }
}

/// The encoder picture: an input, its reconstruction and resamples in a row; the
/// interpolation below.
fn write_encode_png(path: &Path, dev: &pipeline::DeviceRun, w: usize, h: usize) -> Result<()> {
    let get = |k: &str| {
        dev.images
            .get(k)
            .map(|v| v.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut first = get("input");
    first.extend(get("recon"));
    first.extend(get("resample"));
    pipeline::write_png(path, &[first, get("interp")], w, h)
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
         M7 and M33, the portable tiled kernel on the Cortex-M3 and M0; Rust 1.95.0, firmware `release` \
         profile (opt-level 3, fat LTO). MACs are the kernels' multiply-accumulates: a \
         convolution's once per output position, padding taps included; a transposed \
         convolution's only the taps of each position's phase. \
         Flash: the `vae` firmware's code and constants (measured with a model embedded, its \
         bytes taken off: built without one, its buffers are empty and the compiler drops the \
         code that loops over them), and the model blob apart. RAM: static, and the peak \
         stack measured by painting (the model's buffers live on the stack). The \
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
           The same `vae` firmware built with each board's HAL, defmt over RTT, or over \
           USART1 on the B-L475E-IOT01A. Cycles need the board: `cargo xtask flash --board \
           NAME` prints them, from the DWT cycle counter on the nRF52840, the RP2350 and the \
           STM32L475, from SysTick on the RP2040. Peak stack: as measured under \
           QEMU above (same code, same buffers).\n\n\
           | board | model | firmware code (bytes) | model (bytes) | flash used / size | static RAM (bytes) / size |\n\
           |---|---|---:|---:|---:|---:|\n";
    for (preset, arch) in COUNTED {
        let model = dir.join(preset).join("model.tvae");
        let bytes = std::fs::metadata(&model)?.len();
        for board in firmware::REAL_BOARDS
            .into_iter()
            .chain([firmware::DISCOVERY])
        {
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
