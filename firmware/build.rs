//! Writes the selected board's memory.x (from boards/boards.rs, the one description of every
//! board, which xtask reads too) where cortex-m-rt's link.x finds it; embeds the model, the
//! float decoder and the seed; sizes the buffers for the model.
use std::{env, fs, path::PathBuf};

#[allow(dead_code)]
mod boards {
    include!("boards/boards.rs");
}

fn main() {
    // The board: exactly one board feature (the default, mps2-an386, unless xtask or the
    // user names another with --no-default-features --features NAME).
    let feature_env = |f: &str| format!("CARGO_FEATURE_{}", f.to_uppercase().replace('-', "_"));
    let selected: Vec<boards::Board> = boards::BOARDS
        .iter()
        .copied()
        .filter(|b| env::var_os(feature_env(b.feature)).is_some())
        .collect();
    let board = match selected.as_slice() {
        [one] => *one,
        [] => panic!(
            "select a board feature, e.g. --features qemu-mps2-an386 (cargo xtask does this)"
        ),
        many => panic!(
            "select exactly one board feature (with --no-default-features), got {:?}",
            many.iter().map(|b| b.feature).collect::<Vec<_>>()
        ),
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::write(out.join("memory.x"), boards::memory_x(&board)).unwrap();
    // The counter's tick under QEMU (src/counter.rs).
    fs::write(out.join("tick_ns.rs"), format!("{:?}", board.tick_ns)).unwrap();
    fs::write(
        out.join("icount_shift.rs"),
        format!("{}", board.icount_shift),
    )
    .unwrap();
    // The UART log's line speed (src/uart_log.rs), where the board logs over a UART.
    let baud = match board.log {
        boards::Log::Uart(baud) => baud,
        _ => 0,
    };
    fs::write(out.join("uart_baud.rs"), format!("{baud}")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's `device` feature includes a device.x of interrupt handler names; the
    // MPS2 boards' table (src/lib.rs) names none.
    if env::var_os("CARGO_FEATURE_MPS2_VECTORS").is_some() {
        fs::write(
            out.join("device.x"),
            "/* MPS2: no named interrupt handlers */\n",
        )
        .unwrap();
    }
    println!("cargo:rerun-if-changed=boards/boards.rs");
    println!("cargo:rerun-if-changed=build.rs");

    // The model the `vae` binary embeds: TINYVAE_MODEL names the file (cargo xtask sets it).
    // Without it, an empty blob is embedded and the binary reports that no model is present.
    println!("cargo:rerun-if-env-changed=TINYVAE_MODEL");
    println!("cargo:rerun-if-env-changed=TINYVAE_SEED");
    let model = out.join("model.tvae");
    match env::var("TINYVAE_MODEL") {
        Ok(path) if !path.is_empty() => {
            let p = PathBuf::from(&path);
            if p.is_relative() {
                panic!(
                    "TINYVAE_MODEL={path}: a relative path, which cargo would resolve from \
                     firmware/ (build scripts run there); give an absolute path, e.g. \
                     TINYVAE_MODEL=$PWD/{path}"
                );
            }
            let blob = fs::read(&p).unwrap_or_else(|e| panic!("TINYVAE_MODEL={path}: {e}"));
            fs::write(&model, convert(&blob, &path)).unwrap();
            println!("cargo:rerun-if-changed={path}");
        }
        _ => fs::write(&model, []).unwrap(),
    }
    sizes(&model, &out.join("sizes.rs"));
    // The same bytes after one byte, for the `misaligned` binary.
    let mut off = vec![0u8];
    off.extend(fs::read(&model).unwrap());
    fs::write(out.join("model-off-by-one.tvae"), off).unwrap();
    // The float decoder the `f32dec` binary embeds: TINYVAE_F32 names the file.
    println!("cargo:rerun-if-env-changed=TINYVAE_F32");
    let f32_decoder = out.join("decoder.f32");
    match env::var("TINYVAE_F32") {
        Ok(path) if !path.is_empty() => {
            fs::copy(&path, &f32_decoder).unwrap_or_else(|e| panic!("TINYVAE_F32={path}: {e}"));
            println!("cargo:rerun-if-changed={path}");
        }
        _ => fs::write(&f32_decoder, []).unwrap(),
    }
    let seed: u64 = match env::var("TINYVAE_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| {
            panic!("TINYVAE_SEED={s:?} is not a seed (an integer 0 to 2^64 - 1)")
        }),
        Err(_) => tinyvae_protocol::session::DEFAULT_SEED,
    };
    fs::write(out.join("seed.rs"), format!("{seed}")).unwrap();
}

/// Writes the buffer sizes the `vae` binary needs for the embedded model (zero without one):
/// the engine's scratch for this target, the pixels, the latent size
/// (`tinyvae_engine::build::Sizes`, what any firmware's build script can use).
fn sizes(model: &std::path::Path, out: &std::path::Path) {
    let blob = fs::read(model).unwrap_or_default();
    // The engine runs its DSP kernel where the target has the extension (the rule its build
    // script applies); the firmware checks at boot that the engine asks for exactly this
    // scratch.
    let sizes = match tinyvae_format::Model::from_bytes(&blob) {
        Ok(m) => {
            // A second-stage prior is read only with the feature that reads it: say so here
            // rather than at boot.
            if m.prior.second_stage().is_some()
                && env::var_os("CARGO_FEATURE_SECOND_STAGE").is_none()
            {
                panic!(
                    "TINYVAE_MODEL={}: the model's prior is a second stage (format version \
                     6); build with the firmware feature `second-stage` (`--features \
                     BOARD,classes,second-stage`) to read and sample it",
                    env::var("TINYVAE_MODEL").unwrap_or_default()
                );
            }
            tinyvae_engine::build::Sizes::for_build_target(&m, blob.len())
        }
        // No model, or one the firmware will reject at boot (before any buffer is used).
        Err(_) => tinyvae_engine::build::Sizes::default(),
    };
    fs::write(out, sizes.to_rust()).unwrap();
}

/// The blob the firmware embeds: the file itself, or for a file of a format version older
/// than the newest encoding (the firmware reads versions 4 and 5 only: a few KB less flash)
/// the same model converted.
fn convert(blob: &[u8], path: &str) -> Vec<u8> {
    let newest = tinyvae_format::FORMAT_VERSION;
    let version = blob
        .get(4..6)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    if version >= tinyvae_format::NEWEST_ENCODING_SINCE {
        return blob.to_vec();
    }
    match tinyvae_format::Model::from_bytes(blob) {
        Ok(m) => {
            let out = tinyvae_format::owned::OwnedModel::from_model(&m)
                .to_bytes()
                .unwrap_or_else(|e| {
                    panic!("TINYVAE_MODEL={path}: converting to version {newest}: {e}")
                });
            println!(
                "cargo:warning=TINYVAE_MODEL={path}: format version {version}, embedded as \
                 version {newest} ({} bytes)",
                out.len()
            );
            out
        }
        // The firmware rejects it at boot, with its error.
        Err(_) => blob.to_vec(),
    }
}
