//! What a model learned, as pictures: samples from the prior, reconstructions beside their
//! originals, latent traversals, for a 2-D latent the test codes coloured by label and the
//! decoded manifold, and the loss curves.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;

use crate::data::{Dataset, Split};
use crate::images::{grid, line_chart, Canvas, PALETTE};
use crate::model::{to_vec_f32, Net};
use crate::rng::Rng;
use crate::train::{batch_tensor, EpochLog};

/// The codes `z` decoded; a conditional model's classes take turns (code `i` of class
/// `i mod classes`: a grid of 10 columns shows one class a column).
fn decode_all(net: &Net, z: Vec<f32>) -> Result<Vec<Vec<u8>>> {
    let turns = crate::eval::class_turns(net, z.len() / net.arch.latent);
    crate::eval::float_decode_labelled(net, &z, turns.as_deref())
}

fn save_grid(path: &Path, imgs: &[Vec<u8>], net: &Net, cols: usize) -> Result<()> {
    let refs: Vec<&[u8]> = imgs.iter().map(Vec::as_slice).collect();
    grid(
        &refs,
        (net.arch.width, net.arch.height, net.arch.channels),
        cols,
        2,
    )
    .save(path)
}

/// Training images whose posteriors make the aggregate-posterior pictures.
const AGGREGATE_COMPONENTS: usize = 256;

/// Writes every picture into `dir`; returns the files written.
pub fn all(
    net: &Net,
    data: &Dataset,
    history: &[EpochLog],
    dir: &Path,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let test = &data.test;
    let mut written = Vec::new();
    let lat = net.arch.latent;
    let p = net.arch.pixels();

    // Samples: z ~ N(0, I) decoded. For an autoencoder these show the seed lecture's point:
    // its latent space is not organised around the prior, so random codes decode poorly.
    let mut rng = Rng::new(seed);
    let mut z = vec![0f32; 64 * lat];
    rng.fill_normal(&mut z);
    let f = dir.join("samples.png");
    save_grid(&f, &decode_all(net, z)?, net, 8)?;
    written.push(f);

    // The seed lecture's other way to pick z: from the aggregate posterior, the mixture of
    // the posteriors of training images (a VAE's; an autoencoder's codes, for other kinds).
    let f = dir.join("samples-aggregate.png");
    save_grid(
        &f,
        &decode_all(net, aggregate_draws(net, &data.train, 64, &mut rng)?)?,
        net,
        8,
    )?;
    written.push(f);

    // Reconstructions at z = mu: originals on odd rows, reconstructions below them.
    let n = 32.min(test.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = batch_tensor(test, &idx, p, &Device::Cpu)?;
    let labels = crate::train::batch_labels(net, test, &idx);
    let enc = net.encode_labelled(&x, labels.as_deref())?;
    let mu = to_vec_f32(&enc.mu)?;
    let rec = crate::eval::float_decode_labelled(net, &mu, labels.as_deref())?;
    let mut rows = Vec::new();
    for chunk in idx.chunks(8) {
        rows.extend(chunk.iter().map(|&i| test.image(i, p).to_vec()));
        rows.extend(chunk.iter().map(|&i| rec[i].clone()));
    }
    let f = dir.join("reconstructions.png");
    save_grid(&f, &rows, net, 8)?;
    written.push(f);

    // Traversals: from the first test image's code, one dimension at a time from -3 to 3,
    // the dimensions ordered by their KL (the most informative first; all for an AE).
    let order: Vec<usize> = match &enc.logvar {
        Some(lv) => {
            let lv = to_vec_f32(lv)?;
            let mut kl: Vec<(f64, usize)> = (0..lat)
                .map(|j| {
                    let s: f64 = (0..n)
                        .map(|i| {
                            let (m, l) = (f64::from(mu[i * lat + j]), f64::from(lv[i * lat + j]));
                            0.5 * (l.exp() + m * m - 1.0 - l)
                        })
                        .sum();
                    (s, j)
                })
                .collect();
            kl.sort_by(|a, b| b.0.total_cmp(&a.0));
            kl.into_iter().map(|(_, j)| j).collect()
        }
        None => (0..lat).collect(),
    };
    let steps = 9;
    let mut zs = Vec::new();
    for &j in order.iter().take(10) {
        for s in 0..steps {
            let mut z = mu[..lat].to_vec();
            z[j] = -3.0 + 6.0 * s as f32 / (steps - 1) as f32;
            zs.extend(z);
        }
    }
    let f = dir.join("traversals.png");
    save_grid(&f, &decode_all(net, zs)?, net, steps)?;
    written.push(f);

    if lat == 2 {
        written.extend(latent_2d(net, test, dir)?);
    }

    if !history.is_empty() {
        let train: Vec<f64> = history.iter().map(|h| h.train_loss).collect();
        let test: Vec<f64> = history.iter().map(|h| h.test_neg_elbo).collect();
        let f = dir.join("loss.png");
        line_chart(&[("train loss", train), ("test -ELBO", test)], 640, 400).save(&f)?;
        written.push(f);
    }
    Ok(written)
}

/// `n` draws of z from the aggregate posterior of [`AGGREGATE_COMPONENTS`] training images
/// spread over the split: a component chosen uniformly, then z = mu + sigma eps.
fn aggregate_draws(net: &Net, train: &Split, n: usize, rng: &mut Rng) -> Result<Vec<f32>> {
    let k = AGGREGATE_COMPONENTS.min(train.n).max(1);
    let idx: Vec<usize> = (0..k).map(|i| i * train.n / k).collect();
    let labels = crate::train::batch_labels(net, train, &idx);
    let enc = net.encode_labelled(
        &batch_tensor(train, &idx, net.arch.pixels(), &Device::Cpu)?,
        labels.as_deref(),
    )?;
    let mu = to_vec_f32(&enc.mu)?;
    let lv = match &enc.logvar {
        Some(lv) => to_vec_f32(lv)?,
        None => vec![f32::NEG_INFINITY; mu.len()],
    };
    let lat = net.arch.latent;
    let mut eps = vec![0f32; lat];
    let mut z = Vec::with_capacity(n * lat);
    for _ in 0..n {
        let c = rng.below(k);
        rng.fill_normal(&mut eps);
        for j in 0..lat {
            z.push(mu[c * lat + j] + (0.5 * lv[c * lat + j]).exp() * eps[j]);
        }
    }
    Ok(z)
}

fn latent_2d(net: &Net, test: &Split, dir: &Path) -> Result<Vec<PathBuf>> {
    let p = net.arch.pixels();
    let idx: Vec<usize> = (0..test.n).collect();
    let mut mus = Vec::new();
    for chunk in idx.chunks(1000) {
        let x = batch_tensor(test, chunk, p, &Device::Cpu)?;
        let labels = crate::train::batch_labels(net, test, chunk);
        mus.extend(to_vec_f32(&net.encode_labelled(&x, labels.as_deref())?.mu)?);
    }
    let size = 600i64;
    let mut c = Canvas::new(size as usize, size as usize, [255, 255, 255]);
    let span = 4.0f32;
    let to_px = |v: f32| ((v + span) / (2.0 * span) * size as f32) as i64;
    c.line((size / 2, 0), (size / 2, size), [200, 200, 200]);
    c.line((0, size / 2), (size, size / 2), [200, 200, 200]);
    for (i, m) in mus.chunks(2).enumerate() {
        let label = test.labels.as_ref().map_or(0, |l| usize::from(l[i]) % 10);
        let (x, y) = (to_px(m[0]), size - to_px(m[1]));
        for dx in -1..=1 {
            for dy in -1..=1 {
                c.set(x + dx, y + dy, PALETTE[label]);
            }
        }
    }
    let scatter = dir.join("latent-scatter.png");
    c.save(&scatter)?;
    // The decoded manifold over [-3, 3]^2, top row at z2 = 3.
    let k = 15;
    let mut z = Vec::new();
    for r in 0..k {
        for col in 0..k {
            z.push(-3.0 + 6.0 * col as f32 / (k - 1) as f32);
            z.push(3.0 - 6.0 * r as f32 / (k - 1) as f32);
        }
    }
    let manifold = dir.join("latent-manifold.png");
    save_grid(&manifold, &decode_all(net, z)?, net, k)?;
    Ok(vec![scatter, manifold])
}
