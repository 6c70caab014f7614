//! The N(0, 1) sampler over 10^6 draws, at its own precision (Q12).

use tinyvae_engine::Sampler;

/// Draws per test.
const N: usize = 1_000_000;
/// |mean| bound: the standard error of the mean of 10^6 N(0, 1) draws is 0.001; 0.005 is five
/// standard errors plus the Q12 rounding bias (none: rounding is symmetric).
const MEAN_TOLERANCE: f64 = 0.005;
/// |variance - 1| bound: the standard error of the variance is sqrt(2 / 10^6) = 0.0014; 0.01 is
/// seven of them, and Q12 rounding adds only h^2 / 12 = 5e-9.
const VARIANCE_TOLERANCE: f64 = 0.01;
/// P(|z| > 3) = 0.0027 for N(0, 1); 2700 draws expected, standard error 52 (1.9%): 10% is five.
const TAIL3: f64 = 0.0026998;
const TAIL3_RELATIVE_TOLERANCE: f64 = 0.10;
/// Kolmogorov-Smirnov distance bound. For 10^6 draws from the exact distribution the distance
/// exceeds 0.0016 with probability 1e-6 (sqrt(ln(2/alpha) / 2N)); 0.002 leaves room for the
/// table's interpolation error, which moves the CDF by less than 1e-5.
const KS_TOLERANCE: f64 = 0.002;
/// One step of the sampler's output: Q12.
const STEP: f64 = 1.0 / 4096.0;

fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn draws(seed: u64) -> Vec<i16> {
    let mut s = Sampler::new(seed);
    let mut v = vec![0i16; N];
    s.fill_normal(&mut v);
    v
}

#[test]
fn moments_tails_and_ks_distance() {
    for seed in [1u64, 2026] {
        let v = draws(seed);
        let x: Vec<f64> = v.iter().map(|&q| f64::from(q) * STEP).collect();
        let n = N as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n;
        let tail3 = x.iter().filter(|a| a.abs() > 3.0).count() as f64 / n;
        let beyond4 = x.iter().filter(|a| a.abs() > 4.0).count();
        println!(
            "seed {seed}: mean {mean:+.5}, variance {var:.5}, P(|z|>3) {tail3:.5}, draws beyond 4: {beyond4}, max |z| {:.3}",
            x.iter().fold(0f64, |m, a| m.max(a.abs()))
        );
        assert!(mean.abs() < MEAN_TOLERANCE, "mean {mean}");
        assert!((var - 1.0).abs() < VARIANCE_TOLERANCE, "variance {var}");
        assert!(
            (tail3 - TAIL3).abs() < TAIL3 * TAIL3_RELATIVE_TOLERANCE,
            "P(|z| > 3) = {tail3}"
        );
        assert!(beyond4 > 0, "no draw beyond |z| = 4");

        // KS at the sampler's precision: value q stands for [q - h/2, q + h/2).
        let mut sorted = v.clone();
        sorted.sort_unstable();
        let mut d = 0f64;
        let mut i = 0;
        while i < sorted.len() {
            let q = sorted[i];
            let mut j = i;
            while j < sorted.len() && sorted[j] == q {
                j += 1;
            }
            let below = i as f64 / n; // empirical CDF just below q
            let upto = j as f64 / n; // empirical CDF at q
            let lo = phi((f64::from(q) - 0.5) * STEP);
            let hi = phi((f64::from(q) + 0.5) * STEP);
            d = d.max((below - lo).abs()).max((upto - hi).abs());
            i = j;
        }
        println!("seed {seed}: Kolmogorov-Smirnov distance {d:.5}");
        assert!(d < KS_TOLERANCE, "KS distance {d}");
    }
}

#[test]
fn streams_are_reproducible_and_seeds_differ() {
    assert_eq!(draws(7)[..1000], draws(7)[..1000]);
    assert_ne!(draws(7)[..1000], draws(8)[..1000]);
}
