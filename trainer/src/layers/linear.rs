//! A dense layer: `y = x W^T + b`.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};

use crate::rng::Rng;

/// A dense layer, W of shape (out, in).
#[derive(Clone, Debug)]
pub struct Linear {
    /// Weights, (out, in).
    pub w: Var,
    /// Bias, (out).
    pub b: Var,
}

/// Weights and biases ~ U(-bound, bound) from the trainer's seeded generator, weights first.
pub(crate) fn uniform_vars(
    w_shape: &[usize],
    bias: usize,
    bound: f32,
    rng: &mut Rng,
    dev: &Device,
) -> Result<(Var, Var)> {
    let mut w = vec![0f32; w_shape.iter().product()];
    rng.fill_uniform(&mut w, bound);
    let mut b = vec![0f32; bias];
    rng.fill_uniform(&mut b, bound);
    Ok((
        Var::from_tensor(&Tensor::from_vec(w, w_shape, dev)?)?,
        Var::from_tensor(&Tensor::from_vec(b, bias, dev)?)?,
    ))
}

/// A dense layer initialised as PyTorch's `nn.Linear`: W and b ~ U(-1/sqrt(in), 1/sqrt(in)),
/// from the trainer's seeded generator.
pub fn linear(inp: usize, out: usize, rng: &mut Rng, dev: &Device) -> Result<Linear> {
    let (w, b) = uniform_vars(&[out, inp], out, 1.0 / (inp as f32).sqrt(), rng, dev)?;
    Ok(Linear { w, b })
}

impl Linear {
    /// x (batch, in), or (batch, h, w, c) flattened, -> (batch, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() == 2 {
            x.clone()
        } else {
            x.flatten_from(1)?
        };
        Ok(crate::ops::linear::linear(
            &x,
            self.w.as_tensor(),
            self.b.as_tensor(),
        )?)
    }
}
