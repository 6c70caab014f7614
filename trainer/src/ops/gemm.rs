//! Matrix products over row-major `f32` slices, on the `gemm` crate that candle's own CPU
//! matmul runs on. Each product runs on one thread: the ops split their work into blocks and
//! run the blocks in parallel, which pays at these sizes where `gemm`'s own threading did
//! not (measured). One of the trainer's two places of unsafe code: one call into `gemm`,
//! after every length has been checked against the shapes and strides.

use candle_core::{Error, Result};

/// A row-major matrix operand, or the transpose of one, whose stored rows are `ld` values
/// apart (`None`: packed, as wide as the matrix).
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    transposed: bool,
    ld: Option<usize>,
}

impl<'a> Mat<'a> {
    /// The matrix stored row-major in `data`.
    pub fn new(data: &'a [f32]) -> Self {
        Mat {
            data,
            transposed: false,
            ld: None,
        }
    }

    /// The transpose of the matrix stored row-major in `data`.
    pub fn t(data: &'a [f32]) -> Self {
        Mat {
            data,
            transposed: true,
            ld: None,
        }
    }

    /// The same operand with stored rows `ld` values apart: a block of columns of a wider
    /// matrix, `data` starting at the block's first value.
    pub fn stride(self, ld: usize) -> Self {
        Mat {
            ld: Some(ld),
            ..self
        }
    }

    /// (column stride, row stride, values needed) of this operand as a `rows x cols` matrix.
    fn layout(&self, rows: usize, cols: usize) -> Option<(isize, isize, usize)> {
        let (stored_rows, stored_cols) = if self.transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let ld = self.ld.unwrap_or(stored_cols);
        let need = match stored_rows {
            0 => 0,
            r => (r - 1).checked_mul(ld)?.checked_add(stored_cols)?,
        };
        if ld < stored_cols || need > self.data.len() || ld > isize::MAX as usize {
            return None;
        }
        let ld = ld as isize;
        Some(if self.transposed {
            (ld, 1, need)
        } else {
            (1, ld, need)
        })
    }
}

/// `dst (m x n) = a (m x k) * b (k x n)`, or `dst += a * b` when `accumulate`.
pub fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
    (m, k, n): (usize, usize, usize),
) -> Result<()> {
    let (la, lb) = (a.layout(m, k), b.layout(k, n));
    let dst_fits = m.checked_mul(n).is_some_and(|v| v <= dst.len());
    let (Some((a_cs, a_rs, _)), Some((b_cs, b_rs, _)), true) = (la, lb, dst_fits) else {
        return Err(Error::Msg(format!(
            "matmul {m}x{k} by {k}x{n}: operands of {}, {} and {} values do not hold it",
            a.data.len(),
            b.data.len(),
            dst.len()
        )));
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return Ok(());
    }
    // SAFETY: `dst` holds at least m * n values; `layout` checked that the strides of `a`
    // and `b` address values inside their slices only (the last stored row ends within it);
    // `dst` is a unique borrow and cannot alias the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], at: bool, b: &[f32], bt: bool, m: usize, k: usize, n: usize) -> Vec<f32> {
        let ga = |i: usize, p: usize| if at { a[p * m + i] } else { a[i * k + p] };
        let gb = |p: usize, j: usize| if bt { b[j * k + p] } else { b[p * n + j] };
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| f64::from(ga(i, p) * gb(p, j))).sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn every_transposition_matches_the_definition() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for at in [false, true] {
            for bt in [false, true] {
                let ma = if at { Mat::t(&a) } else { Mat::new(&a) };
                let mb = if bt { Mat::t(&b) } else { Mat::new(&b) };
                let mut dst = vec![1f32; m * n];
                matmul(&mut dst, true, ma, mb, (m, k, n)).unwrap();
                let want = naive(&a, at, &b, bt, m, k, n);
                for (d, w) in dst.iter().zip(&want) {
                    assert!((d - (w + 1.0)).abs() < 1e-5, "{d} vs {w} + 1 ({at}, {bt})");
                }
            }
        }
    }

    #[test]
    fn column_blocks_of_a_wider_matrix() {
        // dy (4 x 6); the product of its columns 2..5, transposed, with x (4 x 3).
        let dy: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let x: Vec<f32> = (0..12).map(|i| (i as f32).sqrt()).collect();
        let mut got = vec![0f32; 3 * 3];
        matmul(
            &mut got,
            false,
            Mat::t(&dy[2..]).stride(6),
            Mat::new(&x),
            (3, 4, 3),
        )
        .unwrap();
        for o in 0..3 {
            for j in 0..3 {
                let want: f32 = (0..4).map(|r| dy[r * 6 + 2 + o] * x[r * 3 + j]).sum();
                assert!((got[o * 3 + j] - want).abs() < 1e-4);
            }
        }
        // One value short of the last row: refused.
        assert!(matmul(
            &mut got,
            false,
            Mat::t(&dy[2..22]).stride(6),
            Mat::new(&x),
            (3, 4, 3)
        )
        .is_err());
    }

    #[test]
    fn short_operands_are_an_error_not_a_read_past_the_end() {
        let mut dst = vec![0f32; 4];
        assert!(matmul(
            &mut dst,
            false,
            Mat::new(&[1.0; 3]),
            Mat::new(&[1.0; 4]),
            (2, 2, 2)
        )
        .is_err());
    }
}
