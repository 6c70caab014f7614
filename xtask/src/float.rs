//! The f32 decoder path beside the int8 one on the emulated Cortex-M4F: what int8 buys in
//! instructions and flash, what it costs in PSNR against the host's float decoder.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tinyvae_engine::Sampler;
use tinyvae_f32::FloatDecoder;
use tinyvae_format::Model;

use crate::firmware::{self, Board};
use crate::pipeline;

/// The f32 path's PSNR against the host's f64 evaluation of the same float decoder must be at
/// least this: its only losses are f32 sums, micromath's exp and the rounding to 8 bits (which
/// alone gives 58.9 dB for a uniform error of half a step).
pub const F32_PSNR_MIN_DB: f64 = 55.0;

/// What one comparison run measured.
#[derive(Debug)]
pub struct Comparison {
    /// Instructions (or cycles) per decode on each path.
    pub int8: u64,
    /// The same for the f32 path.
    pub f32: u64,
    /// Multiply-accumulates per decode.
    pub macs: u64,
    /// PSNR of each path's pixels against the host's float decoder, in dB.
    pub int8_psnr: f64,
    /// The same for the f32 path.
    pub f32_psnr: f64,
    /// Largest pixel error of each path.
    pub int8_worst: f64,
    /// The same for the f32 path.
    pub f32_worst: f64,
    /// Bytes of the int8 decoder's parameters: weights (as stored), biases, multipliers,
    /// shifts, and the pixel table.
    pub int8_bytes: u64,
    /// The float decoder's bytes.
    pub f32_bytes: u64,
    /// Draws compared.
    pub draws: usize,
}

/// The host's float decoder evaluated in f64 on `z`: pixel values in [0, 255], unrounded.
fn reference(dec: &FloatDecoder<'_>, z: &[f64]) -> Vec<f64> {
    let layers: Vec<_> = dec.layers().collect();
    let mut x = z.to_vec();
    for (k, l) in layers.iter().enumerate() {
        x = (0..l.out_dim)
            .map(|o| {
                let v = f64::from(l.bias(o))
                    + (0..l.in_dim)
                        .map(|i| f64::from(l.weight(o, i)) * x[i])
                        .sum::<f64>();
                if k + 1 < layers.len() {
                    v.max(0.0)
                } else {
                    255.0 / (1.0 + (-v).exp())
                }
            })
            .collect();
    }
    x
}

/// Builds and runs the `f32dec` firmware on `board` with `model` and its float decoder, checks
/// that both paths computed on the chip what they compute on the host (int8: the engine; f32:
/// this crate's same code, bit for bit), and measures both against the host's float decoder.
pub fn compare(board: Board, model: &Path, seed: u64) -> Result<Comparison> {
    let f32_file = pipeline::float_decoder_of(model);
    let (blob, fblob) = (std::fs::read(model)?, std::fs::read(&f32_file)?);
    let m = Model::from_bytes(&blob).with_context(|| format!("{}", model.display()))?;
    let dec =
        FloatDecoder::from_bytes(&fblob).with_context(|| format!("{}", f32_file.display()))?;
    if dec.latent_dim() != usize::from(m.latent.dim) || dec.pixels() != m.data.len() {
        bail!(
            "{} does not belong to {}: different shapes",
            f32_file.display(),
            model.display()
        );
    }
    let elfs = pipeline::build_with_model(
        board,
        model,
        &["f32dec"],
        &[
            (
                "TINYVAE_F32",
                f32_file.canonicalize()?.display().to_string(),
            ),
            ("TINYVAE_SEED", seed.to_string()),
        ],
    )?;
    let out = firmware::run_qemu(board, &elfs.join("f32dec"), Duration::from_secs(300))?;
    if out.code != Some(0) {
        bail!(
            "f32dec on {} ended with {:?}:\n{}",
            board.name,
            out.code,
            out.log
        );
    }
    let dev = pipeline::parse(&out.log);
    let n = pipeline::check_outputs_match(model, seed, &dev, false)?;
    let f32_px = dev.images.get("f32").cloned().unwrap_or_default();
    if f32_px.len() != n {
        bail!(
            "the device printed {n} int8 and {} f32 images",
            f32_px.len()
        );
    }
    let count = |name: &str| {
        dev.counts
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, v, _)| *v)
            .with_context(|| format!("no `count {name}` in the log:\n{}", out.log))
    };
    // The same draws as the chip: z = eps, and the host's own f32 path on them.
    let mut sampler = Sampler::new(seed);
    let dim = dec.latent_dim();
    let scale = 1.0 / f64::from(1u32 << tinyvae_engine::gauss::FRAC_BITS);
    let int8_px = &dev.images["sample"];
    let (mut e8, mut e32, mut w8, mut w32) = (0f64, 0f64, 0f64, 0f64);
    let mut scratch = vec![0f32; dec.scratch_len()];
    let mut host = vec![0u8; dec.pixels()];
    for k in 0..n {
        let eps: Vec<i16> = (0..dim).map(|_| sampler.normal()).collect();
        let z32: Vec<f32> = eps.iter().map(|&e| f32::from(e) * (scale as f32)).collect();
        dec.decode(&z32, &mut scratch, &mut host)
            .context("the host's f32 decoder")?;
        if let Some(i) = host.iter().zip(&f32_px[k]).position(|(a, b)| a != b) {
            bail!(
                "f32 path: device image {k} differs from the host's at pixel {i}: {} vs {}",
                f32_px[k][i],
                host[i]
            );
        }
        let zf: Vec<f64> = eps.iter().map(|&e| f64::from(e) * scale).collect();
        let want = reference(&dec, &zf);
        for ((r, &a), &b) in want.iter().zip(&int8_px[k]).zip(&f32_px[k]) {
            let (d8, d32) = (f64::from(a) - r, f64::from(b) - r);
            e8 += d8 * d8;
            e32 += d32 * d32;
            w8 = w8.max(d8.abs());
            w32 = w32.max(d32.abs());
        }
    }
    let px = (n * dec.pixels()) as f64;
    let psnr = |e: f64| 10.0 * (255.0f64.powi(2) / (e / px)).log10();
    Ok(Comparison {
        int8: count("decode-int8")?,
        f32: count("decode-f32")?,
        macs: count("macs")?,
        int8_psnr: psnr(e8),
        f32_psnr: psnr(e32),
        int8_worst: w8,
        f32_worst: w32,
        int8_bytes: m
            .decoder
            .layers
            .iter()
            .map(|l| l.matrix().packed_weights().len() as u64 + 9 * u64::from(l.matrix().out_dim))
            .sum::<u64>()
            + 256,
        f32_bytes: fblob.len() as u64,
        draws: n,
    })
}

/// `cargo xtask f32`: trains the default model (10 epochs on the bundled subset), runs the
/// comparison on the emulated Cortex-M4F and writes `results/f32-vs-int8.md`.
pub fn bench() -> Result<()> {
    crate::setup::all()?;
    let dir = crate::project_root().join("target").join("xtask-f32");
    let model = pipeline::train_and_export(&dir, "default", 10, None)?;
    let board = firmware::default_board();
    let c = compare(board, &model, crate::DEMO_SEED)?;
    let m = |n: u64| n as f64 / c.macs as f64;
    let md = format!(
        "# int8 against f32 on the Cortex-M4F\n\n\
         The default 784-400-20 VAE, trained 10 epochs on the bundled MNIST subset, its \
         20-400-784 decoder run on {} draws z ~ N(0, I) on QEMU {} ({}), both paths on the same \
         draws: the int8 engine (DSP kernel, 4x4-tiled weights) on the int8 code of z, the f32 \
         path (`tinyvae-f32`: FPU, micromath's exp) on z itself. PSNR: each path's 8-bit pixels \
         against the host's float decoder evaluated in f64 on the same z. The f32 path computes \
         on the chip exactly what it computes on the host (checked pixel for pixel), and the \
         int8 path what the host engine does. Instructions retired (QEMU `-icount`, not cycles); \
         Rust 1.95.0, `release` profile. Reproduce: `cargo xtask f32`.\n\n\
         | path | instructions per decode | per MAC | decoder weights in flash (bytes) | PSNR (dB) | worst pixel error |\n\
         |---|---:|---:|---:|---:|---:|\n\
         | int8 | {} | {:.2} | {} | {:.2} | {:.1} |\n\
         | f32 | {} | {:.2} | {} | {:.2} | {:.1} |\n\n\
         int8 takes {:.1}x fewer instructions and {:.1}x less flash than f32 for {:.1} dB less \
         PSNR. Flash: the decoder's parameters as stored (int8: weights in 4x4 tiles, int32 \
         biases and multipliers, shifts, the 256-byte pixel table; f32: weights and biases). \
         The f32 path runs four rows per pass with four partial sums per row (`VLDR`, `VMLA`). \
         int8's error comes from quantizing the weights, the activations and z.\n",
        c.draws,
        board.name,
        board.cpu,
        c.int8,
        m(c.int8),
        c.int8_bytes,
        c.int8_psnr,
        c.int8_worst,
        c.f32,
        m(c.f32),
        c.f32_bytes,
        c.f32_psnr,
        c.f32_worst,
        c.f32 as f64 / c.int8 as f64,
        c.f32_bytes as f64 / c.int8_bytes as f64,
        c.f32_psnr - c.int8_psnr,
    );
    let out = crate::project_root().join("results").join("f32-vs-int8.md");
    std::fs::write(&out, &md)?;
    println!("{md}\nwrote {}", out.display());
    Ok(())
}
