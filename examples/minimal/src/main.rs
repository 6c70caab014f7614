//! Generates four images with a tinyvae model and prints them: the whole flow.
#![no_std]
#![no_main]

use semihosting::{print, println, process};
use tinyvae_engine::{format::Model, include_model, Engine, NoProbe, Sampler};

mod sizes {
    include!(concat!(env!("OUT_DIR"), "/tinyvae_sizes.rs"));
}

/// The model, word-aligned in flash (the DSP kernel loads weights four bytes at a time).
static MODEL: &[u8] = include_model!(concat!(env!("OUT_DIR"), "/model.tvae"));

fn fail(what: &str, e: impl core::fmt::Display) -> ! {
    println!("{what}: {e}");
    process::exit(1)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let model = Model::from_bytes(MODEL).unwrap_or_else(|e| fail("model", e));
    let engine = Engine::new(&model).unwrap_or_else(|e| fail("engine", e));
    println!("{} bytes of model, {}", MODEL.len(), engine.kernel());

    let mut scratch = [0i8; sizes::SCRATCH];
    let mut code = [0i8; sizes::LATENT];
    let mut pixels = [0u8; sizes::PIXELS];
    let mut sampler = Sampler::new(2026);
    for k in 0..4 {
        engine
            .sample_prior(&mut sampler, &mut code)
            .unwrap_or_else(|e| fail("sample", e));
        engine
            .decode(&code, &mut scratch, &mut pixels, &mut NoProbe)
            .unwrap_or_else(|e| fail("decode", e));
        print!("sample {k} ");
        pixels.iter().for_each(|p| print!("{p:02x}"));
        println!();
    }
    process::exit(0)
}
