//! Training on the bundled subset: the KL term, the loss falling, reproducibility, resuming,
//! for dense and convolutional models; options refused before training.

mod common;

use candle_core::{Device, Tensor};
use tinyvae_trainer::arch::ConvStage;
use tinyvae_trainer::data::{bundled_dir, Dataset};
use tinyvae_trainer::model::{kl_standard_normal, to_vec_f32, Arch, Kind, Net};
use tinyvae_trainer::rng::Rng;
use tinyvae_trainer::train::{train, Config, Ended, RunOptions};

/// Relative agreement of the candle KL with the closed form in f64 (f32 rounding only).
const KL_CLOSED_FORM_TOLERANCE: f64 = 1e-5;
/// Monte Carlo KL with 200,000 draws: standard error about 0.3% for these posteriors; 2%
/// is over six standard errors.
const KL_MONTE_CARLO_TOLERANCE: f64 = 0.02;

fn small_data() -> Dataset {
    let mut d = Dataset::load(&bundled_dir()).expect("bundled data");
    d.truncate(1000, 200);
    d
}

fn config(epochs: usize, seed: u64) -> Config {
    common::config(Arch::dense(Kind::Vae, 28, 28, vec![64], 8), epochs, seed)
}

fn weights(net: &Net) -> Vec<Vec<f32>> {
    net.named_vars()
        .iter()
        .map(|(_, v)| to_vec_f32(v.as_tensor()).unwrap())
        .collect()
}

#[test]
fn kl_matches_closed_form_and_monte_carlo() {
    let dev = Device::Cpu;
    let mu = [0.3f32, -1.2, 0.0, 2.0];
    let lv = [-0.5f32, 0.7, -3.0, 0.0];
    let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), (1, v.len()), &dev).unwrap();
    let got = f64::from(to_vec_f32(&kl_standard_normal(&t(&mu), &t(&lv)).unwrap()).unwrap()[0]);
    let closed: f64 = mu
        .iter()
        .zip(&lv)
        .map(|(&m, &l)| {
            let (m, l) = (f64::from(m), f64::from(l));
            0.5 * (l.exp() + m * m - 1.0 - l)
        })
        .sum();
    assert!(
        (got - closed).abs() <= KL_CLOSED_FORM_TOLERANCE * closed,
        "{got} vs {closed}"
    );
    // E_q[log q(z) - log p(z)] by sampling.
    let mut rng = Rng::new(3);
    let n = 200_000;
    let mut eps = vec![0f32; n];
    let mut mc = 0f64;
    for (&m, &l) in mu.iter().zip(&lv) {
        rng.fill_normal(&mut eps);
        let (m, s) = (f64::from(m), (0.5 * f64::from(l)).exp());
        let sum: f64 = eps
            .iter()
            .map(|&e| {
                let e = f64::from(e);
                let z = m + s * e;
                (-0.5 * e * e - s.ln()) - (-0.5 * z * z)
            })
            .sum();
        mc += sum / n as f64;
    }
    assert!(
        (mc - closed).abs() <= KL_MONTE_CARLO_TOLERANCE * closed,
        "{mc} vs {closed}"
    );
}

#[test]
fn loss_falls_and_runs_repeat_bit_for_bit() {
    let data = small_data();
    let dir = tempdir("repeat");
    let (a, ended) = train(
        &config(3, 5),
        &data,
        &dir.join("a"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(ended, Ended::Finished);
    let log = std::fs::read_to_string(dir.join("a/log.jsonl")).unwrap();
    let elbo: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["test_neg_elbo"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(elbo.len(), 3);
    assert!(
        elbo[0] > elbo[1] && elbo[1] > elbo[2],
        "test -ELBO did not fall: {elbo:?}"
    );
    let (b, _) = train(
        &config(3, 5),
        &data,
        &dir.join("b"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(weights(&a), weights(&b), "same seed, different weights");
    let (c, _) = train(
        &config(3, 6),
        &data,
        &dir.join("c"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    assert_ne!(weights(&a), weights(&c), "different seeds, same weights");
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let data = small_data();
    let dir = tempdir("resume");
    let cfg = config(2, 9);
    let (whole, _) = train(
        &cfg,
        &data,
        &dir.join("whole"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    // Stop in the middle of the first epoch (16 batches per epoch), then at an epoch boundary.
    for stop in [5u64, 11] {
        let run = dir.join(format!("parts{stop}"));
        let opts = RunOptions {
            stop_after_batches: Some(stop),
            ..Default::default()
        };
        let (_, ended) = train(&cfg, &data, &run, false, &opts).unwrap();
        assert_eq!(ended, Ended::Interrupted);
        let (resumed, ended) = train(&cfg, &data, &run, true, &RunOptions::default()).unwrap();
        assert_eq!(ended, Ended::Finished);
        assert_eq!(
            weights(&whole),
            weights(&resumed),
            "resumed after {stop} batches"
        );
        // The log too: every logged number, the interrupted epoch's train loss included
        // (only the seconds differ).
        assert_eq!(
            log_without_seconds(&run),
            log_without_seconds(&dir.join("whole")),
            "the log resumed after {stop} batches"
        );
    }
}

/// A run's log.jsonl as values, each line's `seconds` left out.
fn log_without_seconds(run: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn resume_refuses_a_different_configuration() {
    let data = small_data();
    let dir = tempdir("resume-cfg");
    let opts = RunOptions {
        stop_after_batches: Some(3),
        ..Default::default()
    };
    train(&config(1, 1), &data, &dir, false, &opts).unwrap();
    let err = train(&config(1, 2), &data, &dir, true, &RunOptions::default())
        .expect_err("a different seed must not resume");
    assert!(err.to_string().contains("different configuration"), "{err}");
}

#[test]
fn a_diverging_run_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint() {
    let data = small_data();
    let dir = tempdir("nan");
    let cfg = config(3, 4);
    // 16 batches per epoch: batch 20 is in epoch 2, after epoch 1's checkpoint.
    let opts = RunOptions {
        inject_nan_at_batch: Some(20),
        ..Default::default()
    };
    let err = train(&cfg, &data, &dir.join("bad"), false, &opts)
        .expect_err("a NaN loss must stop training");
    let msg = err.to_string();
    assert!(msg.contains("epoch 2") && msg.contains("step 20"), "{msg}");
    // Diverging in the first epoch, before any checkpoint: it names none.
    let first = RunOptions {
        inject_nan_at_batch: Some(3),
        ..Default::default()
    };
    let err = train(&cfg, &data, &dir.join("early"), false, &first).unwrap_err();
    assert!(err.to_string().contains("No checkpoint was saved"), "{err}");
    // The checkpoint left is epoch 1's, identical to a clean one-epoch run.
    let ck = tinyvae_trainer::train::load_checkpoint(&dir.join("bad"), &Device::Cpu).unwrap();
    assert_eq!(ck.progress.epoch, 1);
    let kept = tinyvae_trainer::train::net_from_checkpoint(&ck, &Device::Cpu).unwrap();
    let (one, _) = train(
        &config(1, 4),
        &data,
        &dir.join("one"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(weights(&kept), weights(&one));
}

fn tempdir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("test-{name}"))
}

/// A small conv VAE: conv 8 and 16 channels (kernel 4, stride 2), latent 8.
fn conv_config(epochs: usize, seed: u64) -> Config {
    let mut c = config(epochs, seed);
    c.arch.hidden = vec![];
    c.arch.conv = ["8:4:2:1", "16:4:2:1"]
        .iter()
        .map(|s| s.parse::<ConvStage>().unwrap())
        .collect();
    c
}

#[test]
fn conv_forward_shapes() {
    let dev = Device::Cpu;
    for (w, h, c) in [(28, 28, 1), (13, 9, 3)] {
        let mut arch = conv_config(1, 1).arch;
        (arch.width, arch.height, arch.channels) = (w, h, c);
        let net = Net::new(arch.clone(), &mut Rng::new(1), &dev).unwrap();
        let x = Tensor::zeros((5, w * h * c), candle_core::DType::F32, &dev).unwrap();
        let enc = net.encode(&x).unwrap();
        assert_eq!(enc.mu.dims(), [5, 8]);
        assert_eq!(enc.logvar.unwrap().dims(), [5, 8]);
        assert_eq!(net.decode_logits(&enc.mu).unwrap().dims(), [5, w * h * c]);
        // Layer by layer: conv, conv, dense head; dense, transposed conv x2.
        let shapes: Vec<usize> = arch
            .decoder_layers()
            .iter()
            .map(|l| l.kind.outputs())
            .collect();
        let (h1, w1) = ((h + 2 - 4) / 2 + 1, (w + 2 - 4) / 2 + 1);
        let (h2, w2) = ((h1 + 2 - 4) / 2 + 1, (w1 + 2 - 4) / 2 + 1);
        assert_eq!(shapes, vec![h2 * w2 * 16, h1 * w1 * 8, h * w * c]);
    }
}

#[test]
fn conv_runs_repeat_bit_for_bit_and_learn() {
    let data = small_data();
    let dir = tempdir("conv-repeat");
    let (a, _) = train(
        &conv_config(2, 5),
        &data,
        &dir.join("a"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    let (b, _) = train(
        &conv_config(2, 5),
        &data,
        &dir.join("b"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(weights(&a), weights(&b), "same seed, different weights");
    let log = std::fs::read_to_string(dir.join("a/log.jsonl")).unwrap();
    let elbo: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["test_neg_elbo"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(elbo[1] < elbo[0], "test -ELBO did not fall: {elbo:?}");
}

#[test]
fn conv_resumed_run_equals_uninterrupted_run() {
    let data = small_data();
    let dir = tempdir("conv-resume");
    let cfg = conv_config(2, 9);
    let (whole, _) = train(
        &cfg,
        &data,
        &dir.join("whole"),
        false,
        &RunOptions::default(),
    )
    .unwrap();
    let run = dir.join("parts");
    let opts = RunOptions {
        stop_after_batches: Some(7),
        ..Default::default()
    };
    assert_eq!(
        train(&cfg, &data, &run, false, &opts).unwrap().1,
        Ended::Interrupted
    );
    let (resumed, ended) = train(&cfg, &data, &run, true, &RunOptions::default()).unwrap();
    assert_eq!(ended, Ended::Finished);
    assert_eq!(weights(&whole), weights(&resumed));
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let data = small_data();
    let dir = tempdir("bad-options");
    type Change = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c| c.arch.conv[0].kernel = 40),
            "larger than the 28x28 images",
        ),
        (
            Box::new(|c| {
                c.arch.conv.extend(
                    ["8:4:2:1", "8:4:2:1", "8:4:2:1"].map(|s| s.parse::<ConvStage>().unwrap()),
                )
            }),
            "too small for the strides",
        ),
        (
            Box::new(|c| c.arch.conv[1].channels = 0),
            "--conv: layer 2 has channels 0",
        ),
        (Box::new(|c| c.arch.latent = 0), "--latent"),
        (Box::new(|c| c.batch = 0), "--batch"),
        (Box::new(|c| c.beta = f64::NAN), "--beta"),
        (Box::new(|c| c.beta = -1.0), "--beta"),
        (Box::new(|c| c.lr = 0.0), "--lr"),
        (Box::new(|c| c.epochs = 0), "--epochs"),
        (Box::new(|c| c.arch.channels = 3), "with 1"),
    ];
    for (i, (change, says)) in cases.iter().enumerate() {
        let mut cfg = conv_config(1, 1);
        change(&mut cfg);
        let run = dir.join(format!("case{i}"));
        let err = train(&cfg, &data, &run, false, &RunOptions::default())
            .expect_err(says)
            .to_string();
        assert!(err.contains(says), "case {i}: {err}");
        assert!(!run.exists(), "case {i}: wrote {}", run.display());
    }
}
