//! A mixture of diagonal Gaussians fitted by expectation-maximization, in f64.
//!
//! Initialization by k-means++ seeding from a seeded [`Rng`] (the same points, seed and `K`
//! give the same mixture), then EM until the mean log-likelihood gains less than `1e-7`
//! nats per point or `MAX_ITERATIONS` pass. Variances are floored at `VAR_FLOOR` so that a
//! component cannot collapse onto one point.

use rayon::prelude::*;

use crate::rng::Rng;

/// EM iterations at most.
const MAX_ITERATIONS: usize = 300;
/// Smallest variance of a component in any dimension (a standard deviation of 0.01).
pub const VAR_FLOOR: f64 = 1e-4;
/// Stop when the mean log-likelihood per point gains less than this.
const TOLERANCE: f64 = 1e-7;

/// `K` weighted diagonal Gaussians in `dim` dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagGmm {
    /// Dimensions.
    pub dim: usize,
    /// Mixture weights, summing to 1.
    pub weights: Vec<f64>,
    /// Means, `K * dim`, component-major.
    pub means: Vec<f64>,
    /// Variances, `K * dim`.
    pub vars: Vec<f64>,
}

impl DiagGmm {
    /// Components.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// log(w_k) + log N(x; m_k, v_k) for every component, into `out`.
    fn joint(&self, x: &[f64], consts: &[f64], out: &mut [f64]) {
        let d = self.dim;
        for (k, o) in out.iter_mut().enumerate() {
            let m = &self.means[k * d..(k + 1) * d];
            let v = &self.vars[k * d..(k + 1) * d];
            let q: f64 = x
                .iter()
                .zip(m)
                .zip(v)
                .map(|((&x, &m), &v)| (x - m) * (x - m) / v)
                .sum();
            *o = consts[k] - 0.5 * q;
        }
    }

    /// Per component: log w_k - (d log(2 pi) + sum log v_k) / 2.
    fn consts(&self) -> Vec<f64> {
        let d = self.dim;
        (0..self.components())
            .map(|k| {
                let logdet: f64 = self.vars[k * d..(k + 1) * d].iter().map(|v| v.ln()).sum();
                self.weights[k].ln() - 0.5 * (d as f64 * std::f64::consts::TAU.ln() + logdet)
            })
            .collect()
    }

    /// Mean log-likelihood (nats per point) of `points` (`n * dim`, row-major).
    pub fn mean_log_likelihood(&self, points: &[f64]) -> f64 {
        let n = points.len() / self.dim;
        if n == 0 {
            return f64::NAN;
        }
        let consts = self.consts();
        let mut lp = vec![0.0; self.components()];
        let total: f64 = points
            .chunks_exact(self.dim)
            .map(|x| {
                self.joint(x, &consts, &mut lp);
                log_sum_exp(&lp)
            })
            .sum();
        total / n as f64
    }
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// Fits `k` components to `points` (`n * dim`, row-major, `n >= k`) by EM from a k-means++
/// start drawn with `seed`. Returns the mixture and the number of EM iterations run.
pub fn fit(points: &[f64], dim: usize, k: usize, seed: u64) -> (DiagGmm, usize) {
    let n = points.len() / dim;
    assert!(
        k >= 1 && n >= k,
        "fit needs at least k = {k} >= 1 points, got {n}"
    );
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    // The data's variance per dimension: every component's starting variance.
    let mut mean = vec![0.0; dim];
    for x in points.chunks_exact(dim) {
        mean.iter_mut().zip(x).for_each(|(m, x)| *m += x / n as f64);
    }
    let mut var = vec![0.0; dim];
    for x in points.chunks_exact(dim) {
        var.iter_mut()
            .zip(x)
            .zip(&mean)
            .for_each(|((v, x), m)| *v += (x - m) * (x - m) / n as f64);
    }
    var.iter_mut().for_each(|v| *v = v.max(VAR_FLOOR));
    // k-means++ seeding.
    let mut rng = Rng::new(seed);
    let mut centres = Vec::with_capacity(k * dim);
    centres.extend_from_slice(row(rng.below(n)));
    let dist2 =
        |x: &[f64], c: &[f64]| -> f64 { x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum() };
    let mut nearest: Vec<f64> = (0..n).map(|i| dist2(row(i), &centres[..dim])).collect();
    while centres.len() < k * dim {
        let total: f64 = nearest.iter().sum();
        let mut target = rng.uniform() * total;
        let mut pick = n - 1;
        for (i, &d) in nearest.iter().enumerate() {
            if target < d {
                pick = i;
                break;
            }
            target -= d;
        }
        let c = row(pick).to_vec();
        for (i, best) in nearest.iter_mut().enumerate() {
            *best = best.min(dist2(row(i), &c));
        }
        centres.extend_from_slice(&c);
    }
    let mut gmm = DiagGmm {
        dim,
        weights: vec![1.0 / k as f64; k],
        means: centres,
        vars: var.repeat(k),
    };
    let mut previous = f64::NEG_INFINITY;
    let mut iterations = 0;
    for _ in 0..MAX_ITERATIONS {
        iterations += 1;
        // E and M steps over fixed blocks of points in parallel, the blocks' sums added in
        // order: the same result on any number of threads.
        let consts = gmm.consts();
        let parts: Vec<Moments> = points
            .par_chunks(BLOCK * dim)
            .map(|block| Moments::of(&gmm, &consts, block))
            .collect();
        let mut m = Moments::zero(k, dim);
        for p in &parts {
            m.add(p);
        }
        let ll = m.log_likelihood / n as f64;
        let (mass, sums, squares) = (m.mass, m.sums, m.squares);
        for j in 0..k {
            if mass[j] < 1e-9 {
                // An empty component restarts at the point the mixture explains worst.
                let worst = worst_point(&gmm, points);
                gmm.means[j * dim..(j + 1) * dim].copy_from_slice(row(worst));
                gmm.vars[j * dim..(j + 1) * dim].copy_from_slice(&var);
                gmm.weights[j] = 1.0 / n as f64;
                continue;
            }
            gmm.weights[j] = mass[j] / n as f64;
            for d in 0..dim {
                let m = sums[j * dim + d] / mass[j];
                let v = squares[j * dim + d] / mass[j] - m * m;
                gmm.means[j * dim + d] = m;
                gmm.vars[j * dim + d] = v.max(VAR_FLOOR);
            }
        }
        let total: f64 = gmm.weights.iter().sum();
        gmm.weights.iter_mut().for_each(|w| *w /= total);
        if (ll - previous).abs() < TOLERANCE {
            break;
        }
        previous = ll;
    }
    (gmm, iterations)
}

/// Points per block of the parallel E step.
const BLOCK: usize = 1024;

/// What the M step needs from a block of points: per component the responsibilities' sum
/// and the responsibility-weighted sums of x and x^2; and the block's log-likelihood.
struct Moments {
    log_likelihood: f64,
    mass: Vec<f64>,
    sums: Vec<f64>,
    squares: Vec<f64>,
}

impl Moments {
    fn zero(k: usize, dim: usize) -> Moments {
        Moments {
            log_likelihood: 0.0,
            mass: vec![0.0; k],
            sums: vec![0.0; k * dim],
            squares: vec![0.0; k * dim],
        }
    }

    fn of(gmm: &DiagGmm, consts: &[f64], block: &[f64]) -> Moments {
        let (k, dim) = (gmm.components(), gmm.dim);
        let mut m = Moments::zero(k, dim);
        let mut r = vec![0.0; k];
        for x in block.chunks_exact(dim) {
            gmm.joint(x, consts, &mut r);
            let lse = log_sum_exp(&r);
            m.log_likelihood += lse;
            for (j, r) in r.iter().enumerate() {
                let r = (r - lse).exp();
                if r < 1e-12 {
                    continue;
                }
                m.mass[j] += r;
                let s = &mut m.sums[j * dim..(j + 1) * dim];
                let q = &mut m.squares[j * dim..(j + 1) * dim];
                for ((s, q), &x) in s.iter_mut().zip(q.iter_mut()).zip(x) {
                    *s += r * x;
                    *q += r * x * x;
                }
            }
        }
        m
    }

    fn add(&mut self, o: &Moments) {
        self.log_likelihood += o.log_likelihood;
        let pairs = [
            (&mut self.mass, &o.mass),
            (&mut self.sums, &o.sums),
            (&mut self.squares, &o.squares),
        ];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }
}

/// The point with the lowest likelihood under `gmm`.
fn worst_point(gmm: &DiagGmm, points: &[f64]) -> usize {
    let consts = gmm.consts();
    let mut lp = vec![0.0; gmm.components()];
    let mut worst = (0, f64::INFINITY);
    for (i, x) in points.chunks_exact(gmm.dim).enumerate() {
        gmm.joint(x, &consts, &mut lp);
        let l = log_sum_exp(&lp);
        if l < worst.1 {
            worst = (i, l);
        }
    }
    worst.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points from a known two-component mixture in 2-D.
    fn two_blobs(n: usize) -> Vec<f64> {
        let mut rng = Rng::new(5);
        let mut e = vec![0f32; 2 * n];
        rng.fill_normal(&mut e);
        let mut p = Vec::with_capacity(2 * n);
        for (i, e) in e.chunks_exact(2).enumerate() {
            // 3/4 of the points around (-3, 0) with sd (1, 0.5); 1/4 around (4, 2), sd 0.25.
            if i % 4 != 0 {
                p.extend([-3.0 + f64::from(e[0]), 0.5 * f64::from(e[1])]);
            } else {
                p.extend([4.0 + 0.25 * f64::from(e[0]), 2.0 + 0.25 * f64::from(e[1])]);
            }
        }
        p
    }

    #[test]
    fn recovers_a_known_mixture() {
        let p = two_blobs(8000);
        let (g, _) = fit(&p, 2, 2, 1);
        let big = if g.weights[0] > g.weights[1] { 0 } else { 1 };
        let small = 1 - big;
        assert!((g.weights[big] - 0.75).abs() < 0.01, "{:?}", g.weights);
        let close = |a: f64, b: f64, tol: f64| (a - b).abs() < tol;
        assert!(close(g.means[2 * big], -3.0, 0.05) && close(g.means[2 * big + 1], 0.0, 0.05));
        assert!(close(g.means[2 * small], 4.0, 0.02) && close(g.means[2 * small + 1], 2.0, 0.02));
        assert!(close(g.vars[2 * big], 1.0, 0.06) && close(g.vars[2 * big + 1], 0.25, 0.02));
        assert!(close(g.vars[2 * small], 0.0625, 0.01));
    }

    #[test]
    fn more_components_fit_the_training_points_no_worse() {
        let p = two_blobs(2000);
        let one = fit(&p, 2, 1, 3).0.mean_log_likelihood(&p);
        let two = fit(&p, 2, 2, 3).0.mean_log_likelihood(&p);
        assert!(two > one + 0.5, "one {one}, two {two}");
    }

    #[test]
    fn the_same_seed_gives_the_same_mixture() {
        let p = two_blobs(500);
        assert_eq!(fit(&p, 2, 3, 9), fit(&p, 2, 3, 9));
    }

    #[test]
    fn a_mixture_of_one_is_the_sample_mean_and_variance() {
        let p = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let (g, _) = fit(&p, 2, 1, 0);
        assert_eq!(g.weights, vec![1.0]);
        assert!((g.means[0] - 2.0).abs() < 1e-12 && (g.means[1] - 3.0).abs() < 1e-12);
        assert!((g.vars[0] - 8.0 / 3.0).abs() < 1e-9);
    }
}
