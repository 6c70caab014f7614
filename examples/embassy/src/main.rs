//! Generates four images in an embassy task that yields between the decoder's layers
//! (`Engine::decoding`), while another task counts how often it got to run.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use embassy_executor::Spawner;
use embassy_futures::yield_now;
use semihosting::{print, println, process};
use tinyvae_engine::{format::Model, include_model, Engine, Sampler};

mod sizes {
    include!(concat!(env!("OUT_DIR"), "/tinyvae_sizes.rs"));
}

static MODEL: &[u8] = include_model!(concat!(env!("OUT_DIR"), "/model.tvae"));

/// How many times the other task has run.
static OTHER_RUNS: AtomicU32 = AtomicU32::new(0);

fn fail(what: &str, e: impl core::fmt::Display) -> ! {
    println!("{what}: {e}");
    process::exit(1)
}

#[embassy_executor::task]
async fn generate() {
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
        let before = OTHER_RUNS.load(Ordering::Relaxed);
        let mut decoding = engine
            .decoding(&code, &mut scratch, &mut pixels)
            .unwrap_or_else(|e| fail("decode", e));
        let mut layers = 0;
        while decoding
            .step()
            .unwrap_or_else(|e| fail("decode", e))
            .is_some()
        {
            layers += 1;
            yield_now().await; // the other task runs here, between two layers
        }
        let others = OTHER_RUNS.load(Ordering::Relaxed) - before;
        print!("sample {k} ");
        pixels.iter().for_each(|p| print!("{p:02x}"));
        println!();
        println!("decoded in {layers} steps; the other task ran {others} times meanwhile");
    }
    process::exit(0)
}

#[embassy_executor::task]
async fn other() {
    loop {
        OTHER_RUNS.fetch_add(1, Ordering::Relaxed);
        yield_now().await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    spawner.spawn(other().unwrap_or_else(|e| fail("spawn", e)));
    spawner.spawn(generate().unwrap_or_else(|e| fail("spawn", e)));
}
