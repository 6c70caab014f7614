//! The command line: every command and its options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tinyvae_trainer::arch::{ArchFamily, ConvStage};
use tinyvae_trainer::model::{Kind, Recon};

/// The `--layout` choices of `trainer export`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LayoutArg {
    /// 4 x 4 tiles.
    Tiles,
    /// Row-major.
    RowMajor,
}

/// `--per-class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PerClassArg {
    /// One mixture for all.
    Off,
    /// One mixture per class (labels needed).
    On,
    /// Per class when the training set has labels.
    Auto,
}

/// `--prior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PriorArg {
    /// N(0, I).
    Normal,
    /// A learned mixture of diagonal Gaussians.
    Mixture,
    /// The aggregate posterior of some training images.
    Aggregate,
    /// A second-stage VAE's decoder, from u ~ N(0, I) to z.
    SecondStage,
}

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train, evaluate, quantize and export tinyvae models"
)]
pub(crate) struct Cli {
    /// Threads (default: every core). A batch is split into one shard per thread; a run
    /// repeats bit for bit with the same --threads on the same CPU.
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    /// The IDX images are stored column after column, as EMNIST's are (transposed on
    /// loading; MNIST and Fashion-MNIST are row after row).
    #[arg(long, global = true)]
    pub(crate) emnist: bool,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Train a model; writes a checkpoint every epoch, a JSON-lines log and config.json to --out.
    Train(TrainArgs),
    /// Evaluate a checkpoint on the test split.
    Eval(EvalArgs),
    /// Train a small classifier on a labelled data set and save it, for `eval --classifier`.
    Classifier {
        /// Data folder with IDX image and label files (default: the bundled MNIST subset).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output file.
        #[arg(short, long, default_value = "classifier.safetensors")]
        out: PathBuf,
        /// Most epochs: it stops once its test accuracy reaches --target (the bundled 5,000
        /// images reach 90% in 4 epochs and 96% in 30). `eval` refuses a classifier under
        /// 90%.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// The test accuracy at which training stops.
        #[arg(long, default_value_t = 0.98)]
        target: f64,
        /// Seed of initialisation and shuffling.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write a grid of samples decoded from random codes z ~ N(0, I).
    Sample {
        /// Checkpoint (float model) or, with --int8, an exported model file.
        input: PathBuf,
        /// Use the integer engine on an exported model file.
        #[arg(long)]
        int8: bool,
        /// Samples.
        #[arg(short = 'n', long, default_value_t = 64)]
        count: usize,
        /// Seed of the draws.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// A float model's draws from N(0, t^2 I) with this t (an int8 model's follow its
        /// file's prior).
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        /// Images per row of the picture (default: about the square root of the count; a
        /// conditional model's classes take turns, so its class count gives a class a
        /// column).
        #[arg(long)]
        columns: Option<usize>,
        /// Output PNG (with --raw: the raw bytes).
        #[arg(short, long, default_value = "samples.png")]
        out: PathBuf,
        /// Write the samples' bytes instead of a picture: N x width x height x channels u8
        /// values, image after image, row-major, channels interleaved (the bytes a chip
        /// prints for the same model, seed and draws).
        #[arg(long)]
        raw: bool,
    },
    /// Quantize a checkpoint to int8 and write the model file.
    Export(ExportArgs),
    /// Pictures of what a model learned: samples, reconstructions, traversals, the 2-D latent
    /// space (for a 2-D model) and the loss curves.
    Pictures {
        /// Checkpoint file or run folder.
        checkpoint: PathBuf,
        /// Data folder (default: the bundled MNIST subset).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output folder.
        #[arg(short, long, default_value = "pictures")]
        out: PathBuf,
        /// Seed of the prior draws.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Write a data set that is not MNIST: PNG images of discs and squares of any size,
    /// grey or RGB (for trying other image sizes and colour end to end).
    Shapes {
        /// Output folder (a PNG folder `--data` reads).
        #[arg(short, long)]
        out: PathBuf,
        /// Image width.
        #[arg(long, default_value_t = 16)]
        width: usize,
        /// Image height.
        #[arg(long, default_value_t = 16)]
        height: usize,
        /// Colour images (else grey).
        #[arg(long)]
        rgb: bool,
        /// Number of images (every tenth is the test split).
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Seed of the draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write discs and squares into the subfolders `disc/` and `square/`: a labelled
        /// data set (one class per subfolder).
        #[arg(long)]
        classes: bool,
    },
    /// Summarise a model file (any format version, 1 to 5), and what it needs on a chip.
    Inspect {
        /// Model file.
        model: PathBuf,
        /// The Rust target a firmware is built for (thumbv6m-none-eabi, thumbv7m-none-eabi,
        /// thumbv7em-none-eabihf, thumbv8m.main-none-eabihf, ...): prints the scratch the
        /// engine needs there. Without it, both figures: with and without the DSP kernel.
        #[arg(long)]
        target: Option<String>,
        /// The `-C target-cpu` of that build (cortex-m33 gives thumbv8m.main the DSP kernel).
        #[arg(long, requires = "target")]
        target_cpu: Option<String>,
        /// Also write the sizes for that target as a C header (`#define TINYVAE_SCRATCH ...`)
        /// for a C firmware's buffers (the tinyvae-c library).
        #[arg(long, requires = "target")]
        c_header: Option<PathBuf>,
        /// Fail (exit 1) when the golden vectors do not match this engine, as the chip
        /// refuses such a model at boot (inspect always runs them and says so).
        #[arg(long)]
        check: bool,
    },
}

/// `trainer eval`'s options.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// Checkpoint file or run folder.
    pub(crate) checkpoint: PathBuf,
    /// Data folder (default: the bundled MNIST subset).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Importance samples for the IW bound (e.g. 5000); 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub(crate) iw_samples: usize,
    /// Test images used for the IW bound.
    #[arg(long, default_value_t = 500)]
    pub(crate) iw_images: usize,
    /// Score samples from the prior with this classifier (`trainer classifier`): the
    /// share labelled with probability >= 0.9, the entropy of the label histogram, the
    /// Fréchet distance of the classifier's features to the test set's, and the distance to
    /// the nearest training image; the last two also for as many real images.
    #[arg(long)]
    pub(crate) classifier: Option<PathBuf>,
    /// Score the int8 model in this file too (its engine's own prior samples).
    #[arg(long, requires = "classifier")]
    pub(crate) int8: Option<PathBuf>,
    /// Samples to score.
    #[arg(long, default_value_t = 1000)]
    pub(crate) score_samples: usize,
    /// Seed of the scored samples' draws.
    #[arg(long, default_value_t = 7)]
    pub(crate) score_seed: u64,
    /// The float model's draws from N(0, t^2 I) with this t (below 1: nearer the prior's
    /// centre, as `trainer export --prior-temperature` does for a learned prior). The int8
    /// model's draws follow its file's prior.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) temperature: f32,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// `trainer export`'s options.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// Checkpoint file or run folder.
    pub(crate) checkpoint: PathBuf,
    /// Output model file.
    #[arg(short, long)]
    pub(crate) out: PathBuf,
    /// Data folder for calibration and golden vectors (default: the bundled subset).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Calibration images.
    #[arg(long, default_value_t = 2000)]
    pub(crate) calibration: usize,
    /// The prior generation samples z from: `normal` (N(0, I)), `mixture` (a Gaussian
    /// mixture learned from the training set's encodings, its size chosen on held-out
    /// encodings within --prior-bytes), `second-stage` (a second VAE trained on the
    /// encodings, its decoder as wide as --prior-bytes allows: format version 6) or
    /// `aggregate` (the posteriors of --prior-components training images: close to
    /// replaying them). VAE only, except `normal`. Default: `normal`, or `aggregate` when
    /// --prior-components is given.
    #[arg(long, value_enum)]
    pub(crate) prior: Option<PriorArg>,
    /// Components: training images for `aggregate` (default 256; 0 with no --prior keeps
    /// N(0, I)), the most components for `mixture` (default: what --prior-bytes allows).
    #[arg(long)]
    pub(crate) prior_components: Option<usize>,
    /// Bytes a `mixture` or `second-stage` prior may add to the model file.
    #[arg(long, default_value_t = 8192)]
    pub(crate) prior_bytes: usize,
    /// Multiply a `mixture` prior's standard deviations, or a `second-stage` prior's draws
    /// of u, by this (below 1: surer digits, less variety).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) prior_temperature: f64,
    /// Epochs of training of a `second-stage` prior (about 0.6 s each over 60,000 codes).
    #[arg(long, default_value_t = 200)]
    pub(crate) second_stage_epochs: usize,
    /// With `--prior mixture`: one mixture per class of the training labels, so that the
    /// chip can draw a chosen class (`Engine::sample_class`; format version 5). `auto`:
    /// when the training set has labels.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "on", default_value = "off")]
    pub(crate) per_class: PerClassArg,
    /// Weight storage order: `tiles` (4 x 4 tiles, read by the Cortex-M4/M7 DSP kernel and
    /// by the portable kernel elsewhere) or `row-major`.
    #[arg(long, value_enum, default_value_t = LayoutArg::Tiles)]
    pub(crate) layout: LayoutArg,
    /// Also write the float decoder, uncompressed (f32), to this file: for the f32 path
    /// on boards with an FPU and for measuring the int8 path against it.
    #[arg(long)]
    pub(crate) f32_decoder: Option<PathBuf>,
    /// Leave the encoder out: a smaller model that only generates (format version 3 and later).
    #[arg(long)]
    pub(crate) decoder_only: bool,
}

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// Data folder with IDX files or PNG images (default: the bundled MNIST subset).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Run folder for the checkpoint and logs.
    #[arg(long, short, default_value = "runs/default")]
    pub(crate) out: PathBuf,
    /// Architecture preset: default (dense 784-400-20), mcu (dense 784-256-16), 2d (dense
    /// 784-400-2), conv (the PyTorch reference conv VAE: conv 32 and 64 channels, kernel 4,
    /// stride 2, latent 20), conv-mcu (a conv model for a Cortex-M0). Default: default, or
    /// conv with --arch conv.
    #[arg(long)]
    pub(crate) preset: Option<String>,
    /// Dense or convolutional; a preset of the other family is an error.
    #[arg(long, value_enum)]
    pub(crate) arch: Option<ArchFamily>,
    /// Convolution stages, overriding the preset's: CHANNELS:KERNEL:STRIDE:PADDING each,
    /// e.g. --conv 32:4:2:1,64:4:2:1. The decoder mirrors them with transposed convolutions.
    #[arg(long, value_delimiter = ',')]
    pub(crate) conv: Option<Vec<ConvStage>>,
    /// Hidden dense widths, overriding the preset (e.g. --hidden 512,256); for a conv model,
    /// dense layers between the last convolution and the latent heads.
    #[arg(long, value_delimiter = ',')]
    pub(crate) hidden: Option<Vec<usize>>,
    /// Latent size, overriding the preset.
    #[arg(long)]
    pub(crate) latent: Option<usize>,
    /// Model kind.
    #[arg(long, value_enum, default_value = "vae")]
    pub(crate) kind: Kind,
    /// A conditional VAE: the decoder also reads the image's class (one-hot, from the data
    /// set's labels), so that it draws a class asked for. Trained and scored (`trainer eval
    /// --classifier`) on the host; the model format has no class input, so it does not
    /// export: on the chip, a prior per class (`trainer export --prior mixture
    /// --per-class`) draws a chosen class.
    #[arg(long)]
    pub(crate) conditional: bool,
    /// Reconstruction loss.
    #[arg(long, value_enum, default_value = "bce")]
    pub(crate) recon: Recon,
    /// Weight of the KL term (beta-VAE).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub(crate) beta: f64,
    /// Epochs of linear KL warm-up.
    #[arg(long, default_value_t = 0)]
    pub(crate) warmup: usize,
    /// Denoising AE: Gaussian input noise of this standard deviation.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) noise_gaussian: Option<f32>,
    /// Denoising AE: masking noise, each pixel zeroed with this probability.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) noise_mask: Option<f32>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub(crate) lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub(crate) batch: usize,
    /// Epochs. The default fits full MNIST (60,000 images: 600,000 images seen); a small
    /// data set needs more epochs for as many steps (2,000 images: about 300 epochs). A run
    /// that has finished trains longer with --resume and a larger --epochs.
    #[arg(long, default_value_t = 10)]
    pub(crate) epochs: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Continue from the run folder's checkpoint.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Start over in a run folder that holds a checkpoint, replacing it.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) overwrite: bool,
    /// Use only the first N training images.
    #[arg(long)]
    pub(crate) train_limit: Option<usize>,
}
