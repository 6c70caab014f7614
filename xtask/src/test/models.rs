//! Trained models on the emulated boards (the pipeline group): dense, conv and decoder-only, the Discovery kit's image, the f32 path, each image held against the host engine.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tinyvae_protocol::{exit_name, ExitCode};

use crate::{examples, firmware, float, kernels, pipeline, project_root, DEMO_SEED};

use super::{user, work_dir, Ctx, Tally};

/// Trained models on the emulated boards: dense, conv and decoder-only, the f32 path.
pub(super) fn pipeline_group(c: &mut Ctx) -> Result<()> {
    if let Some(model) = c.trained() {
        dense_on_chip(&mut c.t, &model)?;
        f32_path(&mut c.t, &model);
        discovery_kit(&mut c.t, &model);
    }
    conv_on_chip(&mut c.t);
    c.t.record(
        "cargo xtask demo --run on a run trained on 12x10 RGB images (not MNIST; discs and \
         squares in class subfolders): exported with its own data, a learned prior per class, \
         every chip image (each class drawn in turn) equal to the host's, RGB pictures",
        user::own_data_demo(),
    );
    Ok(())
}

/// The default model on both boards: its golden vectors and every image bit-exact with the
/// host engine, a corrupted copy rejected at boot; and its refusal for the Cortex-M0.
pub(super) fn dense_on_chip(t: &mut Tally, model_file: &Path) -> Result<()> {
    let corrupt = work_dir().join("corrupt.tvae");
    let mut blob = std::fs::read(model_file)?;
    let mid = blob.len() / 2;
    blob[mid] ^= 0x10;
    std::fs::write(&corrupt, &blob)?;
    t.record(
        "xtask refuses a model too large for a board, naming both sizes",
        match pipeline::check_fits(firmware::m0_board(), model_file) {
            Ok(_) => Err(anyhow::anyhow!(
                "the 680 KB model was accepted for a 256 KiB board"
            )),
            Err(e) => {
                let msg = format!("{e:#}");
                println!("  {msg}");
                if msg.contains(&firmware::m0_board().flash.to_string())
                    && msg.contains("bytes of flash")
                {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("unclear refusal: {msg}"))
                }
            }
        },
    );
    // A golden vector the engine does not reproduce (re-framed: a valid checksum): the
    // chip rejects it at boot, and the host's `trainer inspect` too, with the same words.
    t.record(
        "a model with a wrong golden vector: rejected at boot on mps2-an386 and by trainer \
         inspect, naming the same vector and element",
        user::bad_golden(model_file),
    );
    for board in firmware::qemu_boards() {
        t.record(
            &format!(
                "vae on {}: golden vectors and samples bit-exact with the host",
                board.name
            ),
            run_and_compare(board, model_file),
        );
        t.record(
            &format!("vae on {} rejects a corrupted model at boot", board.name),
            pipeline::run_on_board(board, &corrupt, DEMO_SEED).and_then(|(code, d)| {
                if code != ExitCode::BadModel.code() || !d.log.contains("ChecksumMismatch") {
                    bail!(
                        "expected exit 2 (bad model) and a checksum error, got {code} ({}); log:\n{}",
                        exit_name(code),
                        d.log
                    );
                }
                Ok(())
            }),
        );
    }
    Ok(())
}

/// A conv-mcu model trained and exported by the trainer: on the Cortex-M4F (DSP kernel) and
/// M3, its golden vectors and every image the chip makes equal the host engine's; its
/// decoder-only export generates on the Cortex-M0.
pub(super) fn conv_on_chip(t: &mut Tally) {
    let conv_run = work_dir().join("conv");
    let conv = pipeline::train_and_export(&conv_run, "conv-mcu", 2, Some(2000));
    t.record(
        "pipeline: train and export a conv model",
        conv.as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    let Ok(model_file) = &conv else {
        return;
    };
    for board in firmware::qemu_boards() {
        t.record(
            &format!(
                "conv vae on {}: golden vectors and every image bit-exact with the host",
                board.name
            ),
            run_and_compare(board, model_file),
        );
    }
    for name in examples::EXAMPLES {
        t.record(
            &format!(
                "examples/{name}, built from the packaged crates, on {}: every image bit-exact \
                 with the host engine",
                firmware::default_board().name
            ),
            examples::check(name, model_file),
        );
    }
    t.record(
        &format!(
            "examples/c: the packaged tinyvae-c built for {} Cortex-M targets, the firmware \
             compiled by arm-none-eabi-gcc, on {}: every image bit-exact with the host engine",
            examples::C_TARGETS.len(),
            firmware::default_board().name
        ),
        pipeline::trainer().and_then(|trainer| examples::check_c(model_file, &trainer)),
    );
    for board in [firmware::default_board(), firmware::qemu_boards()[1]] {
        t.record(
            &format!(
                "a model one byte off its word boundary on {}: refused by Engine::new where an \
                 assembly kernel runs, run bit-exact by Engine::new_unaligned, the fallback named",
                board.name
            ),
            user::misaligned(board, model_file),
        );
    }
    if !firmware::using_debian_toolchain() {
        t.record(
            "conv vae built for size (opt-level z) on mps2-an386: golden vectors and every \
             image bit-exact with the host",
            run_size_profile_and_compare(model_file),
        );
    }
    t.record(
        &format!(
            "conv-mcu decoder-only on {} ({}): golden vectors and samples bit-exact",
            firmware::m0_board().name,
            firmware::m0_board().cpu
        ),
        pipeline::export_decoder_only(&conv_run)
            .and_then(|m| run_and_compare(firmware::m0_board(), &m)),
    );
    t.record(
        &format!(
            "conv-mcu decoder-only with a prior per class (format version 5) on {} ({}): \
             each class drawn in turn, every image bit-exact",
            firmware::m0_board().name,
            firmware::m0_board().cpu
        ),
        pipeline::export_with(
            &conv_run,
            "decoder-per-class",
            &["--decoder-only", "--prior", "mixture", "--per-class"],
        )
        .and_then(|m| {
            let blob = std::fs::read(&m)?;
            let classes = tinyvae_format::Model::from_bytes(&blob)?.prior.classes();
            if classes < 2 {
                bail!(
                    "{}: a prior of {classes} classes, not one per digit",
                    m.display()
                );
            }
            run_and_compare(firmware::m0_board(), &m)
        }),
    );
    // A second-stage prior (format version 6): its dense layers run by the DSP kernel on
    // the M4F, by the ARMv6-M kernel on the M0, each draw checked against the host.
    let short = ["--prior", "second-stage", "--second-stage-epochs", "3"];
    for (board, decoder_only) in [
        (firmware::default_board(), false),
        (firmware::m0_board(), true),
    ] {
        let mut args = short.to_vec();
        let name = if decoder_only {
            args.push("--decoder-only");
            "decoder-second-stage"
        } else {
            "second-stage"
        };
        t.record(
            &format!(
                "conv-mcu{} with a second-stage prior (format version 6) on {} ({}): golden \
                 vectors and every sample bit-exact",
                if decoder_only { " decoder-only" } else { "" },
                board.name,
                board.cpu
            ),
            pipeline::export_with(&conv_run, name, &args).and_then(|m| {
                let blob = std::fs::read(&m)?;
                let model = tinyvae_format::Model::from_bytes(&blob)?;
                if model.prior.second_stage().is_none() {
                    bail!("{}: the prior is not a second stage", m.display());
                }
                run_and_compare(board, &m)
            }),
        );
    }
}

/// The B-L475E-IOT01A image under QEMU's model of the kit: the default model's golden vectors
/// and samples bit-exact with the host, its log over the UART; and the image it ran is, byte
/// for byte, the one `cargo xtask flash --board b-l475e-iot01a --build-only` makes.
pub(super) fn discovery_kit(t: &mut Tally, model: &Path) {
    let b = firmware::discovery();
    let elf = firmware::elf_dir(b).join("vae");
    let mut ran = None;
    t.record(
        &format!(
            "vae on {} ({}) under QEMU, log over its UART: golden vectors and samples bit-exact",
            b.name, b.cpu
        ),
        run_and_compare(b, model).and_then(|()| {
            ran = Some(std::fs::read(&elf)?);
            Ok(())
        }),
    );
    let Some(ran) = ran else { return };
    t.record(
        &format!(
            "the {} image QEMU ran is byte-identical to `cargo xtask flash --board {} --build-only`",
            b.name, b.name
        ),
        (|| {
            // As a user runs it: `cargo xtask flash`, its own process, its own printed hash.
            let out = Command::new("cargo")
                .current_dir(project_root())
                .args(["xtask", "flash", "--board", b.name, "--build-only", "--model"])
                .arg(model)
                .output()?;
            let said = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "flash --build-only failed:\n{said}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let want = crate::elf::sha256(&ran);
            let printed = said
                .lines()
                .find_map(|l| l.split("sha256 ").nth(1))
                .map(str::trim)
                .context("flash --build-only printed no sha256")?;
            let flashed = std::fs::read(&elf)?;
            if printed != want || flashed != ran {
                bail!(
                    "`flash --build-only` made {} (sha256 {printed}, {} bytes); QEMU ran sha256 \
                     {want} ({} bytes)",
                    elf.display(),
                    flashed.len(),
                    ran.len()
                );
            }
            println!("  sha256 {want} ({} bytes), the same in both", ran.len());
            Ok(())
        })(),
    );
}

/// The f32 decoder path on the Cortex-M4F: the same bits as on the host, near the float
/// decoder; the int8 path beside it on the same draws.
pub(super) fn f32_path(t: &mut Tally, model_file: &Path) {
    let board = firmware::default_board();
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

/// Runs the `vae` firmware with `model` on `board` and holds every image it prints against
/// the host engine's; prints its decode count and peak RAM.
pub(super) fn run_and_compare(board: firmware::Board, model: &Path) -> Result<()> {
    let (code, d) = pipeline::run_on_board(board, model, DEMO_SEED)?;
    compare(board, model, code, &d)
}

/// [`run_and_compare`] for the `vae` firmware built with the `size` profile (opt-level "z",
/// the engine's `tinyvae_small` paths: convolutions on the one-position kernel) on the
/// Cortex-M4F.
pub(super) fn run_size_profile_and_compare(model: &Path) -> Result<()> {
    let board = firmware::default_board();
    let seed = [("TINYVAE_SEED", DEMO_SEED.to_string())];
    let elf = kernels::size_profile_with(&["vae"], model, &seed)?.join("vae");
    let out = firmware::run_qemu(board, &elf, Duration::from_secs(300))?;
    let Some(code) = out.code else {
        bail!(
            "the size-profile vae firmware did not finish in time; log:\n{}",
            out.log
        );
    };
    compare(board, model, code, &pipeline::parse(&out.log))
}

/// Checks a run of the `vae` firmware: exit 0, the golden vectors reported bit-exact, every
/// image equal to the host engine's, the boot validation under one decode (on ARMv6-M, or
/// under 16 instructions a model byte).
pub(super) fn compare(
    board: firmware::Board,
    model: &Path,
    code: i32,
    d: &pipeline::DeviceRun,
) -> Result<()> {
    if code != 0 {
        bail!("exit code {code} ({}); log:\n{}", exit_name(code), d.log);
    }
    if !d.log.contains("vectors bit-exact") {
        bail!("no golden-vector report in the log:\n{}", d.log);
    }
    let n = pipeline::check_outputs_match(model, DEMO_SEED, d, true)?;
    let count = |name: &str| d.count(name).unwrap_or(0);
    let ram = |name: &str| d.ram.iter().find(|c| c.0 == name).map_or(0, |c| c.1);
    // Validating the model at boot (checksum and every check) costs less than one decode.
    // Not on ARMv6-M with a dense model: without a widening multiply the checksum's 64-bit
    // product takes four MULS a word, and the validator reads every weight, which a dense
    // decode uses once at under five instructions; there it is held under 16 instructions
    // a model byte (about 10 to 12 measured).
    let (validate, decode) = (count("validate"), count("decode"));
    let bytes = std::fs::metadata(model)?.len();
    let v6m = board.target.starts_with("thumbv6m");
    if validate == 0 || (validate >= decode && !(v6m && validate < 16 * bytes)) {
        bail!(
            "boot validation took {validate} instructions for {bytes} bytes of model, a decode \
             {decode}: not under one decode{}",
            if v6m {
                " nor 16 instructions a byte"
            } else {
                ""
            }
        );
    }
    println!(
        "  {n} images equal the host engine's; validate {validate}, decode {decode} instructions; \
         RAM {} static + {} stack of {}",
        ram("static"),
        ram("stack"),
        board.ram
    );
    Ok(())
}
