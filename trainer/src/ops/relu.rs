//! ReLU with a one-pass backward (`dy` where the output is positive): candle's own backward
//! builds a zero tensor, a comparison, a conversion and a product.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Error, Layout, Result, Shape, Tensor};

use rayon::prelude::*;

use super::f32_slice;

/// Values per parallel chunk of an element-wise pass.
const CHUNK: usize = 1 << 16;

/// `max(x, 0)`.
pub struct Relu;

/// `dy * (y > 0)`, without backward.
struct ReluGrad;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "tinyvae-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "relu input")?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x.max(0.0);
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &ReluGrad)?))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "tinyvae-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (
            f32_slice(s1, l1, "relu output")?,
            f32_slice(s2, l2, "relu grad")?,
        );
        if y.len() != dy.len() {
            return Err(Error::Msg("relu: gradient shape differs".into()));
        }
        let mut g = vec![0f32; y.len()];
        g.par_chunks_mut(CHUNK)
            .zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
            .for_each(|(g, (y, dy))| {
                for ((g, &y), &d) in g.iter_mut().zip(y).zip(dy) {
                    *g = if y > 0.0 { d } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(g), l1.shape().clone()))
    }
}

/// `max(x, 0)`, one pass forward and backward.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// Sums over every axis but the last: the bias gradient of a dense or convolution layer.
struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "tinyvae-column-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "column sums")?;
        let cols = *l.shape().dims().last().unwrap_or(&1);
        if cols == 0 {
            return Err(Error::Msg("column sums of an empty axis".into()));
        }
        let mut acc = vec![0f32; cols];
        for row in x.chunks_exact(cols) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
        Ok((CpuStorage::F32(acc), Shape::from(cols)))
    }
}

/// The sum of `t` over every axis but the last.
pub fn column_sums(t: &Tensor) -> Result<Tensor> {
    t.contiguous()?.apply_op1_no_bwd(&ColumnSums)
}
