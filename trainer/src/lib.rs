//! The std half of tinyvae: train autoencoders, denoising autoencoders, VAEs and beta-VAEs
//! with candle on real data, evaluate them, picture them, quantize and export them to the
//! int8 model format the firmware runs.
#![deny(missing_docs)]

pub mod data;
pub mod eval;
pub mod export;
pub mod fused;
pub mod images;
pub mod model;
pub mod pictures;
pub mod rng;
pub mod train;

pub use train::atomic_write;

/// Presets: (hidden widths, latent size).
pub fn preset(name: &str) -> Option<(Vec<usize>, usize)> {
    match name {
        // The PyTorch example's architecture, so results compare directly.
        "default" => Some((vec![400], 20)),
        // Smaller, for microcontrollers with less flash.
        "mcu" => Some((vec![256], 16)),
        // A 2-D latent space, for pictures of the latent space.
        "2d" => Some((vec![400], 2)),
        _ => None,
    }
}
