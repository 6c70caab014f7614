//! `Model::from_bytes` on arbitrary input never panics, and a model it accepts runs.
//!
//! The first byte picks the mode: odd, the input is a whole blob; even, the rest is a payload
//! framed here with a valid header and CRC, so the fuzzer reaches the decoder and the
//! validator instead of stopping at the CRC; bits 1-2 of that byte pick the format version
//! it is framed with (0 meaning the newest).
#![no_main]

use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::{payload_check, Model, FORMAT_VERSION, MAGIC};

fn exercise(blob: &[u8]) {
    let Ok(m) = Model::from_bytes(blob) else {
        return;
    };
    // A model that parses is safe to run: every engine entry point, on any input.
    // The portable fallback wherever the bytes lie (the host has no DSP kernel anyway).
    let e = Engine::new_unaligned(&m);
    let mut scratch = vec![0i8; e.scratch_len()];
    let pixels = vec![0x5Au8; m.data.len()];
    assert!(m.has_encoder() || e.encode(&pixels, &mut scratch, &mut [0; 1], &mut NoProbe).is_err());
    let mut stats = vec![0i16; m.encoder_out_dim()];
    let mut code = vec![0i8; usize::from(m.latent.dim)];
    let mut out = vec![0u8; m.data.len()];
    let _ = e.encode(&pixels, &mut scratch, &mut stats, &mut NoProbe);
    let mut s = Sampler::new(1);
    let _ = e.reparameterize(&stats, &mut s, &mut code);
    let _ = e.sample_prior(&mut s, &mut code);
    for class in [0, 1, e.classes().saturating_sub(1), e.classes(), usize::MAX] {
        let _ = e.sample_class(&mut s, class, &mut code);
    }
    let _ = e.decode(&code, &mut scratch, &mut out, &mut NoProbe);
    for lv in [i16::MIN, -1, 0, 1, i16::MAX] {
        let _ = e.sigma_q16(lv);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        exercise(rest);
    } else {
        let mut blob = Vec::with_capacity(rest.len() + 16);
        let version = match (mode >> 1) & 3 {
            0 => FORMAT_VERSION,
            v => u16::from(v),
        };
        blob.extend_from_slice(&MAGIC);
        blob.extend_from_slice(&version.to_le_bytes());
        blob.extend_from_slice(&0u16.to_le_bytes());
        blob.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        blob.extend_from_slice(&payload_check(version, rest).to_le_bytes());
        blob.extend_from_slice(rest);
        exercise(&blob);
    }
});
