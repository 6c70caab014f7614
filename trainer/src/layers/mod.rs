//! The layers a model is built of, one per module, as candle-nn arranges them.

pub mod conv2d;
pub mod conv_transpose2d;
pub mod linear;

use anyhow::Result;
use candle_core::{Device, Tensor, Var};

pub use conv2d::Conv2d;
pub use conv_transpose2d::ConvTranspose2d;
pub use linear::{linear, Linear};

use crate::arch::LayerKind;
use crate::rng::Rng;

/// One trainable layer.
#[derive(Clone, Debug)]
pub enum Layer {
    /// Dense.
    Dense(Linear),
    /// Convolution.
    Conv(Conv2d),
    /// Transposed convolution.
    ConvTranspose(ConvTranspose2d),
}

impl Layer {
    /// A freshly initialised layer of this kind.
    pub fn new(kind: LayerKind, rng: &mut Rng, dev: &Device) -> Result<Layer> {
        Ok(match kind {
            LayerKind::Dense { inputs, outputs } => {
                Layer::Dense(linear(inputs, outputs, rng, dev)?)
            }
            LayerKind::Conv2d(g) => Layer::Conv(conv2d::conv2d(g, rng, dev)?),
            LayerKind::ConvTranspose2d(g) => {
                Layer::ConvTranspose(conv_transpose2d::conv_transpose2d(g, rng, dev)?)
            }
        })
    }

    /// The layer's output for `x`, without its activation.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Layer::Dense(l) => l.forward(x),
            Layer::Conv(l) => l.forward(x),
            Layer::ConvTranspose(l) => l.forward(x),
        }
    }

    /// Weights and bias.
    pub fn vars(&self) -> (&Var, &Var) {
        match self {
            Layer::Dense(l) => (&l.w, &l.b),
            Layer::Conv(l) => (&l.w, &l.b),
            Layer::ConvTranspose(l) => (&l.w, &l.b),
        }
    }

    /// The dense layer, if this is one.
    pub fn as_dense(&self) -> Option<&Linear> {
        match self {
            Layer::Dense(l) => Some(l),
            _ => None,
        }
    }
}

/// Every parameter of `nets` with a stable name (for checkpoints and the optimizer):
/// `NAME.I.w`, `NAME.I.b` with I the layer's index in its network.
pub fn named_vars(nets: &[(&str, &[Layer])]) -> Vec<(String, Var)> {
    let mut v = Vec::new();
    for (net, layers) in nets {
        for (i, l) in layers.iter().enumerate() {
            let (w, b) = l.vars();
            v.push((format!("{net}.{i}.w"), w.clone()));
            v.push((format!("{net}.{i}.b"), b.clone()));
        }
    }
    v
}

/// Runs a network: every layer in order, each but the last followed by ReLU (the rule
/// [`crate::arch::Arch::encoder_layers`] states). Returns every layer's output (after its
/// activation) when `keep` is set, else only the last in a one-element vector.
pub fn run(layers: &[Layer], x: &Tensor, keep: bool) -> Result<Vec<Tensor>> {
    let mut h = x.clone();
    let mut outs = Vec::new();
    let last = layers.len().saturating_sub(1);
    for (i, layer) in layers.iter().enumerate() {
        h = layer.forward(&h)?;
        if i < last {
            h = crate::ops::relu::relu(&h)?;
        }
        if keep {
            outs.push(h.clone());
        }
    }
    if !keep {
        outs.push(h);
    }
    Ok(outs)
}
