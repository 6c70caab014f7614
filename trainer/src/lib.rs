//! The std half of tinyvae: train autoencoders, denoising autoencoders, VAEs and beta-VAEs
//! with candle on real data, evaluate them, picture them, quantize and export them to the
//! int8 model format the firmware runs.
#![deny(missing_docs)]

pub mod arch;
pub mod classifier;
pub mod data;
pub mod eval;
pub mod export;
pub mod fidelity;
pub mod frechet;
pub mod images;
pub mod layers;
pub mod model;
pub mod ops;
pub mod pictures;
pub mod prior;
pub mod rng;
pub mod shapes;
pub mod train;

pub use train::atomic_write;

pub use arch::{preset, Preset, PRESETS};
