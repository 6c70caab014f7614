//! tinyvae trainer.
#![deny(missing_docs)]
pub use candle_core;
