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
mod count_table;
mod cycles;
mod demo;
mod elf;
mod examples;
mod firmware;
mod flash;
mod float;
mod floor;
mod fresh;
mod kernels;
mod libcost;
mod logs;
mod pictures;
mod pipeline;
mod priors;
mod quality;
mod setup;
mod test;
mod usage;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The repository root (xtask lives one level below it), found at run time, never compiled
/// in: `cargo run` (the `cargo xtask` alias) tells this binary its package's folder in
/// `CARGO_MANIFEST_DIR`, in the tree the command runs in, wherever the binary was built;
/// run directly, the root is the nearest folder above the current one that holds
/// `xtask/Cargo.toml`. A copied tree works in itself and never writes into the original.
pub fn project_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let is_root =
            |d: &Path| d.join("xtask/Cargo.toml").is_file() && d.join("Cargo.toml").is_file();
        if let Some(here) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) {
            if let Some(root) = here.parent().filter(|r| is_root(r)) {
                return root.to_path_buf();
            }
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        cwd.ancestors()
            .find(|d| is_root(d))
            .map(Path::to_path_buf)
            .unwrap_or(cwd)
    })
    .clone()
}

/// A path as the committed results write it: relative to the repository (`../shared/...`
/// for a folder beside it), never a machine's absolute path; a path elsewhere as
/// `DIR/NAME`.
pub fn shown(path: &Path) -> String {
    let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let root = project_root();
    if let Ok(rel) = p.strip_prefix(&root) {
        return rel.display().to_string();
    }
    if let Some(rel) = root.parent().and_then(|up| p.strip_prefix(up).ok()) {
        return format!("../{}", rel.display());
    }
    format!(
        "DIR/{}",
        p.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    )
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
    // `--help` (or `-h`) anywhere: the command's usage, or the whole text; exit 0.
    if args.iter().any(|a| a == "--help" || a == "-h") {
        match args.first().and_then(|c| usage::of(c)) {
            Some(u) => print!("{u}"),
            None => print!("{}", usage::all()),
        }
        return;
    }
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::all(),
        Some("test") => test::run_groups(&args[1..]),
        Some("demo") => demo::demo(&args[1..]),
        Some("qemu") => qemu(&args[1..]),
        Some("fallback-check") => fallback_check(),
        Some("bench-train") => bench::train(&args[1..]),
        Some("quality") => quality::run(&args[1..]),
        Some("priors") => priors::run(&args[1..]),
        Some("bench-ops") => bench::ops(),
        Some("counts") => counts(),
        Some("bench") => kernels::bench(),
        Some("flash") => flash::flash(&args[1..]),
        Some("f32") => float::bench(),
        Some("cycles") => cycles::bench(&args[1..]),
        Some("logs") => logs::regenerate(),
        Some("header") => examples::header(&project_root().join("c/include/tinyvae.h")),
        Some("help") => {
            match args.get(1).and_then(|c| usage::of(c)) {
                Some(u) => print!("{u}"),
                None => print!("{}", usage::all()),
            }
            Ok(())
        }
        Some("fit") => fit(&args[1..]),
        Some("time-fresh") => fresh::time_fresh(&args[1..]),
        Some("lib-cost") => libcost::bench(),
        Some("where") => {
            println!("{}", project_root().display());
            Ok(())
        }
        Some("version") => {
            println!("xtask {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => {
            if let Some(c) = other {
                eprintln!("error: no command `{c}`\n");
            }
            eprint!("{}", usage::all());
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
    let board = firmware::default_board();
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
    let model = match (model, needs_model) {
        (Some(m), _) => Some(m),
        (None, true) => {
            let demo = project_root().join("out/demo-run/model.tvae");
            if !demo.exists() {
                bail!(
                    "{bin} runs a model: pass --model FILE, or run `cargo xtask demo` first \
                     to export {}",
                    demo.display()
                );
            }
            Some(demo)
        }
        (None, false) => None,
    };
    match (bin.as_str(), &model) {
        ("vae", Some(m)) => return qemu_vae(board, m),
        ("f32dec", Some(m)) => return qemu_f32dec(board, m),
        _ => {}
    }
    let elfs = match &model {
        Some(m) => pipeline::build_with_model(board, m, &[bin.as_str()], &[])?,
        None => firmware::build(board, &[])?,
    };
    let out = firmware::run_qemu(board, &elfs.join(bin), Duration::from_secs(300))?;
    print!("{}", out.log);
    match out.code {
        Some(0) => Ok(()),
        Some(c) => bail!("{bin} on {} exited with code {c}", board.name),
        None => bail!("{bin} on {} did not finish in time", board.name),
    }
}

/// `cargo xtask qemu BOARD vae`: the log, every image held against the host engine, and the
/// samples as a picture (`out/qemu-BOARD.png`).
fn qemu_vae(board: firmware::Board, model: &Path) -> Result<()> {
    let (code, dev) = pipeline::run_on_board(board, model, DEMO_SEED)?;
    for line in dev.log.lines().filter(|l| !l.contains(" [")) {
        println!("  {line}");
    }
    if code != 0 {
        bail!(
            "vae on {} exited with code {code} ({})",
            board.name,
            tinyvae_protocol::exit_name(code)
        );
    }
    let n = pipeline::check_outputs_match(model, DEMO_SEED, &dev, true)?;
    println!("the {n} images made on the chip equal the host engine's, byte for byte");
    let blob = std::fs::read(model)?;
    let m =
        tinyvae_format::Model::from_bytes(&blob).with_context(|| format!("{}", model.display()))?;
    let png = project_root()
        .join("out")
        .join(format!("qemu-{}.png", board.name));
    pipeline::write_samples_png(&png, &dev, pipeline::Shape::of(&m))?;
    println!("wrote {} (the samples)", png.display());
    Ok(())
}

/// `cargo xtask qemu BOARD f32dec`: the float decoder beside the int8 one on the same draws;
/// the float decoder is the `decoder.f32` beside the model file.
fn qemu_f32dec(board: firmware::Board, model: &Path) -> Result<()> {
    let f32_file = pipeline::float_decoder_of(model);
    if !f32_file.exists() {
        bail!(
            "f32dec runs the float decoder beside the int8 one, and there is no {} beside \
             {}: export it there with `trainer export RUN -o {} --f32-decoder {}` (dense \
             models only)",
            f32_file.display(),
            model.display(),
            model.display(),
            f32_file.display()
        );
    }
    let c = float::compare(board, model, DEMO_SEED)?;
    println!(
        "int8: {} instructions, PSNR {:.2} dB; f32: {} instructions, PSNR {:.2} dB (against \
         the host's float decoder; both paths bit-exact with the host's)",
        c.int8, c.int8_psnr, c.f32, c.f32_psnr
    );
    Ok(())
}

/// `cargo xtask fit --model FILE [--board NAME]...`: what the `vae` firmware with the model
/// needs on every board (or those named), flash and RAM, the stack included.
fn fit(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask fit --model FILE [--board NAME]...";
    let (mut model, mut boards) = (None, vec![]);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--model", Some(f)) => model = Some(PathBuf::from(f)),
            ("--board", Some(b)) => boards.push(firmware::board(b)?),
            _ => bail!("{usage}"),
        }
    }
    let model = model.context(usage)?;
    setup::thumb_targets()?;
    if boards.is_empty() {
        boards = firmware::BOARDS.to_vec();
    }
    println!("the vae firmware with {} on each board:", model.display());
    let mut any = false;
    for b in boards {
        let f = pipeline::fit(b, &model)?;
        any |= f.flash() <= b.flash && f.ram() <= b.ram;
        println!("  {:<15} {:<22} {}", b.name, b.cpu, f.line(b));
    }
    if !any {
        bail!("{} fits none of these boards", model.display());
    }
    Ok(())
}

/// The seed of the on-device generation in the demo and the tests.
const DEMO_SEED: u64 = tinyvae_protocol::session::DEFAULT_SEED;
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
        let m = tinyvae_format::Model::from_bytes(&blob)
            .with_context(|| format!("{}", model.display()))?;
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
            "| flash: firmware code (bytes) | {} | | |\n| flash: model (bytes) | {} | | |\n\n",
            code.flash,
            blob.len()
        );
        Ok(())
    };
    for (preset, arch) in COUNTED {
        let model = pipeline::train_and_export(&dir.join(preset), preset, 1, Some(1000))?;
        for board in firmware::qemu_boards() {
            count(board, &model, arch)?;
        }
    }
    let decoder = pipeline::export_decoder_only(&dir.join("conv-mcu"))?;
    count(
        firmware::m0_board(),
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
        for board in firmware::real_boards()
            .into_iter()
            .chain([firmware::discovery()])
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
