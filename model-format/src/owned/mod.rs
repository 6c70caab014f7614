//! Owned counterparts of the borrowed model types (std only), for writers: build an
//! [`OwnedModel`] from typed vectors, then [`OwnedModel::view`] it as a [`Model`] to validate,
//! serialize or run it.

#[cfg(feature = "classes")]
use crate::ClassMixture;
use crate::{
    DataShape, DecoderVector, EncoderVector, Error, Golden, Latent, Layer, Mixture, Model,
    ModelKind, Network, Prior, Provenance, SamplerVector, SigmaTable, WeightLayout,
};

mod layer;

pub use layer::*;
use layer::{arr, bytes};

/// An owned [`Latent`].
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedLatent {
    /// Dimensions.
    pub dim: u16,
    /// Fixed-point fractional bits.
    pub frac_bits: u8,
    /// int8 code scale (metadata).
    pub scale: f32,
    /// int8 code zero-point.
    pub zero_point: i8,
    /// Fixed point to code multiplier.
    pub to_code_multiplier: i32,
    /// Fixed point to code shift.
    pub to_code_shift: i8,
    /// First log-variance of the sigma table.
    pub sigma_logvar_min: i16,
    /// log2 of the table's step.
    pub sigma_step_log2: u8,
    /// sigma in Q16 at each grid point.
    pub sigma_values: Vec<u32>,
}

impl OwnedLatent {
    /// The latent space every exporter writes: Q[`LATENT_FRAC_BITS`] fixed point, a symmetric
    /// int8 code of step `scale` (zero-point 0), and the standard sigma table.
    pub fn symmetric(dim: u16, scale: f32) -> OwnedLatent {
        let frac = LATENT_FRAC_BITS;
        let (to_code_multiplier, to_code_shift) =
            quantize_multiplier(2f64.powi(-i32::from(frac)) / f64::from(scale)).unwrap_or((0, 0));
        let (sigma_logvar_min, sigma_step_log2, sigma_values) = sigma_table(frac);
        OwnedLatent {
            dim,
            frac_bits: frac,
            scale,
            zero_point: 0,
            to_code_multiplier,
            to_code_shift,
            sigma_logvar_min,
            sigma_step_log2,
            sigma_values,
        }
    }
}

/// An owned [`Prior`].
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedPrior {
    /// N(0, I).
    StandardNormal,
    /// A mixture of diagonal Gaussians.
    Mixture {
        /// Cumulative weights (fractions of 2^32).
        cumulative: Vec<u32>,
        /// Means in fixed point, `components * dim`.
        means: Vec<i16>,
        /// Standard deviations in Q16, `components * dim`.
        sigmas: Vec<u32>,
    },
    /// A mixture grouped by class (format version 5; feature `classes`).
    #[cfg(feature = "classes")]
    ClassMixture {
        /// Cumulative weights (fractions of 2^32) over every component.
        cumulative: Vec<u32>,
        /// Means in fixed point, `components * dim`.
        means: Vec<i16>,
        /// Standard deviations in Q16, `components * dim`.
        sigmas: Vec<u32>,
        /// Per class, one past its last component.
        class_ends: Vec<u16>,
    },
    /// A second-stage VAE's decoder (format version 6; feature `second-stage`).
    #[cfg(feature = "second-stage")]
    SecondStage {
        /// Q31 multiplier from an N(0, 1) draw in Q12 to the first layer's int8 input.
        input_multiplier: i32,
        /// Its shift.
        input_shift: i8,
        /// The first layer's input zero-point.
        input_zero_point: i8,
        /// Dense layers, the last writing z in `I16`.
        layers: Vec<OwnedLayer>,
    },
}

impl OwnedPrior {
    /// The layers of a second-stage prior (none for any other).
    fn layers_mut(&mut self) -> &mut [OwnedLayer] {
        match self {
            #[cfg(feature = "second-stage")]
            OwnedPrior::SecondStage { layers, .. } => layers,
            _ => &mut [],
        }
    }
}

/// Owned provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedProvenance {
    /// Data set.
    pub dataset: String,
    /// Architecture.
    pub architecture: String,
    /// Epochs.
    pub epochs: u32,
    /// Seed.
    pub seed: u64,
    /// beta.
    pub beta: f32,
    /// Final test -ELBO.
    pub test_neg_elbo: f32,
    /// Trainer version.
    pub trainer: String,
}

/// An owned sampler golden vector: seed, first draws, first prior code, its pixels.
pub type OwnedSamplerVector = (u64, Vec<i16>, Vec<i8>, Vec<u8>);

/// Owned golden vectors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedGolden {
    /// (pixels, expected encoder outputs).
    pub encoder: Vec<(Vec<u8>, Vec<i16>)>,
    /// (code, expected pixels).
    pub decoder: Vec<(Vec<i8>, Vec<u8>)>,
    /// (seed, first draws, first prior code, its pixels).
    pub sampler: Vec<OwnedSamplerVector>,
}

/// An owned [`Model`].
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedModel {
    /// Kind.
    pub kind: ModelKind,
    /// Data shape.
    pub data: DataShape,
    /// Latent space.
    pub latent: OwnedLatent,
    /// Encoder layers (none in a decoder-only model).
    pub encoder: Vec<OwnedLayer>,
    /// Decoder layers.
    pub decoder: Vec<OwnedLayer>,
    /// The 256-entry logit-to-pixel table.
    pub pixel_table: Vec<u8>,
    /// Prior.
    pub prior: OwnedPrior,
    /// Provenance.
    pub provenance: OwnedProvenance,
    /// Golden vectors.
    pub golden: Option<OwnedGolden>,
}

/// Byte buffers a view borrows, built once per call to [`OwnedModel::view`]'s caller.
#[derive(Default)]
pub struct ViewBuffers {
    latent_sigma: Vec<u8>,
    prior: [Vec<u8>; 4],
    golden: Vec<Vec<u8>>,
}

fn network<'a>(layers: &'a [OwnedLayer]) -> Result<Network<'a>, Error> {
    let mut out = heapless::Vec::new();
    for l in layers {
        out.push(l.view()).map_err(|_| Error::Malformed)?;
    }
    Ok(Network { layers: out })
}

impl OwnedModel {
    /// Encodes the arrays that are not stored as bytes already into `buf`.
    pub fn buffers(&self) -> ViewBuffers {
        let mut b = ViewBuffers {
            latent_sigma: bytes(&self.latent.sigma_values, u32::to_le_bytes),
            ..Default::default()
        };
        let mixture = |cumulative: &[u32], means: &[i16], sigmas: &[u32], ends: &[u16]| {
            [
                bytes(cumulative, u32::to_le_bytes),
                bytes(means, i16::to_le_bytes),
                bytes(sigmas, u32::to_le_bytes),
                bytes(ends, u16::to_le_bytes),
            ]
        };
        match &self.prior {
            OwnedPrior::StandardNormal => {}
            OwnedPrior::Mixture {
                cumulative,
                means,
                sigmas,
            } => b.prior = mixture(cumulative, means, sigmas, &[]),
            #[cfg(feature = "classes")]
            OwnedPrior::ClassMixture {
                cumulative,
                means,
                sigmas,
                class_ends,
            } => b.prior = mixture(cumulative, means, sigmas, class_ends),
            #[cfg(feature = "second-stage")]
            OwnedPrior::SecondStage { .. } => {}
        }
        if let Some(g) = &self.golden {
            for (p, e) in &g.encoder {
                b.golden.push(p.clone());
                b.golden.push(bytes(e, i16::to_le_bytes));
            }
            for (c, p) in &g.decoder {
                b.golden.push(bytes(c, |x: i8| x.to_le_bytes()));
                b.golden.push(p.clone());
            }
            for (_, eps, c, p) in &g.sampler {
                b.golden.push(bytes(eps, i16::to_le_bytes));
                b.golden.push(bytes(c, |x: i8| x.to_le_bytes()));
                b.golden.push(p.clone());
            }
        }
        b
    }

    /// The borrowed model, with arrays from `self` and from `buf` (made by
    /// [`OwnedModel::buffers`]). Fails when a network or golden list is longer than the
    /// format allows.
    pub fn view<'a>(&'a self, buf: &'a ViewBuffers) -> Result<Model<'a>, Error> {
        let l = &self.latent;
        let prior = match &self.prior {
            OwnedPrior::StandardNormal => Prior::StandardNormal,
            OwnedPrior::Mixture { cumulative, .. } => Prior::Mixture(Mixture {
                components: u16::try_from(cumulative.len()).map_err(|_| Error::Malformed)?,
                cumulative: arr(&buf.prior[0]),
                means: arr(&buf.prior[1]),
                sigmas: arr(&buf.prior[2]),
            }),
            #[cfg(feature = "classes")]
            OwnedPrior::ClassMixture { cumulative, .. } => Prior::ClassMixture(ClassMixture {
                mixture: Mixture {
                    components: u16::try_from(cumulative.len()).map_err(|_| Error::Malformed)?,
                    cumulative: arr(&buf.prior[0]),
                    means: arr(&buf.prior[1]),
                    sigmas: arr(&buf.prior[2]),
                },
                class_ends: arr(&buf.prior[3]),
            }),
            #[cfg(feature = "second-stage")]
            OwnedPrior::SecondStage {
                input_multiplier,
                input_shift,
                input_zero_point,
                layers,
            } => {
                let mut out = heapless::Vec::new();
                for l in layers {
                    out.push(l.view()).map_err(|_| Error::Malformed)?;
                }
                Prior::SecondStage(crate::SecondStage {
                    input_multiplier: *input_multiplier,
                    input_shift: *input_shift,
                    input_zero_point: *input_zero_point,
                    layers: out,
                })
            }
        };
        let golden = match &self.golden {
            None => None,
            Some(g) => {
                let mut out = Golden::default();
                let mut it = buf.golden.iter();
                let mut next = || it.next().map(Vec::as_slice).unwrap_or(&[]);
                for _ in &g.encoder {
                    let v = EncoderVector {
                        input: arr(next()),
                        expected: arr(next()),
                    };
                    out.encoder.push(v).map_err(|_| Error::Malformed)?;
                }
                for _ in &g.decoder {
                    let v = DecoderVector {
                        code: arr(next()),
                        expected: arr(next()),
                    };
                    out.decoder.push(v).map_err(|_| Error::Malformed)?;
                }
                for (seed, ..) in &g.sampler {
                    let v = SamplerVector {
                        seed: *seed,
                        eps: arr(next()),
                        prior_code: arr(next()),
                        prior_pixels: arr(next()),
                    };
                    out.sampler.push(v).map_err(|_| Error::Malformed)?;
                }
                Some(out)
            }
        };
        let p = &self.provenance;
        Ok(Model {
            kind: self.kind,
            data: self.data,
            latent: Latent {
                dim: l.dim,
                frac_bits: l.frac_bits,
                scale: l.scale,
                zero_point: l.zero_point,
                to_code_multiplier: l.to_code_multiplier,
                to_code_shift: l.to_code_shift,
                sigma: SigmaTable {
                    logvar_min: l.sigma_logvar_min,
                    step_log2: l.sigma_step_log2,
                    values: arr(&buf.latent_sigma),
                },
            },
            encoder: network(&self.encoder)?,
            decoder: network(&self.decoder)?,
            pixel_table: arr(&self.pixel_table),
            prior,
            provenance: Provenance {
                dataset: &p.dataset,
                architecture: &p.architecture,
                epochs: p.epochs,
                seed: p.seed,
                beta: p.beta,
                test_neg_elbo: p.test_neg_elbo,
                trainer: &p.trainer,
            },
            golden,
        })
    }

    /// The same model with every layer's weights stored in `layout`.
    pub fn with_layout(&self, layout: WeightLayout) -> OwnedModel {
        let mut m = self.clone();
        let prior = m.prior.layers_mut();
        for l in m
            .encoder
            .iter_mut()
            .chain(m.decoder.iter_mut())
            .chain(prior)
        {
            *l = l.with_layout(layout);
        }
        m
    }

    /// Validates and serializes the model, choosing each tiled layer's lead bytes so that its
    /// tiles begin on a 4-byte boundary of the blob.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut m = self.clone();
        // Moving one layer's tiles can move every later array, and a lead byte more can
        // lengthen an array's length prefix: settle layer by layer, then check.
        let layers = m.encoder.len() + m.decoder.len() + m.prior.layers_mut().len();
        for _ in 0..=2 * layers {
            let blob = m.serialize()?;
            let (network, layer) = match Model::from_bytes(&blob).map(|_| ()) {
                Ok(()) => return Ok(blob),
                Err(Error::MisalignedWeights { network, layer }) => (network, usize::from(layer)),
                Err(e) => return Err(e),
            };
            let offset = {
                let version = u16::from_le_bytes([blob[4], blob[5]]);
                let model = Model::decode(version, &blob[crate::HEADER_LEN..])?;
                let net: &[Layer<'_>] = match network {
                    crate::NetworkId::Encoder => &model.encoder.layers,
                    crate::NetworkId::Decoder => &model.decoder.layers,
                    #[cfg(feature = "second-stage")]
                    crate::NetworkId::Prior => model
                        .prior
                        .second_stage()
                        .map_or(&[][..], |s| &s.layers[..]),
                    #[cfg(not(feature = "second-stage"))]
                    crate::NetworkId::Prior => &[],
                };
                let l = net.get(layer).ok_or(Error::Malformed)?;
                l.packed_weights().as_ptr() as usize - blob.as_ptr() as usize
            };
            let l = match network {
                crate::NetworkId::Encoder => m.encoder.get_mut(layer),
                crate::NetworkId::Decoder => m.decoder.get_mut(layer),
                crate::NetworkId::Prior => m.prior.layers_mut().get_mut(layer),
            }
            .ok_or(Error::Malformed)?;
            let lead = l.lead();
            l.set_lead((lead + 4 - offset % 4) % 4);
        }
        Err(Error::Serialize)
    }

    /// Serializes without aligning tiles (the writer's first step).
    fn serialize(&self) -> Result<Vec<u8>, Error> {
        let buf = self.buffers();
        let model = self.view(&buf)?;
        model.validate()?;
        Ok(crate::write::frame(
            crate::FORMAT_VERSION,
            &model.payload()?,
        ))
    }
}

pub use crate::tables::{pixel_table, quantize_multiplier, sigma_table, LATENT_FRAC_BITS};

impl OwnedModel {
    /// The owned copy of a model read from a blob of any version: what converts an older
    /// file to the version this crate writes ([`OwnedModel::to_bytes`] sets the lead bytes
    /// again).
    pub fn from_model(m: &Model<'_>) -> OwnedModel {
        let layer = |l: &Layer<'_>| {
            let d = l.matrix();
            let matrix = OwnedDense {
                in_dim: d.in_dim,
                out_dim: d.out_dim,
                activation: d.activation,
                output_type: d.output_type,
                input_zero_point: d.input_zero_point,
                output_zero_point: d.output_zero_point,
                input_scale: d.input_scale,
                output_scale: d.output_scale,
                layout: d.layout,
                weights: l.packed_weights().iter().map(|&w| w as u8).collect(),
                bias: d.bias.as_bytes().to_vec(),
                multiplier: d.multiplier.as_bytes().to_vec(),
                shift: d.shift.as_bytes().to_vec(),
                weight_scale: d.weight_scale.as_bytes().to_vec(),
            };
            let op = match l {
                Layer::Dense(_) => OwnedOp::Dense,
                Layer::Conv2d(c) => OwnedOp::Conv2d(c.shape),
                Layer::ConvTranspose2d(c) => OwnedOp::ConvTranspose2d(c.shape),
            };
            OwnedLayer { op, matrix }
        };
        let l = &m.latent;
        let p = &m.provenance;
        OwnedModel {
            kind: m.kind,
            data: m.data,
            latent: OwnedLatent {
                dim: l.dim,
                frac_bits: l.frac_bits,
                scale: l.scale,
                zero_point: l.zero_point,
                to_code_multiplier: l.to_code_multiplier,
                to_code_shift: l.to_code_shift,
                sigma_logvar_min: l.sigma.logvar_min,
                sigma_step_log2: l.sigma.step_log2,
                sigma_values: l.sigma.values.iter().collect(),
            },
            encoder: m.encoder.layers.iter().map(layer).collect(),
            decoder: m.decoder.layers.iter().map(layer).collect(),
            pixel_table: m.pixel_table.as_bytes().to_vec(),
            prior: match &m.prior {
                Prior::StandardNormal => OwnedPrior::StandardNormal,
                Prior::Mixture(x) => OwnedPrior::Mixture {
                    cumulative: x.cumulative.iter().collect(),
                    means: x.means.iter().collect(),
                    sigmas: x.sigmas.iter().collect(),
                },
                #[cfg(feature = "classes")]
                Prior::ClassMixture(c) => OwnedPrior::ClassMixture {
                    cumulative: c.mixture.cumulative.iter().collect(),
                    means: c.mixture.means.iter().collect(),
                    sigmas: c.mixture.sigmas.iter().collect(),
                    class_ends: c.class_ends.iter().collect(),
                },
                #[cfg(feature = "second-stage")]
                Prior::SecondStage(s) => OwnedPrior::SecondStage {
                    input_multiplier: s.input_multiplier,
                    input_shift: s.input_shift,
                    input_zero_point: s.input_zero_point,
                    layers: s.layers.iter().map(layer).collect(),
                },
            },
            provenance: OwnedProvenance {
                dataset: p.dataset.into(),
                architecture: p.architecture.into(),
                epochs: p.epochs,
                seed: p.seed,
                beta: p.beta,
                test_neg_elbo: p.test_neg_elbo,
                trainer: p.trainer.into(),
            },
            golden: m.golden.as_ref().map(|g| OwnedGolden {
                encoder: g
                    .encoder
                    .iter()
                    .map(|v| (v.input.as_bytes().to_vec(), v.expected.iter().collect()))
                    .collect(),
                decoder: g
                    .decoder
                    .iter()
                    .map(|v| {
                        (
                            v.code.as_i8_slice().to_vec(),
                            v.expected.as_bytes().to_vec(),
                        )
                    })
                    .collect(),
                sampler: g
                    .sampler
                    .iter()
                    .map(|v| {
                        (
                            v.seed,
                            v.eps.iter().collect(),
                            v.prior_code.as_i8_slice().to_vec(),
                            v.prior_pixels.as_bytes().to_vec(),
                        )
                    })
                    .collect(),
            }),
        }
    }
}
