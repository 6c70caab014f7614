//! The tinyvae model container: a versioned, checksummed, postcard-serialized int8 model that
//! the trainer writes and the firmware reads where it lies in flash.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "TVAE"
//! 4       2     format version, u16 little-endian (this crate: FORMAT_VERSION)
//! 6       2     header flags, u16 little-endian (none defined: must be 0)
//! 8       4     payload length in bytes, u32 little-endian
//! 12      4     payload checksum, u32 little-endian: [`checksum`] (versions 1 to 3:
//!               the CRC-32/ISO-HDLC, [`crc32`])
//! 16      n     payload: the postcard encoding of [`Model`]
//! ```
//!
//! [`Model::from_bytes`] checks the header, the checksum, decodes the payload borrowing every array
//! from the blob, and validates every size, count and range, so that a model that parses is safe
//! to run: shapes chain, lengths match, shifts are in range and no int32 accumulator can
//! overflow. It never allocates and never panics. See FORMAT.md for the field-by-field
//! specification and the compatibility rules.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(missing_docs)]
#![forbid(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod array;
mod check;
/// Which Cortex-M targets get the DSP-extension code paths (the checksum's `UMAAL` loop here,
/// the engine's `SMLAD` kernels): one rule, read from the target and the rustc flags, that
/// this crate's and the engine's build scripts apply and that a firmware's build script calls
/// to size its buffers for the engine.
pub mod dsp_rule;
mod error;
mod footprint;
mod layer;
/// The encoding of versions 1 and 2: networks of dense layers without layer tags.
#[cfg(feature = "legacy")]
pub mod legacy;
mod model;
#[cfg(feature = "std")]
pub mod owned;
#[cfg(feature = "std")]
pub mod tables;
#[cfg(feature = "test-kit")]
pub mod testkit;
mod validate;
#[cfg(feature = "std")]
mod write;

pub use array::{
    bytes_as_i8, bytes_as_i8_mut, F32s, I16s, I32s, I8s, LeArray, LeElem, U16s, U32s, U8s,
};
pub use check::{checksum, crc32, payload_check, CHECKSUM_MULTIPLIER};
pub use error::{Error, NetworkId};
pub use footprint::Footprint;
pub use layer::*;
pub use model::*;

use serde::{Deserialize, Serialize};

/// The four bytes every model blob starts with.
pub const MAGIC: [u8; 4] = *b"TVAE";
/// The format version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 6;
/// The oldest format version this crate reads: 1 with the `legacy` feature (the default),
/// else 4 (version 5's encoding and checksum are version 4's).
pub const MIN_FORMAT_VERSION: u16 = if cfg!(feature = "legacy") {
    1
} else {
    NEWEST_ENCODING_SINCE
};
/// The oldest format version encoded and checksummed as the newest (version 4): what a
/// reader without `legacy` reads, and what a firmware's build script embeds unconverted.
pub const NEWEST_ENCODING_SINCE: u16 = 4;
/// Size of the fixed header that precedes the payload.
pub const HEADER_LEN: usize = 16;
/// Most layers a network may have.
pub const MAX_LAYERS: usize = 8;
/// Most golden vectors of each kind a model may carry.
pub const MAX_GOLDEN: usize = 8;
/// Widest layer (inputs or outputs) the format accepts; a convolution's matrix (`K`, `R`)
/// too.
pub const MAX_WIDTH: u16 = 16384;
/// Largest stride of a transposed convolution: its `stride^2` phases are each a dense
/// product, and finding each walks the ones before it, so validation and a decode take
/// `stride^4` steps at most (4,096).
pub const MAX_TRANSPOSED_STRIDE: u8 = 8;
/// Largest latent size the format accepts.
pub const MAX_LATENT: u16 = 256;
/// Widest layer (inputs or outputs) of a second-stage prior's network (format version 6):
/// the engine runs it in fixed buffers of this many values, on the stack.
pub const MAX_SECOND_STAGE_WIDTH: u16 = 256;
/// Most layers of a second-stage prior's network.
pub const MAX_SECOND_STAGE_LAYERS: usize = 4;
/// Fractional bits of the engine's N(0, 1) draws (Q3.12 in an i16).
pub const EPS_FRAC_BITS: u8 = 12;
/// Fractional bits of the sigma table's values (sigma in Q16 in a u32).
pub const SIGMA_FRAC_BITS: u8 = 16;

/// What the model was trained as.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModelKind {
    /// A deterministic autoencoder: the encoder outputs the code z.
    Autoencoder,
    /// An autoencoder trained to reconstruct clean inputs from noisy ones.
    DenoisingAutoencoder,
    /// A variational autoencoder: the encoder outputs mu and log-variance.
    Vae,
}

impl ModelKind {
    /// How many values per latent dimension the encoder outputs: 2 (mu, log-variance) for a
    /// VAE, 1 (z) for the autoencoders.
    pub fn encoder_outputs_per_latent(self) -> u16 {
        match self {
            ModelKind::Vae => 2,
            _ => 1,
        }
    }
}

/// How a pixel is stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PixelEncoding {
    /// One byte per channel; intensity = value / 255.
    U8,
}

/// The shape of one data item.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataShape {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Channels per pixel.
    pub channels: u8,
    /// Encoding of each channel value.
    pub pixel: PixelEncoding,
}

impl DataShape {
    /// Values per item: width x height x channels (saturating at `usize::MAX`, which no
    /// validated model reaches: see [`DataShape::len_u64`]).
    pub fn len(&self) -> usize {
        usize::try_from(self.len_u64()).unwrap_or(usize::MAX)
    }

    /// Values per item in 64 bits: the same on every target, never wrapping.
    pub fn len_u64(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.channels)
    }
    /// True for a zero-sized shape (never valid in a model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
