//! The main job's pipeline: train with the trainer, export, embed in the firmware, run under
//! QEMU, read back what the emulated chip generated, hold it against the host engine, and
//! write pictures and count tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::Model;

use crate::firmware::{self, Board};
use crate::{project_root, run};

/// Builds the trainer (release) and returns its path; in `cargo xtask test`, the one the
/// host tests just built.
pub fn trainer() -> Result<PathBuf> {
    if TEST_PROFILE_TRAINER.load(Ordering::Relaxed) {
        // `cargo test --workspace` has just built the trainer binary for its CLI tests
        // (target/debug/trainer). Building it again, even with the same profile, would
        // compile candle once more (about 2.5 minutes on 2 cores): a build of one package
        // resolves other features than the whole workspace's tests.
        let bin = project_root().join("target/debug/trainer");
        if !bin.exists() {
            bail!(
                "{} is missing: the host tests build it (cargo test --workspace)",
                bin.display()
            );
        }
        return Ok(bin);
    }
    run(Command::new("cargo").current_dir(project_root()).args([
        "build",
        "--release",
        "-p",
        "tinyvae-trainer",
    ]))?;
    Ok(project_root().join("target/release/trainer"))
}

/// Set by `cargo xtask test` after the host tests: [`trainer`] returns the binary they built.
pub static TEST_PROFILE_TRAINER: AtomicBool = AtomicBool::new(false);

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
    let mut export = Command::new(&trainer);
    export.arg("export").arg(run_dir).arg("-o").arg(&model);
    // The f32 decoder format holds dense layers only.
    if !preset.starts_with("conv") {
        export.arg("--f32-decoder").arg(float_decoder_of(&model));
    }
    run(&mut export)?;
    Ok(model)
}

/// Exports a run's checkpoint again without its encoder; returns the model file.
pub fn export_decoder_only(run_dir: &Path) -> Result<PathBuf> {
    let model = run_dir.join("decoder.tvae");
    run(Command::new(trainer()?)
        .arg("export")
        .arg(run_dir)
        .arg("--decoder-only")
        .arg("-o")
        .arg(&model))?;
    Ok(model)
}

/// Where [`train_and_export`] writes the float decoder of `model`.
pub fn float_decoder_of(model: &Path) -> PathBuf {
    model.with_file_name("decoder.f32")
}

/// Exports a run's checkpoint again into `run_dir/NAME.tvae` with `trainer export`'s `args`
/// (a prior, `--decoder-only`, ...); returns the model file.
pub fn export_with(run_dir: &Path, name: &str, args: &[&str]) -> Result<PathBuf> {
    let model = run_dir.join(format!("{name}.tvae"));
    run(Command::new(trainer()?)
        .arg("export")
        .arg(run_dir)
        .arg("-o")
        .arg(&model)
        .args(args))?;
    Ok(model)
}

/// The learned prior the demo samples: `trainer export` options and what they are.
pub const DEMO_PRIOR: [&str; 6] = [
    "--prior",
    "mixture",
    "--per-class",
    "auto",
    "--prior-temperature",
    "0.7",
];

/// Exports a run's checkpoint again with the learned prior ([`DEMO_PRIOR`]: Gaussian
/// mixtures fitted to the training encodings, one per class when the data has labels,
/// within 8 KB, sampled at temperature 0.7); returns the model file.
pub fn export_mixture(run_dir: &Path, out_dir: &Path) -> Result<PathBuf> {
    let model = out_dir.join("model-mixture.tvae");
    run(Command::new(trainer()?)
        .arg("export")
        .arg(run_dir)
        .arg("-o")
        .arg(&model)
        .args(DEMO_PRIOR))?;
    Ok(model)
}

/// Exports a run's checkpoint (as trained, N(0, I) prior) to `model`.
pub fn export(run_dir: &Path, model: &Path) -> Result<()> {
    run(Command::new(trainer()?)
        .arg("export")
        .arg(run_dir)
        .arg("-o")
        .arg(model))
}

/// What a firmware printed, parsed (the keywords and parser shared with the firmware).
pub use tinyvae_protocol::log::{parse, DeviceRun};
use tinyvae_protocol::{keyword, CLASS_SAMPLES, INTERPOLATION_STEPS, RESAMPLES};

/// Stack the `vae` firmware needs besides the model's buffers (its frames, the model's
/// description, the sampler): measured at about 4.7 KB on the Cortex-M0 and M3 (the peak
/// stack less the buffers); rounded up.
pub const FIRMWARE_STACK: u64 = 6 * 1024;

/// RAM the `vae` firmware's buffers take for `model` on `board`: the engine's scratch for
/// the board's core, the pixels, the latent statistics and code, and on a board with a
/// display the images it keeps for it.
pub fn model_ram(board: Board, model: &Model<'_>) -> u64 {
    let simd = board.dsp;
    let (pixels, latent) = (model.data.len() as u64, u64::from(model.latent.dim));
    let shown = board.display_samples;
    tinyvae_engine::scratch_len_for(model, simd) as u64 + pixels * (1 + shown) + 9 * latent
}

/// What the `vae` firmware with a model needs on a board, against what the board has.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    /// The firmware's own code, constants and static RAM (measured with a model embedded).
    pub code: crate::elf::Footprint,
    /// Bytes of the model (flash).
    pub model: u64,
    /// Bytes of the model's buffers (on the stack): the scratch for the board's core, the
    /// images and codes the firmware keeps.
    pub buffers: u64,
}

impl Fit {
    /// Flash needed: the firmware's code and the model.
    pub fn flash(&self) -> u64 {
        self.code.flash + self.model
    }

    /// RAM needed: static RAM, the model's buffers and the firmware's own stack.
    pub fn ram(&self) -> u64 {
        self.code.ram + self.buffers + FIRMWARE_STACK
    }

    /// What it needs of `board`, in one line.
    pub fn line(&self, board: Board) -> String {
        format!(
            "flash {} of {} bytes ({} firmware + {} model), RAM {} of {} bytes ({} static + {} \
             buffers + {} stack){}",
            self.flash(),
            board.flash,
            self.code.flash,
            self.model,
            self.ram(),
            board.ram,
            self.code.ram,
            self.buffers,
            FIRMWARE_STACK,
            if self.flash() <= board.flash && self.ram() <= board.ram {
                ""
            } else {
                ": DOES NOT FIT"
            }
        )
    }
}

/// What the `vae` firmware with the model in `model_file` needs on `board`.
pub fn fit(board: Board, model_file: &Path) -> Result<Fit> {
    let blob = std::fs::read(model_file)
        .with_context(|| format!("{}: cannot read", model_file.display()))?;
    // A model that does not parse is the firmware's to reject at boot (which the tests
    // check): it makes no buffers.
    let buffers = Model::from_bytes(&blob).map_or(0, |m| model_ram(board, &m));
    Ok(Fit {
        code: code_footprint(board)?,
        model: blob.len() as u64,
        buffers,
    })
}

/// Refuses, naming the sizes, a model that cannot fit the board's flash beside the firmware's
/// code ([`code_footprint`]), or whose buffers, with the
/// firmware's static RAM and own stack, exceed the board's RAM.
pub fn check_fits(board: Board, model_file: &Path) -> Result<crate::elf::Footprint> {
    let f = fit(board, model_file)?;
    let (code, model_bytes, need) = (f.code, f.model, f.flash());
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
    let (buffers, ram) = (f.buffers, f.ram());
    if ram > board.ram {
        bail!(
            "the model does not fit {} ({}): it needs {} bytes of RAM ({} of buffers for the \
             model + {} of static RAM + {} of the firmware's own stack) and the board has {}",
            board.name,
            board.cpu,
            ram,
            buffers,
            code.ram,
            FIRMWARE_STACK,
            board.ram
        );
    }
    Ok(code)
}

/// The model that firmware code sizes are measured with: a synthetic decoder-only conv
/// model in the `conv-mcu` preset's shapes (28 x 28 grey, stages of 24 and 48 channels,
/// latent 16: about 94 KB, so that it fits every board, the micro:bit included), written
/// once into `target/xtask-probe/`. Built without any model, the firmware's buffers are
/// empty and the compiler drops the loops over them (about 4 KB): the code a model brings
/// along is only measured with one.
pub fn probe_model() -> Result<(PathBuf, u64)> {
    use tinyvae_format::testkit::synthetic::{SyntheticConv, SyntheticSpec};
    let stage = |channels| SyntheticConv {
        channels,
        kernel: 4,
        stride: 2,
        padding: 1,
    };
    let spec = SyntheticSpec {
        width: 28,
        height: 28,
        conv: vec![stage(24), stage(48)],
        hidden: Vec::new(),
        latent: 16,
        decoder_only: true,
        ..SyntheticSpec::default()
    };
    let blob = tinyvae_format::owned::OwnedModel::synthetic(&spec, 2026)
        .to_bytes()
        .context("the probe model")?;
    let path = project_root().join("target/xtask-probe/model.tvae");
    if std::fs::read(&path).ok().as_deref() != Some(blob.as_slice()) {
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(&path, &blob)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok((path, blob.len() as u64))
}

/// The footprint of the `vae` firmware in `elf` (built with the model `model_bytes` long
/// embedded) without the model: its code and constants, its static RAM.
pub fn without_model(elf: &Path, model_bytes: u64) -> Result<crate::elf::Footprint> {
    let mut f = crate::elf::footprint(elf)?;
    f.flash = f
        .flash
        .checked_sub(model_bytes)
        .with_context(|| format!("{}: smaller than its model", elf.display()))?;
    Ok(f)
}

/// The `vae` firmware's own footprint on `board`, release profile: built once per run with
/// the [`probe_model`], whose bytes are then taken off.
pub fn code_footprint(board: Board) -> Result<crate::elf::Footprint> {
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
    let (probe, bytes) = probe_model()?;
    let elfs = firmware::build_bins(
        board,
        &["vae"],
        &[("TINYVAE_MODEL", probe.display().to_string())],
    )?;
    let f = without_model(&elfs.join("vae"), bytes)?;
    CACHE
        .lock()
        .map_err(|_| anyhow::anyhow!("footprint cache poisoned"))?
        .push((board.name, f));
    Ok(f)
}

/// Builds the firmware binaries `bins` (all when empty) for `board` with `model` embedded
/// (and `envs`), after refusing a model that does not fit; returns the ELF folder.
pub fn build_with_model(
    board: Board,
    model: &Path,
    bins: &[&str],
    envs: &[(&str, String)],
) -> Result<std::path::PathBuf> {
    let model = model
        .canonicalize()
        .with_context(|| format!("{}: no such model file", model.display()))?;
    check_fits(board, &model)?;
    let mut all = vec![("TINYVAE_MODEL", model.display().to_string())];
    all.extend(envs.iter().cloned());
    firmware::build_bins(board, bins, &all)
}

/// The `vae` firmware for `board` with `model` embedded: its ELF and footprint.
pub fn build_for_board(
    board: Board,
    model: &Path,
) -> Result<(std::path::PathBuf, crate::elf::Footprint)> {
    let elf = build_with_model(board, model, &["vae"], &[])?.join("vae");
    let f = crate::elf::footprint(&elf)?;
    Ok((elf, f))
}

/// Builds the firmware with `model` embedded and runs the `vae` binary on `board`.
pub fn run_on_board(board: Board, model: &Path, seed: u64) -> Result<(i32, DeviceRun)> {
    let elfs = build_with_model(
        board,
        model,
        &["vae"],
        &[("TINYVAE_SEED", seed.to_string())],
    )?;
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

/// Everything the `vae` firmware prints, computed by the host engine: the samples from a
/// sampler seeded with `seed`; then, when the model has an encoder and two golden inputs,
/// the first input, its reconstruction (the mean code decoded), the resamples around it
/// (VAE only, the sampler's stream going on after the samples) and the interpolation to
/// the second input (FORMAT.md, section 7; the counts from `tinyvae_protocol::session`).
pub fn host_outputs(
    model: &Model<'_>,
    seed: u64,
    samples: usize,
) -> Result<BTreeMap<String, Vec<Vec<u8>>>> {
    let err = |e: tinyvae_engine::Error| anyhow::anyhow!("{e}");
    let engine = Engine::new(model).map_err(err)?;
    let mut scratch = vec![0i8; engine.scratch_len()];
    let mut sampler = Sampler::new(seed);
    let dim = usize::from(model.latent.dim);
    let mut code = vec![0i8; dim];
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let decode = |code: &[i8], scratch: &mut [i8]| -> Result<Vec<u8>> {
        let mut px = vec![0u8; model.data.len()];
        engine
            .decode(code, scratch, &mut px, &mut NoProbe)
            .map_err(err)?;
        Ok(px)
    };
    for _ in 0..samples {
        engine.sample_prior(&mut sampler, &mut code).map_err(err)?;
        let px = decode(&code, &mut scratch)?;
        out.entry(keyword::SAMPLE.into()).or_default().push(px);
    }
    let inputs = model.golden.as_ref().map(|g| &g.encoder);
    if let Some(inputs) = inputs.filter(|v| v.len() >= 2 && model.has_encoder()) {
        let mut stats = vec![0i16; model.encoder_out_dim()];
        let input = inputs[0].input.as_slice();
        engine
            .encode(input, &mut scratch, &mut stats, &mut NoProbe)
            .map_err(err)?;
        out.insert(keyword::INPUT.into(), vec![input.to_vec()]);
        engine.mean_code(&stats, &mut code).map_err(err)?;
        out.insert(keyword::RECON.into(), vec![decode(&code, &mut scratch)?]);
        if model.kind == tinyvae_format::ModelKind::Vae {
            for _ in 0..RESAMPLES {
                engine
                    .reparameterize(&stats, &mut sampler, &mut code)
                    .map_err(err)?;
                let px = decode(&code, &mut scratch)?;
                out.entry(keyword::RESAMPLE.into()).or_default().push(px);
            }
        }
        let mut other = vec![0i16; model.encoder_out_dim()];
        engine
            .encode(
                inputs[1].input.as_slice(),
                &mut scratch,
                &mut other,
                &mut NoProbe,
            )
            .map_err(err)?;
        for k in 0..=INTERPOLATION_STEPS {
            engine
                .interpolate(&stats, &other, k, INTERPOLATION_STEPS, &mut code)
                .map_err(err)?;
            let px = decode(&code, &mut scratch)?;
            out.entry(keyword::INTERP.into()).or_default().push(px);
        }
    }
    // A prior grouped by class: CLASS_SAMPLES draws of each class, the stream going on.
    for k in 0..engine.classes() * CLASS_SAMPLES {
        engine
            .sample_class(&mut sampler, k / CLASS_SAMPLES, &mut code)
            .map_err(err)?;
        let px = decode(&code, &mut scratch)?;
        out.entry(keyword::CLASS.into()).or_default().push(px);
    }
    Ok(out)
}

/// Holds every image the device printed against the host engine's, byte for byte: samples,
/// and the input, reconstruction, resamples and interpolation when the model has an encoder.
/// With `all` (the `vae` firmware), the device must also have printed every kind the host
/// makes. Returns how many images were compared.
pub fn check_outputs_match(
    model_file: &Path,
    seed: u64,
    device: &DeviceRun,
    all: bool,
) -> Result<usize> {
    let blob = std::fs::read(model_file)?;
    let model = Model::from_bytes(&blob).with_context(|| format!("{}", model_file.display()))?;
    // Every line parsed, the announced number of samples printed, each `sample K` the
    // K-th, and an exit line: a log cut short fails here, not as a shorter comparison.
    if let Err(e) = device.check_complete() {
        println!("{}", device.log);
        return Err(
            anyhow::Error::new(e).context("the firmware's log (printed above) is not whole")
        );
    }
    let samples = device.images.get(keyword::SAMPLE).map_or(0, Vec::len);
    if samples == 0 {
        bail!("the device printed no sample");
    }
    let want = host_outputs(&model, seed, samples)?;
    // With `all`, every kind either side has; else the kinds both have (another firmware
    // prints other images too, such as the f32 path's).
    let kinds: std::collections::BTreeSet<&String> = if all {
        want.keys().chain(device.images.keys()).collect()
    } else {
        device
            .images
            .keys()
            .filter(|k| want.contains_key(*k))
            .collect()
    };
    let mut n = 0;
    for kind in kinds {
        let (got, host) = (
            device.images.get(kind).map_or(&[][..], Vec::as_slice),
            want.get(kind).map_or(&[][..], Vec::as_slice),
        );
        if got.len() != host.len() {
            bail!(
                "the device printed {} {kind} image(s), the host engine makes {}",
                got.len(),
                host.len()
            );
        }
        for (k, (g, w)) in got.iter().zip(host).enumerate() {
            if g.len() != w.len() {
                bail!(
                    "device {kind} {k} has {} values, the host's {}",
                    g.len(),
                    w.len()
                );
            }
            if let Some(i) = g.iter().zip(w).position(|(a, b)| a != b) {
                bail!(
                    "device {kind} {k} differs from the host engine's at value {i}: {} vs {}",
                    g[i],
                    w[i]
                );
            }
            n += 1;
        }
    }
    Ok(n)
}

pub use crate::count_table::count_table;
pub use crate::pictures::{write_classes_png, write_png, write_samples_png, Shape};
