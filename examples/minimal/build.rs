//! Puts memory.x where the linker finds it, embeds the model (TINYVAE_MODEL, else model.tvae
//! beside this file) and sizes the buffers for it on the target being built.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed=memory.x");
    println!("cargo::rerun-if-env-changed=TINYVAE_MODEL");
    let model = env::var("TINYVAE_MODEL").unwrap_or_else(|_| "model.tvae".into());
    fs::copy(&model, out.join("model.tvae")).unwrap_or_else(|e| panic!("{model}: {e}"));
    // SCRATCH, PIXELS, LATENT, ... in OUT_DIR/tinyvae_sizes.rs, for this target.
    tinyvae_engine::build::emit_sizes(&model).unwrap();
}
