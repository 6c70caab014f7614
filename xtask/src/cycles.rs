//! `cargo xtask cycles`: an estimate of Cortex-M4 cycles from the instruction mix the emulated
//! chip executes, with the TCG plugin in `xtask/qemu-plugin/m4cycles.c` built against the
//! plugin header of the installed QEMU version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{elf, firmware, pipeline, project_root, run, setup};

/// The version of the installed qemu-system-arm, e.g. "10.0.2".
fn qemu_version() -> Result<String> {
    let out = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .context("running qemu-system-arm --version")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("no version in {text:?}"))
}

/// `qemu-plugin.h` of the installed QEMU version: extracted from Debian's source tarball of
/// that version (or upstream's), downloaded once into `.tools/qemu-plugin/`.
fn plugin_header(version: &str) -> Result<PathBuf> {
    let dir = project_root()
        .join(".tools")
        .join("qemu-plugin")
        .join(version);
    let header = dir.join("qemu-plugin.h");
    if header.exists() {
        return Ok(header);
    }
    std::fs::create_dir_all(&dir)?;
    let tarball = dir.join("qemu.tar.xz");
    let urls = [
        format!("http://deb.debian.org/debian/pool/main/q/qemu/qemu_{version}+ds.orig.tar.xz"),
        format!("https://download.qemu.org/qemu-{version}.tar.xz"),
    ];
    let fetched = urls.iter().any(|u| {
        println!("[cycles] fetching the QEMU {version} sources for qemu-plugin.h: {u}");
        crate::status_ok(
            Command::new("curl")
                .args(["-fsSL", "-o"])
                .arg(&tarball)
                .arg(u),
        )
    });
    if !fetched {
        bail!(
            "could not download the QEMU {version} sources for qemu-plugin.h; put that \
             version's include/qemu/qemu-plugin.h at {}",
            header.display()
        );
    }
    let member = format!("qemu-{version}/include/qemu/qemu-plugin.h");
    run(Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg("--strip-components=3")
        .arg(&member))?;
    std::fs::remove_file(&tarball)?;
    if !header.exists() {
        bail!("{member} was not in the QEMU sources");
    }
    Ok(header)
}

/// Builds the plugin; needs gcc and glib's headers (installed with apt where possible).
fn build_plugin() -> Result<PathBuf> {
    let header = plugin_header(&qemu_version()?)?;
    let glib = || {
        Command::new("pkg-config")
            .args(["--cflags", "glib-2.0"])
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let flags = match glib() {
        Some(o) => o,
        None => {
            setup::apt_install(&["libglib2.0-dev", "pkg-config"])
                .context("the plugin needs glib's headers (libglib2.0-dev)")?;
            glib().context("pkg-config still finds no glib-2.0")?
        }
    };
    let src = project_root().join("xtask/qemu-plugin/m4cycles.c");
    let out = project_root().join("target/qemu-plugin/libm4cycles.so");
    std::fs::create_dir_all(out.parent().context("parent")?)?;
    run(Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(header.parent().context("parent")?)
        .args(String::from_utf8_lossy(&flags.stdout).split_whitespace())
        .arg("-o")
        .arg(&out)
        .arg(&src))?;
    Ok(out)
}

/// One stretch between two marks, as the plugin wrote it.
#[derive(Debug, Default, Clone)]
struct Region {
    insns: u64,
    cycles: u64,
    mix: Vec<(String, u64)>,
}

fn parse_regions(text: &str) -> Vec<Region> {
    text.lines()
        .filter(|l| l.starts_with("region "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let mut r = Region::default();
            for kv in w[2..].chunks_exact(2) {
                let v = kv[1].parse().unwrap_or(0);
                match kv[0] {
                    "insns" => r.insns = v,
                    "cycles" => r.cycles = v,
                    k => r.mix.push((k.to_string(), v)),
                }
            }
            r
        })
        .collect()
}

fn sum(rs: &[Region]) -> Region {
    let mut t = Region::default();
    for r in rs {
        t.insns += r.insns;
        t.cycles += r.cycles;
        for (k, v) in &r.mix {
            match t.mix.iter_mut().find(|(n, _)| n == k) {
                Some((_, x)) => *x += v,
                None => t.mix.push((k.clone(), *v)),
            }
        }
    }
    t
}

/// One named region: its counts, its multiply-accumulates, and for a dense layer with int8
/// outputs, what the fused kernel did there.
struct Row {
    name: String,
    region: Region,
    /// Multiply-accumulates: (useful, executed), padding taps counted in the second only.
    macs: (u64, u64),
    fused: Option<Fused>,
    /// The layer's estimated floor in cycles ([`crate::floor::floor_cycles`]), for a layer of
    /// one sample.
    floor: Option<f64>,
}

/// A dense layer with int8 outputs, which the fused kernel (`tinyvae_dense_i8_smlad`) runs.
struct Fused {
    in_dim: u64,
    outputs: u64,
    /// The kernel's estimated cycles in the layer's region (a second, profiled run).
    kernel: u64,
}

impl Fused {
    /// The tile loop's estimated cycles: 24 per tile of 4 x 4 (two `LDM`, 3 and 5 cycles,
    /// and 16 single-cycle `SXTB16` / `SMLAD`), padding rows and columns included, and 4 per
    /// taken back branch of its loop of 8 tiles (`SUBS`, `BNE`, the refill).
    fn tile_loop(&self) -> u64 {
        let (groups, blocks) = (self.in_dim.div_ceil(4), self.outputs.div_ceil(4));
        blocks * (24 * groups + 4 * (groups.div_ceil(8) - 1))
    }
}

/// Runs the `cycles` firmware with `model` under the plugin; returns the named regions.
/// With `profile`, also writes there where the run's estimated cycles went, function by
/// function.
fn estimate(plugin: &Path, model: &Path, profile: Option<&Path>) -> Result<Vec<Row>> {
    let board = firmware::default_board();
    let blob = std::fs::read(model)?;
    let m =
        tinyvae_format::Model::from_bytes(&blob).with_context(|| format!("{}", model.display()))?;
    let elf = pipeline::build_with_model(board, model, &["cycles"], &[])?.join("cycles");
    let mark = elf::symbol_address(&elf, "tinyvae_mark")?.context("no tinyvae_mark symbol")?;
    let out = project_root().join("target/qemu-plugin/regions.txt");
    let mut arg = format!("{},mark={mark:#x},out={}", plugin.display(), out.display());
    let per_insn = project_root().join("target/qemu-plugin/profile.txt");
    if profile.is_some() {
        arg += &format!(",profile={}", per_insn.display());
    }
    let run = |arg: String| -> Result<String> {
        let o = firmware::run_qemu_with(
            board,
            &elf,
            Duration::from_secs(300),
            &["-plugin".into(), arg],
        )?;
        if o.code != Some(0) {
            bail!("the cycles firmware ended with {:?}:\n{}", o.code, o.log);
        }
        Ok(o.log)
    };
    let log = run(arg)?;
    let kernel_in = |index: usize| -> Result<u64> {
        run(format!(
            "{},mark={mark:#x},out={},profile={},region={index}",
            plugin.display(),
            out.with_extension("layer.txt").display(),
            per_insn.with_extension("layer.txt").display()
        ))?;
        let text = std::fs::read_to_string(per_insn.with_extension("layer.txt"))?;
        let kernel = format!("{}dense_i8_smlad", tinyvae_engine::ASM_PREFIX);
        symbol_cycles(&elf, &text, &kernel)
    };
    if let Some(p) = profile {
        let text = by_function(&elf, &std::fs::read_to_string(&per_insn)?)?;
        std::fs::write(p, &text).with_context(|| format!("{}: cannot write", p.display()))?;
        println!(
            "[cycles] where the cycles go, function by function: {}",
            p.display()
        );
    }
    let regions = parse_regions(&std::fs::read_to_string(&out)?);
    let (nd, ne) = (m.decoder.layers.len(), m.encoder.layers.len());
    // Region 0 is the boot; then sampling, each decoder layer, the decode's return, each
    // encoder layer, the encode's return, each decoder layer of the two-sample decode, its
    // return, each encoder layer of the two-sample encode, its return; then the way to the
    // exit.
    if regions.len() != 1 + 1 + nd + 1 + ne + 1 + nd + 1 + ne + 1 + 1 {
        bail!("{} regions for {nd} + {ne} layers:\n{}", regions.len(), log);
    }
    // A network's total, then each of its layers, with their multiply-accumulates (for
    // `samples` samples). The encoder's last layer has int16 outputs (the tile loop alone,
    // then Rust); the fused kernel's overhead is worked out for one sample at a time.
    let network = |named: &mut Vec<Row>,
                   name: &str,
                   net: &tinyvae_format::Network<'_>,
                   regions: &[Region],
                   (first, samples): (usize, u64)|
     -> Result<()> {
        let macs: Vec<(u64, u64)> = net
            .layers
            .iter()
            .map(|l| (samples * l.useful_macs(), samples * l.macs()))
            .collect();
        named.push(Row {
            name: name.to_string(),
            region: sum(regions),
            macs: macs.iter().fold((0, 0), |(u, e), (a, b)| (u + a, e + b)),
            fused: None,
            floor: None,
        });
        let last = net.layers.len().saturating_sub(1);
        for (i, ((l, r), m)) in net.layers.iter().zip(regions).zip(macs).enumerate() {
            let int8 = name.starts_with("decode") || i < last;
            let fused = match l {
                tinyvae_format::Layer::Dense(d) if int8 && samples == 1 => Some(Fused {
                    in_dim: u64::from(d.in_dim),
                    outputs: u64::from(d.out_dim),
                    kernel: kernel_in(first + i)?,
                }),
                _ => None,
            };
            let each = if samples == 1 {
                String::new()
            } else {
                format!("{samples} x ")
            };
            named.push(Row {
                name: format!("{name}.layer{i} ({each}{} useful MACs)", l.useful_macs()),
                region: r.clone(),
                macs: m,
                fused,
                floor: (samples == 1).then(|| crate::floor::floor_cycles(l)),
            });
        }
        Ok(())
    };
    let mut named = vec![Row {
        name: "sample-prior".to_string(),
        region: regions[1].clone(),
        macs: (0, 0),
        fused: None,
        floor: None,
    }];
    network(
        &mut named,
        "decode",
        &m.decoder,
        &regions[2..2 + nd + 1],
        (2, 1),
    )?;
    let two = 4 + nd + ne;
    network(
        &mut named,
        "encode",
        &m.encoder,
        &regions[3 + nd..two],
        (3 + nd, 1),
    )?;
    network(
        &mut named,
        "decode-two",
        &m.decoder,
        &regions[two..two + nd + 1],
        (two, 2),
    )?;
    let enc_two = two + nd + 1;
    network(
        &mut named,
        "encode-two",
        &m.encoder,
        &regions[enc_two..enc_two + ne + 1],
        (enc_two, 2),
    )?;
    Ok(named)
}

/// The estimated cycles the plugin's per-instruction profile gives the function `name`.
fn symbol_cycles(elf: &Path, profile: &str, name: &str) -> Result<u64> {
    let f = elf::symbols(elf)?
        .into_iter()
        .find(|s| s.name == name && s.size > 0)
        .with_context(|| format!("no symbol {name} in {}", elf.display()))?;
    let (lo, hi) = (f.address & !1, (f.address & !1) + f.size);
    let mut total = 0;
    for line in profile.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let (Some(a), Some(c)) = (w.first(), w.get(2)) {
            let a = u32::from_str_radix(a, 16)?;
            if (lo..hi).contains(&a) {
                total += c.parse::<u64>()?;
            }
        }
    }
    Ok(total)
}

/// The plugin's per-instruction profile ("ADDRESS executions cycles" lines) summed by the
/// function of `elf` that holds each address, most cycles first.
fn by_function(elf: &Path, profile: &str) -> Result<String> {
    let mut funcs: Vec<elf::Symbol> = elf::symbols(elf)?
        .into_iter()
        .filter(|s| s.size > 0)
        .collect();
    funcs.sort_by_key(|s| s.address & !1);
    let mut totals: Vec<(u64, u64)> = vec![(0, 0); funcs.len() + 1];
    for line in profile.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(a), Some(n), Some(c)) = (w.first(), w.get(1), w.get(2)) else {
            continue;
        };
        let a = u32::from_str_radix(a, 16)?;
        let i = funcs.partition_point(|s| (s.address & !1) <= a);
        let slot = match i.checked_sub(1) {
            Some(j) if a < (funcs[j].address & !1) + funcs[j].size => j,
            _ => funcs.len(),
        };
        totals[slot].0 += n.parse::<u64>()?;
        totals[slot].1 += c.parse::<u64>()?;
    }
    let all: u64 = totals.iter().map(|t| t.1).sum();
    let mut rows: Vec<(usize, (u64, u64))> = totals.into_iter().enumerate().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .1));
    let mut text = String::from("estimated cycles  share  instructions  function\n");
    for (i, (n, c)) in rows.into_iter().filter(|r| r.1 .1 > 0) {
        let name = funcs
            .get(i)
            .map_or("(outside any sized symbol)".into(), |s| demangle(&s.name));
        text += &format!(
            "{c:>16}  {:>4.1}%  {n:>12}  {name}\n",
            100.0 * c as f64 / all.max(1) as f64
        );
    }
    Ok(text)
}

/// A legacy-mangled Rust symbol (`_ZN` + length-prefixed parts + `17h<hash>E`) as a path;
/// anything else unchanged.
fn demangle(s: &str) -> String {
    let Some(mut rest) = s.strip_prefix("_ZN") else {
        return s.to_string();
    };
    let mut parts = Vec::new();
    while let Some(d) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&d| d > 0) {
        let Ok(n) = rest[..d].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(d..d + n) else {
            break;
        };
        if !(part.starts_with('h') && n == 17) {
            parts.push(
                part.replace("$LT$", "<")
                    .replace("$GT$", ">")
                    .replace("$u20$", " "),
            );
        }
        rest = &rest[d + n..];
    }
    parts.join("::")
}

/// The fused dense kernel's layers: estimated cycles beyond the tile loop's, per output, in
/// the layer's whole region and in the kernel alone.
fn overhead_table(rows: &[Row]) -> String {
    let mut md = String::from(
        "\n| dense layer (int8 outputs) | outputs | estimated cycles | of which the tile loop | \
         beyond it, per output: whole layer | the kernel alone |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        if let Some(f) = &r.fused {
            let tiles = f.tile_loop();
            let per = |c: u64| (c as f64 - tiles as f64) / f.outputs.max(1) as f64;
            md += &format!(
                "| {} | {} | {} | {tiles} | {:.1} | {:.1} |\n",
                r.name,
                f.outputs,
                r.region.cycles,
                per(r.region.cycles),
                per(f.kernel),
            );
        }
    }
    md + "\n"
}

/// The title of [`cmsis_shapes`]'s section.
const CMSIS_SHAPES: &str = "synthetic conv 28x28x1 -> 14x14x32 -> 14x14x32 -> 7x7x64, latent 20 \
    (random weights; the shapes of the issue's CMSIS-NN figures: encode.layer1 is the 3x3 \
    14x14x32 -> 14x14x32, encode.layer2 the k4 s2 14x14x32 -> 7x7x64, decode.layer1 the \
    transposed 7x7x64 -> 14x14x32, decode.layer3 the transposed 14x14x32 -> 28x28x1)";

/// A synthetic VAE (random weights, requantization aimed at sane activations) whose layers
/// include every shape the issue gives CMSIS-NN's figures for: convolutions k4 s2 p1 to
/// 14x14x32, k3 s1 p1 to 14x14x32, k4 s2 p1 to 7x7x64, and the mirrored transposed ones.
fn cmsis_shapes(dir: &Path) -> Result<PathBuf> {
    use tinyvae_format::testkit::synthetic::{SyntheticConv, SyntheticSpec};
    let stage = |channels, kernel, stride| SyntheticConv {
        channels,
        kernel,
        stride,
        padding: 1,
    };
    let spec = SyntheticSpec {
        width: 28,
        height: 28,
        conv: vec![stage(32, 4, 2), stage(32, 3, 1), stage(64, 4, 2)],
        hidden: Vec::new(),
        latent: 20,
        ..SyntheticSpec::default()
    };
    // Tiled, as `trainer export` writes (the DSP kernels read tiles), with golden vectors:
    // the cycles firmware encodes the first one's image.
    let mut m = tinyvae_format::owned::OwnedModel::synthetic(&spec, 2026);
    for l in m.encoder.iter_mut().chain(m.decoder.iter_mut()) {
        *l = l.with_layout(tinyvae_format::WeightLayout::Tiles4x4);
    }
    let blob = crate::logs::with_golden(m).context("the synthetic model")?;
    let path = dir.join("cmsis-shapes").join("model.tvae");
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    std::fs::write(&path, blob).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

/// `cargo xtask cycles`: builds the plugin, runs every counted preset, writes
/// `results/m4-cycle-estimate.md`. With `--profile`, also writes, per preset,
/// `target/qemu-plugin/profile-PRESET.txt`: the estimated cycles of each function.
pub fn bench(args: &[String]) -> Result<()> {
    let profile = match args {
        [] => false,
        [a] if a == "--profile" => true,
        _ => bail!("usage: cargo xtask cycles [--profile]"),
    };
    setup::all()?;
    let plugin = build_plugin()?;
    let dir = project_root().join("target").join("xtask-cycles");
    let mut md = String::from(
        "# Cortex-M4 cycles, estimated (not measured)\n\n\
         An **estimate** of Cortex-M4 cycles from the instructions QEMU `mps2-an386` executes, \
         made by the TCG plugin `xtask/qemu-plugin/m4cycles.c` (built against the plugin header \
         of the installed QEMU). Each executed instruction costs its Cortex-M4 cycles from the \
         Technical Reference Manual's timing table: 1 for data processing, multiplies and the \
         DSP multiply-accumulates (`SMLAD`, `SXTB16`); 2 for a single load or store, 1 when it \
         follows another; 1 + N for `LDM`/`STM`/`PUSH`/`POP` of N registers; 2 more after any \
         taken branch (pipeline refill, 1 to 3 on the chip); 7 for a divide (2 to 12); 3 for \
         `VMLA`. Zero wait-state memory is assumed: a part running from flash with wait states \
         and no cache will take more. On a real board, `cargo xtask flash` reports the DWT \
         cycle counter instead. Instructions here include a few for the region markers. \
         Firmware `release` profile, Rust 1.95.0. Reproduce: `cargo xtask cycles`.\n\n\
         Under each preset, the dense layers with int8 outputs (the fused kernel's): the \
         estimated cycles beyond the tile loop's, per output, where the tile loop takes 24 per \
         tile of 4 x 4 (two `LDM`, 3 and 5 cycles, and 16 single-cycle `SXTB16` / `SMLAD`; \
         padding included) and 4 per taken back branch of its loop of 8 tiles. In the kernel \
         alone (from a second run, profiled over that layer) this is its per-output overhead: \
         requantization, zero-point, clamp, store and each block's bookkeeping, and the call's \
         set-up. The whole layer adds the calls to the kernel, the input's widening, and in \
         the decoder's first layer the decode's entry, in its last the pixel table, in the \
         encoder's first the pixel conversion.\n\n\
         `decode-two` is `Engine::decode_two`: two latent codes decoded in one pass, each \
         dense layer's weights widened once for both samples (`tinyvae_dense2_i8_smlad`: per \
         group of four columns, two rows for two samples, 16 MACs in 20 estimated cycles, \
         1.25 a MAC before the loop's branches and the requantization), convolutions once per \
         sample; `encode-two` is `Engine::encode_two`, the same for two items through the \
         encoder (its last layer, int16 outputs, once per item). Their MACs count both \
         samples, so their figures per MAC are per MAC per sample, comparable with \
         `decode`'s and `encode`'s. Their outputs are checked equal to two `decode` and two \
         `encode` calls' on the chip before they are counted.\n\n\
         Each layer of one sample has an estimated floor beside it, a model rather than a \
         measurement: a dense layer's best blocking (4 x 4 tiles) costs 24 cycles per 16 \
         MACs, a convolution whose two positions share each weight's widening 1.2 per MAC, \
         one with fewer than four output channels (its taps multiplied where they lie) 24 \
         per 16, padding taps skipped (useful MACs only, as a kernel could), and every \
         output about 10 more for its requantization, zero-point, clamp and store. \"From the floor\" is the estimated \
         cycles over it.\n\n",
    );
    let mut models = Vec::new();
    for (preset, arch) in crate::COUNTED {
        let model = pipeline::train_and_export(&dir.join(preset), preset, 1, Some(1000))?;
        models.push((preset, arch.to_string(), model));
    }
    models.push((
        "cmsis-shapes",
        CMSIS_SHAPES.to_string(),
        cmsis_shapes(&dir)?,
    ));
    for (preset, arch, model) in models {
        let prof = project_root().join(format!("target/qemu-plugin/profile-{preset}.txt"));
        let rows = estimate(&plugin, &model, profile.then_some(prof.as_path()))?;
        md += &format!(
            "## {arch}\n\n\
             | region | instructions | estimated cycles | cycles per instruction | cycles per \
             useful MAC | cycles per executed MAC (padding taps included) | estimated floor per \
             useful MAC | from the floor | multiply / load / load-multiple / branch \
             instructions |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|\n"
        );
        for Row {
            name,
            region: r,
            macs,
            floor,
            ..
        } in &rows
        {
            let get = |k: &str| r.mix.iter().find(|(n, _)| n == k).map_or(0, |x| x.1);
            let per = |m: u64| {
                if m > 0 {
                    format!("{:.2}", r.cycles as f64 / m as f64)
                } else {
                    String::new()
                }
            };
            let (useful, executed) = (per(macs.0), per(macs.1));
            let (floor, from) = match floor {
                Some(f) if macs.0 > 0 => (
                    format!("{:.2}", f / macs.0 as f64),
                    format!("{:.2}x", r.cycles as f64 / f),
                ),
                _ => (String::new(), String::new()),
            };
            md += &format!(
                "| {name} | {} | {} | {:.2} | {useful} | {executed} | {floor} | {from} | {} / {} / \
                 {} / {} |\n",
                r.insns,
                r.cycles,
                r.cycles as f64 / r.insns.max(1) as f64,
                get("mul"),
                get("load"),
                get("ldm"),
                get("branch"),
            );
        }
        md += &overhead_table(&rows);
    }
    let out = project_root().join("results").join("m4-cycle-estimate.md");
    std::fs::write(&out, &md)?;
    println!("{md}\nwrote {}", out.display());
    Ok(())
}
