//! The prior a model file stores for generation: N(0, I), the aggregate posterior of some
//! training images, or a Gaussian mixture learned from the training set's encodings.
//!
//! All three are what FORMAT.md calls a prior (`StandardNormal`, or `Mixture`: weighted
//! diagonal Gaussians), so the chip samples a learned mixture with the code it already has:
//! one raw draw picks the component, one N(0, 1) draw per dimension the point in it.
//!
//! The learned mixture ([`PriorChoice::Mixture`]) is fitted by EM ([`gmm`]) to the posterior
//! means of the training images ("ex-post density estimation": the encodings the decoder was
//! trained to decode, not N(0, I)'s holes), its number of components chosen by the
//! log-likelihood of held-out training encodings (every tenth image) among 1, 2, 4, ...
//! components, up to the most that fit the byte budget; then refitted on all encodings.

pub mod gmm;
pub mod second;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use tinyvae_format::owned::{OwnedPrior, LATENT_FRAC_BITS};

use crate::data::Split;
use crate::model::{to_vec_f32, Kind, Net};
use crate::train::batch_tensor;
use gmm::DiagGmm;

/// Seed of the mixture's k-means++ start.
const FIT_SEED: u64 = 17;
/// Training images held out to choose the number of components: every `HOLD_OUT`-th.
const HOLD_OUT: usize = 10;
/// Images encoded per batch.
const BATCH: usize = 500;

/// Which prior to store.
#[derive(Clone, Debug, PartialEq)]
pub enum PriorChoice {
    /// N(0, I), the prior the VAE was trained towards.
    StandardNormal,
    /// The aggregate posterior of `images` training images spread evenly over the training
    /// set, with equal weights (the seed lecture's first option, subsampled): close to
    /// replaying those images.
    Aggregate {
        /// Training images whose posteriors are stored.
        images: usize,
    },
    /// A mixture of diagonal Gaussians fitted to the training set's posterior means.
    Mixture {
        /// Components at most (0: as many as `max_bytes` allows).
        max_components: usize,
        /// Bytes the prior may add to the model file.
        max_bytes: usize,
        /// Every component's standard deviations multiplied by this when stored (1: the
        /// mixture as fitted; below 1 samples nearer the components' centres, surer digits
        /// at some cost in variety).
        temperature: f64,
        /// One mixture per class of the training labels, stored grouped by class (format
        /// version 5) so that the chip can draw a chosen class; sampled as a whole when no
        /// class is asked for.
        per_class: bool,
    },
    /// A second-stage VAE trained on the training set's posterior means; its decoder
    /// stored ([`second`]).
    SecondStage {
        /// Bytes the decoder may add to the model file.
        max_bytes: usize,
        /// Training epochs.
        epochs: usize,
        /// The draws of u multiplied by this (1: N(0, I)).
        temperature: f64,
    },
}

/// Seed of the second stage's training and calibration draws.
const SECOND_STAGE_SEED: u64 = 29;

/// How a learned prior was fitted, for the export's report.
#[derive(Clone, Debug, PartialEq)]
pub enum PriorReport {
    /// A mixture: its size as chosen.
    Mixture(MixtureReport),
    /// A second stage: its width and fit.
    SecondStage(second::Report),
}

/// What fitting a learned prior chose, for the export's report.
#[derive(Clone, Debug, PartialEq)]
pub struct MixtureReport {
    /// Encodings fitted (all training images).
    pub points: usize,
    /// Per candidate component count: the held-out mean log-likelihood (nats per image).
    pub held_out: Vec<(usize, f64)>,
    /// Components chosen (per class, for a mixture per class).
    pub components: usize,
    /// Classes (0: one mixture for all).
    pub classes: usize,
    /// EM iterations of the final fit.
    pub iterations: usize,
}

/// Bytes a mixture of `k` components over `dim` dimensions adds to the model file: its
/// cumulative weights (u32), means (i16) and sigmas (u32), and about ten bytes of lengths.
pub fn mixture_bytes(k: usize, dim: usize) -> usize {
    4 * k + 2 * k * dim + 4 * k * dim + 10
}

/// The prior `choice` describes, for `net` trained on `train`.
pub fn build(
    net: &Net,
    train: &Split,
    choice: &PriorChoice,
) -> Result<(OwnedPrior, Option<PriorReport>)> {
    if *choice != PriorChoice::StandardNormal && net.arch.kind != Kind::Vae {
        bail!("a prior other than N(0, I) needs a VAE (an autoencoder has no posterior)");
    }
    match *choice {
        PriorChoice::StandardNormal => Ok((OwnedPrior::StandardNormal, None)),
        PriorChoice::Aggregate { images } => Ok((aggregate_posterior(net, train, images)?, None)),
        PriorChoice::Mixture {
            max_components,
            max_bytes,
            temperature,
            per_class,
        } => {
            if !(temperature > 0.0 && temperature <= 4.0) {
                bail!("prior temperature {temperature}: it must be in (0, 4]");
            }
            if per_class {
                let labels = train.labels.as_ref().context(
                    "a mixture per class needs the training labels (an IDX label file beside \
                     the images, or PNG images in one subfolder per class); this data set has \
                     none",
                )?;
                let points = posterior_means(net, train)?;
                let (gmm, ends, report) =
                    class_mixtures(&points, labels, net.arch.latent, max_components, max_bytes)?;
                let prior = quantize(&gmm, temperature, Some(ends))?;
                return Ok((prior, Some(PriorReport::Mixture(report))));
            }
            let (gmm, report) = learned_mixture(net, train, max_components, max_bytes)?;
            let prior = quantize(&gmm, temperature, None)?;
            Ok((prior, Some(PriorReport::Mixture(report))))
        }
        PriorChoice::SecondStage {
            max_bytes,
            epochs,
            temperature,
        } => {
            let points = posterior_means(net, train)?;
            let opts = second::Options {
                max_bytes,
                epochs,
                seed: SECOND_STAGE_SEED,
            };
            let (stage, report) = second::fit(&points, net.arch.latent, &opts)?;
            let prior = second::quantize(&stage, temperature, SECOND_STAGE_SEED)?;
            Ok((prior, Some(PriorReport::SecondStage(report))))
        }
    }
}

/// Posterior means and log-variances of training images `idx`.
fn encodings(net: &Net, train: &Split, idx: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
    let (mut mu, mut lv) = (Vec::new(), Vec::new());
    for chunk in idx.chunks(BATCH) {
        let x = batch_tensor(train, chunk, net.arch.pixels(), &Device::Cpu)?;
        let enc = net.encode(&x)?;
        mu.extend(to_vec_f32(&enc.mu)?);
        lv.extend(to_vec_f32(
            enc.logvar.as_ref().context("VAE without log-variance")?,
        )?);
    }
    Ok((mu, lv))
}

/// The aggregate posterior of `k` training images spread evenly over the set.
fn aggregate_posterior(net: &Net, train: &Split, k: usize) -> Result<OwnedPrior> {
    if k == 0 {
        bail!("an aggregate-posterior prior needs at least one training image");
    }
    let k = k.min(train.n).min(usize::from(u16::MAX));
    let idx: Vec<usize> = (0..k).map(|i| i * train.n / k).collect();
    let (mu, lv) = encodings(net, train, &idx)?;
    let means = mu.iter().map(|&m| fixed_mean(f64::from(m))).collect();
    let sigmas = lv
        .iter()
        .map(|&l| q16_sigma((0.5 * f64::from(l)).exp()))
        .collect();
    Ok(OwnedPrior::Mixture {
        cumulative: cumulative(&vec![1.0; k]),
        means,
        sigmas,
    })
}

/// The posterior means of every training image, `n * latent`, in f64.
fn posterior_means(net: &Net, train: &Split) -> Result<Vec<f64>> {
    let dim = net.arch.latent;
    let all: Vec<usize> = (0..train.n).collect();
    let (mu, _) = encodings(net, train, &all)?;
    let points: Vec<f64> = mu.iter().map(|&m| f64::from(m)).collect();
    if let Some(i) = points.iter().position(|x| !x.is_finite()) {
        bail!(
            "training image {} encodes to a non-finite mean: the model diverged",
            i / dim
        );
    }
    Ok(points)
}

/// The learned mixture: the component count chosen on held-out encodings, then refitted on
/// all of them.
fn learned_mixture(
    net: &Net,
    train: &Split,
    max_components: usize,
    max_bytes: usize,
) -> Result<(DiagGmm, MixtureReport)> {
    let dim = net.arch.latent;
    let points = posterior_means(net, train)?;
    let (mut fit_part, mut held) = (Vec::new(), Vec::new());
    for (i, x) in points.chunks_exact(dim).enumerate() {
        if i % HOLD_OUT == HOLD_OUT - 1 {
            held.extend_from_slice(x);
        } else {
            fit_part.extend_from_slice(x);
        }
    }
    let fit_n = fit_part.len() / dim;
    let cap = if max_components == 0 {
        usize::MAX
    } else {
        max_components
    };
    let mut candidates = Vec::new();
    let mut k = 1;
    while k <= cap && k <= fit_n && mixture_bytes(k, dim) <= max_bytes {
        candidates.push(k);
        k *= 2;
    }
    if candidates.is_empty() {
        bail!(
            "no mixture fits: one component over {dim} dimensions takes {} bytes, the budget \
             is {max_bytes} (and {fit_n} training images to fit)",
            mixture_bytes(1, dim)
        );
    }
    let mut held_out = Vec::new();
    for &k in &candidates {
        let (g, _) = gmm::fit(&fit_part, dim, k, FIT_SEED);
        held_out.push((k, g.mean_log_likelihood(&held)));
    }
    let &(best, _) = held_out
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no candidate")?;
    let (g, iterations) = gmm::fit(&points, dim, best, FIT_SEED);
    Ok((
        g,
        MixtureReport {
            points: train.n,
            held_out,
            components: best,
            classes: 0,
            iterations,
        },
    ))
}

/// Components per class at most, whatever the budget.
const MAX_PER_CLASS: usize = 64;

/// A mixture per class, fitted to the posterior means of that class's training images, in
/// one mixture whose components are grouped by class (class `c`'s end at `ends[c]`), each
/// class weighted by its share of the training set. Every class gets the same number of
/// components, chosen by the held-out log-likelihood summed over the classes among those
/// that fit `max_bytes` with `classes * k` components.
pub fn class_mixtures(
    points: &[f64],
    labels: &[u8],
    dim: usize,
    max_components: usize,
    max_bytes: usize,
) -> Result<(DiagGmm, Vec<u16>, MixtureReport)> {
    let n = labels.len();
    let classes = usize::from(labels.iter().copied().max().context("no labels")?) + 1;
    let of_class = |c: usize, keep: &dyn Fn(usize) -> bool| -> Vec<f64> {
        points
            .chunks_exact(dim)
            .zip(labels)
            .enumerate()
            .filter(|&(i, (_, &l))| usize::from(l) == c && keep(i))
            .flat_map(|(_, (x, _))| x.iter().copied())
            .collect()
    };
    let counts: Vec<usize> = (0..classes)
        .map(|c| labels.iter().filter(|&&l| usize::from(l) == c).count())
        .collect();
    if let Some(c) = counts.iter().position(|&k| k < 2 * HOLD_OUT) {
        bail!(
            "class {c} has {} training images: a mixture per class needs at least {} of each \
             class from 0 to {}",
            counts[c],
            2 * HOLD_OUT,
            classes - 1
        );
    }
    let smallest = counts.iter().copied().min().unwrap_or(0) * (HOLD_OUT - 1) / HOLD_OUT;
    let cap = if max_components == 0 {
        MAX_PER_CLASS
    } else {
        max_components.min(MAX_PER_CLASS)
    };
    // The class table costs two bytes a class.
    let fits = |k: usize| mixture_bytes(classes * k, dim) + 2 * classes + 2 <= max_bytes;
    let candidates: Vec<usize> = (1..=cap)
        .take_while(|&k| k <= smallest && fits(k))
        .collect();
    if candidates.is_empty() {
        bail!(
            "no mixture per class fits: {classes} classes of one component over {dim} \
             dimensions take {} bytes, the budget is {max_bytes}",
            mixture_bytes(classes, dim) + 2 * classes + 2
        );
    }
    let held_part = |i: usize| i % HOLD_OUT == HOLD_OUT - 1;
    let fit_parts: Vec<(Vec<f64>, Vec<f64>)> = (0..classes)
        .map(|c| (of_class(c, &|i| !held_part(i)), of_class(c, &held_part)))
        .collect();
    let mut held_out = Vec::new();
    for &k in &candidates {
        let mut total = 0.0;
        let mut held_n = 0usize;
        for (fit, held) in &fit_parts {
            let (g, _) = gmm::fit(fit, dim, k, FIT_SEED);
            let m = held.len() / dim;
            total += g.mean_log_likelihood(held) * m as f64;
            held_n += m;
        }
        held_out.push((k, total / held_n.max(1) as f64));
    }
    let &(best, _) = held_out
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no candidate")?;
    let mut all = DiagGmm {
        dim,
        weights: Vec::new(),
        means: Vec::new(),
        vars: Vec::new(),
    };
    let mut ends = Vec::with_capacity(classes);
    let mut iterations = 0;
    for (c, &count) in counts.iter().enumerate() {
        let (g, it) = gmm::fit(&of_class(c, &|_| true), dim, best, FIT_SEED);
        iterations = iterations.max(it);
        let share = count as f64 / n as f64;
        all.weights.extend(g.weights.iter().map(|w| w * share));
        all.means.extend(g.means);
        all.vars.extend(g.vars);
        ends.push(u16::try_from(all.weights.len()).context("too many components")?);
    }
    Ok((
        all,
        ends,
        MixtureReport {
            points: n,
            held_out,
            components: best,
            classes,
            iterations,
        },
    ))
}

/// A fitted mixture in the model file's fixed point, its standard deviations multiplied by
/// `temperature`; grouped by class (`ClassMixture`) with `class_ends`.
pub fn quantize(g: &DiagGmm, temperature: f64, class_ends: Option<Vec<u16>>) -> Result<OwnedPrior> {
    if g.components() > usize::from(u16::MAX) {
        bail!(
            "{} components: the format holds at most 65535",
            g.components()
        );
    }
    let cumulative = cumulative(&g.weights);
    let means = g.means.iter().map(|&m| fixed_mean(m)).collect();
    let sigmas = g
        .vars
        .iter()
        .map(|&v| q16_sigma(v.sqrt() * temperature))
        .collect();
    Ok(match class_ends {
        None => OwnedPrior::Mixture {
            cumulative,
            means,
            sigmas,
        },
        Some(class_ends) => OwnedPrior::ClassMixture {
            cumulative,
            means,
            sigmas,
            class_ends,
        },
    })
}

/// A mean in the latent's fixed point (Q[`LATENT_FRAC_BITS`]), saturated to i16.
fn fixed_mean(m: f64) -> i16 {
    (m * f64::from(1u32 << LATENT_FRAC_BITS))
        .round()
        .clamp(-32768.0, 32767.0) as i16
}

/// A standard deviation in Q16, within the format's [1, 2^30].
fn q16_sigma(s: f64) -> u32 {
    (s * 65536.0).round().clamp(1.0, f64::from(1u32 << 30)) as u32
}

/// Cumulative weights as fractions of 2^32: component `i` takes the raw draws below
/// `cumulative[i]` and at or above `cumulative[i - 1]`; the last is `u32::MAX` (so every
/// draw picks a component; the engine also falls back to the last).
fn cumulative(weights: &[f64]) -> Vec<u32> {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let mut out: Vec<u32> = weights
        .iter()
        .map(|w| {
            acc += w / total;
            (acc * 4_294_967_296.0).round().min(f64::from(u32::MAX)) as u32
        })
        .collect();
    if let Some(last) = out.last_mut() {
        *last = u32::MAX;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_weights_end_at_the_top_and_never_fall() {
        let c = cumulative(&[0.25, 0.0, 0.5, 0.25]);
        assert_eq!(c, vec![1 << 30, 1 << 30, 3 << 30, u32::MAX]);
        let equal = cumulative(&[1.0; 3]);
        assert!(equal.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(equal[0], 1_431_655_765);
    }

    #[test]
    fn a_mixture_in_fixed_point() {
        let g = DiagGmm {
            dim: 2,
            weights: vec![1.0],
            means: vec![0.5, -100.0],
            vars: vec![0.25, 0.0],
        };
        let OwnedPrior::Mixture { means, sigmas, .. } = quantize(&g, 1.0, None).unwrap() else {
            panic!("not a mixture")
        };
        assert_eq!(means, vec![1 << (LATENT_FRAC_BITS - 1), -32768]);
        assert_eq!(sigmas, vec![32768, 1]);
    }

    #[test]
    fn the_byte_budget_counts_what_the_file_stores() {
        // 64 components over 20 dimensions: 256 + 2,560 + 5,120 bytes, and lengths.
        assert_eq!(mixture_bytes(64, 20), 7_946);
    }
}
