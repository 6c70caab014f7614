//! For build scripts (feature `std`): the buffer sizes a model needs on the target being
//! built, as constants a firmware sizes its statics with.
//!
//! The scratch the engine needs depends on the target: a core with the DSP extension widens
//! each layer's inputs to int16 in spare bytes that the portable kernels do not need, so a
//! size measured on the host (`Engine::scratch_len` there) is too small for a Cortex-M4.
//! In `build.rs`, with `tinyvae-engine` (feature `std`) as a build-dependency:
//!
//! ```no_run
//! // build.rs, in `fn main`:
//! tinyvae_engine::build::emit_sizes("model.tvae").unwrap();
//! ```
//!
//! and in the firmware:
//!
//! ```ignore
//! mod sizes {
//!     include!(concat!(env!("OUT_DIR"), "/tinyvae_sizes.rs"));
//! }
//! static mut SCRATCH: [i8; sizes::SCRATCH] = [0; sizes::SCRATCH];
//! ```

use std::path::{Path, PathBuf};

use tinyvae_format::Model;

use crate::dsp_rule;

/// The buffers a model needs, in bytes or values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Scratch bytes for `Engine::encode` and `Engine::decode` on the target.
    pub scratch: usize,
    /// Scratch bytes for `Engine::decode_two` (two samples per pass) on the target.
    pub scratch_two: usize,
    /// Values of one data item (the decoder's output, the encoder's input): width x height x
    /// channels.
    pub pixels: usize,
    /// Latent dimensions (the int8 code's length).
    pub latent: usize,
    /// Values the encoder writes: 2 x latent for a VAE (mu, log-variance), latent for an
    /// autoencoder, 0 for a decoder-only model.
    pub stats: usize,
    /// Bytes of the model file (flash).
    pub model: usize,
}

impl Sizes {
    /// The sizes of `model` (read from `bytes`) on a target with (`dsp`) or without the DSP
    /// kernel ([`dsp_rule::has_dsp_extension`]).
    pub fn of(model: &Model<'_>, bytes: usize, dsp: bool) -> Sizes {
        Sizes {
            scratch: crate::scratch_len_for(model, dsp),
            scratch_two: crate::batch::scratch_len_for(model, dsp),
            pixels: model.data.len(),
            latent: usize::from(model.latent.dim),
            stats: if model.has_encoder() {
                model.encoder_out_dim()
            } else {
                0
            },
            model: bytes,
        }
    }

    /// [`Sizes::of`] for the target Cargo runs this build script for (read from `TARGET`,
    /// `CARGO_ENCODED_RUSTFLAGS` and `CARGO_CFG_TARGET_FEATURE`).
    pub fn for_build_target(model: &Model<'_>, bytes: usize) -> Sizes {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Sizes::of(model, bytes, dsp_rule::build_target_has_dsp(var))
    }

    /// The sizes as Rust constants (`SCRATCH`, `SCRATCH_TWO`, `PIXELS`, `LATENT`, `STATS`, `MODEL`), each
    /// documented (and allowed to go unused), for `include!`.
    pub fn to_rust(&self) -> String {
        [
            (
                "SCRATCH",
                self.scratch,
                "Scratch bytes the engine needs for the model on this target.",
            ),
            (
                "SCRATCH_TWO",
                self.scratch_two,
                "Scratch bytes `Engine::decode_two` needs for the model on this target.",
            ),
            (
                "PIXELS",
                self.pixels,
                "Values per data item (the decoder's output, the encoder's input).",
            ),
            (
                "LATENT",
                self.latent,
                "Latent dimensions (the int8 code's length).",
            ),
            (
                "STATS",
                self.stats,
                "Values the encoder writes (2 x LATENT for a VAE; 0 without an encoder).",
            ),
            ("MODEL", self.model, "Bytes of the model file."),
        ]
        .iter()
        .map(|(name, n, doc)| {
            format!("/// {doc}\n#[allow(dead_code)]\npub const {name}: usize = {n};\n")
        })
        .collect()
    }

    /// The sizes as a C header of `#define TINYVAE_SCRATCH ...` lines (`TINYVAE_SCRATCH_TWO`,
    /// `TINYVAE_PIXELS`, `TINYVAE_LATENT`, `TINYVAE_STATS`, `TINYVAE_MODEL_BYTES`), for a C
    /// firmware's static buffers; `what` goes into its comment (the model file and the target).
    pub fn to_c_header(&self, what: &str) -> String {
        let mut h = format!(
            "/* Buffer sizes for {what}: written by tinyvae (`trainer inspect --c-header`). */\n\
             #ifndef TINYVAE_MODEL_SIZES_H\n#define TINYVAE_MODEL_SIZES_H\n"
        );
        for (name, n) in [
            ("SCRATCH", self.scratch),
            ("SCRATCH_TWO", self.scratch_two),
            ("PIXELS", self.pixels),
            ("LATENT", self.latent),
            ("STATS", self.stats),
            ("MODEL_BYTES", self.model),
        ] {
            h += &format!("#define TINYVAE_{name} {n}u\n");
        }
        h + "#endif\n"
    }
}

/// What [`emit_sizes`] could not do, naming the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The model file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a model this engine runs (the format's error says why; a file of an
    /// older format version needs `tinyvae-format`'s `legacy` feature to be converted).
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        error: tinyvae_format::Error,
    },
    /// `OUT_DIR` is unset (not run by Cargo as a build script) or could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            BuildError::Model { path, error } => {
                write!(
                    f,
                    "{}: not a model this engine runs: {error}",
                    path.display()
                )
            }
            BuildError::Write { path, error } => {
                write!(f, "writing {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Read { error, .. } | BuildError::Write { error, .. } => Some(error),
            BuildError::Model { error, .. } => Some(error),
        }
    }
}

/// In a build script: reads the model at `path` (relative to the package's root, where
/// Cargo runs build scripts), writes `$OUT_DIR/tinyvae_sizes.rs` ([`Sizes::to_rust`]) for
/// the target being built, and asks Cargo to run the script again when the file changes.
pub fn emit_sizes(path: impl AsRef<Path>) -> Result<Sizes, BuildError> {
    let path = path.as_ref();
    println!("cargo::rerun-if-changed={}", path.display());
    let bytes = std::fs::read(path).map_err(|error| BuildError::Read {
        path: path.into(),
        error,
    })?;
    let model = Model::from_bytes(&bytes).map_err(|error| BuildError::Model {
        path: path.into(),
        error,
    })?;
    let sizes = Sizes::for_build_target(&model, bytes.len());
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("tinyvae_sizes.rs");
    std::fs::write(&out, sizes.to_rust())
        .map_err(|error| BuildError::Write { path: out, error })?;
    Ok(sizes)
}
