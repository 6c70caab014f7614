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
}

/// What images are measured against: the test set's features, the training images.
pub struct Reference {
    test: Gaussian,
    train: Tensor,
    pixels: usize,
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

impl Reference {
    /// The test set's features under `c`, and the training images of `data`.
    pub fn new(c: &Classifier, data: &Dataset) -> Result<Reference> {
        let pixels = data.width * data.height * data.channels;
        if data.test.n < 2 || data.train.n == 0 {
            bail!("the Fréchet distance needs at least 2 test images and a training image");
        }
        let test = Gaussian::of(&c.features(&split_images(&data.test, pixels, data.test.n))?);
        let train: Vec<f32> = data
            .train
            .images
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        let train = Tensor::from_vec(train, (data.train.n, pixels), &Device::Cpu)?;
        Ok(Reference {
            test,
            train,
            pixels,
        })
    }

    /// The two measures of `images` (u8 values).
    pub fn measure(&self, c: &Classifier, images: &[Vec<u8>]) -> Result<Fidelity> {
        let features = Gaussian::of(&c.features(images)?);
        Ok(Fidelity {
            images: images.len(),
            frechet: frechet_distance(&features, &self.test),
            nearest_train_rms: self.nearest_train_rms(images)?,
        })
    }

    /// The same measures of `n` real images no model made, the ceiling a model's samples are
    /// read against: the Fréchet distance of `n` training images to the test set, and the
    /// nearest-training-image distance of `n` test images (each set disjoint from what it is
    /// measured against).
    pub fn real_ceiling(&self, c: &Classifier, data: &Dataset, n: usize) -> Result<Fidelity> {
        let train = split_images(&data.train, self.pixels, n);
        let test = split_images(&data.test, self.pixels, n);
        Ok(Fidelity {
            images: n.min(train.len()).min(test.len()),
            frechet: frechet_distance(&Gaussian::of(&c.features(&train)?), &self.test),
            nearest_train_rms: self.nearest_train_rms(&test)?,
        })
    }

    /// Mean over `images` of the RMS pixel difference to the nearest training image:
    /// |a - t|^2 = |a|^2 + |t|^2 - 2 a.t, the cross terms one matrix product per batch.
    fn nearest_train_rms(&self, images: &[Vec<u8>]) -> Result<f64> {
        let t_norms = self.train.sqr()?.sum(D::Minus1)?; // (train)
        let mut total = 0f64;
        for chunk in images.chunks(250) {
            let v: Vec<f32> = chunk
                .iter()
                .flat_map(|img| img.iter().map(|&p| f32::from(p) / 255.0))
                .collect();
            if v.len() != chunk.len() * self.pixels {
                bail!("an image of another size than the training images");
            }
            let a = Tensor::from_vec(v, (chunk.len(), self.pixels), &Device::Cpu)?;
            let a_norms = a.sqr()?.sum_keepdim(D::Minus1)?; // (batch, 1)
            let cross = a.matmul(&self.train.t()?)?; // (batch, train)
            let d2 = (cross.affine(-2.0, 0.0)?.broadcast_add(&a_norms)?)
                .broadcast_add(&t_norms.unsqueeze(0)?)?;
            for m in d2.min(D::Minus1)?.to_vec1::<f32>()? {
                total += (f64::from(m.max(0.0)) / self.pixels as f64).sqrt();
            }
        }
        Ok(total / images.len().max(1) as f64)
    }
}
