//! The sample-quality score on a toy classifier trained on the bundled subset: real digits
//! score high on both numbers, blank or copied images do not, and a saved classifier scores
//! as the one in memory.

use tinyvae_trainer::classifier::{score, train_classifier, Classifier, ClassifierOptions};
use tinyvae_trainer::data::{bundled_dir, Dataset};
use tinyvae_trainer::fidelity::Reference;

#[test]
fn real_digits_score_high_and_degenerate_samples_low() {
    let mut data = Dataset::load(&bundled_dir()).unwrap();
    data.truncate(3000, 500);
    let opts = ClassifierOptions {
        epochs: 3,
        batch: 32,
        ..Default::default()
    };
    let c = train_classifier(&data, &opts).unwrap();
    assert_eq!(c.info.classes, 10);
    assert!(
        c.info.test_accuracy > 0.9,
        "accuracy {}",
        c.info.test_accuracy
    );

    let real: Vec<Vec<u8>> = (0..500).map(|i| data.test.image(i, 784).to_vec()).collect();
    let s = score(&c, &real).unwrap();
    assert!(s.confident > 0.5, "{s:?}");
    assert!(s.label_entropy_bits > 3.2, "{s:?}");

    // One digit copied 500 times: confident, but no variety.
    let same = vec![real[0].clone(); 500];
    let s = score(&c, &same).unwrap();
    assert_eq!(s.label_entropy_bits, 0.0);
    assert_eq!(s.histogram.iter().filter(|&&k| k > 0).count(), 1);

    // Noise is labelled, but rarely with confidence... and the share counts it.
    let mut rng = tinyvae_trainer::rng::Rng::new(3);
    let noise: Vec<Vec<u8>> = (0..500)
        .map(|_| (0..784).map(|_| rng.below(256) as u8).collect())
        .collect();
    let noisy = score(&c, &noise).unwrap();
    let real_score = score(&c, &real).unwrap();
    assert!(noisy.confident < real_score.confident, "{noisy:?}");

    // Fidelity: the Fréchet distance on the classifier's features (128 per image) and the
    // nearest training image. Real images no model made sit far below noise and below one
    // digit copied; copies of training images are at distance 0 from the training set,
    // test images are not.
    assert_eq!(c.features(&real[..3]).unwrap()[0].len(), 128);
    let reference = Reference::new(&c, &data).unwrap();
    let ceiling = reference.real_ceiling(&c, &data, 500).unwrap();
    let noise_f = reference.measure(&c, &noise).unwrap();
    let same_f = reference.measure(&c, &same).unwrap();
    assert!(
        ceiling.frechet * 5.0 < noise_f.frechet,
        "{ceiling:?} {noise_f:?}"
    );
    assert!(ceiling.frechet < same_f.frechet, "{ceiling:?} {same_f:?}");
    let copies: Vec<Vec<u8>> = (0..50).map(|i| data.train.image(i, 784).to_vec()).collect();
    let copied = reference.measure(&c, &copies).unwrap();
    assert!(copied.nearest_train_rms < 1e-3, "{copied:?}");
    assert!(ceiling.nearest_train_rms > 0.05, "{ceiling:?}");
    // The copy test: copies of training images are all nearer the training set than the
    // unseen test images; real test digits are not.
    assert_eq!(copied.nearer_train_share, 1.0);
    assert!(ceiling.nearer_train_share < 1.0, "{ceiling:?}");
    assert_eq!(ceiling.nearest_train_quantiles.len(), 5);
    assert!(ceiling
        .nearest_train_quantiles
        .windows(2)
        .all(|w| w[0] <= w[1]));

    let path = std::env::temp_dir().join(format!("tinyvae-cls-{}.safetensors", std::process::id()));
    c.save(&path).unwrap();
    let loaded = Classifier::load(&path).unwrap();
    assert_eq!(loaded.info, c.info);
    assert_eq!(
        loaded.probabilities(&real[..20]).unwrap(),
        c.probabilities(&real[..20]).unwrap()
    );
    // The wrong shape of image is an error, not a panic.
    assert!(c.probabilities(&[vec![0u8; 100]]).is_err());
    // A checkpoint is not a classifier.
    std::fs::write(&path, b"not a classifier").unwrap();
    let e = Classifier::load(&path).err().unwrap().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    std::fs::remove_file(&path).unwrap();

    // What `trainer eval` checks before it scores: the shape, and an accuracy that makes
    // the labels mean something.
    let mut c = c;
    c.check_fit(&path, (28, 28, 1)).unwrap();
    let e = c.check_fit(&path, (20, 20, 1)).unwrap_err().to_string();
    assert!(e.contains("28x28x1") && e.contains("20x20x1"), "{e}");
    c.info.test_accuracy = 0.81;
    let e = c.check_fit(&path, (28, 28, 1)).unwrap_err().to_string();
    assert!(e.contains("81.0%") && e.contains("--epochs"), "{e}");

    // A description that claims 0 classes is refused, naming the file, before anything is
    // built from it.
    c.info.test_accuracy = 0.95;
    c.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // `classes\":10` (the description is JSON inside the header's JSON) becomes
    // `classes\": 0`: the same length, so the header stays whole.
    let key = b"classes\\\":10";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() - 2;
    bytes[at..at + 2].copy_from_slice(b" 0");
    std::fs::write(&path, &bytes).unwrap();
    let e = format!("{:#}", Classifier::load(&path).err().unwrap());
    assert!(
        e.contains("0 classes") && e.contains(&path.display().to_string()),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();

    // Labels of one class only (all 255) are nothing to classify.
    let mut one = data.clone();
    for split in [&mut one.train, &mut one.test] {
        let n = split.n;
        split.labels = Some(vec![255; n]);
    }
    let e = train_classifier(&one, &opts).err().unwrap().to_string();
    assert!(e.contains("one class only (label 255)"), "{e}");
}
