//! `cargo xtask bench`: instructions retired per dense layer and per multiply-accumulate, for
//! each kernel, under QEMU. Runs the `bench` firmware twice per board (the two logs must be
//! identical), and writes results/kernels.md.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::firmware::{self, Board};
use crate::{elf, pipeline, project_root, setup};

/// One measured layer: shape and instructions per kernel.
#[derive(Default)]
struct Row {
    inp: u64,
    out: u64,
    counts: BTreeMap<String, u64>,
}

/// The `bench NAME IN OUT KERNEL N` lines of a log, by layer in order of first appearance.
fn parse(log: &str) -> Result<Vec<(String, Row)>> {
    let mut rows: Vec<(String, Row)> = Vec::new();
    for b in tinyvae_protocol::log::parse_bench(log)? {
        let i = match rows.iter().position(|(n, _)| *n == b.name) {
            Some(i) => i,
            None => {
                rows.push((b.name.clone(), Row::default()));
                rows.len() - 1
            }
        };
        let r = &mut rows[i].1;
        (r.inp, r.out) = (b.inputs, b.outputs);
        r.counts.insert(b.kernel, b.count);
    }
    if rows.is_empty() {
        bail!("the bench firmware printed no measurements:\n{log}");
    }
    Ok(rows)
}

/// Builds every binary for `board` without a model, runs `bench` twice; returns its log and
/// the ELF folder.
fn run_twice(board: Board) -> Result<(String, std::path::PathBuf)> {
    let elfs = firmware::build(board, &[])?;
    let elf = elfs.join("bench");
    let mut logs = Vec::new();
    for _ in 0..2 {
        let o = firmware::run_qemu(board, &elf, Duration::from_secs(300))?;
        if o.code != Some(0) {
            bail!(
                "bench on {} ended with {:?}:\n{}",
                board.name,
                o.code,
                o.log
            );
        }
        logs.push(o.log);
    }
    if logs[0] != logs[1] {
        bail!(
            "two runs of the same bench build on {} printed different counts:\n{}\n---\n{}",
            board.name,
            logs[0],
            logs[1]
        );
    }
    Ok((logs.remove(0), elfs))
}

const KERNELS: [(&str, &str); 4] = [
    ("portable-rows", "portable, row-major"),
    ("portable-tiles", "portable, 4x4 tiles"),
    ("dsp-tiles", "DSP (SMLAD), 4x4 tiles"),
    ("v6m-tiles", "ARMv6-M assembly, 4x4 tiles"),
];

fn table(board: Board, rows: &[(String, Row)]) -> String {
    let kernels: Vec<_> = KERNELS
        .iter()
        .filter(|(k, _)| rows.iter().any(|(_, r)| r.counts.contains_key(*k)))
        .collect();
    let mut md = format!(
        "## {} ({})\n\n| layer | shape | MACs |",
        board.name, board.cpu
    );
    for (_, label) in &kernels {
        md += &format!(" {label}: instructions | per MAC |");
    }
    md += "\n|---|---|---:|";
    for _ in &kernels {
        md += "---:|---:|";
    }
    md += "\n";
    let mut line = |name: &str, shape: String, macs: u64, counts: &dyn Fn(&str) -> Option<u64>| {
        md += &format!("| {name} | {shape} | {macs} |");
        for (k, _) in &kernels {
            match counts(k) {
                Some(n) => md += &format!(" {n} | {:.3} |", n as f64 / macs as f64),
                None => md += " | |",
            }
        }
        md += "\n";
    };
    for (name, r) in rows {
        let macs = r.inp * r.out;
        line(name, format!("{}->{}", r.inp, r.out), macs, &|k| {
            r.counts.get(k).copied()
        });
    }
    // Whole decoders: their two dense layers (the pixel table adds one load per pixel).
    for (name, a, b) in [
        ("decoder (dense layers)", "dec.0", "dec.1"),
        ("MCU decoder (dense layers)", "mcu.dec.0", "mcu.dec.1"),
    ] {
        let find = |n: &str| rows.iter().find(|(x, _)| x == n).map(|(_, r)| r);
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            let macs = x.inp * x.out + y.inp * y.out;
            let shape = format!("{}->{}->{}", x.inp, x.out, y.out);
            line(name, shape, macs, &|k| {
                Some(x.counts.get(k)? + y.counts.get(k)?)
            });
        }
    }
    md
}

/// Code bytes of the kernels, from the bench ELF's symbols.
fn code_sizes(elf_path: &std::path::Path) -> Result<String> {
    let syms = elf::sized_symbols(elf_path)?;
    let mut md =
        String::from("\n| function (bench firmware for mps2-an386) | code bytes |\n|---|---:|\n");
    let mut any = false;
    for (pat, label) in [
        (
            "tinyvae_dense_i8_smlad",
            "`tinyvae_dense_i8_smlad` (assembly: a whole int8 layer, the tile loop and the \
             requantization fused)",
        ),
        (
            "tinyvae_tiles_raw",
            "`tinyvae_tiles_raw` (assembly: the tile loop alone, raw sums; int16 layers, the \
             scatter form of transposed convolutions)",
        ),
        (
            "tinyvae_widen_i8",
            "`tinyvae_widen_i8` (assembly: inputs to int16 pairs)",
        ),
        (
            "5layer8tiled_i8",
            "`arm::dsp::tiled_i8` and `tiled_i8_widened` (the fused kernel's callers: checks, \
             widening, the last partial block)",
        ),
        (
            "5layer9tiled_i16",
            "`arm::dsp::tiled_i16` (int16 layers: widening, the raw tile loop per block, the \
             requantization)",
        ),
        (
            "5dense8fallback",
            "`fallback` (the portable kernels behind one `dyn` sink, shared by int8 and int16)",
        ),
        (
            "5dense17dense_i8_portable",
            "`dense_i8_portable` (portable kernels)",
        ),
        ("5dense9dense_i16", "`dense_i16`"),
    ] {
        // The assembly routines, by their whole name, which carries the engine's version
        // (tinyvae_engine::ASM_PREFIX); Rust functions by a part of their mangled name.
        let routine = pat
            .strip_prefix("tinyvae_")
            .map(|r| format!("{}{r}", tinyvae_engine::ASM_PREFIX));
        let hit = |n: &str| routine.as_ref().map_or(n.contains(pat), |r| n == r);
        for (_, size) in syms.iter().filter(|(n, _)| hit(n)) {
            md += &format!("| {label} | {size} |\n");
            any = true;
        }
    }
    if !any {
        bail!("no kernel symbols in {}", elf_path.display());
    }
    Ok(md)
}

/// Builds `bins` with the `size` profile for the Cortex-M4F, `vae` with the probe model
/// ([`pipeline::probe_model`]); returns the ELF folder and the model's bytes.
fn size_profile(bins: &[&str]) -> Result<(std::path::PathBuf, u64)> {
    let (probe, bytes) = pipeline::probe_model()?;
    Ok((size_profile_with(bins, &probe, &[])?, bytes))
}

/// Builds `bins` with the `size` profile for the Cortex-M4F, `vae` with `model` embedded and
/// the other variables given; returns the ELF folder.
pub fn size_profile_with(
    bins: &[&str],
    model: &std::path::Path,
    envs: &[(&str, String)],
) -> Result<std::path::PathBuf> {
    let board = firmware::default_board();
    let dir = firmware::dir();
    let mut cmd = std::process::Command::new("cargo");
    cmd.current_dir(&dir)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env("TINYVAE_MODEL", model)
        .args(["build", "--profile", "size", "--target", board.target])
        .args(firmware::remap_paths(board.target))
        .args(["--no-default-features", "--features", board.feature]);
    for b in bins {
        cmd.args(["--bin", b]);
    }
    crate::run(&mut cmd)?;
    Ok(dir.join("target").join(board.target).join("size"))
}

/// The `vae` firmware and the `bench` firmware built with the `size` profile for the
/// Cortex-M4F: flash of the former without its model, the bench log of the latter.
fn size_profile_build() -> Result<(u64, String)> {
    let (out, model) = size_profile(&["vae", "bench"])?;
    let flash = pipeline::without_model(&out.join("vae"), model)?.flash;
    let board = firmware::default_board();
    let o = firmware::run_qemu(board, &out.join("bench"), Duration::from_secs(300))?;
    if o.code != Some(0) {
        bail!("bench (size profile) ended with {:?}:\n{}", o.code, o.log);
    }
    Ok((flash, o.log))
}

/// The flash budget of the `vae` firmware without its model, `size` profile, Cortex-M4F.
pub const FLASH_BUDGET: u64 = 32 * 1024;

/// Flash of the `vae` firmware without its model (built with the probe model, whose bytes
/// are taken off), `size` profile, Cortex-M4F.
pub fn size_profile_flash() -> Result<u64> {
    let (out, model) = size_profile(&["vae"])?;
    Ok(pipeline::without_model(&out.join("vae"), model)?.flash)
}

/// The `dsp-tiles` instructions and MACs of the default decoder's two dense layers.
fn dsp_decoder(rows: &[(String, Row)]) -> (u64, u64) {
    ["dec.0", "dec.1"]
        .iter()
        .filter_map(|n| rows.iter().find(|(x, _)| x == n).map(|(_, r)| r))
        .map(|r| {
            (
                r.counts.get("dsp-tiles").copied().unwrap_or(0),
                r.inp * r.out,
            )
        })
        .fold((0, 0), |(a, b), (n, m)| (a + n, b + m))
}

/// Runs the benchmarks and writes results/kernels.md.
pub fn bench() -> Result<()> {
    setup::all()?;
    let mut md = String::from(
        "# Dense-layer kernels under QEMU\n\n\
         Instructions retired per layer (QEMU `-icount`, counted with SysTick: instructions, \
         not cycles; exact to one instruction, the same on every run of a build), random int8 \
         weights and inputs, typical requantization parameters, Rust 1.95.0, firmware \
         `release` profile. Each count covers the whole layer: input widening, the \
         multiply-accumulates, bias, requantization, activation and the stores. The kernels' \
         outputs are checked equal on the chip. Reproduce: `cargo xtask bench`.\n\n\
         For reference, on the same emulated Cortex-M4: CMSIS-NN's `arm_fully_connected_s8` \
         (DSP path, gcc 12 -O3) retires 2.00 instructions per MAC on 400->784 and 2.06 over a \
         20->400->784 decoder (figures measured in an independent review, not here).\n\n",
    );
    let (mut sizes, mut release) = (String::new(), None);
    for board in firmware::qemu_boards() {
        let (log, elfs) = run_twice(board)?;
        let rows = parse(&log)?;
        md += &table(board, &rows);
        md += "\n";
        if board == firmware::default_board() {
            sizes = code_sizes(&elfs.join("bench"))?;
            release = Some((pipeline::code_footprint(board)?.flash, dsp_decoder(&rows)));
        }
    }
    md += "## Code size\n";
    md += &sizes;
    if !firmware::using_debian_toolchain() {
        md += "\n### Firmware flash without the model, by profile (Cortex-M4F)\n\n\
               | profile | `vae` firmware flash (code + constants, without its model) | DSP decoder, \
               20->400->784 dense layers: instructions | per MAC |\n|---|---:|---:|---:|\n";
        let (flash, log) = size_profile_build()?;
        let size = (flash, dsp_decoder(&parse(&log)?));
        for (profile, (flash, (n, macs))) in
            [("release", release.context("no M4F run")?), ("size", size)]
        {
            md += &format!(
                "| `{profile}` | {flash} bytes ({:.1} KiB) | {n} | {:.3} |\n",
                flash as f64 / 1024.0,
                n as f64 / macs.max(1) as f64
            );
        }
        md += "\n`release` is opt-level 3 (what every other table measures); `size` is \
               opt-level \"z\". Both link with `--icf=all`, and the emulated boards' vector \
               table has their 32 interrupts. Each is built with a model embedded (a synthetic \
               decoder-only conv model in the `conv-mcu` preset's shapes) whose bytes are then \
               taken off: built without one, the firmware's buffers are empty and the \
               compiler drops the code that loops over them (about 4 KB in `size`, 15 KB in \
               `release`); with other models the figure moves by tens of bytes. In both, an int8 layer runs as one assembly \
               routine (the tile loop and the requantization fused); `size` gives up unrolling \
               and inlining elsewhere, and the engine's two-position convolution kernel \
               (`cfg(tinyvae_small)`: convolutions take the one-position kernel). `release` \
               has the firmware's `classes` feature (drawing a chosen class of a prior per \
               class, as every build xtask makes), `size` leaves it out (about 1 KB: the \
               budget build).\n";
    }
    let out = project_root().join("results").join("kernels.md");
    std::fs::create_dir_all(out.parent().context("results")?)?;
    std::fs::write(&out, &md)?;
    println!("{md}\nwrote {}", out.display());
    Ok(())
}
