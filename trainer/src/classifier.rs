//! A sample-quality score, because the ELBO alone does not say whether samples look like
//! data: a small convolutional classifier trained on a labelled data set, then run on images
//! a model generates. Two numbers: the share of samples it labels with probability at least
//! [`CONFIDENT`] (does a sample look like *some* class?) and the entropy in bits of the
//! histogram of predicted labels (do the samples cover the classes? log2 10 = 3.32 is all ten
//! equally).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::arch::{ConvStage, LayerKind};
use crate::data::{Dataset, Split};
use crate::layers::{run, Layer};
use crate::rng::Rng;
use crate::train::{atomic_write, batch_tensor, Adam};

/// The probability from which a prediction counts as confident.
pub const CONFIDENT: f32 = 0.9;

/// The test accuracy from which a classifier's labels are taken as a score: below it,
/// `trainer eval` refuses to score with it (a weak classifier scores every model near 0%).
pub const MIN_ACCURACY: f64 = 0.9;

/// What a saved classifier was trained on and how well it does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInfo {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Values per pixel.
    pub channels: usize,
    /// Number of classes (largest label + 1).
    pub classes: usize,
    /// Data set name.
    pub dataset: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Share of the test split labelled correctly.
    pub test_accuracy: f64,
}

/// A trained classifier.
pub struct Classifier {
    /// Its description.
    pub info: ClassifierInfo,
    layers: Vec<Layer>,
}

/// The classifier's layers: conv 16 and 32 channels (kernel 4, stride 2, padding 1, or
/// kernel 3, stride 1, padding 1 on images too small to halve twice), dense 128, then one
/// output per class.
fn layer_kinds(
    width: usize,
    height: usize,
    channels: usize,
    classes: usize,
) -> Result<Vec<LayerKind>> {
    let halve = width.min(height) >= 8;
    let (kernel, stride) = if halve { (4, 2) } else { (3, 1) };
    let stage = |channels| ConvStage {
        channels,
        kernel,
        stride,
        padding: 1,
    };
    let arch = crate::arch::Arch {
        channels,
        conv: vec![stage(16), stage(32)],
        ..crate::arch::Arch::dense(crate::model::Kind::Ae, width, height, vec![128], classes)
    };
    arch.validate()?;
    Ok(arch.encoder_layers().into_iter().map(|l| l.kind).collect())
}

impl Classifier {
    fn build(info: ClassifierInfo, rng: &mut Rng) -> Result<Classifier> {
        let kinds = layer_kinds(info.width, info.height, info.channels, info.classes)?;
        let layers = kinds
            .into_iter()
            .map(|k| Layer::new(k, rng, &Device::Cpu))
            .collect::<Result<_>>()?;
        Ok(Classifier { info, layers })
    }

    fn named(&self) -> Vec<(String, candle_core::Var)> {
        let mut v = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let (w, b) = l.vars();
            v.push((format!("cls.{i}.w"), w.clone()));
            v.push((format!("cls.{i}.b"), b.clone()));
        }
        v
    }

    /// Logits of a batch of images in [0, 1], (batch, pixels).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(run(&self.layers, x, false)?.remove(0))
    }

    /// Class probabilities of each image, images of u8 values.
    pub fn probabilities(&self, images: &[Vec<u8>]) -> Result<Vec<Vec<f32>>> {
        self.rows(images, |x| {
            Ok(candle_nn::ops::softmax_last_dim(&self.logits(x)?)?)
        })
    }

    /// The classifier's features of each image: its last hidden layer (dense, after ReLU),
    /// what the Fréchet distance compares (the `fidelity` module).
    pub fn features(&self, images: &[Vec<u8>]) -> Result<Vec<Vec<f32>>> {
        self.rows(images, |x| {
            let mut outs = run(&self.layers, x, true)?;
            let last_hidden = outs.len().saturating_sub(2);
            Ok(outs.swap_remove(last_hidden))
        })
    }

    /// `f` on the images (u8 values, checked to have the classifier's shape) in batches,
    /// one output row per image.
    fn rows(
        &self,
        images: &[Vec<u8>],
        f: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Vec<Vec<f32>>> {
        let pixels = self.info.width * self.info.height * self.info.channels;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(500) {
            let mut v = Vec::with_capacity(chunk.len() * pixels);
            for img in chunk {
                if img.len() != pixels {
                    bail!(
                        "an image of {} values; the classifier takes {}x{}x{}",
                        img.len(),
                        self.info.width,
                        self.info.height,
                        self.info.channels
                    );
                }
                v.extend(img.iter().map(|&p| f32::from(p) / 255.0));
            }
            let x = Tensor::from_vec(v, (chunk.len(), pixels), &Device::Cpu)?;
            out.extend(f(&x)?.flatten_from(1)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Saves weights and description in one safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = self
            .named()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let meta = HashMap::from([("classifier".to_string(), serde_json::to_string(&self.info)?)]);
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))?;
        atomic_write(path, |mut f| {
            f.write_all(&bytes)?;
            f.sync_all()?;
            Ok(())
        })
    }

    /// Loads a classifier saved by [`Classifier::save`].
    pub fn load(path: &Path) -> Result<Classifier> {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .with_context(|| format!("{}: not a safetensors file", path.display()))?;
        let info: ClassifierInfo = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("classifier"))
            .with_context(|| format!("{}: not a classifier (no description)", path.display()))
            .and_then(|s| {
                serde_json::from_str(s)
                    .with_context(|| format!("{}: corrupt classifier description", path.display()))
            })?;
        // The description is checked before anything is allocated from it.
        let pixels = info
            .width
            .checked_mul(info.height)
            .and_then(|p| p.checked_mul(info.channels))
            .filter(|&p| p > 0 && p <= usize::from(tinyvae_format::MAX_WIDTH));
        if pixels.is_none() {
            bail!(
                "{}: its description says {}x{}x{} images; a classifier takes 1 to {} values \
                 per image",
                path.display(),
                info.width,
                info.height,
                info.channels,
                tinyvae_format::MAX_WIDTH
            );
        }
        if !(2..=256).contains(&info.classes) {
            bail!(
                "{}: its description says {} classes; a classifier of byte labels has 2 to 256",
                path.display(),
                info.classes
            );
        }
        let c = Classifier::build(info, &mut Rng::new(0))
            .with_context(|| format!("{}: its description", path.display()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        for (name, var) in c.named() {
            let t = tensors
                .get(&name)
                .with_context(|| format!("{}: lacks {name}", path.display()))?;
            if t.dims() != var.dims() {
                bail!(
                    "{}: {name} is {:?}, the classifier needs {:?}",
                    path.display(),
                    t.dims(),
                    var.dims()
                );
            }
            var.set(t)?;
        }
        Ok(c)
    }
}

/// Options of [`train_classifier`].
#[derive(Clone, Debug)]
pub struct ClassifierOptions {
    /// Most epochs: training stops earlier once the test accuracy reaches `target`.
    pub epochs: usize,
    /// The test accuracy at which training stops.
    pub target: f64,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Adam learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch: usize,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            epochs: 30,
            target: 0.98,
            seed: 1,
            lr: 1e-3,
            batch: 128,
        }
    }
}

fn labels_of<'a>(split: &'a Split, data: &Dataset, what: &str) -> Result<&'a [u8]> {
    split.labels.as_deref().with_context(|| {
        format!(
            "the data set {} has no labels for its {what} split (IDX label files, \
             train-labels-idx1-ubyte and t10k-labels-idx1-ubyte): a classifier needs them",
            data.name
        )
    })
}

/// Trains a classifier on the training split's labels with softmax cross-entropy and
/// reports its test accuracy (printing one line per epoch).
pub fn train_classifier(data: &Dataset, opts: &ClassifierOptions) -> Result<Classifier> {
    let (train_labels, test_labels) = (
        labels_of(&data.train, data, "training")?,
        labels_of(&data.test, data, "test")?,
    );
    if opts.batch == 0 || opts.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    let classes = usize::from(*train_labels.iter().max().context("no training labels")?) + 1;
    let mut present = [false; 256];
    for &l in train_labels {
        present[usize::from(l)] = true;
    }
    let distinct = present.iter().filter(|&&p| p).count();
    if distinct < 2 {
        bail!(
            "the training labels of {} hold one class only (label {}): nothing to classify",
            data.name,
            classes - 1
        );
    }
    let info = ClassifierInfo {
        width: data.width,
        height: data.height,
        channels: data.channels,
        classes,
        dataset: data.name.clone(),
        epochs: opts.epochs,
        seed: opts.seed,
        test_accuracy: f64::NAN,
    };
    let mut rng = Rng::new(opts.seed);
    let mut c = Classifier::build(info, &mut rng)?;
    let mut adam = Adam::new(c.named(), opts.lr)?;
    let pixels = data.pixels();
    let dev = Device::Cpu;
    for epoch in 1..=opts.epochs {
        let mut order: Vec<usize> = (0..data.train.n).collect();
        rng.shuffle(&mut order);
        let mut total = 0f64;
        for idx in order.chunks(opts.batch) {
            let x = batch_tensor(&data.train, idx, pixels, &dev)?;
            let y: Vec<u32> = idx.iter().map(|&i| u32::from(train_labels[i])).collect();
            let y = Tensor::from_vec(y, idx.len(), &dev)?;
            let loss = candle_nn::loss::cross_entropy(&c.logits(&x)?, &y)?;
            total += f64::from(loss.to_scalar::<f32>()?) * idx.len() as f64;
            adam.backward_step(&loss)?;
        }
        let acc = accuracy(&c, &data.test, test_labels, pixels)?;
        println!(
            "epoch {epoch}: train cross-entropy {:.4}, test accuracy {:.2}%",
            total / data.train.n as f64,
            100.0 * acc
        );
        c.info.test_accuracy = acc;
        c.info.epochs = epoch;
        if acc >= opts.target {
            break;
        }
    }
    Ok(c)
}

impl Classifier {
    /// An error unless this classifier can score images of `width x height x channels`
    /// (its own shape) and labels well enough ([`MIN_ACCURACY`]); `path` names its file.
    pub fn check_fit(&self, path: &Path, shape: (usize, usize, usize)) -> Result<()> {
        let i = &self.info;
        if (i.width, i.height, i.channels) != shape {
            bail!(
                "{}: a classifier of {}x{}x{} images cannot score the model's {}x{}x{}",
                path.display(),
                i.width,
                i.height,
                i.channels,
                shape.0,
                shape.1,
                shape.2
            );
        }
        if i.test_accuracy.is_nan() || i.test_accuracy < MIN_ACCURACY {
            bail!(
                "{}: its test accuracy is {:.1}% (after {} epochs on {}), under the {:.0}% a \
                 score needs: its labels would score every model near 0%. Train it longer \
                 (trainer classifier --epochs N) or on more data",
                path.display(),
                100.0 * i.test_accuracy,
                i.epochs,
                i.dataset,
                100.0 * MIN_ACCURACY
            );
        }
        Ok(())
    }
}

fn accuracy(c: &Classifier, test: &Split, labels: &[u8], pixels: usize) -> Result<f64> {
    let mut right = 0usize;
    let idx: Vec<usize> = (0..test.n).collect();
    for chunk in idx.chunks(500) {
        let x = batch_tensor(test, chunk, pixels, &Device::Cpu)?;
        let pred = c
            .logits(&x)?
            .argmax(1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        right += chunk
            .iter()
            .zip(pred)
            .filter(|(&i, p)| u32::from(labels[i]) == *p)
            .count();
    }
    Ok(right as f64 / test.n.max(1) as f64)
}

/// The score of a set of generated images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleScore {
    /// Images scored.
    pub images: usize,
    /// Share labelled with probability at least [`CONFIDENT`].
    pub confident: f64,
    /// Entropy in bits of the histogram of predicted labels.
    pub label_entropy_bits: f64,
    /// How many images got each label.
    pub histogram: Vec<usize>,
}

/// Scores images (u8 values, the classifier's shape) with a classifier.
pub fn score(c: &Classifier, images: &[Vec<u8>]) -> Result<SampleScore> {
    let probs = c.probabilities(images)?;
    Ok(score_probabilities(&probs, c.info.classes))
}

/// The score from class probabilities, one row per image.
pub fn score_probabilities(probs: &[Vec<f32>], classes: usize) -> SampleScore {
    let mut histogram = vec![0usize; classes];
    let mut confident = 0usize;
    for p in probs {
        let (best, &pmax) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        if best < classes {
            histogram[best] += 1;
        }
        if pmax >= CONFIDENT {
            confident += 1;
        }
    }
    let n = probs.len().max(1) as f64;
    let label_entropy_bits = histogram
        .iter()
        .filter(|&&k| k > 0)
        .map(|&k| {
            let q = k as f64 / n;
            -q * q.log2()
        })
        .sum();
    SampleScore {
        images: probs.len(),
        confident: confident as f64 / n,
        label_entropy_bits,
        histogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_of_known_probabilities() {
        // Four images: two confident 0s, a confident 1, an unsure 2.
        let p = vec![
            vec![0.95, 0.05, 0.0],
            vec![0.91, 0.0, 0.09],
            vec![0.0, 1.0, 0.0],
            vec![0.3, 0.3, 0.4],
        ];
        let s = score_probabilities(&p, 3);
        assert_eq!(s.histogram, vec![2, 1, 1]);
        assert!((s.confident - 0.75).abs() < 1e-12);
        // -(1/2 log2 1/2 + 2 * 1/4 log2 1/4) = 1.5 bits.
        assert!((s.label_entropy_bits - 1.5).abs() < 1e-12);
        // Ten classes equally: log2 10.
        let even: Vec<Vec<f32>> = (0..10)
            .map(|k| (0..10).map(|j| if j == k { 1.0 } else { 0.0 }).collect())
            .collect();
        assert!((score_probabilities(&even, 10).label_entropy_bits - 10f64.log2()).abs() < 1e-12);
    }
}
