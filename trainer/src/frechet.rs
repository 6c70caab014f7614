//! The Fréchet distance between two sets of feature vectors, each summarised as a Gaussian
//! (mean and covariance): |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2), the
//! distance FID computes on a classifier's features. Matrix square roots come from a
//! symmetric eigendecomposition (cyclic Jacobi), in f64.

/// A set of feature vectors as a Gaussian: mean and covariance (row-major, `dim` x `dim`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    /// Mean.
    pub mean: Vec<f64>,
    /// Covariance (normalised by n - 1), row-major.
    pub cov: Vec<f64>,
    /// Feature vectors summarised.
    pub count: usize,
}

impl Gaussian {
    /// The mean and covariance of `rows`, each of the same length (at least two rows for a
    /// covariance; with one, it is zero).
    pub fn of(rows: &[Vec<f32>]) -> Gaussian {
        let dim = rows.first().map_or(0, Vec::len);
        let n = rows.len();
        let mut mean = vec![0f64; dim];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let mut cov = vec![0f64; dim * dim];
        let mut d = vec![0f64; dim];
        for r in rows {
            for ((di, &v), m) in d.iter_mut().zip(r).zip(&mean) {
                *di = f64::from(v) - m;
            }
            for i in 0..dim {
                let row = &mut cov[i * dim..(i + 1) * dim];
                for (c, dj) in row[i..].iter_mut().zip(&d[i..]) {
                    *c += d[i] * dj;
                }
            }
        }
        let denom = n.saturating_sub(1).max(1) as f64;
        for i in 0..dim {
            for j in i..dim {
                let v = cov[i * dim + j] / denom;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        Gaussian {
            mean,
            cov,
            count: n,
        }
    }

    /// Feature dimensions.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// The Fréchet distance between two Gaussians of the same dimension.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let n = a.dim();
    assert_eq!(n, b.dim(), "Fréchet distance between different dimensions");
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let trace = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
    let root_a = sqrt_psd(&a.cov, n);
    // C_a^1/2 C_b C_a^1/2 is symmetric and positive semi-definite: the trace of its square
    // root is the sum of the square roots of its eigenvalues.
    let m = matmul(&matmul(&root_a, &b.cov, n), &root_a, n);
    let (values, _) = symmetric_eigen(&m, n);
    let cross: f64 = values.iter().map(|v| v.max(0.0).sqrt()).sum();
    (mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * cross).max(0.0)
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            let (row, brow) = (&mut c[i * n..(i + 1) * n], &b[k * n..(k + 1) * n]);
            for (c, b) in row.iter_mut().zip(brow) {
                *c += aik * b;
            }
        }
    }
    c
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues, from
/// rounding, taken as 0).
fn sqrt_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(a, n);
    // V diag(sqrt(lambda)) V^T, V's columns the eigenvectors.
    let mut out = vec![0f64; n * n];
    for (k, &l) in values.iter().enumerate() {
        let s = l.max(0.0).sqrt();
        if s == 0.0 {
            continue;
        }
        for i in 0..n {
            let vik = vectors[i * n + k] * s;
            for j in 0..n {
                out[i * n + j] += vik * vectors[j * n + k];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (as the columns of a row-major matrix) of a symmetric
/// matrix, by cyclic Jacobi rotations until the off-diagonal part is negligible.
fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0f64; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let scale: f64 = m
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(mean: Vec<f64>, cov: Vec<f64>) -> Gaussian {
        Gaussian {
            mean,
            cov,
            count: 0,
        }
    }

    #[test]
    fn one_dimension_is_the_closed_form() {
        // (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2.
        let a = gaussian(vec![1.0], vec![4.0]);
        let b = gaussian(vec![-2.0], vec![9.0]);
        assert!((frechet_distance(&a, &b) - (9.0 + 1.0)).abs() < 1e-12);
        assert!(frechet_distance(&a, &a).abs() < 1e-12);
    }

    #[test]
    fn commuting_covariances_compare_their_roots() {
        // Diagonal covariances: sum of (sqrt(a_i) - sqrt(b_i))^2 plus the means' distance.
        let a = gaussian(
            vec![0.0, 1.0, 2.0],
            vec![1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.25],
        );
        let b = gaussian(
            vec![0.5, 1.0, 0.0],
            vec![9.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        );
        let want = 0.25 + 4.0 + (1.0f64 - 3.0).powi(2) + (2.0f64 - 1.0).powi(2) + 0.25;
        assert!((frechet_distance(&a, &b) - want).abs() < 1e-9);
    }

    #[test]
    fn a_rotated_set_is_at_distance_zero_from_its_own_statistics() {
        // A full covariance (not diagonal): the distance to itself is 0, and the square root
        // squares back to the matrix.
        let c = vec![2.0, 0.6, 0.1, 0.6, 1.0, -0.3, 0.1, -0.3, 0.5];
        let a = gaussian(vec![0.1, 0.2, 0.3], c.clone());
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
        let r = sqrt_psd(&c, 3);
        let back = matmul(&r, &r, 3);
        for (x, y) in back.iter().zip(&c) {
            assert!((x - y).abs() < 1e-10, "{back:?}");
        }
    }

    #[test]
    fn statistics_of_rows() {
        let rows = vec![vec![1.0f32, 2.0], vec![3.0, 2.0], vec![5.0, 8.0]];
        let g = Gaussian::of(&rows);
        assert_eq!(g.mean, vec![3.0, 4.0]);
        // Var x = 4, var y = 12, cov = (−2·−2 + 0 + 2·4) / 2 = 6.
        assert_eq!(g.cov, vec![4.0, 6.0, 6.0, 12.0]);
    }
}
