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
    /// A conditional model's classes of the batch, one-hot (batch, classes), for the
    /// decoder ([`Net::encode_labelled`]).
    pub class: Option<Tensor>,
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
        self.encode_labelled(x, None)
    }

    /// [`Net::encode`] for a conditional model, with the batch's labels (its encoder reads
    /// them, and they are kept for its decoder); ignored by another model.
    pub fn encode_labelled(&self, x: &Tensor, labels: Option<&[u8]>) -> Result<Encoded> {
        let class = match (self.arch.classes, labels) {
            (0, _) => None,
            (_, Some(l)) => Some(self.one_hot(l)?),
            (c, None) => anyhow::bail!(
                "a conditional model ({c} classes) encodes an image with its class: none \
                 given (the data set's labels are needed)"
            ),
        };
        let h = match &class {
            None => run(&self.enc, x, false)?.remove(0),
            Some(c) => {
                // The convolutions, then the class beside their features, then the dense
                // layers (each layer but the last followed by ReLU, as `run` does).
                let convs = self.arch.conv.len();
                let mut h = x.clone();
                if convs > 0 {
                    h = run(&self.enc[..convs], &h, false)?.remove(0);
                    h = crate::ops::relu::relu(&h)?.flatten_from(1)?;
                }
                h = Tensor::cat(&[&h, c], 1)?;
                run(&self.enc[convs..], &h, false)?.remove(0)
            }
        };
        let (mu, logvar) = match self.arch.kind {
            Kind::Vae => {
                let n = self.arch.latent;
                (h.narrow(1, 0, n)?, Some(h.narrow(1, n, n)?))
            }
            _ => (h, None),
        };
        Ok(Encoded { mu, logvar, class })
    }

    /// The one-hot rows (labels.len(), classes) of a conditional model's classes.
    pub fn one_hot(&self, labels: &[u8]) -> Result<Tensor> {
        let c = self.arch.classes;
        let mut v = vec![0f32; labels.len() * c];
        for (i, &l) in labels.iter().enumerate() {
            let l = usize::from(l);
            if l >= c {
                anyhow::bail!("label {l}: the conditional model was trained on {c} classes");
            }
            v[i * c + l] = 1.0;
        }
        Ok(Tensor::from_vec(v, (labels.len(), c), &Device::Cpu)?)
    }

    /// The decoder's input: the codes `z` (batch, latent), and for a conditional model the
    /// one-hot classes `class` (batch, classes) after them.
    pub fn decoder_input(&self, z: &Tensor, class: Option<&Tensor>) -> Result<Tensor> {
        match (self.arch.classes, class) {
            (0, None) => Ok(z.clone()),
            (0, Some(_)) => anyhow::bail!("a class given to a model that is not conditional"),
            (c, None) => anyhow::bail!(
                "a conditional model ({c} classes) decodes a code with its class: none given \
                 (the data set's labels are needed)"
            ),
            (_, Some(c)) => Ok(Tensor::cat(&[z, c], 1)?),
        }
    }

    /// Decodes latent codes (batch, latent), with a conditional model's classes after them
    /// ([`Net::decoder_input`]), into logits (batch, pixels).
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
