//! `cargo xtask logs`: regenerates the firmware logs committed beside the shared log parser
//! (protocol/tests/logs/), from a small synthetic VAE whose golden vectors the host engine
//! computes, so that the parser's tests read what a chip really prints.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::owned::{OwnedGolden, OwnedModel};
use tinyvae_format::testkit::synthetic::SyntheticSpec;
use tinyvae_format::Model;

use crate::{firmware, pipeline, project_root};

/// Where the committed logs and their model live.
pub fn dir() -> PathBuf {
    project_root().join("protocol/tests/logs")
}

/// The committed model: an 8 x 8 grey VAE (hidden 16, latent 4) with random weights, and
/// golden vectors computed by the host engine from random inputs.
pub fn model_bytes() -> Result<Vec<u8>> {
    with_golden(OwnedModel::synthetic(&SyntheticSpec::default(), 2026))
}

/// `m`'s bytes with golden vectors the host engine computes: two random images encoded and
/// their mean codes decoded, one draw from the prior decoded.
pub fn with_golden(mut m: OwnedModel) -> Result<Vec<u8>> {
    fn err(e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{e}")
    }
    let blob = m.to_bytes().map_err(err)?;
    let view = Model::from_bytes(&blob).map_err(err)?;
    let engine = Engine::new(&view).map_err(err)?;
    let mut scratch = vec![0i8; engine.scratch_len()];
    let (pixels, dim) = (view.data.len(), usize::from(view.latent.dim));
    let mut g = OwnedGolden::default();
    let mut seed = 1u64;
    for _ in 0..2 {
        let img: Vec<u8> = (0..pixels)
            .map(|_| (tinyvae_engine::rng::splitmix64(&mut seed) >> 56) as u8)
            .collect();
        let mut stats = vec![0i16; view.encoder_out_dim()];
        engine
            .encode(&img, &mut scratch, &mut stats, &mut NoProbe)
            .map_err(err)?;
        let mut code = vec![0i8; dim];
        engine.mean_code(&stats, &mut code).map_err(err)?;
        let mut px = vec![0u8; pixels];
        engine
            .decode(&code, &mut scratch, &mut px, &mut NoProbe)
            .map_err(err)?;
        g.encoder.push((img, stats));
        g.decoder.push((code, px));
    }
    let mut s = Sampler::new(7);
    let mut eps = vec![0i16; 16];
    s.fill_normal(&mut eps);
    let mut code = vec![0i8; dim];
    engine
        .sample_prior(&mut Sampler::new(7), &mut code)
        .map_err(err)?;
    let mut px = vec![0u8; pixels];
    engine
        .decode(&code, &mut scratch, &mut px, &mut NoProbe)
        .map_err(err)?;
    g.sampler.push((7, eps, code, px));
    m.golden = Some(g);
    m.to_bytes().map_err(err)
}

/// Runs the firmware binaries whose logs are committed and writes them.
pub fn regenerate() -> Result<()> {
    let dir = dir();
    std::fs::create_dir_all(&dir)?;
    let model = dir.join("synthetic-8x8.tvae");
    std::fs::write(&model, model_bytes()?)?;
    let board = firmware::default_board();
    let (code, d) = pipeline::run_on_board(board, &model, tinyvae_protocol::session::DEFAULT_SEED)?;
    if code != 0 {
        bail!("the vae firmware ended with {code}:\n{}", d.log);
    }
    // Instruction counts change with the compiler: the committed log keeps them, the tests
    // read only their presence.
    std::fs::write(dir.join(format!("vae-{}.log", board.name)), &d.log)?;
    let elfs = firmware::build(board, &[])?;
    for bin in ["fail-assert", "fail-panic"] {
        let o = firmware::run_qemu(board, &elfs.join(bin), Duration::from_secs(60))?;
        std::fs::write(dir.join(format!("{bin}-{}.log", board.name)), &o.log)?;
    }
    println!("[logs] written to {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed log of the chip's session equals what the host engine computes for
    /// the committed model, image by image; and the model is the one `model_bytes` makes.
    #[test]
    fn committed_vae_log_matches_the_host_engine() {
        let model = dir().join("synthetic-8x8.tvae");
        // Not assert_eq: a stale model would print both files byte by byte.
        assert!(
            std::fs::read(&model).unwrap() == model_bytes().unwrap(),
            "the committed model is stale: run `cargo xtask logs`"
        );
        let log = std::fs::read_to_string(dir().join("vae-mps2-an386.log")).unwrap();
        let d = pipeline::parse(&log);
        let n = pipeline::check_outputs_match(
            &model,
            tinyvae_protocol::session::DEFAULT_SEED,
            &d,
            true,
        )
        .unwrap();
        // 16 samples, the input, its reconstruction, 4 resamples, 8 interpolation steps.
        assert_eq!(n, 16 + 1 + 1 + 4 + 8);
    }
}
