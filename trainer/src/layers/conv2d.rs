//! A convolution layer, channels last: `(batch, h, w, c)` to `(batch, oh, ow, out_c)`, through
//! the fused op in [`crate::ops::conv`].

use anyhow::Result;
use candle_core::{Device, Tensor, Var};

use super::linear::uniform_vars;
use crate::ops::conv::{conv2d as conv2d_op, ConvGeometry};
use crate::rng::Rng;

/// A Conv2d: weights `(out_c, k, k, in_c)`, bias `(out_c)`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Its shape.
    pub geometry: ConvGeometry,
    /// Weights, `(out_c, k, k, in_c)`.
    pub w: Var,
    /// Bias, `(out_c)`.
    pub b: Var,
}

/// A Conv2d initialised as PyTorch's `nn.Conv2d`: W and b ~ U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in)), fan_in = in_c k^2.
pub fn conv2d(g: ConvGeometry, rng: &mut Rng, dev: &Device) -> Result<Conv2d> {
    let bound = 1.0 / (g.patch() as f32).sqrt();
    let (w, b) = uniform_vars(
        &[g.out_c, g.kernel, g.kernel, g.in_c],
        g.out_c,
        bound,
        rng,
        dev,
    )?;
    Ok(Conv2d { geometry: g, w, b })
}

impl Conv2d {
    /// x `(batch, in_h, in_w, in_c)`, or `(batch, in_h in_w in_c)`, to `(batch, out_h,
    /// out_w, out_c)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = &self.geometry;
        let x = x.reshape((x.dim(0)?, g.in_h, g.in_w, g.in_c))?;
        Ok(conv2d_op(&x, self.w.as_tensor(), self.b.as_tensor(), *g)?)
    }
}
