//! The named architectures (`--preset`) and the architecture families.

use serde::{Deserialize, Serialize};

use super::ConvStage;

/// Whether a preset is dense or convolutional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ArchFamily {
    /// Dense layers only.
    Dense,
    /// Convolution stages, then dense heads.
    Conv,
}

/// A named architecture: its family, convolution stages, hidden widths and latent size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Dense or conv.
    pub family: ArchFamily,
    /// Convolution stages.
    pub conv: Vec<ConvStage>,
    /// Hidden dense widths.
    pub hidden: Vec<usize>,
    /// Latent size.
    pub latent: usize,
}

/// The preset names, for help and errors.
pub const PRESETS: &str = "default, mcu, 2d, conv, conv-mcu";

pub(crate) const fn stage(channels: usize) -> ConvStage {
    ConvStage {
        channels,
        kernel: 4,
        stride: 2,
        padding: 1,
    }
}

/// A preset by name.
pub fn preset(name: &str) -> Option<Preset> {
    let dense = |hidden: Vec<usize>, latent| Preset {
        family: ArchFamily::Dense,
        conv: vec![],
        hidden,
        latent,
    };
    let conv = |conv: Vec<ConvStage>, latent| Preset {
        family: ArchFamily::Conv,
        conv,
        hidden: vec![],
        latent,
    };
    match name {
        // The PyTorch example's architecture, so results compare directly.
        "default" => Some(dense(vec![400], 20)),
        // Smaller, for microcontrollers with less flash.
        "mcu" => Some(dense(vec![256], 16)),
        // A 2-D latent space, for pictures of the latent space.
        "2d" => Some(dense(vec![400], 2)),
        // The PyTorch reference conv VAE (../shared/bench/pytorch_conv_vae_reference.py):
        // Conv 1->32 k4 s2 p1, Conv 32->64 k4 s2 p1, dense heads to 20; the decoder mirrors it.
        "conv" => Some(conv(vec![stage(32), stage(64)], 20)),
        // For a Cortex-M0 with 256 KiB of flash and 16 KiB of RAM (results/mnist-conv.md):
        // a decoder of 59 K parameters (about 78 KB in int8) whose largest layer needs 7 KB
        // of activations; on full MNIST as good as `conv` (16/32 channels: 1.8 nats worse).
        "conv-mcu" => Some(conv(vec![stage(24), stage(48)], 16)),
        _ => None,
    }
}
