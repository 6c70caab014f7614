//! What can go wrong when making an [`Engine`](crate::Engine) or running a validated model:
//! one flat enum, each variant naming the value that is wrong.

/// What can go wrong when making an [`Engine`](crate::Engine) or running a validated model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The scratch buffer is smaller than the model needs.
    ScratchTooSmall {
        /// Bytes the model needs ([`Engine::scratch_len`](crate::Engine::scratch_len)).
        needed: u32,
        /// Bytes given.
        available: u32,
    },
    /// An input slice has the wrong length.
    InputLength {
        /// Length the model expects.
        expected: u32,
        /// Length given.
        found: u32,
    },
    /// An output slice has the wrong length.
    OutputLength {
        /// Length the model writes.
        expected: u32,
        /// Length given.
        found: u32,
    },
    /// The operation needs a VAE's mu and log-variance, and the model is an autoencoder.
    NotAVae,
    /// The operation needs the encoder, and the model is decoder-only.
    NoEncoder,
    /// The model's bytes do not start on a 4-byte boundary, so this build's assembly kernel
    /// cannot load its weights a word at a time (from [`Engine::new`](crate::Engine::new), on
    /// cores with the DSP extension and on ARMv6-M only). Embed the model with [`include_model!`](crate::include_model)
    /// or in an [`Aligned`](crate::Aligned) wrapper; or accept the portable kernels, 12 to 14
    /// times the instructions (the demo's conv and dense decoders on the Cortex-M4F), with
    /// [`Engine::new_unaligned`](crate::Engine::new_unaligned).
    Misaligned {
        /// The model's address modulo 4 (1, 2 or 3).
        offset: u8,
    },
    /// A class was asked for ([`Engine::sample_class`](crate::Engine::sample_class)) and the
    /// model's prior is not grouped by class, or has no such class.
    NoSuchClass {
        /// The class asked for.
        class: u32,
        /// The classes the model's prior has (0 when it is not grouped by class).
        classes: u32,
    },
    /// The model's prior is a second stage (format version 6), read by the format crate
    /// (another crate turned its `second-stage` feature on), and this build of the engine
    /// does not draw through one: turn on the engine's `second-stage` feature.
    SecondStageNotBuilt,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::ScratchTooSmall { needed, available } => write!(
                f,
                "scratch buffer too small: the model needs {needed} bytes, {available} given"
            ),
            Error::InputLength { expected, found } => {
                write!(f, "input has {found} values, the model takes {expected}")
            }
            Error::OutputLength { expected, found } => {
                write!(
                    f,
                    "output has room for {found} values, the model writes {expected}"
                )
            }
            Error::NotAVae => f.write_str("the model is not a VAE: it has no log-variance"),
            Error::NoEncoder => {
                f.write_str("the model is decoder-only: it generates, and cannot encode")
            }
            Error::NoSuchClass { class, classes: 0 } => write!(
                f,
                "class {class} asked for, and the model's prior is not grouped by class \
                 (export it with trainer export --prior mixture --per-class)"
            ),
            Error::NoSuchClass { class, classes } => write!(
                f,
                "class {class} asked for, and the model's prior has classes 0 to {}",
                classes - 1
            ),
            Error::SecondStageNotBuilt => f.write_str(
                "the model's prior is a second stage, and this engine is built without its \
                 second-stage feature",
            ),
            Error::Misaligned { offset } => write!(
                f,
                "the model's bytes start {offset} byte(s) past a 4-byte boundary, where the \
                 assembly kernel cannot load its weights: embed it with tinyvae_engine::include_model! \
                 (or tinyvae_engine::Aligned), or accept the portable kernels (12-14x the \
                 instructions) with Engine::new_unaligned"
            ),
        }
    }
}

impl core::error::Error for Error {}
