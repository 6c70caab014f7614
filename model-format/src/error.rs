//! The one error type of the crate.

use core::fmt;

/// Which network of the model an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NetworkId {
    /// The encoder: pixels to the latent statistics.
    Encoder,
    /// The decoder: latent code to pixels.
    Decoder,
    /// A second-stage prior's network: u ~ N(0, I) to z (format version 6).
    Prior,
}

/// Everything that can be wrong with a model blob.
///
/// Reading never panics: every malformed input maps to one of these variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The blob is shorter than its header, or than the payload length the header states.
    Truncated {
        /// Bytes the header says the blob needs.
        needed: u32,
        /// Bytes actually present.
        available: u32,
    },
    /// The blob does not start with the magic `TVAE`: it is not a model file.
    BadMagic,
    /// The blob's format version is not one this reader understands.
    UnsupportedVersion {
        /// The version written in the blob.
        found: u16,
        /// The version this reader supports.
        supported: u16,
    },
    /// Header flags this reader does not know are set.
    UnsupportedFlags(u16),
    /// The checksum of the payload (version 4's, or the CRC-32 of versions 1 to 3) differs
    /// from the one stored in the header: the blob is corrupt.
    ChecksumMismatch {
        /// The checksum stored in the header.
        stored: u32,
        /// The checksum computed over the payload.
        computed: u32,
    },
    /// Bytes follow the payload, or the payload is longer than its own encoding.
    TrailingBytes,
    /// The payload passed the checksum but does not decode as a model of this version
    /// (an unknown enum tag, a length running past the end, invalid UTF-8, too many layers).
    Malformed,
    /// Two sizes that must agree do not (for example a layer's input size and the previous
    /// layer's output size, or an array length and the layer's shape).
    ShapeMismatch {
        /// The network holding the layer.
        network: NetworkId,
        /// The layer's index in its network; 255 when the error is about the network as a whole.
        layer: u8,
        /// The field whose size is wrong.
        field: &'static str,
    },
    /// A value lies outside the range the engine can run safely.
    ValueOutOfRange {
        /// The field holding the value.
        field: &'static str,
    },
    /// A layer's int32 accumulator could overflow for some input, given its weights and biases.
    AccumulatorOverflow {
        /// The network holding the layer.
        network: NetworkId,
        /// The layer's index in its network.
        layer: u8,
        /// The output channel (weight row) whose bound exceeds `i32::MAX`.
        row: u16,
    },
    /// A section that is present is inconsistent with the rest of the model
    /// (a golden vector of the wrong length, a prior of the wrong dimension).
    SectionMismatch {
        /// The field that does not match.
        field: &'static str,
    },
    /// A `Tiles4x4` layer's tiles do not begin on a 4-byte boundary of the blob.
    MisalignedWeights {
        /// The network holding the layer.
        network: NetworkId,
        /// The layer's index in its network.
        layer: u8,
    },
    /// Writing only: the model needs an allocator-backed serializer that failed.
    Serialize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { needed, available } => write!(
                f,
                "model blob truncated: needs {needed} bytes, has {available}"
            ),
            Error::BadMagic => f.write_str("not a tinyvae model: bad magic (expected \"TVAE\")"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported model format version {found} (this reader supports versions {} to {supported})",
                crate::MIN_FORMAT_VERSION
            ),
            Error::UnsupportedFlags(flags) => write!(f, "unsupported header flags {flags:#06x}"),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "model blob corrupt: payload checksum {computed:#010x} does not match stored {stored:#010x}"
            ),
            Error::TrailingBytes => f.write_str("model blob has bytes after its payload"),
            Error::Malformed => f.write_str("model payload does not decode as this format version"),
            Error::ShapeMismatch {
                network,
                layer,
                field,
            } => write!(f, "shape mismatch in {network:?} layer {layer}: {field}"),
            Error::ValueOutOfRange { field } => write!(f, "value out of range: {field}"),
            Error::AccumulatorOverflow {
                network,
                layer,
                row,
            } => write!(
                f,
                "{network:?} layer {layer} row {row}: the int32 accumulator could overflow"
            ),
            Error::SectionMismatch { field } => {
                write!(f, "section inconsistent with the model: {field}")
            }
            Error::MisalignedWeights { network, layer } => write!(
                f,
                "{network:?} layer {layer}: tiled weights do not start on a 4-byte boundary"
            ),
            Error::Serialize => f.write_str("could not serialize the model"),
        }
    }
}

impl core::error::Error for Error {}
