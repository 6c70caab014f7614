//! The conditional VAE (`trainer train --conditional`): its decoder draws the class asked
//! for, and what it cannot do (export, run without labels) is refused with a clear error.

mod common;

use candle_core::{Device, Tensor};
use tinyvae_trainer::arch::ArchError;
use tinyvae_trainer::data::{bundled_dir, Dataset};
use tinyvae_trainer::eval::float_decode_labelled;
use tinyvae_trainer::model::{Arch, Kind, Net};
use tinyvae_trainer::rng::Rng;
use tinyvae_trainer::train::{train, Config, RunOptions};

fn data() -> Dataset {
    let mut d = Dataset::load(&bundled_dir()).expect("bundled data");
    d.truncate(2000, 200);
    d
}

fn config(epochs: usize) -> Config {
    let arch = Arch {
        classes: 10,
        ..Arch::dense(Kind::Vae, 28, 28, vec![128], 8)
    };
    common::config(arch, epochs, 3)
}

/// The label of the training image nearest `img` (squared pixel distance).
fn nearest_label(d: &Dataset, img: &[u8]) -> u8 {
    let p = d.pixels();
    let labels = d.train.labels.as_ref().expect("labels");
    let dist = |i: usize| -> u64 {
        d.train
            .image(i, p)
            .iter()
            .zip(img)
            .map(|(&a, &b)| u64::from(a.abs_diff(b)).pow(2))
            .sum()
    };
    let best = (0..d.train.n).min_by_key(|&i| dist(i)).unwrap();
    labels[best]
}

#[test]
fn the_decoder_draws_the_class_asked_for() {
    let dir = common::TempDir::new("conditional-classes");
    let d = data();
    let (net, _) = train(&config(25), &d, &dir, false, &RunOptions::default()).unwrap();
    // The same 20 codes z ~ N(0, 0.5^2 I) decoded as each class, each image labelled by its
    // nearest training image: half or more are the class asked for (measured: 123 of 200,
    // from a small model on 2,000 images). A decoder that ignored its class input would
    // draw the same twenty digits for every class: about one in ten as asked.
    let lat = net.arch.latent;
    let n = 20;
    let mut z = vec![0f32; n * lat];
    Rng::new(11).fill_normal(&mut z);
    z.iter_mut().for_each(|v| *v *= 0.5);
    let mut right = 0;
    for class in 0..10u8 {
        let imgs = float_decode_labelled(&net, &z, Some(&vec![class; n])).unwrap();
        right += imgs
            .iter()
            .filter(|img| nearest_label(&d, img) == class)
            .count();
    }
    assert!(right >= 100, "{right} of 200 drawn as the class asked for");
}

#[test]
fn what_a_conditional_model_cannot_do_is_a_clear_error() {
    // Not a VAE, or a single class.
    for (kind, classes) in [(Kind::Ae, 10), (Kind::Vae, 1)] {
        let arch = Arch {
            classes,
            ..Arch::dense(kind, 28, 28, vec![16], 4)
        };
        assert_eq!(
            arch.validate(),
            Err(ArchError::Conditional { kind, classes })
        );
    }
    let dev = Device::Cpu;
    let arch = config(1).arch;
    let net = Net::new(arch, &mut Rng::new(1), &dev).unwrap();
    let x = Tensor::zeros((2, 784), candle_core::DType::F32, &dev).unwrap();
    // No labels, or one out of range.
    let e = net.encode(&x).err().unwrap().to_string();
    assert!(e.contains("labels are needed"), "{e}");
    let e = net.encode_labelled(&x, Some(&[1, 10])).err().unwrap();
    assert!(e.to_string().contains("label 10"), "{e}");
    let z = Tensor::zeros((2, 8), candle_core::DType::F32, &dev).unwrap();
    let e = net.decoder_input(&z, None).err().unwrap().to_string();
    assert!(e.contains("labels are needed"), "{e}");
    // Training data without labels.
    let dir = common::TempDir::new("conditional-unlabelled");
    let mut d = data();
    d.train.labels = None;
    let e = train(&config(1), &d, &dir, false, &RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("needs labels"), "{e}");
}

#[test]
fn a_conditional_run_is_scored_but_not_exported() {
    let dir = common::TempDir::new("conditional-cli");
    let run = dir.join("run");
    let trainer = common::run_trainer;
    let run_s = run.to_str().unwrap();
    let (ok, _, err) = trainer(&[
        "train",
        "--conditional",
        "--preset",
        "mcu",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--out",
        run_s,
    ]);
    assert!(ok, "{err}");
    let model = dir.join("m.tvae");
    let (ok, _, err) = trainer(&["export", run_s, "-o", model.to_str().unwrap()]);
    assert!(!ok && err.contains("conditional VAE"), "{err}");
    assert!(!model.exists());
    // Its float samples, a class a column.
    let png = dir.join("s.png");
    let (ok, out, err) = trainer(&[
        "sample",
        run_s,
        "-n",
        "20",
        "--columns",
        "10",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("20 samples"), "{err}");
    assert!(png.exists());
    let (ok, _, err) = trainer(&["sample", run_s, "--temperature", "0", "-o", "x.png"]);
    assert!(!ok && err.contains("--temperature 0"), "{err}");
}
