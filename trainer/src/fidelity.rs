//! How close generated images are to real ones, beyond the class score: the Fréchet distance
//! between the classifier's features of the images and of the test set (FID's measure, on
//! this project's classifier), and each image's distance to its nearest training image (a
//! copy of a training image is at 0, a new digit about as far as a test image is).

use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use serde::Serialize;

use crate::classifier::Classifier;
use crate::data::{Dataset, Split};
use crate::frechet::{frechet_distance, Gaussian};

/// The two measures of a set of images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fidelity {
    /// Images measured.
    pub images: usize,
    /// Fréchet distance between their classifier features and the test set's.
    pub frechet: f64,
    /// Mean over the images of the root-mean-square pixel difference (intensities in
    /// [0, 1]) to the nearest training image.
    pub nearest_train_rms: f64,
    /// The distribution of that distance: its 10th, 25th, 50th, 75th and 90th percentiles.
    pub nearest_train_quantiles: [f64; 5],
    /// The copy test: the share of the images whose nearest training image is nearer than
    /// their nearest among the unseen half of the test set (its odd-numbered images; ties
    /// count half). Read against the same share of real test images (the even-numbered
    /// ones): a model that makes new digits is near it, one that replays its training
    /// images near 1.
    pub nearer_train_share: f64,
    /// The Euclidean distance from each image's classifier features (those of the Fréchet
    /// distance) to the nearest training image's, as [`NEAREST_QUANTILES`]: the same
    /// question as [`Fidelity::nearest_train_quantiles`] asked where a smooth rendering of a
    /// digit and a sharp one lie close, so that blur alone does not read as nearness.
    pub nearest_train_features_quantiles: [f64; 5],
}

/// The percentiles [`Fidelity::nearest_train_quantiles`] holds.
pub const NEAREST_QUANTILES: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

/// The mean of `d` and its percentiles at [`NEAREST_QUANTILES`] (nearest rank).
fn summary(mut d: Vec<f64>) -> (f64, [f64; 5]) {
    if d.is_empty() {
        return (f64::NAN, [f64::NAN; 5]);
    }
    d.sort_by(f64::total_cmp);
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let q =
        NEAREST_QUANTILES.map(|q| d[((q * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1]);
    (mean, q)
}

/// What images are measured against: the test set's features, the training images, and for
/// the copy test the test set's odd-numbered images.
pub struct Reference {
    test: Gaussian,
    train: Tensor,
    /// The training images' classifier features, (n, features).
    train_features: Tensor,
    /// The test set's odd-numbered images.
    unseen: Tensor,
    pixels: usize,
}

/// Images as an (n, pixels) tensor of intensities in [0, 1].
fn tensor(images: &[u8], pixels: usize) -> Result<Tensor> {
    let v: Vec<f32> = images.iter().map(|&p| f32::from(p) / 255.0).collect();
    Ok(Tensor::from_vec(
        v,
        (images.len() / pixels, pixels),
        &Device::Cpu,
    )?)
}

/// The first `n` images of `split`, one row of u8 values each.
fn split_images(split: &Split, pixels: usize, n: usize) -> Vec<Vec<u8>> {
    split
        .images
        .chunks_exact(pixels)
        .take(n)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The first `n` even-numbered test images: the real images the copy test's baseline and
/// the reconstructions are measured on (the odd-numbered ones are the copy test's unseen set).
pub fn seen_test_images(data: &Dataset, n: usize) -> Vec<Vec<u8>> {
    data.test
        .images
        .chunks_exact(data.pixels())
        .step_by(2)
        .take(n)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The labels of [`seen_test_images`], where the data set has them.
pub fn seen_test_labels(data: &Dataset, n: usize) -> Option<Vec<u8>> {
    let labels = data.test.labels.as_ref()?;
    Some(labels.iter().step_by(2).take(n).copied().collect())
}

impl Reference {
    /// The test set's features under `c`, and the training images of `data`.
    pub fn new(c: &Classifier, data: &Dataset) -> Result<Reference> {
        let pixels = data.width * data.height * data.channels;
        if data.test.n < 2 || data.train.n == 0 {
            bail!("the Fréchet distance needs at least 2 test images and a training image");
        }
        let test = Gaussian::of(&c.features(&split_images(&data.test, pixels, data.test.n))?);
        let odd: Vec<u8> = data
            .test
            .images
            .chunks_exact(pixels)
            .skip(1)
            .step_by(2)
            .flatten()
            .copied()
            .collect();
        let train_features =
            rows_tensor(&c.features(&split_images(&data.train, pixels, data.train.n))?)?;
        Ok(Reference {
            test,
            train: tensor(&data.train.images, pixels)?,
            train_features,
            unseen: tensor(&odd, pixels)?,
            pixels,
        })
    }

    /// The two measures of `images` (u8 values).
    pub fn measure(&self, c: &Classifier, images: &[Vec<u8>]) -> Result<Fidelity> {
        let rows = c.features(images)?;
        let (nearest_train_rms, nearest_train_quantiles) =
            summary(self.nearest(images, &self.train)?);
        Ok(Fidelity {
            images: images.len(),
            frechet: frechet_distance(&Gaussian::of(&rows), &self.test),
            nearest_train_rms,
            nearest_train_quantiles,
            nearer_train_share: self.nearer_train_share(images)?,
            nearest_train_features_quantiles: summary(self.nearest_features(&rows)?).1,
        })
    }

    /// The same measures of `n` real images no model made, the ceiling a model's samples are
    /// read against: the Fréchet distance of `n` training images to the test set, and the
    /// nearest-training-image distance and copy test of the first `n` even-numbered test
    /// images (each set disjoint from what it is measured against).
    pub fn real_ceiling(&self, c: &Classifier, data: &Dataset, n: usize) -> Result<Fidelity> {
        let train = split_images(&data.train, self.pixels, n);
        let test = seen_test_images(data, n);
        let (nearest_train_rms, nearest_train_quantiles) =
            summary(self.nearest(&test, &self.train)?);
        Ok(Fidelity {
            images: train.len().min(test.len()),
            frechet: frechet_distance(&Gaussian::of(&c.features(&train)?), &self.test),
            nearest_train_rms,
            nearest_train_quantiles,
            nearer_train_share: self.nearer_train_share(&test)?,
            nearest_train_features_quantiles: summary(self.nearest_features(&c.features(&test)?)?)
                .1,
        })
    }

    /// [`Fidelity::nearer_train_share`] of `images`.
    fn nearer_train_share(&self, images: &[Vec<u8>]) -> Result<f64> {
        let train = self.nearest(images, &self.train)?;
        let test = self.nearest(images, &self.unseen)?;
        let score: f64 = train
            .iter()
            .zip(&test)
            .map(|(a, b)| match a.total_cmp(b) {
                std::cmp::Ordering::Less => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Greater => 0.0,
            })
            .sum();
        Ok(score / images.len().max(1) as f64)
    }

    /// Per image, the RMS pixel difference to the nearest image of `set` (n, pixels).
    fn nearest(&self, images: &[Vec<u8>], set: &Tensor) -> Result<Vec<f64>> {
        let mut rows = Vec::with_capacity(images.len());
        for img in images {
            if img.len() != self.pixels {
                bail!("an image of another size than the training images");
            }
            rows.push(img.iter().map(|&p| f32::from(p) / 255.0).collect());
        }
        Ok(nearest_squared(&rows, set)?
            .into_iter()
            .map(|d2| (d2 / self.pixels as f64).sqrt())
            .collect())
    }

    /// Per row of classifier features, the Euclidean distance to the nearest training
    /// image's features.
    fn nearest_features(&self, rows: &[Vec<f32>]) -> Result<Vec<f64>> {
        Ok(nearest_squared(rows, &self.train_features)?
            .into_iter()
            .map(f64::sqrt)
            .collect())
    }
}

/// Rows of equal length as an (n, len) tensor.
fn rows_tensor(rows: &[Vec<f32>]) -> Result<Tensor> {
    let dim = rows.first().map_or(0, Vec::len);
    let v: Vec<f32> = rows.iter().flatten().copied().collect();
    if v.len() != rows.len() * dim {
        bail!("rows of unequal lengths");
    }
    Ok(Tensor::from_vec(v, (rows.len(), dim), &Device::Cpu)?)
}

/// Per row, the squared Euclidean distance to the nearest row of `set` (n, len), NaN when
/// `set` is empty: |a - t|^2 = |a|^2 + |t|^2 - 2 a.t, the cross terms one matrix product per
/// batch of rows.
fn nearest_squared(rows: &[Vec<f32>], set: &Tensor) -> Result<Vec<f64>> {
    if set.dim(0)? == 0 {
        return Ok(vec![f64::NAN; rows.len()]);
    }
    let t_norms = set.sqr()?.sum(D::Minus1)?; // (set)
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(250) {
        let a = rows_tensor(chunk)?;
        if a.dim(1)? != set.dim(1)? {
            bail!(
                "rows of {} values measured against rows of {}",
                a.dim(1)?,
                set.dim(1)?
            );
        }
        let a_norms = a.sqr()?.sum_keepdim(D::Minus1)?; // (batch, 1)
        let cross = a.matmul(&set.t()?)?; // (batch, set)
        let d2 = (cross.affine(-2.0, 0.0)?.broadcast_add(&a_norms)?)
            .broadcast_add(&t_norms.unsqueeze(0)?)?;
        for m in d2.min(D::Minus1)?.to_vec1::<f32>()? {
            out.push(f64::from(m.max(0.0)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let (mean, q) = summary((1..=10).rev().map(f64::from).collect());
        assert_eq!(mean, 5.5);
        assert_eq!(q, [1.0, 3.0, 5.0, 8.0, 9.0]);
        assert!(summary(Vec::new()).0.is_nan());
    }

    #[test]
    fn nearest_rows_by_euclidean_distance() {
        let set = rows_tensor(&[vec![0.0, 0.0], vec![3.0, 4.0], vec![10.0, 0.0]]).unwrap();
        let d = nearest_squared(&[vec![3.0, 4.0], vec![1.0, 0.0], vec![9.0, 1.0]], &set).unwrap();
        assert_eq!(d, [0.0, 1.0, 2.0]);
        assert!(nearest_squared(&[vec![1.0]], &set).is_err());
        let empty = Tensor::zeros((0, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(nearest_squared(&[vec![1.0, 2.0]], &empty).unwrap()[0].is_nan());
    }
}
