//! The dense layer `y = x W^T + b` as one op, forward and backward each a matrix product per
//! operand (candle's graph spends extra passes on transposed copies and the bias broadcast),
//! split into one block of rows per thread. Splitting rows does not change any sum (each
//! output's sum runs over the same inner dimension in the same order), so results do not
//! depend on the number of threads; one block per thread keeps the shared operand from
//! being packed more often than there are threads.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor};

use super::f32_slice;
use rayon::prelude::*;

use super::gemm::{matmul, Mat};

/// `(x, w, b) -> x W^T + b`: x `(n, in)`, w `(out, in)`, b `(out)`.
pub struct Linear;

/// Rows per block when `rows` are shared among the threads.
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// The input gradient `dy W`, without backward: dy `(n, out)`, w `(out, in)`.
struct InputGrad;

/// The weight gradient `dy^T x`, without backward: dy `(n, out)`, x `(n, in)`; each block of
/// output rows of the result is its own product (no partial sums).
struct WeightGrad;

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "tinyvae-linear-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((n, out), (out2, inp)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if out != out2 {
            return Err(Error::Msg(format!(
                "linear input grad: dy {:?}, w {:?}",
                l1.shape(),
                l2.shape()
            )));
        }
        let (dy, w) = (f32_slice(s1, l1, "dy")?, f32_slice(s2, l2, "weight")?);
        let mut dx = vec![0f32; n * inp];
        let r = block_rows(n);
        dx.par_chunks_mut(r * inp)
            .zip(dy.par_chunks(r * out))
            .try_for_each(|(dx, dy)| {
                matmul(
                    dx,
                    false,
                    Mat::new(dy),
                    Mat::new(w),
                    (dy.len() / out, out, inp),
                )
            })?;
        Ok((CpuStorage::F32(dx), Shape::from((n, inp))))
    }
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "tinyvae-linear-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((n, out), (n2, inp)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if n != n2 {
            return Err(Error::Msg(format!(
                "linear weight grad: dy {:?}, x {:?}",
                l1.shape(),
                l2.shape()
            )));
        }
        let (dy, x) = (f32_slice(s1, l1, "dy")?, f32_slice(s2, l2, "x")?);
        let mut dw = vec![0f32; out * inp];
        let r = block_rows(out);
        dw.par_chunks_mut(r * inp)
            .enumerate()
            .try_for_each(|(blk, dw)| {
                let o0 = blk * r;
                let rows = dw.len() / inp;
                matmul(
                    dw,
                    false,
                    Mat::t(&dy[o0..]).stride(out),
                    Mat::new(x),
                    (rows, n, inp),
                )
            })?;
        Ok((CpuStorage::F32(dw), Shape::from((out, inp))))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "tinyvae-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, inp) = l1.shape().dims2()?;
        let (out, inp2) = l2.shape().dims2()?;
        if inp != inp2 || l3.shape().dims() != [out] {
            return Err(Error::Msg(format!(
                "linear: input {:?}, weight {:?}, bias {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )));
        }
        let (x, w, b) = (
            f32_slice(s1, l1, "linear input")?,
            f32_slice(s2, l2, "linear weight")?,
            f32_slice(s3, l3, "linear bias")?,
        );
        let mut y = Vec::with_capacity(n * out);
        for _ in 0..n {
            y.extend_from_slice(b);
        }
        let r = block_rows(n);
        y.par_chunks_mut(r * out)
            .zip(x.par_chunks(r * inp))
            .try_for_each(|(y, x)| {
                matmul(y, true, Mat::new(x), Mat::t(w), (x.len() / inp, inp, out))
            })?;
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(&w.contiguous()?, &InputGrad)?)
        } else {
            None
        };
        let dw = dy.apply_op2_no_bwd(&x.contiguous()?, &WeightGrad)?;
        let db = super::relu::column_sums(&dy)?;
        Ok((dx, Some(dw), Some(db)))
    }
}

/// `x W^T + b` for x `(n, in)`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}
