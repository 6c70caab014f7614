//! Puts the selected board's memory.x where cortex-m-rt's link.x finds it.
use std::{env, fs, path::PathBuf};

fn main() {
    let boards: Vec<String> = env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_QEMU_")
                .map(|b| b.to_lowercase())
        })
        .map(|b| format!("qemu-{}", b.replace('_', "-")))
        .collect();
    let board = match boards.as_slice() {
        [one] => one.clone(),
        [] => panic!(
            "select a board feature, e.g. --features qemu-mps2-an386 (cargo xtask does this)"
        ),
        many => panic!("select exactly one board feature, got {many:?}"),
    };
    let dir = board.trim_start_matches("qemu-");
    let src = PathBuf::from("boards").join(dir).join("memory.x");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::copy(&src, out.join("memory.x")).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");

    // The model the `vae` binary embeds: TINYVAE_MODEL names the file (cargo xtask sets it).
    // Without it, an empty blob is embedded and the binary reports that no model is present.
    println!("cargo:rerun-if-env-changed=TINYVAE_MODEL");
    println!("cargo:rerun-if-env-changed=TINYVAE_SEED");
    let model = out.join("model.tvae");
    match env::var("TINYVAE_MODEL") {
        Ok(path) if !path.is_empty() => {
            fs::copy(&path, &model).unwrap_or_else(|e| panic!("TINYVAE_MODEL={path}: {e}"));
            println!("cargo:rerun-if-changed={path}");
        }
        _ => fs::write(&model, []).unwrap(),
    }
    let seed: u64 = env::var("TINYVAE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    fs::write(out.join("seed.rs"), format!("{seed}")).unwrap();
}
