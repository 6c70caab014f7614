//! The float models, as in the seed lecture: an autoencoder, a denoising autoencoder and a VAE
//! (beta-VAE with `beta != 1`), dense encoder and decoder with ReLU hidden layers and a
//! sigmoid output, in candle.

use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use anyhow::Result;

/// What is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Autoencoder: z = E(x), loss = reconstruction.
    Ae,
    /// Denoising autoencoder: z = E(x + noise), loss = reconstruction of the clean x.
    Dae,
    /// Variational autoencoder: q(z|x) = N(mu, sigma^2), loss = -ELBO (with beta on the KL).
    Vae,
}

impl Kind {
    /// The model-format kind.
    pub fn format(self) -> tinyvae_format::ModelKind {
        match self {
            Kind::Ae => tinyvae_format::ModelKind::Autoencoder,
            Kind::Dae => tinyvae_format::ModelKind::DenoisingAutoencoder,
            Kind::Vae => tinyvae_format::ModelKind::Vae,
        }
    }
}

/// The reconstruction term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Recon {
    /// Binary cross-entropy summed over pixels, computed from logits (a Bernoulli decoder).
    Bce,
    /// Squared error summed over pixels, of sigmoid(logits).
    Mse,
    /// Absolute error summed over pixels, of sigmoid(logits).
    L1,
}

/// The shape of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// What is trained.
    pub kind: Kind,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Hidden widths of the encoder; the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Latent dimensions.
    pub latent: usize,
}

impl Arch {
    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Encoder outputs: mu and log-variance for a VAE, z otherwise.
    pub fn encoder_out(&self) -> usize {
        match self.kind {
            Kind::Vae => 2 * self.latent,
            _ => self.latent,
        }
    }

    /// Layer widths of the encoder, input first.
    pub fn encoder_widths(&self) -> Vec<usize> {
        let mut v = vec![self.pixels()];
        v.extend(&self.hidden);
        v.push(self.encoder_out());
        v
    }

    /// Layer widths of the decoder, input first.
    pub fn decoder_widths(&self) -> Vec<usize> {
        let mut v = vec![self.latent];
        v.extend(self.hidden.iter().rev());
        v.push(self.pixels());
        v
    }

    /// "784-400-20" style name.
    pub fn name(&self) -> String {
        let mut parts = vec![self.pixels().to_string()];
        parts.extend(self.hidden.iter().map(usize::to_string));
        parts.push(self.latent.to_string());
        parts.join("-")
    }
}

/// A dense layer: y = x W^T + b, W of shape (out, in).
#[derive(Clone, Debug)]
pub struct Linear {
    /// Weights, (out, in).
    pub w: Var,
    /// Bias, (out).
    pub b: Var,
}

/// A dense layer initialised as PyTorch's `nn.Linear`: W and b ~ U(-1/sqrt(in), 1/sqrt(in)),
/// from the trainer's seeded generator.
pub fn linear(inp: usize, out: usize, rng: &mut Rng, dev: &Device) -> Result<Linear> {
    let bound = 1.0 / (inp as f32).sqrt();
    let mut w = vec![0f32; inp * out];
    rng.fill_uniform(&mut w, bound);
    let mut b = vec![0f32; out];
    rng.fill_uniform(&mut b, bound);
    Ok(Linear {
        w: Var::from_tensor(&Tensor::from_vec(w, (out, inp), dev)?)?,
        b: Var::from_tensor(&Tensor::from_vec(b, out, dev)?)?,
    })
}

impl Linear {
    /// x (batch, in) -> (batch, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())?)
    }
}

/// A model's parameters.
#[derive(Clone, Debug)]
pub struct Net {
    /// Its shape.
    pub arch: Arch,
    /// Encoder layers.
    pub enc: Vec<Linear>,
    /// Decoder layers.
    pub dec: Vec<Linear>,
}

/// What the encoder gives.
pub struct Encoded {
    /// mu (VAE) or z (autoencoders), (batch, latent).
    pub mu: Tensor,
    /// log-variance, (batch, latent), VAE only.
    pub logvar: Option<Tensor>,
}

impl Net {
    /// A freshly initialised model.
    pub fn new(arch: Arch, rng: &mut Rng, dev: &Device) -> Result<Net> {
        let mk = |w: Vec<usize>, rng: &mut Rng| -> Result<Vec<Linear>> {
            w.windows(2).map(|p| linear(p[0], p[1], rng, dev)).collect()
        };
        let enc = mk(arch.encoder_widths(), rng)?;
        let dec = mk(arch.decoder_widths(), rng)?;
        Ok(Net { arch, enc, dec })
    }

    /// Every parameter with a stable name (for checkpoints and the optimizer).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        for (net, layers) in [("enc", &self.enc), ("dec", &self.dec)] {
            for (i, l) in layers.iter().enumerate() {
                v.push((format!("{net}.{i}.w"), l.w.clone()));
                v.push((format!("{net}.{i}.b"), l.b.clone()));
            }
        }
        v
    }

    /// Encodes a batch of images in [0, 1], (batch, pixels).
    pub fn encode(&self, x: &Tensor) -> Result<Encoded> {
        let mut h = x.clone();
        let last = self.enc.len() - 1;
        for (i, l) in self.enc.iter().enumerate() {
            h = l.forward(&h)?;
            if i < last {
                h = h.relu()?;
            }
        }
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
        let mut h = z.clone();
        let last = self.dec.len() - 1;
        for (i, l) in self.dec.iter().enumerate() {
            h = l.forward(&h)?;
            if i < last {
                h = h.relu()?;
            }
        }
        Ok(h)
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
        Recon::Bce => crate::fused::bce_with_logits(logits, x)?,
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
