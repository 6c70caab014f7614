//! The float models, as in the seed lecture: an autoencoder, a denoising autoencoder and a VAE
//! (beta-VAE with `beta != 1`), dense or convolutional encoder and decoder with ReLU hidden
//! layers and a sigmoid output, in candle, and their losses.

use candle_core::{DType, Device, Tensor, Var, D};

use crate::rng::Rng;
use anyhow::Result;

pub use crate::arch::{Kind, Recon};

pub use crate::arch::Arch;
pub use crate::layers::Linear;
use crate::layers::{run, Layer};

/// A model's parameters.
#[derive(Clone, Debug)]
pub struct Net {
    /// Its shape.
    pub arch: Arch,
    /// Encoder layers, as [`Arch::encoder_layers`] lists them.
    pub enc: Vec<Layer>,
    /// Decoder layers, as [`Arch::decoder_layers`] lists them.
    pub dec: Vec<Layer>,
}

/// What the encoder gives.
pub struct Encoded {
    /// mu (VAE) or z (autoencoders), (batch, latent).
    pub mu: Tensor,
    /// log-variance, (batch, latent), VAE only.
    pub logvar: Option<Tensor>,
}

impl Net {
    /// A freshly initialised model: weights drawn layer by layer, encoder first, each layer's
    /// weights then its bias, from `rng`.
    pub fn new(arch: Arch, rng: &mut Rng, dev: &Device) -> Result<Net> {
        arch.validate()?;
        let mut mk = |specs: Vec<crate::arch::LayerSpec>| -> Result<Vec<Layer>> {
            specs
                .into_iter()
                .map(|s| Layer::new(s.kind, rng, dev))
                .collect()
        };
        let enc = mk(arch.encoder_layers())?;
        let dec = mk(arch.decoder_layers())?;
        Ok(Net { arch, enc, dec })
    }

    /// Every parameter with a stable name (for checkpoints and the optimizer): `enc.I.w`,
    /// `enc.I.b`, `dec.I.w`, ... with I the layer's index in its network.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        crate::layers::named_vars(&[("enc", &self.enc), ("dec", &self.dec)])
    }

    /// Encodes a batch of images in [0, 1], (batch, pixels), pixels row-major with channels
    /// interleaved.
    pub fn encode(&self, x: &Tensor) -> Result<Encoded> {
        let h = run(&self.enc, x, false)?.remove(0);
        Ok(match self.arch.kind {
            Kind::Vae => {
                let n = self.arch.latent;
                Encoded {
                    mu: h.narrow(1, 0, n)?,
                    logvar: Some(h.narrow(1, n, n)?),
                }
            }
            _ => Encoded {
                mu: h,
                logvar: None,
            },
        })
    }

    /// Decodes latent codes (batch, latent) into logits (batch, pixels).
    pub fn decode_logits(&self, z: &Tensor) -> Result<Tensor> {
        let h = run(&self.dec, z, false)?.remove(0);
        Ok(if h.rank() == 2 { h } else { h.flatten_from(1)? })
    }

    /// Decodes latent codes into pixel intensities in [0, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(candle_nn_sigmoid(&self.decode_logits(z)?)?)
    }
}

fn candle_nn_sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::sigmoid(x)
}

/// The reconstruction loss of each example, summed over pixels: (batch).
pub fn recon_loss(logits: &Tensor, x: &Tensor, recon: Recon) -> Result<Tensor> {
    Ok(match recon {
        // max(l, 0) - l x + log(1 + exp(-|l|)): stable for any logit; one fused pass forward
        // and one backward (sigmoid(l) - x).
        Recon::Bce => crate::ops::bce::bce_with_logits(logits, x)?,
        Recon::Mse => (candle_nn_sigmoid(logits)? - x)?.sqr()?.sum(D::Minus1)?,
        Recon::L1 => (candle_nn_sigmoid(logits)? - x)?.abs()?.sum(D::Minus1)?,
    })
}

/// KL(N(mu, exp(logvar)) || N(0, I)) of each example in closed form:
/// -1/2 sum(1 + logvar - mu^2 - exp(logvar)), (batch).
pub fn kl_standard_normal(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = ((logvar.affine(1.0, 1.0)? - mu.sqr()?)? - logvar.exp()?)?;
    Ok(inner.sum(D::Minus1)?.affine(-0.5, 0.0)?)
}

/// Bytes of f32 values, row-major, from a tensor.
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}
