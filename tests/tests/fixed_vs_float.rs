//! The integer engine held against the float model it was exported from, on VAEs trained by
//! this test on the bundled MNIST subset: the dense 784-400-20 and a conv VAE (conv 16 and
//! 32 channels, latent 16), 10 epochs each. Every check is stamped onto both models.

use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use tinyvae_engine::{Engine, NoProbe};
use tinyvae_format::Model;
use tinyvae_trainer::data::{bundled_dir, Dataset};
use tinyvae_trainer::export::{quantize, ExportOptions, Exported, Trained};
use tinyvae_trainer::model::{to_vec_f32, Arch, Kind, Net, Recon};
use tinyvae_trainer::prior::PriorChoice;
use tinyvae_trainer::rng::Rng;
use tinyvae_trainer::train::{train, Config, RunOptions};

/// Decoder pixel PSNR of int8 against float on prior samples, dB (issue: at least 35, goal 40).
/// The float decoder gets the exact z; the int8 decoder its int8 code, so this is end to end.
const DECODER_PSNR_MIN_DB: f64 = 35.0;
/// SNR of the int8 encoder's mu against float mu, dB: int8 activations carry about 48 dB,
/// two layers and the Q11 output lose some of it; 30 dB is the bar.
const ENCODER_MU_SNR_MIN_DB: f64 = 30.0;
/// The test -ELBO with the int8 decoder within 2% of the float model's (issue's bar).
const ELBO_RELATIVE_TOLERANCE: f64 = 0.02;
/// Prior samples for the decoder comparison.
const PRIOR_SAMPLES: usize = 1000;

struct Fixture {
    net: Net,
    cfg: Config,
    data: Dataset,
    blob: Vec<u8>,
}

/// The int8 latent code of a float z: the model's symmetric code, rounded and clamped.
fn code_of(m: &Model<'_>, z: &[f32]) -> Vec<i8> {
    z.iter()
        .map(|&v| (v / m.latent.scale).round().clamp(-128.0, 127.0) as i8)
        .collect()
}

fn dense() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| trained(Arch::dense(Kind::Vae, 28, 28, vec![400], 20), "dense"))
}

fn conv() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let arch = Arch {
            conv: ["16:4:2:1", "32:4:2:1"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            ..Arch::dense(Kind::Vae, 28, 28, vec![], 16)
        };
        trained(arch, "conv")
    })
}

fn trained(arch: Arch, name: &str) -> Fixture {
    {
        let data = Dataset::load(&bundled_dir()).expect("bundled data");
        let cfg = Config {
            arch,
            recon: Recon::Bce,
            beta: 1.0,
            warmup_epochs: 0,
            noise: None,
            lr: 1e-3,
            batch: 128,
            epochs: 10,
            seed: 1,
            dataset: "mnist-subset".into(),
            train_images: None,
            data: None,
        };
        let dir = std::env::temp_dir().join(format!("tinyvae-fixed-{name}-{}", std::process::id()));
        let (net, _) = train(&cfg, &data, &dir, false, &RunOptions::default()).expect("training");
        // The network is in memory: the run folder (checkpoint, log) is not needed again.
        let _ = std::fs::remove_dir_all(&dir);
        let trained = Trained {
            net: &net,
            config: &cfg,
            epochs: 10,
            test_neg_elbo: f64::NAN,
        };
        let Exported { blob, report, .. } =
            quantize(&trained, &data, &ExportOptions::default()).expect("export");
        tinyvae_trainer::export::print_report(&report);
        Fixture {
            net,
            cfg,
            data,
            blob,
        }
    }
}

/// Stamps one check onto both models.
macro_rules! on_both {
    ($check:ident: $dense:ident, $conv:ident) => {
        #[test]
        fn $dense() {
            $check(dense());
        }
        #[test]
        fn $conv() {
            $check(conv());
        }
    };
}

on_both!(decoder_psnr: dense_decoder_int8_against_float, conv_decoder_int8_against_float);
on_both!(encoder_snr: dense_encoder_mu_int8_against_float, conv_encoder_mu_int8_against_float);
on_both!(int8_elbo: dense_test_elbo_with_int8_decoder, conv_test_elbo_with_int8_decoder);
on_both!(aggregate_prior: dense_aggregate_posterior_prior, conv_aggregate_posterior_prior);
on_both!(learned_prior: dense_learned_mixture_prior, conv_learned_mixture_prior);
on_both!(class_prior: dense_mixture_per_class_prior, conv_mixture_per_class_prior);

fn psnr(err2: f64, n: usize) -> f64 {
    10.0 * (255.0f64.powi(2) / (err2 / n as f64)).log10()
}

fn decoder_psnr(f: &Fixture) {
    let m = Model::from_bytes(&f.blob).unwrap();
    let e = Engine::new(&m).unwrap();
    let (lat, p) = (f.net.arch.latent, f.net.arch.pixels());
    let mut z = vec![0f32; PRIOR_SAMPLES * lat];
    Rng::new(11).fill_normal(&mut z);
    let float = to_vec_f32(
        &f.net
            .decode(&Tensor::from_vec(z.clone(), (PRIOR_SAMPLES, lat), &Device::Cpu).unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut scratch = vec![0i8; e.scratch_len()];
    let mut px = vec![0u8; p];
    let (mut err2, mut worst) = (0f64, 0f64);
    for s in 0..PRIOR_SAMPLES {
        let code = code_of(&m, &z[s * lat..(s + 1) * lat]);
        e.decode(&code, &mut scratch, &mut px, &mut NoProbe)
            .unwrap();
        for (v, &q) in float[s * p..(s + 1) * p].iter().zip(&px) {
            let d = f64::from(*v) * 255.0 - f64::from(q);
            err2 += d * d;
            worst = worst.max(d.abs());
        }
    }
    let db = psnr(err2, PRIOR_SAMPLES * p);
    println!("decoder: PSNR {db:.2} dB over {PRIOR_SAMPLES} prior samples, worst pixel error {worst:.1} of 255");
    assert!(db >= DECODER_PSNR_MIN_DB, "decoder PSNR {db:.2} dB");
}

/// The exported f32 decoder (what the f32 firmware path runs, micromath's exp included)
/// against the trainer's candle decoder: the rounding of pixels to 8 bits dominates, so it must
/// come out near the PSNR of rounding alone (58.9 dB for a uniform error of half a step).
const F32_DECODER_PSNR_MIN_DB: f64 = 55.0;

#[test]
fn f32_decoder_against_the_trainers_float_decoder() {
    let f = dense();
    let blob = tinyvae_trainer::export::float_decoder(&f.net).unwrap();
    let dec = tinyvae_f32::FloatDecoder::from_bytes(&blob).unwrap();
    let lat = 20;
    let n = 200;
    let mut z = vec![0f32; n * lat];
    Rng::new(12).fill_normal(&mut z);
    let float = to_vec_f32(
        &f.net
            .decode(&Tensor::from_vec(z.clone(), (n, lat), &Device::Cpu).unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut scratch = vec![0f32; dec.scratch_len()];
    let mut px = vec![0u8; 784];
    let mut err2 = 0f64;
    for s in 0..n {
        dec.decode(&z[s * lat..(s + 1) * lat], &mut scratch, &mut px)
            .unwrap();
        for (p, &q) in float[s * 784..(s + 1) * 784].iter().zip(&px) {
            let d = f64::from(*p) * 255.0 - f64::from(q);
            assert!(d.abs() <= 1.0, "pixel off by {d:.2}");
            err2 += d * d;
        }
    }
    let db = psnr(err2, n * 784);
    println!("f32 decoder: PSNR {db:.2} dB over {n} prior samples against candle");
    assert!(db >= F32_DECODER_PSNR_MIN_DB, "f32 decoder PSNR {db:.2} dB");
}

fn encoder_snr(f: &Fixture) {
    let m = Model::from_bytes(&f.blob).unwrap();
    let e = Engine::new(&m).unwrap();
    let n = 1000.min(f.data.test.n);
    let lat = f.net.arch.latent;
    let idx: Vec<usize> = (0..n).collect();
    let x = tinyvae_trainer::train::batch_tensor(&f.data.test, &idx, 784, &Device::Cpu).unwrap();
    let mu = to_vec_f32(&f.net.encode(&x).unwrap().mu).unwrap();
    let mut scratch = vec![0i8; e.scratch_len()];
    let mut stats = vec![0i16; 2 * lat];
    let (mut s, mut noise) = (0f64, 0f64);
    let one = f64::from(1u32 << m.latent.frac_bits);
    for i in 0..n {
        e.encode(
            f.data.test.image(i, 784),
            &mut scratch,
            &mut stats,
            &mut NoProbe,
        )
        .unwrap();
        for j in 0..lat {
            let (r, q) = (f64::from(mu[i * lat + j]), f64::from(stats[j]) / one);
            s += r * r;
            noise += (r - q) * (r - q);
        }
    }
    let db = 10.0 * (s / noise).log10();
    println!("encoder: mu SNR {db:.2} dB over {n} test images");
    assert!(db >= ENCODER_MU_SNR_MIN_DB, "encoder mu SNR {db:.2} dB");
}

/// -ELBO with a Bernoulli decoder whose probabilities come from the int8 engine's u8 pixels:
/// q = p / 255, kept half a step (0.5 / 255) inside (0, 1) so that a pixel the int8 decoder
/// rounds to 0 or 255 keeps a finite likelihood. The encoder and the z draws are the float
/// model's, so the difference measures the int8 decoder alone.
fn int8_elbo(f: &Fixture) {
    let m = Model::from_bytes(&f.blob).unwrap();
    let e = Engine::new(&m).unwrap();
    let n = f.data.test.n;
    let lat = f.net.arch.latent;
    let idx: Vec<usize> = (0..n).collect();
    let x = tinyvae_trainer::train::batch_tensor(&f.data.test, &idx, 784, &Device::Cpu).unwrap();
    let enc = f.net.encode(&x).unwrap();
    let (mu, lv) = (
        to_vec_f32(&enc.mu).unwrap(),
        to_vec_f32(enc.logvar.as_ref().unwrap()).unwrap(),
    );
    let mut eps = vec![0f32; n * lat];
    Rng::new(5).fill_normal(&mut eps);
    let z: Vec<f32> = (0..n * lat)
        .map(|k| mu[k] + (0.5 * lv[k]).exp() * eps[k])
        .collect();
    let probs = to_vec_f32(
        &f.net
            .decode(&Tensor::from_vec(z.clone(), (n, lat), &Device::Cpu).unwrap())
            .unwrap(),
    )
    .unwrap();
    let kl: f64 = (0..n * lat)
        .map(|k| 0.5 * (f64::from(lv[k]).exp() + f64::from(mu[k]).powi(2) - 1.0 - f64::from(lv[k])))
        .sum();
    let xs = to_vec_f32(&x).unwrap();
    let bce = |q: f64, t: f64| -(t * q.ln() + (1.0 - t) * (1.0 - q).ln());
    let (mut float_rec, mut int8_rec) = (0f64, 0f64);
    let mut scratch = vec![0i8; e.scratch_len()];
    let mut px = vec![0u8; 784];
    let lo = 0.5 / 255.0;
    for i in 0..n {
        let code = code_of(&m, &z[i * lat..(i + 1) * lat]);
        e.decode(&code, &mut scratch, &mut px, &mut NoProbe)
            .unwrap();
        for j in 0..784 {
            let t = f64::from(xs[i * 784 + j]);
            float_rec += bce(f64::from(probs[i * 784 + j]).clamp(1e-7, 1.0 - 1e-7), t);
            int8_rec += bce((f64::from(px[j]) / 255.0).clamp(lo, 1.0 - lo), t);
        }
    }
    let (fl, i8e) = ((float_rec + kl) / n as f64, (int8_rec + kl) / n as f64);
    let rel = (i8e - fl).abs() / fl;
    println!(
        "test -ELBO: float {fl:.3}, int8 decoder {i8e:.3} nats ({:+.2}%)",
        100.0 * (i8e - fl) / fl
    );
    assert!(
        rel <= ELBO_RELATIVE_TOLERANCE,
        "relative difference {rel:.4}"
    );
}

/// Draws for the mixture-prior test.
const MIXTURE_DRAWS: usize = 20_000;
/// |mean difference| per dimension: the standard error of a mean of 20,000 draws of variance
/// at most ~2 is 0.01; 0.05 is five of them.
const MIXTURE_MEAN_TOLERANCE: f64 = 0.05;
/// Relative variance difference per dimension: the standard error of a variance of 20,000
/// draws is about 1-2% for these mixtures; int8 rounding of z adds step^2 / 12 = 1e-4.
const MIXTURE_VARIANCE_TOLERANCE: f64 = 0.08;

/// The aggregate-posterior prior (the seed lecture's first way to pick z): the engine's
/// integer draws follow the mixture stored in the model.
fn aggregate_prior(f: &Fixture) {
    let blob = export_with(f, PriorChoice::Aggregate { images: 64 });
    let m = Model::from_bytes(&blob).unwrap();
    draws_follow_the_mixture(&m, |k| k == 64);
}

/// The learned prior: a mixture fitted to the training encodings, its size chosen within
/// the byte budget; the engine's draws follow it, its mean is the encodings' mean, and the
/// file grows by no more than the budget.
fn learned_prior(f: &Fixture) {
    const BUDGET: usize = 2_000;
    let blob = export_learned(f, BUDGET, false);
    let m = Model::from_bytes(&blob).unwrap();
    let lat = usize::from(m.latent.dim);
    let (mix_mean, _) = draws_follow_the_mixture(&m, |k| {
        k >= 1 && tinyvae_trainer::prior::mixture_bytes(usize::from(k), lat) <= BUDGET
    });
    // EM's fixed point keeps the data's mean: the mixture's mean is the training images'
    // mean encoding (to the fixed point's rounding).
    let enc_mean = mean_encodings(f, 1, |_| 0).remove(0);
    for (j, (a, b)) in mix_mean.iter().zip(&enc_mean).enumerate() {
        assert!(
            (a - b).abs() < 1e-3,
            "dim {j}: mixture mean {a}, encodings' {b}"
        );
    }
}

/// The learned prior per class ("draw a 7"): the draws of each class the engine makes have
/// the mean of that class's training encodings (EM keeps each class's mean), and the file
/// grows by no more than the budget.
fn class_prior(f: &Fixture) {
    let blob = export_learned(f, 6_000, true);
    let m = Model::from_bytes(&blob).unwrap();
    let e = Engine::new(&m).unwrap();
    let labels = f.data.train.labels.as_ref().unwrap();
    let classes = usize::from(*labels.iter().max().unwrap()) + 1;
    assert_eq!(e.classes(), classes);
    let lat = usize::from(m.latent.dim);
    // Each class's mean training encoding.
    let means = mean_encodings(f, classes, |i| usize::from(labels[i]));
    let mut sampler = tinyvae_engine::Sampler::new(5);
    let mut code = vec![0i8; lat];
    for (c, wanted) in means.iter().enumerate() {
        let mut mean = vec![0f64; lat];
        for _ in 0..MIXTURE_DRAWS / classes {
            e.sample_class(&mut sampler, c, &mut code).unwrap();
            for (m_, &q) in mean.iter_mut().zip(&code) {
                *m_ += f64::from(i32::from(q) - i32::from(m.latent.zero_point))
                    * f64::from(m.latent.scale)
                    / (MIXTURE_DRAWS / classes) as f64;
            }
        }
        for (j, (got, want)) in mean.iter().zip(wanted).enumerate() {
            // 2,000 draws of a class: about five standard errors.
            assert!(
                (got - want).abs() < 0.12,
                "class {c} dim {j}: draws' mean {got:.3}, the class's encodings' {want:.3}"
            );
        }
    }
}

/// The mean posterior mean of the training images of each group (`group(i)` in
/// `0..groups` for training image `i`), by the float model.
fn mean_encodings(f: &Fixture, groups: usize, group: impl Fn(usize) -> usize) -> Vec<Vec<f64>> {
    let lat = f.net.arch.latent;
    let (mut sums, mut counts) = (vec![vec![0f64; lat]; groups], vec![0usize; groups]);
    let idx: Vec<usize> = (0..f.data.train.n).collect();
    for chunk in idx.chunks(500) {
        let x = tinyvae_trainer::train::batch_tensor(
            &f.data.train,
            chunk,
            f.data.pixels(),
            &Device::Cpu,
        )
        .unwrap();
        let mu = to_vec_f32(&f.net.encode(&x).unwrap().mu).unwrap();
        for (&i, row) in chunk.iter().zip(mu.chunks_exact(lat)) {
            let g = group(i);
            counts[g] += 1;
            for (s, &v) in sums[g].iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
    }
    for (s, &n) in sums.iter_mut().zip(&counts) {
        s.iter_mut().for_each(|v| *v /= n.max(1) as f64);
    }
    sums
}

/// The model of `f` exported with a learned prior (one mixture, or one per class) of at most
/// `budget` bytes, after checking that the file is at most `budget` bytes larger than the
/// N(0, I) export.
fn export_learned(f: &Fixture, budget: usize, per_class: bool) -> Vec<u8> {
    let normal = export_with(f, PriorChoice::StandardNormal);
    let blob = export_with(
        f,
        PriorChoice::Mixture {
            max_components: 0,
            max_bytes: budget,
            temperature: 1.0,
            per_class,
        },
    );
    assert!(
        blob.len() <= normal.len() + budget,
        "{} bytes over N(0, I)'s {}",
        blob.len().saturating_sub(normal.len()),
        normal.len()
    );
    blob
}

/// The model of `f` exported with `prior`.
fn export_with(f: &Fixture, prior: PriorChoice) -> Vec<u8> {
    let opts = ExportOptions {
        prior,
        ..Default::default()
    };
    let trained = Trained {
        net: &f.net,
        config: &f.cfg,
        epochs: 10,
        test_neg_elbo: f64::NAN,
    };
    quantize(&trained, &f.data, &opts).unwrap().blob
}

/// The engine's prior draws have the mean and variance of the weighted mixture the model
/// stores, per dimension; returns the mixture's mean and variance.
fn draws_follow_the_mixture(
    m: &Model<'_>,
    components_ok: impl Fn(u16) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let tinyvae_format::Prior::Mixture(mix) = &m.prior else {
        panic!("the model should carry a mixture prior");
    };
    assert!(
        components_ok(mix.components),
        "{} components",
        mix.components
    );
    let k = usize::from(mix.components);
    let lat = usize::from(m.latent.dim);
    let one = f64::from(1u32 << m.latent.frac_bits);
    let means: Vec<f64> = mix.means.iter().map(|v| f64::from(v) / one).collect();
    let sigmas: Vec<f64> = mix.sigmas.iter().map(|v| f64::from(v) / 65536.0).collect();
    // Component c takes the raw draws in [cumulative[c - 1], cumulative[c]).
    let cum: Vec<f64> = mix.cumulative.iter().map(f64::from).collect();
    let weights: Vec<f64> = (0..k)
        .map(|c| {
            let lo = if c == 0 { 0.0 } else { cum[c - 1] };
            let hi = if c + 1 == k { 4_294_967_296.0 } else { cum[c] };
            (hi - lo) / 4_294_967_296.0
        })
        .collect();
    let e = Engine::new(m).unwrap();
    let mut sampler = tinyvae_engine::Sampler::new(3);
    let mut code = vec![0i8; lat];
    let (mut sum, mut sum2) = (vec![0f64; lat], vec![0f64; lat]);
    for _ in 0..MIXTURE_DRAWS {
        e.sample_prior(&mut sampler, &mut code).unwrap();
        for j in 0..lat {
            let z = f64::from(i32::from(code[j]) - i32::from(m.latent.zero_point))
                * f64::from(m.latent.scale);
            sum[j] += z;
            sum2[j] += z * z;
        }
    }
    let n = MIXTURE_DRAWS as f64;
    let (mut mix_mean, mut mix_var) = (Vec::new(), Vec::new());
    for j in 0..lat {
        let want_mean = (0..k).map(|c| weights[c] * means[c * lat + j]).sum::<f64>();
        let want_var = (0..k)
            .map(|c| weights[c] * (sigmas[c * lat + j].powi(2) + means[c * lat + j].powi(2)))
            .sum::<f64>()
            - want_mean * want_mean;
        let mean = sum[j] / n;
        let var = sum2[j] / n - mean * mean;
        assert!(
            (mean - want_mean).abs() < MIXTURE_MEAN_TOLERANCE,
            "dim {j}: mean {mean:.3}, mixture {want_mean:.3}"
        );
        assert!(
            (var - want_var).abs() < MIXTURE_VARIANCE_TOLERANCE * want_var,
            "dim {j}: variance {var:.3}, mixture {want_var:.3}"
        );
        mix_mean.push(want_mean);
        mix_var.push(want_var);
    }
    (mix_mean, mix_var)
}

/// A decoder-only export decodes exactly as the whole model does, and refuses to encode.
#[test]
fn decoder_only_export_decodes_as_the_whole_model() {
    let f = conv();
    let opts = ExportOptions {
        decoder_only: true,
        ..Default::default()
    };
    let trained = Trained {
        net: &f.net,
        config: &f.cfg,
        epochs: 10,
        test_neg_elbo: f64::NAN,
    };
    let blob = quantize(&trained, &f.data, &opts).unwrap().blob;
    assert!(blob.len() < f.blob.len());
    let (whole, alone) = (
        Model::from_bytes(&f.blob).unwrap(),
        Model::from_bytes(&blob).unwrap(),
    );
    assert!(!alone.has_encoder());
    let (a, b) = (Engine::new(&whole).unwrap(), Engine::new(&alone).unwrap());
    assert!(b.scratch_len() <= a.scratch_len());
    let (mut sa, mut sb) = (vec![0i8; a.scratch_len()], vec![0i8; b.scratch_len()]);
    let lat = f.net.arch.latent;
    let mut sampler = tinyvae_engine::Sampler::new(9);
    let (mut pa, mut pb) = (vec![0u8; 784], vec![0u8; 784]);
    let mut code = vec![0i8; lat];
    for _ in 0..50 {
        a.sample_prior(&mut sampler, &mut code).unwrap();
        a.decode(&code, &mut sa, &mut pa, &mut NoProbe).unwrap();
        b.decode(&code, &mut sb, &mut pb, &mut NoProbe).unwrap();
        assert_eq!(pa, pb);
    }
    let mut stats = vec![0i16; 2 * lat];
    assert_eq!(
        b.encode(&pa, &mut sb, &mut stats, &mut NoProbe),
        Err(tinyvae_engine::Error::NoEncoder)
    );
}
