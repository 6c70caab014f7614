//! The main job's pipeline: train with the trainer, export, embed in the firmware, run under
//! QEMU, read back what the emulated chip generated, hold it against the host engine, and
//! write pictures and count tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::Model;

use crate::firmware::{self, Board};
use crate::{project_root, run};

/// Builds the trainer (release) and returns its path.
pub fn trainer() -> Result<PathBuf> {
    run(Command::new("cargo").current_dir(project_root()).args([
        "build",
        "--release",
        "-p",
        "tinyvae-trainer",
    ]))?;
    Ok(project_root().join("target/release/trainer"))
}

/// Trains on the bundled subset and exports; returns the model file.
pub fn train_and_export(
    run_dir: &Path,
    preset: &str,
    epochs: u32,
    train_limit: Option<u32>,
) -> Result<PathBuf> {
    let trainer = trainer()?;
    let mut cmd = Command::new(&trainer);
    cmd.args([
        "train",
        "--preset",
        preset,
        "--epochs",
        &epochs.to_string(),
        "--seed",
        "1",
        "--overwrite",
    ])
    .arg("--out")
    .arg(run_dir);
    if let Some(n) = train_limit {
        cmd.args(["--train-limit", &n.to_string()]);
    }
    run(&mut cmd)?;
    let model = run_dir.join("model.tvae");
    run(Command::new(&trainer)
        .arg("export")
        .arg(run_dir)
        .arg("-o")
        .arg(&model)
        .arg("--f32-decoder")
        .arg(float_decoder_of(&model)))?;
    Ok(model)
}

/// Where [`train_and_export`] writes the float decoder of `model`.
pub fn float_decoder_of(model: &Path) -> PathBuf {
    model.with_file_name("decoder.f32")
}

/// Exports a run's checkpoint again with an aggregate-posterior prior of `components`
/// training encodings; returns the model file.
pub fn export_aggregate(run_dir: &Path, components: u32) -> Result<PathBuf> {
    let model = run_dir.join(format!("model-aggregate-{components}.tvae"));
    run(Command::new(trainer()?)
        .arg("export")
        .arg(run_dir)
        .arg("-o")
        .arg(&model)
        .args(["--prior-components", &components.to_string()]))?;
    Ok(model)
}

/// What the `vae` firmware printed, parsed.
#[derive(Debug, Default)]
pub struct DeviceRun {
    /// Images by kind ("sample", "recon", ...), in order.
    pub images: BTreeMap<String, Vec<Vec<u8>>>,
    /// `count NAME N` lines, in order, with the rest of the line (the layer shape).
    pub counts: Vec<(String, u64, String)>,
    /// `ram NAME N` lines.
    pub ram: Vec<(String, u64)>,
    /// The whole log.
    pub log: String,
}

fn parse_bytes(list: &str) -> Option<Vec<u8>> {
    let inner = list.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(|v| v.trim().parse::<u8>().ok())
        .collect()
}

/// Parses the firmware's log.
pub fn parse(log: &str) -> DeviceRun {
    let mut d = DeviceRun {
        log: log.to_string(),
        ..Default::default()
    };
    for line in log.lines() {
        let mut words = line.splitn(3, ' ');
        let (Some(a), Some(b)) = (words.next(), words.next()) else {
            continue;
        };
        let rest = words.next().unwrap_or("");
        match a {
            "count" => {
                let mut r = rest.splitn(2, ' ');
                if let Some(Ok(n)) = r.next().map(str::parse) {
                    d.counts
                        .push((b.to_string(), n, r.next().unwrap_or("").to_string()));
                }
            }
            "ram" => {
                if let Ok(n) = rest.trim().parse() {
                    d.ram.push((b.to_string(), n));
                }
            }
            "sample" | "resample" | "interp" | "f32" => {
                if let Some(px) = parse_bytes(rest) {
                    d.images.entry(a.to_string()).or_default().push(px);
                }
            }
            "recon" | "input" => {
                let list = line.split_once(' ').map(|x| x.1).unwrap_or("");
                if let Some(px) = parse_bytes(list) {
                    d.images.entry(a.to_string()).or_default().push(px);
                }
            }
            _ => {}
        }
    }
    d
}

/// Refuses, naming the sizes, a model that cannot fit the board's flash beside the firmware's
/// code (measured from the `vae` binary built without a model), or whose firmware's static
/// RAM exceeds the board's.
pub fn check_fits(board: Board, model_bytes: u64) -> Result<crate::elf::Footprint> {
    let code = code_footprint(board)?;
    let need = code.flash + model_bytes;
    if need > board.flash {
        bail!(
            "the model does not fit {} ({}): it needs {} bytes of flash ({} of model + {} of \
             firmware code) and the board has {}",
            board.name,
            board.cpu,
            need,
            model_bytes,
            code.flash,
            board.flash
        );
    }
    if code.ram > board.ram {
        bail!(
            "the firmware's static RAM ({} bytes) exceeds {}'s {} bytes",
            code.ram,
            board.name,
            board.ram
        );
    }
    Ok(code)
}

/// The `vae` firmware's own footprint on `board` (built once per run without a model).
fn code_footprint(board: Board) -> Result<crate::elf::Footprint> {
    static CACHE: std::sync::Mutex<Vec<(&'static str, crate::elf::Footprint)>> =
        std::sync::Mutex::new(Vec::new());
    if let Some(&(_, f)) = CACHE
        .lock()
        .map_err(|_| anyhow::anyhow!("footprint cache poisoned"))?
        .iter()
        .find(|(name, _)| *name == board.name)
    {
        return Ok(f);
    }
    let elfs = firmware::build(board, &[("TINYVAE_MODEL", String::new())])?;
    let f = crate::elf::footprint(&elfs.join("vae"))?;
    CACHE
        .lock()
        .map_err(|_| anyhow::anyhow!("footprint cache poisoned"))?
        .push((board.name, f));
    Ok(f)
}

/// Builds every firmware binary for `board` with `model` embedded (and `envs`), after
/// refusing a model that does not fit; returns the ELF folder.
pub fn build_with_model(
    board: Board,
    model: &Path,
    envs: &[(&str, String)],
) -> Result<std::path::PathBuf> {
    let model = model
        .canonicalize()
        .with_context(|| format!("{}: no such model file", model.display()))?;
    check_fits(board, std::fs::metadata(&model)?.len())?;
    let mut all = vec![("TINYVAE_MODEL", model.display().to_string())];
    all.extend(envs.iter().cloned());
    firmware::build(board, &all)
}

/// The `vae` firmware for `board` with `model` embedded: its ELF and footprint.
pub fn build_for_board(
    board: Board,
    model: &Path,
) -> Result<(std::path::PathBuf, crate::elf::Footprint)> {
    let elf = build_with_model(board, model, &[])?.join("vae");
    let f = crate::elf::footprint(&elf)?;
    Ok((elf, f))
}

/// Builds the firmware with `model` embedded and runs the `vae` binary on `board`.
pub fn run_on_board(board: Board, model: &Path, seed: u64) -> Result<(i32, DeviceRun)> {
    let elfs = build_with_model(board, model, &[("TINYVAE_SEED", seed.to_string())])?;
    let out = firmware::run_qemu(board, &elfs.join("vae"), Duration::from_secs(300))?;
    let Some(code) = out.code else {
        bail!(
            "the vae firmware on {} did not finish in time; log:\n{}",
            board.name,
            out.log
        );
    };
    Ok((code, parse(&out.log)))
}

/// The samples the host engine generates for `seed`: what the chip must reproduce.
pub fn host_samples(model: &Model<'_>, seed: u64, count: usize) -> Result<Vec<Vec<u8>>> {
    let engine = Engine::new(model);
    let mut scratch = vec![0i8; engine.scratch_len()];
    let mut sampler = Sampler::new(seed);
    let mut code = vec![0i8; usize::from(model.latent.dim)];
    let mut out = Vec::new();
    for _ in 0..count {
        let mut px = vec![0u8; model.data.len()];
        engine
            .sample_prior(&mut sampler, &mut code)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        engine
            .decode(&code, &mut scratch, &mut px, &mut NoProbe)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(px);
    }
    Ok(out)
}

/// Holds the device's samples against the host engine's, byte for byte.
pub fn check_samples_match(model_file: &Path, seed: u64, device: &DeviceRun) -> Result<usize> {
    let blob = std::fs::read(model_file)?;
    let model = Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let got = device
        .images
        .get("sample")
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if got.is_empty() {
        bail!("the device printed no sample");
    }
    let want = host_samples(&model, seed, got.len())?;
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        if let Some(i) = g.iter().zip(w).position(|(a, b)| a != b) {
            bail!(
                "device sample {k} differs from the host engine's at pixel {i}: {} vs {}",
                g[i],
                w[i]
            );
        }
        if g.len() != w.len() {
            bail!(
                "device sample {k} has {} pixels, the host's {}",
                g.len(),
                w.len()
            );
        }
    }
    Ok(got.len())
}

/// Writes rows of grey images as one PNG: each row a list of images, zoomed 3x.
pub fn write_png(path: &Path, rows: &[Vec<&[u8]>], w: usize, h: usize) -> Result<()> {
    const ZOOM: usize = 3;
    const GAP: usize = 2;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (pw, ph) = (
        cols * (w * ZOOM + GAP) + GAP,
        rows.len() * (h * ZOOM + GAP) + GAP,
    );
    let mut px = vec![48u8; pw * ph];
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let (x0, y0) = (GAP + c * (w * ZOOM + GAP), GAP + r * (h * ZOOM + GAP));
            for y in 0..h * ZOOM {
                for x in 0..w * ZOOM {
                    px[(y0 + y) * pw + x0 + x] = img[(y / ZOOM) * w + x / ZOOM];
                }
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("png.tmp");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut enc = png::Encoder::new(f, pw as u32, ph as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(&px)?;
        wr.finish()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Multiply-accumulates of a counted stage of `model`: `decode` and `encode` (whole networks)
/// or `decode.layerN` and `encode.layerN`; `None` for other counts.
pub fn layer_macs(model: &Model<'_>, name: &str) -> Option<u64> {
    let net = |n: &str| match n {
        "decode" => Some(&model.decoder),
        "encode" => Some(&model.encoder),
        _ => None,
    };
    match name.split_once(".layer") {
        None => net(name).map(|n| n.layers.iter().map(|l| l.macs()).sum()),
        Some((n, i)) => net(n)?
            .layers
            .get(i.parse::<usize>().ok()?)
            .map(|l| l.macs()),
    }
}

/// The count table as markdown.
pub fn count_table(board: Board, model: &Model<'_>, d: &DeviceRun) -> String {
    let mut s = format!(
        "| {} ({}) | instructions | per MAC |\n|---|---:|---:|\n",
        board.name, board.cpu
    );
    for (name, n, shape) in &d.counts {
        let macs = layer_macs(model, name);
        let per = macs.map_or(String::new(), |m| format!("{:.2}", *n as f64 / m as f64));
        let label = if shape.is_empty() {
            name.clone()
        } else {
            format!("{name} {}", shape.trim())
        };
        s += &format!("| {label} | {n} | {per} |\n");
    }
    for (name, n) in &d.ram {
        s += &format!("| RAM {name} (bytes) | {n} | |\n");
    }
    s
}
