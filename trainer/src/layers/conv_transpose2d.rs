//! A transposed convolution layer, channels last, the decoder's upsampling: the transpose of
//! the encoder's convolution of the same geometry, from its output size back to its input
//! size, through the fused op in [`crate::ops::conv`].

use anyhow::Result;
use candle_core::{Device, Tensor, Var};

use super::linear::uniform_vars;
use crate::ops::conv::{conv_transpose2d as conv_transpose2d_op, ConvGeometry};
use crate::rng::Rng;

/// A ConvTranspose2d mirroring the convolution `geometry`: input `(batch, out_h, out_w,
/// out_c)`, output `(batch, in_h, in_w, in_c)`; weights `(out_c, k, k, in_c)`, bias `(in_c)`.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// The convolution it mirrors.
    pub geometry: ConvGeometry,
    /// Weights, `(out_c, k, k, in_c)`: PyTorch's `(in, out, k, k)` with the axes moved.
    pub w: Var,
    /// Bias, `(in_c)`.
    pub b: Var,
}

/// Initialised as PyTorch's `nn.ConvTranspose2d`: W and b ~ U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in)), where PyTorch's fan_in for this layer is its output channels times k^2.
pub fn conv_transpose2d(g: ConvGeometry, rng: &mut Rng, dev: &Device) -> Result<ConvTranspose2d> {
    let bound = 1.0 / (g.patch() as f32).sqrt();
    let (w, b) = uniform_vars(
        &[g.out_c, g.kernel, g.kernel, g.in_c],
        g.in_c,
        bound,
        rng,
        dev,
    )?;
    Ok(ConvTranspose2d { geometry: g, w, b })
}

impl ConvTranspose2d {
    /// x `(batch, out_h, out_w, out_c)`, or flattened, to `(batch, in_h, in_w, in_c)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = &self.geometry;
        let x = x.reshape((x.dim(0)?, g.out_h(), g.out_w(), g.out_c))?;
        Ok(conv_transpose2d_op(
            &x,
            self.w.as_tensor(),
            self.b.as_tensor(),
            *g,
        )?)
    }
}
