//! `trainer`: train, evaluate, sample, export and inspect tinyvae models.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Parser, Subcommand};
use tinyvae_format::{Model, WeightLayout};

/// The `--layout` choices of `trainer export`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LayoutArg {
    /// 4 x 4 tiles.
    Tiles,
    /// Row-major.
    RowMajor,
}
use tinyvae_trainer::arch::{ArchFamily, ConvStage};
use tinyvae_trainer::classifier::{
    score, train_classifier, Classifier, ClassifierOptions, SampleScore,
};
use tinyvae_trainer::data::{Dataset, IdxLayout, Source, BUNDLED_NAME};
use tinyvae_trainer::export::{print_report, quantize, ExportOptions, Exported, Trained};
use tinyvae_trainer::images::grid;
use tinyvae_trainer::model::Net;
use tinyvae_trainer::model::{Arch, Kind, Recon};
use tinyvae_trainer::train::{
    self, check_data_shape, load_checkpoint, net_from_checkpoint, Checkpoint, Config, Noise,
    RunOptions,
};
use tinyvae_trainer::{atomic_write, eval, preset, Preset, PRESETS};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train, evaluate, quantize and export tinyvae models"
)]
struct Cli {
    /// Threads (default: every core). A batch is split into one shard per thread; a run
    /// repeats bit for bit with the same --threads on the same CPU.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// The IDX images are stored column after column, as EMNIST's are (transposed on
    /// loading; MNIST and Fashion-MNIST are row after row).
    #[arg(long, global = true)]
    emnist: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
    },
    /// Summarise a model file (any format version, 1 to 4), and what it needs on a chip.
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
struct EvalArgs {
    /// Checkpoint file or run folder.
    checkpoint: PathBuf,
    /// Data folder (default: the bundled MNIST subset).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Importance samples for the IW bound (e.g. 5000); 0 skips it.
    #[arg(long, default_value_t = 0)]
    iw_samples: usize,
    /// Test images used for the IW bound.
    #[arg(long, default_value_t = 500)]
    iw_images: usize,
    /// Score samples from the prior with this classifier (`trainer classifier`): the
    /// share labelled with probability >= 0.9 and the entropy of the label histogram.
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Score the int8 model in this file too (its engine's own prior samples).
    #[arg(long, requires = "classifier")]
    int8: Option<PathBuf>,
    /// Samples to score.
    #[arg(long, default_value_t = 1000)]
    score_samples: usize,
    /// Seed of the scored samples' draws.
    #[arg(long, default_value_t = 7)]
    score_seed: u64,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `trainer export`'s options.
#[derive(clap::Args)]
struct ExportArgs {
    /// Checkpoint file or run folder.
    checkpoint: PathBuf,
    /// Output model file.
    #[arg(short, long)]
    out: PathBuf,
    /// Data folder for calibration and golden vectors (default: the bundled subset).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Calibration images.
    #[arg(long, default_value_t = 2000)]
    calibration: usize,
    /// Sample z from the aggregate posterior of this many training images instead of
    /// N(0, I) (VAE only; 0 keeps N(0, I)).
    #[arg(long, default_value_t = 0)]
    prior_components: usize,
    /// Weight storage order: `tiles` (4 x 4 tiles, read by the Cortex-M4/M7 DSP kernel and
    /// by the portable kernel elsewhere) or `row-major`.
    #[arg(long, value_enum, default_value_t = LayoutArg::Tiles)]
    layout: LayoutArg,
    /// Also write the float decoder, uncompressed (f32), to this file: for the f32 path
    /// on boards with an FPU and for measuring the int8 path against it.
    #[arg(long)]
    f32_decoder: Option<PathBuf>,
    /// Leave the encoder out: a smaller model that only generates (format version 3 and later).
    #[arg(long)]
    decoder_only: bool,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Data folder with IDX files or PNG images (default: the bundled MNIST subset).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder for the checkpoint and logs.
    #[arg(long, short, default_value = "runs/default")]
    out: PathBuf,
    /// Architecture preset: default (dense 784-400-20), mcu (dense 784-256-16), 2d (dense
    /// 784-400-2), conv (the PyTorch reference conv VAE: conv 32 and 64 channels, kernel 4,
    /// stride 2, latent 20), conv-mcu (a conv model for a Cortex-M0). Default: default, or
    /// conv with --arch conv.
    #[arg(long)]
    preset: Option<String>,
    /// Dense or convolutional; a preset of the other family is an error.
    #[arg(long, value_enum)]
    arch: Option<ArchFamily>,
    /// Convolution stages, overriding the preset's: CHANNELS:KERNEL:STRIDE:PADDING each,
    /// e.g. --conv 32:4:2:1,64:4:2:1. The decoder mirrors them with transposed convolutions.
    #[arg(long, value_delimiter = ',')]
    conv: Option<Vec<ConvStage>>,
    /// Hidden dense widths, overriding the preset (e.g. --hidden 512,256); for a conv model,
    /// dense layers between the last convolution and the latent heads.
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Latent size, overriding the preset.
    #[arg(long)]
    latent: Option<usize>,
    /// Model kind.
    #[arg(long, value_enum, default_value = "vae")]
    kind: Kind,
    /// Reconstruction loss.
    #[arg(long, value_enum, default_value = "bce")]
    recon: Recon,
    /// Weight of the KL term (beta-VAE).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    beta: f64,
    /// Epochs of linear KL warm-up.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Denoising AE: Gaussian input noise of this standard deviation.
    #[arg(long, allow_negative_numbers = true)]
    noise_gaussian: Option<f32>,
    /// Denoising AE: masking noise, each pixel zeroed with this probability.
    #[arg(long, allow_negative_numbers = true)]
    noise_mask: Option<f32>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Epochs. The default fits full MNIST (60,000 images: 600,000 images seen); a small
    /// data set needs more epochs for as many steps (2,000 images: about 300 epochs). A run
    /// that has finished trains longer with --resume and a larger --epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Continue from the run folder's checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start over in a run folder that holds a checkpoint, replacing it.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
}

/// Images seen in training (epochs x training images) from which samples look sharp: the
/// default 10 epochs of full MNIST. With 1,600 images, 10 epochs give blobs, 300 digits.
const SEEN_FOR_SHARP_SAMPLES: usize = 600_000;

/// `--emnist`, for every command that reads data.
static IDX_LAYOUT: std::sync::OnceLock<IdxLayout> = std::sync::OnceLock::new();

/// The source `--data DIR` names (with `--emnist`), or the bundled subset.
fn data_source(dir: Option<&Path>) -> Result<Source> {
    Source::of(dir, *IDX_LAYOUT.get_or_init(|| IdxLayout::RowMajor))
}

fn load_data(dir: Option<&Path>) -> Result<Dataset> {
    data_source(dir)?.load()
}

/// A checkpoint, its network, and the data it is evaluated on: `data`, or the data it was
/// trained on (its configuration says where), checked to have the network's image shape.
fn load_run(checkpoint: &Path, data: Option<&Path>) -> Result<(Checkpoint, Net, Dataset)> {
    let ck = load_checkpoint(checkpoint, &Device::Cpu)?;
    let net = net_from_checkpoint(&ck, &Device::Cpu)?;
    let source = match (data, &ck.config.data) {
        (Some(dir), _) => data_source(Some(dir))?,
        (None, Some(Source::Folder { path, .. })) if !path.is_dir() => bail!(
            "{} was trained on {}, which is not there any more: pass --data DIR (that data \
             set, or one with its {}x{}x{} images)",
            checkpoint.display(),
            path.display(),
            net.arch.width,
            net.arch.height,
            net.arch.channels
        ),
        (None, Some(s)) => s.clone(),
        // A run of an earlier version, which recorded only the data set's name.
        (None, None) if ck.config.dataset == BUNDLED_NAME => Source::Bundled,
        (None, None) => bail!(
            "{}'s configuration does not say where its data set ({}) is (a run of an \
             earlier version): pass --data DIR",
            checkpoint.display(),
            ck.config.dataset
        ),
    };
    let data = source.load()?;
    check_data_shape(&data, &net.arch)
        .with_context(|| format!("the data for {}", checkpoint.display()))?;
    Ok((ck, net, data))
}

fn main() {
    let cli = Cli::parse();
    tinyvae_trainer::ops::init_runtime(cli.threads);
    let _ = IDX_LAYOUT.set(if cli.emnist {
        IdxLayout::Transposed
    } else {
        IdxLayout::RowMajor
    });
    if let Err(e) = run(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Train(a) => cmd_train(a),
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Classifier {
            data,
            out,
            epochs,
            target,
            seed,
        } => {
            let data = load_data(data.as_deref())?;
            let opts = ClassifierOptions {
                epochs,
                target,
                seed,
                ..Default::default()
            };
            let c = train_classifier(&data, &opts)?;
            c.save(&out)?;
            println!(
                "wrote {} ({} classes, test accuracy {:.2}%)",
                out.display(),
                c.info.classes,
                100.0 * c.info.test_accuracy
            );
            Ok(())
        }
        Cmd::Sample {
            input,
            int8,
            count,
            seed,
            out,
            raw,
        } => cmd_sample(&input, int8, (count, seed), &out, raw),
        Cmd::Export(a) => cmd_export(a),
        Cmd::Pictures {
            checkpoint,
            data,
            out,
            seed,
        } => {
            let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
            for f in tinyvae_trainer::pictures::all(&net, &data, &ck.progress.history, &out, seed)?
            {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Cmd::Shapes {
            out,
            width,
            height,
            rgb,
            count,
            seed,
        } => {
            tinyvae_trainer::shapes::write(&out, width, height, rgb, count, seed)?;
            println!(
                "wrote {count} {width}x{height} {} images into {}",
                if rgb { "RGB" } else { "grey" },
                out.display()
            );
            Ok(())
        }
        Cmd::Inspect {
            model,
            target,
            target_cpu,
            c_header,
            check,
        } => cmd_inspect(
            &model,
            (target.as_deref(), target_cpu.as_deref()),
            c_header.as_deref(),
            check,
        ),
    }
}

/// `trainer eval`: the test split's metrics, the model's size, and with a classifier the
/// scores of the float (and int8) model's samples from the prior.
fn cmd_eval(a: EvalArgs) -> Result<()> {
    let EvalArgs {
        checkpoint,
        data,
        iw_samples,
        iw_images,
        classifier,
        int8,
        score_samples,
        score_seed,
        json,
    } = a;
    let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
    // Counts that would not fit in memory are refused before anything is allocated.
    if classifier.is_some() {
        check_sample_count("--score-samples", score_samples, net.arch.pixels())?;
    }
    if iw_samples > MAX_IW_SAMPLES {
        bail!(
            "--iw-samples {iw_samples}: at most {MAX_IW_SAMPLES} (the bound settles long before: \
             the README's tables use 1000 and 5000)"
        );
    }
    // The classifier is checked before the evaluation, which can take minutes.
    let scorer = match &classifier {
        Some(path) => {
            let c = Classifier::load(path)?;
            let a = &net.arch;
            c.check_fit(path, (a.width, a.height, a.channels))?;
            Some((c, path))
        }
        None => None,
    };
    let iw = (iw_samples > 0).then_some((iw_samples, iw_images));
    let m = eval::evaluate(&net, &data.test, ck.config.recon, iw)?;
    print_metrics(&net, &ck.config, &m);
    let size = eval::ModelSize::of(&net.arch);
    println!(
        "parameters {} (decoder {}); int8 decoder about {} bytes; peak decoder activations {} bytes",
        size.parameters,
        size.decoder_parameters,
        size.decoder_int8_bytes,
        size.decoder_peak_activation_bytes
    );
    let (float_score, int8_score, paired_score) = match scorer {
        Some((c, _)) => sample_scores(&net, &c, int8.as_deref(), score_samples, score_seed)?,
        None => (None, None, None),
    };
    if let Some(path) = json {
        let v = serde_json::json!({
            "model": net.arch.name(),
            "metrics": m,
            "size": size,
            "score_float": float_score,
            "score_int8": int8_score,
            "score_float_on_int8_draws": paired_score,
        });
        atomic_write(&path, |mut f| {
            std::io::Write::write_all(&mut f, serde_json::to_string_pretty(&v)?.as_bytes())?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The classifier's scores of the float model's samples from the prior and, with an int8
/// model file, of the int8 engine's samples and of the float decoder on the int8 engine's
/// own draws.
fn sample_scores(
    net: &Net,
    c: &Classifier,
    int8: Option<&Path>,
    score_samples: usize,
    score_seed: u64,
) -> Result<(
    Option<SampleScore>,
    Option<SampleScore>,
    Option<SampleScore>,
)> {
    let (mut int8_score, mut paired_score) = (None, None);
    let float = eval::float_prior_samples(net, score_samples, score_seed)?;
    let s = score(c, &float)?;
    print_score("float model", &s);
    let float_score = Some(s);
    if let Some(model) = int8 {
        let blob =
            std::fs::read(model).with_context(|| format!("{}: cannot read", model.display()))?;
        let (imgs, z) = eval::int8_prior_draws(&blob, score_samples, score_seed)
            .with_context(|| format!("{}", model.display()))?;
        if z.len() != score_samples * net.arch.latent {
            bail!(
                "{}: its latent size differs from the checkpoint's ({})",
                model.display(),
                net.arch.latent
            );
        }
        let s = score(c, &imgs)?;
        print_score("int8 model", &s);
        int8_score = Some(s);
        // The float decoder on the int8 engine's own draws: the difference is
        // the decoder's quantization alone, not two sets of draws.
        let s = score(c, &eval::float_decode(net, &z)?)?;
        print_score("float model on the int8 model's draws", &s);
        paired_score = Some(s);
    }
    Ok((float_score, int8_score, paired_score))
}

/// `trainer export`: the int8 model file (and optionally the float decoder).
fn cmd_export(a: ExportArgs) -> Result<()> {
    let ExportArgs {
        checkpoint,
        out,
        data,
        calibration,
        prior_components,
        layout,
        f32_decoder,
        decoder_only,
    } = a;
    let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
    let last = ck.progress.history.last();
    let opts = ExportOptions {
        calibration_images: calibration,
        prior_components,
        layout: match layout {
            LayoutArg::Tiles => WeightLayout::Tiles4x4,
            LayoutArg::RowMajor => WeightLayout::RowMajor,
        },
        decoder_only,
        ..Default::default()
    };
    let trained = Trained {
        net: &net,
        config: &ck.config,
        epochs: ck.progress.epoch,
        test_neg_elbo: last.map_or(f64::NAN, |l| l.test_neg_elbo),
    };
    // Refuse a float decoder the format cannot hold before anything is written.
    let f32_bytes = f32_decoder
        .as_ref()
        .map(|_| tinyvae_trainer::export::float_decoder(&net))
        .transpose()?;
    let Exported { blob, report, .. } = quantize(&trained, &data, &opts)?;
    print_report(&report);
    atomic_write(&out, |mut f| {
        std::io::Write::write_all(&mut f, &blob)?;
        f.sync_all()?;
        Ok(())
    })?;
    println!("wrote {} ({} bytes)", out.display(), blob.len());
    if let (Some(path), Some(f)) = (f32_decoder, f32_bytes) {
        atomic_write(&path, |mut file| {
            std::io::Write::write_all(&mut file, &f)?;
            file.sync_all()?;
            Ok(())
        })?;
        println!(
            "wrote {} (float decoder, {} bytes)",
            path.display(),
            f.len()
        );
    }
    Ok(())
}

/// The preset a command line names, with its overrides applied.
fn chosen_preset(a: &TrainArgs) -> Result<Preset> {
    let name = match (&a.preset, a.arch) {
        (Some(p), _) => p.as_str(),
        (None, Some(ArchFamily::Conv)) => "conv",
        (None, None) if a.conv.is_some() => "conv",
        (None, _) => "default",
    };
    let mut p = preset(name).with_context(|| format!("unknown preset {name:?} ({PRESETS})"))?;
    if let Some(family) = a.arch {
        if family != p.family {
            bail!(
                "--arch {} conflicts with --preset {name}, a {} preset",
                if family == ArchFamily::Conv {
                    "conv"
                } else {
                    "dense"
                },
                if p.family == ArchFamily::Conv {
                    "conv"
                } else {
                    "dense"
                }
            );
        }
    }
    if let Some(c) = &a.conv {
        if a.arch == Some(ArchFamily::Dense) {
            bail!("--conv conflicts with --arch dense");
        }
        p.conv = c.clone();
        p.family = ArchFamily::Conv;
    }
    if let Some(h) = &a.hidden {
        p.hidden = h.clone();
    }
    if let Some(l) = a.latent {
        p.latent = l;
    }
    Ok(p)
}

fn print_metrics(net: &Net, cfg: &Config, m: &eval::Metrics) {
    println!(
        "model {} ({:?}), {} test images",
        net.arch.name(),
        net.arch.kind,
        m.images
    );
    println!(
        "test -ELBO {:.3} nats/example = recon {:.3} + KL {:.3}",
        m.neg_elbo, m.recon, m.kl
    );
    if cfg.beta != 1.0 {
        println!(
            "  (trained with beta {}: its objective is recon + beta KL = {:.3})",
            cfg.beta,
            m.recon + cfg.beta * m.kl
        );
    }
    if let Some((k, n, v)) = m.iw_bound {
        println!("importance-weighted bound, K = {k}, first {n} test images: {v:.3} nats");
    }
    println!("active units {}/{}", m.active_units, net.arch.latent);
    let kl: Vec<String> = m.kl_per_dim.iter().map(|v| format!("{v:.2}")).collect();
    println!("KL per dimension: {}", kl.join(" "));
    println!(
        "reconstruction at z = mu: MSE {:.5}, PSNR {:.2} dB",
        m.mse, m.psnr_db
    );
}

fn print_score(what: &str, s: &SampleScore) {
    println!(
        "sample score, {what}, {} prior samples: {:.1}% labelled with p >= {}, label entropy {:.3} bits (histogram {:?})",
        s.images,
        100.0 * s.confident,
        tinyvae_trainer::classifier::CONFIDENT,
        s.label_entropy_bits,
        s.histogram
    );
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let p = chosen_preset(&a)?;
    let source = data_source(a.data.as_deref())?;
    let mut data = source.load()?;
    if let Some(n) = a.train_limit {
        if n == 0 {
            bail!("--train-limit 0: at least 1 training image");
        }
        data.truncate(n, data.test.n);
    }
    let noise = match (a.noise_gaussian, a.noise_mask) {
        (Some(_), Some(_)) => bail!("choose one of --noise-gaussian and --noise-mask"),
        (Some(s), None) => Some(Noise::Gaussian(s)),
        (None, Some(p)) => Some(Noise::Mask(p)),
        (None, None) if a.kind == Kind::Dae => Some(Noise::Gaussian(0.3)),
        (None, None) => None,
    };
    let cfg = Config {
        arch: Arch {
            kind: a.kind,
            width: data.width,
            height: data.height,
            channels: data.channels,
            conv: p.conv,
            hidden: p.hidden,
            latent: p.latent,
        },
        recon: a.recon,
        beta: a.beta,
        warmup_epochs: a.warmup,
        noise,
        lr: a.lr,
        batch: a.batch,
        epochs: a.epochs,
        seed: a.seed,
        dataset: data.name.clone(),
        train_images: Some(data.train.n),
        data: Some(source),
    };
    println!(
        "training {:?} {} on {} ({} train, {} test images), {} epochs, batch {}, seed {}",
        cfg.arch.kind,
        cfg.arch.name(),
        data.name,
        data.train.n,
        data.test.n,
        cfg.epochs,
        cfg.batch,
        cfg.seed
    );
    let seen = cfg.epochs.saturating_mul(data.train.n);
    if seen < SEEN_FOR_SHARP_SAMPLES && !a.resume {
        println!(
            "note: {} epochs of {} images show the model {seen} images; samples sharpen with \
             about {SEEN_FOR_SHARP_SAMPLES} (--epochs {}). Train longer later with --resume \
             --epochs N.",
            cfg.epochs,
            data.train.n,
            SEEN_FOR_SHARP_SAMPLES.div_ceil(data.train.n.max(1))
        );
    }
    let opts = RunOptions {
        progress_bar: true,
        overwrite: a.overwrite,
        ..Default::default()
    };
    let stop = opts.stop.clone();
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing the current step, then saving (again to quit at once)");
    })?;
    let (_, ended) = train::train(&cfg, &data, &a.out, a.resume, &opts)?;
    println!(
        "checkpoint: {} ({ended:?})",
        train::checkpoint_path(&a.out).display()
    );
    Ok(())
}

/// The most importance samples per image `trainer eval` takes.
const MAX_IW_SAMPLES: usize = 1_000_000;

/// The most bytes of samples `trainer sample` makes at once.
const MAX_SAMPLE_BYTES: usize = 1 << 30;

/// An error unless `count` images of `pixels` values fit [`MAX_SAMPLE_BYTES`], naming the
/// value and the memory it would take.
fn check_sample_count(option: &str, count: usize, pixels: usize) -> Result<()> {
    match count.checked_mul(pixels) {
        Some(b) if b <= MAX_SAMPLE_BYTES && count > 0 => Ok(()),
        _ if count == 0 => bail!("{option} 0: no samples to make"),
        bytes => bail!(
            "{option} {count}: {count} images of {pixels} values would take {} of memory; at \
             most {} images of this model ({} MiB) at once",
            bytes.map_or(
                "more bytes than this machine can count".into(),
                |b| format!("{} MiB", b >> 20)
            ),
            MAX_SAMPLE_BYTES / pixels.max(1),
            MAX_SAMPLE_BYTES >> 20
        ),
    }
}

fn cmd_sample(
    input: &Path,
    int8: bool,
    (count, seed): (usize, u64),
    out: &Path,
    raw: bool,
) -> Result<()> {
    let (shape, images) = if int8 {
        let blob =
            std::fs::read(input).with_context(|| format!("{}: cannot read", input.display()))?;
        let m = Model::from_bytes(&blob).with_context(|| format!("{}", input.display()))?;
        let d = &m.data;
        let shape = (
            usize::from(d.width),
            usize::from(d.height),
            usize::from(d.channels),
        );
        check_sample_count("-n", count, m.data.len())?;
        (shape, eval::int8_prior_samples(&blob, count, seed)?)
    } else {
        let ck = load_checkpoint(input, &Device::Cpu)?;
        let net = net_from_checkpoint(&ck, &Device::Cpu)?;
        let a = &net.arch;
        let shape = (a.width, a.height, a.channels);
        check_sample_count("-n", count, a.width * a.height * a.channels)?;
        (shape, eval::float_prior_samples(&net, count, seed)?)
    };
    if raw {
        atomic_write(out, |mut f| {
            for img in &images {
                std::io::Write::write_all(&mut f, img)?;
            }
            Ok(())
        })?;
    } else {
        let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
        let cols = (count as f64).sqrt().ceil() as usize;
        grid(&refs, shape, cols, 2).save(out)?;
    }
    println!(
        "wrote {} ({count} samples of {}x{}x{}{}{})",
        out.display(),
        shape.0,
        shape.1,
        shape.2,
        if int8 { ", int8 engine" } else { "" },
        if raw { ", raw bytes" } else { "" }
    );
    Ok(())
}

fn cmd_inspect(
    path: &Path,
    (target, cpu): (Option<&str>, Option<&str>),
    c_header: Option<&Path>,
    check: bool,
) -> Result<()> {
    let blob = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let m = Model::from_bytes(&blob).with_context(|| format!("{}: not a model", path.display()))?;
    let p = &m.provenance;
    println!(
        "{}: {} bytes, format version {}{}",
        path.display(),
        blob.len(),
        u16::from_le_bytes([blob[4], blob[5]]),
        if m.has_encoder() {
            ""
        } else {
            ", decoder only (generates; cannot encode)"
        }
    );
    println!(
        "kind {:?}, data {}x{}x{} {:?}, latent {} (Q{} fixed point, int8 code scale {:.4})",
        m.kind,
        m.data.width,
        m.data.height,
        m.data.channels,
        m.data.pixel,
        m.latent.dim,
        m.latent.frac_bits,
        m.latent.scale
    );
    // The strings come from the file: escape control characters rather than send them to
    // the terminal.
    let clean = |t: &str| t.escape_debug().to_string();
    println!(
        "provenance: {} on {}, {} epochs, seed {}, beta {}, test -ELBO {:.3}, {}",
        clean(p.architecture),
        clean(p.dataset),
        p.epochs,
        p.seed,
        p.beta,
        p.test_neg_elbo,
        clean(p.trainer)
    );
    match &m.prior {
        tinyvae_format::Prior::StandardNormal => println!("prior: N(0, I)"),
        tinyvae_format::Prior::Mixture(mix) => println!(
            "prior: aggregate posterior, a mixture of {} diagonal Gaussians",
            mix.components
        ),
    }
    let mut params = 0;
    let mut weight_bytes = 0;
    let mut channel_bytes = 0;
    for (name, net) in [("encoder", &m.encoder), ("decoder", &m.decoder)] {
        for (i, layer) in net.layers.iter().enumerate() {
            let l = layer.matrix();
            println!(
                "  {name} {i}: {} {:?} {:?}, {:?} weights, zero-points in {} out {}",
                tinyvae_trainer::export::describe(layer),
                l.activation,
                l.output_type,
                l.layout,
                l.input_zero_point,
                l.output_zero_point
            );
            params += usize::from(l.in_dim) * usize::from(l.out_dim) + l.bias.len();
            weight_bytes += l.weights.as_bytes().len();
            channel_bytes += l.bias.as_bytes().len()
                + l.multiplier.as_bytes().len()
                + l.shift.as_bytes().len()
                + l.weight_scale.as_bytes().len();
        }
    }
    let golden = m.golden.as_ref().map_or(0, |g| {
        g.encoder
            .iter()
            .map(|v| v.input.as_bytes().len() + v.expected.as_bytes().len())
            .sum::<usize>()
            + g.decoder
                .iter()
                .map(|v| v.code.as_bytes().len() + v.expected.as_bytes().len())
                .sum::<usize>()
            + g.sampler
                .iter()
                .map(|v| {
                    8 + v.eps.as_bytes().len()
                        + v.prior_code.as_bytes().len()
                        + v.prior_pixels.as_bytes().len()
                })
                .sum::<usize>()
    });
    let tables = m.latent.sigma.values.as_bytes().len() + m.pixel_table.as_bytes().len();
    println!("parameters: {params} (int8 weights and int32 biases)");
    println!(
        "bytes: weights {weight_bytes}, per-channel {channel_bytes}, tables {tables}, golden vectors {golden}, other {}",
        blob.len() - weight_bytes - channel_bytes - tables - golden
    );
    // What the chip checks at boot, checked here by the same code.
    let engine = tinyvae_engine::Engine::new_unaligned(&m);
    let mut scratch = vec![0i8; engine.scratch_len()];
    let (mut stats, mut code, mut px) = (
        vec![0i16; m.encoder_out_dim()],
        vec![0i8; usize::from(m.latent.dim)],
        vec![0u8; m.data.len()],
    );
    let golden = engine.check_golden(&mut scratch, &mut stats, &mut code, &mut px);
    match &golden {
        Ok(Some(c)) => println!(
            "golden vectors: {} encoder, {} decoder, {} sampler, run on this host's engine: \
             bit-exact (the check the chip runs at boot)",
            c.encoder, c.decoder, c.sampler
        ),
        Ok(None) => println!("golden vectors: none (the chip skips its self-check)"),
        Err(e) => println!(
            "golden vectors: NOT reproduced by this engine ({e}): the chip rejects this model \
             at boot"
        ),
    }
    if check {
        golden.with_context(|| format!("{}: the chip would reject it at boot", path.display()))?;
    }
    let sizes = |dsp| tinyvae_engine::build::Sizes::of(&m, blob.len(), dsp);
    let outputs = 2 * m.encoder_out_dim() + m.data.len() + usize::from(m.latent.dim);
    println!(
        "needs: flash {} bytes (the blob, read in place, word-aligned), RAM: the scratch and \
         {outputs} bytes of outputs",
        blob.len()
    );
    match target {
        Some(t) => {
            let flags = cpu.map_or(String::new(), |c| format!("-Ctarget-cpu={c}"));
            let dsp = tinyvae_engine::dsp_rule::has_dsp_extension(t, &flags, "");
            let kernel = if dsp {
                "the DSP kernel"
            } else {
                "the portable kernels"
            };
            let on = format!(
                "{t}{}",
                cpu.map_or(String::new(), |c| format!(" (-C target-cpu={c})"))
            );
            println!("  scratch on {on}: {} bytes ({kernel})", sizes(dsp).scratch);
            if let Some(h) = c_header {
                let what = format!("{} on {on}", path.display());
                std::fs::write(h, sizes(dsp).to_c_header(&what))
                    .with_context(|| format!("writing {}", h.display()))?;
                println!("  wrote {}", h.display());
            }
        }
        None => println!(
            "  scratch: {} bytes with the DSP kernel (thumbv7em: Cortex-M4, M7; thumbv8m.main \
             with -C target-cpu=cortex-m33), {} without (thumbv6m, thumbv7m, the host); \
             --target names one",
            sizes(true).scratch,
            sizes(false).scratch
        ),
    }
    Ok(())
}
