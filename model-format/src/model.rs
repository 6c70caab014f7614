//! A whole model: its networks, latent, prior, provenance and golden vectors; the header and
//! `Model::from_bytes`.

use serde::{Deserialize, Serialize};

use crate::*;

/// exp(log-variance / 2) as a table, for sigma in fixed point.
///
/// For a log-variance `lv` in Q[`Latent::frac_bits`]: `d = clamp(lv - logvar_min, 0, ...)`,
/// `i = d >> step_log2`, `f = d & (2^step_log2 - 1)`; sigma (Q16) =
/// `v[i] + ((v[i+1] - v[i]) * f) >> step_log2`, with `i` clamped to the last interval.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct SigmaTable<'a> {
    /// The log-variance of the first entry, in the latent fixed-point format.
    pub logvar_min: i16,
    /// log2 of the spacing between entries, in units of the latent fixed-point format.
    pub step_log2: u8,
    /// sigma in Q16 at each grid point; at least 2 entries, each at most 2^30.
    #[serde(borrow)]
    pub values: U32s<'a>,
}

/// The latent space: its fixed-point and int8 formats.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Latent<'a> {
    /// Latent dimensions.
    pub dim: u16,
    /// Fractional bits of mu, log-variance and z in the engine's int16/int32 fixed point.
    pub frac_bits: u8,
    /// Metadata: scale of the int8 latent code the decoder takes.
    pub scale: f32,
    /// Zero-point of the int8 latent code.
    pub zero_point: i8,
    /// Q31 multiplier taking z from fixed point to the int8 code (before the zero-point).
    pub to_code_multiplier: i32,
    /// Shift paired with `to_code_multiplier`, in `[-31, 30]`.
    pub to_code_shift: i8,
    /// sigma = exp(log-variance / 2).
    #[serde(borrow)]
    pub sigma: SigmaTable<'a>,
}

/// A mixture of diagonal Gaussians in latent space (the aggregate posterior, fitted to the
/// training set's encodings).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Mixture<'a> {
    /// Number of components.
    pub components: u16,
    /// Cumulative component weights as fractions of 2^32, non-decreasing; `components` of them,
    /// the last being the largest value a u32 draw is compared against.
    #[serde(borrow)]
    pub cumulative: U32s<'a>,
    /// Component means in the latent fixed-point format, `components * dim`.
    #[serde(borrow)]
    pub means: I16s<'a>,
    /// Component standard deviations in Q16, `components * dim`, each at most 2^30.
    #[serde(borrow)]
    pub sigmas: U32s<'a>,
}

/// A mixture whose components are grouped by class, so that generation can draw a chosen
/// class (format version 5; feature `classes`).
#[cfg(feature = "classes")]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct ClassMixture<'a> {
    /// The components of every class, class 0's first; sampled as a whole when no class is
    /// asked for.
    #[serde(borrow)]
    pub mixture: Mixture<'a>,
    /// One entry per class, strictly increasing, the last `mixture.components`: class `c`'s
    /// components are `class_ends[c - 1]` (0 for class 0) up to `class_ends[c]`, excluded.
    #[serde(borrow)]
    pub class_ends: U16s<'a>,
}

#[cfg(feature = "classes")]
impl ClassMixture<'_> {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_ends.len()
    }

    /// The components of class `c`, `start..end`, or `None` past the last class.
    pub fn class_range(&self, c: usize) -> Option<core::ops::Range<usize>> {
        let end = usize::from(self.class_ends.get(c)?);
        let start = match c.checked_sub(1) {
            Some(p) => usize::from(self.class_ends.get(p)?),
            None => 0,
        };
        Some(start..end)
    }
}

/// A second-stage VAE's decoder (Dai and Wipf 2019; format version 6; feature
/// `second-stage`): dense layers mapping `u ~ N(0, I)` to z. Each of the first layer's
/// `in_dim` N(0, 1) draws (Q12) becomes an int8 input by `requantize(eps, input_multiplier,
/// input_shift) + input_zero_point`, clamped; the layers run as a network's do, the last
/// writing z in Q`frac_bits` (`I16`), which becomes the decoder's code as any z does.
#[cfg(feature = "second-stage")]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecondStage<'a> {
    /// Q31 multiplier from an N(0, 1) draw in Q12 to the network's int8 input.
    pub input_multiplier: i32,
    /// Shift paired with `input_multiplier`, in `[-31, 30]`.
    pub input_shift: i8,
    /// Zero-point of the network's int8 input (the first layer's `input_zero_point`).
    pub input_zero_point: i8,
    /// Dense layers, at most [`MAX_SECOND_STAGE_LAYERS`], each at most
    /// [`MAX_SECOND_STAGE_WIDTH`] wide; the last writes the latent's `dim` values in `I16`.
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_SECOND_STAGE_LAYERS>,
}

#[cfg(feature = "second-stage")]
impl SecondStage<'_> {
    /// The N(0, 1) draws one sample takes: the first layer's inputs.
    pub fn draws(&self) -> usize {
        self.layers.first().map_or(0, |l| l.in_len() as usize)
    }
}

/// The distribution generation draws z from.
// A second stage's layers are held in place (no allocator to box them in): every model
// carries their room, about 300 bytes on a 32-bit core.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Prior<'a> {
    /// N(0, I).
    StandardNormal,
    /// A mixture of weighted diagonal Gaussians (the aggregate posterior, or a learned one).
    #[serde(borrow)]
    Mixture(Mixture<'a>),
    /// A mixture grouped by class (format version 5; feature `classes`).
    #[cfg(feature = "classes")]
    #[serde(borrow)]
    ClassMixture(ClassMixture<'a>),
    /// A second-stage VAE's decoder from u ~ N(0, I) to z (format version 6; feature
    /// `second-stage`, which needs `classes`: the variants are numbered in order).
    #[cfg(feature = "second-stage")]
    #[serde(borrow)]
    SecondStage(SecondStage<'a>),
}

impl<'a> Prior<'a> {
    /// Classes of a prior grouped by class; 0 for any other (and without the `classes`
    /// feature).
    pub fn classes(&self) -> usize {
        match self {
            #[cfg(feature = "classes")]
            Prior::ClassMixture(c) => c.classes(),
            _ => 0,
        }
    }

    /// The components of class `c` of a prior grouped by class, `start..end`; `None` past
    /// the last class or for any other prior.
    pub fn class_range(&self, c: usize) -> Option<core::ops::Range<usize>> {
        match self {
            #[cfg(feature = "classes")]
            Prior::ClassMixture(cm) => cm.class_range(c),
            _ => {
                let _ = c;
                None
            }
        }
    }

    /// The mixture to sample when no class is asked for (`None` for N(0, I) and a second
    /// stage).
    pub fn mixture(&self) -> Option<&Mixture<'a>> {
        match self {
            Prior::StandardNormal => None,
            Prior::Mixture(m) => Some(m),
            #[cfg(feature = "classes")]
            Prior::ClassMixture(c) => Some(&c.mixture),
            #[cfg(feature = "second-stage")]
            Prior::SecondStage(_) => None,
        }
    }

    /// Whether the prior is a second stage (false without the `second-stage` feature, which
    /// reads no such prior): what a reader built without the feature can ask.
    pub fn is_second_stage(&self) -> bool {
        #[cfg(feature = "second-stage")]
        return matches!(self, Prior::SecondStage(_));
        #[cfg(not(feature = "second-stage"))]
        false
    }

    /// The second stage's network, for a second-stage prior.
    #[cfg(feature = "second-stage")]
    pub fn second_stage(&self) -> Option<&SecondStage<'a>> {
        match self {
            Prior::SecondStage(s) => Some(s),
            _ => None,
        }
    }
}

/// Where the model came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Provenance<'a> {
    /// The data set it was trained on.
    pub dataset: &'a str,
    /// The architecture, e.g. "784-400-20".
    pub architecture: &'a str,
    /// Training epochs.
    pub epochs: u32,
    /// The training seed.
    pub seed: u64,
    /// beta of the KL term (1 for a plain VAE).
    pub beta: f32,
    /// Final test -ELBO in nats per example (NaN when not measured, e.g. for an autoencoder).
    pub test_neg_elbo: f32,
    /// The trainer's version.
    pub trainer: &'a str,
}

/// An encoder golden vector: pixels in, the engine's int16 outputs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct EncoderVector<'a> {
    /// The input, one data item of u8 pixels.
    #[serde(borrow)]
    pub input: U8s<'a>,
    /// The encoder's expected outputs (mu then log-variance for a VAE).
    #[serde(borrow)]
    pub expected: I16s<'a>,
}

/// A decoder golden vector: an int8 latent code in, u8 pixels out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct DecoderVector<'a> {
    /// The int8 latent code.
    #[serde(borrow)]
    pub code: I8s<'a>,
    /// The expected pixels.
    #[serde(borrow)]
    pub expected: U8s<'a>,
}

/// A sampler golden vector: a seed and what the engine draws from it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct SamplerVector<'a> {
    /// The sampler's seed.
    pub seed: u64,
    /// The first N(0, 1) draws, in Q[`EPS_FRAC_BITS`].
    #[serde(borrow)]
    pub eps: I16s<'a>,
    /// The first latent code drawn from the prior with this seed (after a fresh reseed).
    #[serde(borrow)]
    pub prior_code: I8s<'a>,
    /// The decoded pixels of that code.
    #[serde(borrow)]
    pub prior_pixels: U8s<'a>,
}

/// Test vectors computed by the host engine at export, for equivalence tests on the chip.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Golden<'a> {
    /// Encoder vectors.
    #[serde(borrow)]
    pub encoder: heapless::Vec<EncoderVector<'a>, MAX_GOLDEN>,
    /// Decoder vectors.
    #[serde(borrow)]
    pub decoder: heapless::Vec<DecoderVector<'a>, MAX_GOLDEN>,
    /// Sampler vectors.
    #[serde(borrow)]
    pub sampler: heapless::Vec<SamplerVector<'a>, MAX_GOLDEN>,
}

/// A whole model, borrowing its arrays from the blob it was read from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Model<'a> {
    /// What it was trained as.
    pub kind: ModelKind,
    /// The shape of a data item.
    pub data: DataShape,
    /// The latent space.
    #[serde(borrow)]
    pub latent: Latent<'a>,
    /// Pixels to latent statistics.
    #[serde(borrow)]
    pub encoder: Network<'a>,
    /// Latent code to pixels.
    #[serde(borrow)]
    pub decoder: Network<'a>,
    /// 256 entries: u8 pixel for each int8 output logit of the decoder (index = logit + 128).
    #[serde(borrow)]
    pub pixel_table: U8s<'a>,
    /// What to sample z from.
    #[serde(borrow)]
    pub prior: Prior<'a>,
    /// Where the model came from.
    #[serde(borrow)]
    pub provenance: Provenance<'a>,
    /// Optional test vectors.
    #[serde(borrow)]
    pub golden: Option<Golden<'a>>,
}

impl<'a> Model<'a> {
    /// Reads a model from a blob in place: checks the header and checksum, decodes the payload
    /// borrowing every array from `blob`, and validates it. Never allocates, never panics.
    ///
    /// ```
    /// use tinyvae_format::{Error, Model};
    ///
    /// # let blob = tinyvae_format::owned::OwnedModel::synthetic(&Default::default(), 1)
    /// #     .to_bytes()
    /// #     .unwrap();
    /// // `blob`: the bytes of a file `trainer export` wrote.
    /// let model = Model::from_bytes(&blob)?;
    /// assert_eq!((model.data.width, model.data.height, model.latent.dim), (8, 8, 4));
    ///
    /// // Anything short of a whole, valid model is an error, never a panic.
    /// let cut = Model::from_bytes(&blob[..100]).unwrap_err();
    /// assert!(matches!(cut, Error::Truncated { available: 100, .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_bytes(blob: &'a [u8]) -> Result<Model<'a>, Error> {
        let (version, payload) = header(blob)?;
        let model = Model::decode(version, payload)?;
        // An older reader would not decode the tiled layout's tag, or a model without an
        // encoder would not pass its validation. (Without the legacy feature, only version 3
        // is read, which expresses every model.)
        #[cfg(feature = "legacy")]
        if version < model.min_version() {
            return Err(Error::Malformed);
        }
        model.validate()?;
        model.check_alignment(blob)?;
        Ok(model)
    }

    /// Decodes a payload in the encoding of `version` (no validation).
    pub(crate) fn decode(version: u16, payload: &'a [u8]) -> Result<Model<'a>, Error> {
        #[cfg(feature = "legacy")]
        let (model, rest) = if version >= 3 {
            postcard::take_from_bytes::<Model<'a>>(payload).map_err(|_| Error::Malformed)?
        } else {
            let (m, rest) = postcard::take_from_bytes::<legacy::ModelV2<'a>>(payload)
                .map_err(|_| Error::Malformed)?;
            (m.into(), rest)
        };
        // The header check admits no older version without the feature.
        #[cfg(not(feature = "legacy"))]
        let (model, rest) = {
            let _ = version;
            postcard::take_from_bytes::<Model<'a>>(payload).map_err(|_| Error::Malformed)?
        };
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Ok(model)
    }

    /// The oldest format version that can express this model: 6 with a second stage, 5
    /// with a class mixture, 3 with a convolution layer or without an encoder, else 2 with a
    /// tiled layer, else 1.
    pub fn min_version(&self) -> u16 {
        #[cfg(feature = "second-stage")]
        if matches!(self.prior, Prior::SecondStage(_)) {
            return 6;
        }
        #[cfg(feature = "classes")]
        if matches!(self.prior, Prior::ClassMixture(_)) {
            return 5;
        }
        let mut layers = self.encoder.layers.iter().chain(self.decoder.layers.iter());
        if self.encoder.layers.is_empty() || layers.clone().any(|l| !matches!(l, Layer::Dense(_))) {
            3
        } else if layers.any(|l| l.matrix().layout == WeightLayout::Tiles4x4) {
            2
        } else {
            1
        }
    }

    /// Whether the model carries an encoder (a decoder-only model generates, and cannot
    /// encode).
    pub fn has_encoder(&self) -> bool {
        !self.encoder.layers.is_empty()
    }

    /// Checks that every `Tiles4x4` layer's tiles begin on a 4-byte boundary of `blob` (the
    /// blob this model was read from), so that a blob placed at an aligned address can be
    /// read by word loads.
    pub fn check_alignment(&self, blob: &[u8]) -> Result<(), Error> {
        let base = blob.as_ptr() as usize;
        let nets = [
            (NetworkId::Encoder, &self.encoder),
            (NetworkId::Decoder, &self.decoder),
        ];
        for (network, net) in nets {
            for (i, l) in net.layers.iter().enumerate() {
                let offset = (l.packed_weights().as_ptr() as usize).wrapping_sub(base);
                if l.matrix().layout == WeightLayout::Tiles4x4 && !offset.is_multiple_of(4) {
                    return Err(Error::MisalignedWeights {
                        network,
                        layer: i as u8,
                    });
                }
            }
        }
        // The second stage's own loop: the networks' above, kept as it was, costs a firmware
        // without the feature nothing.
        #[cfg(feature = "second-stage")]
        if let Some(s) = self.prior.second_stage() {
            misaligned(NetworkId::Prior, &s.layers, base)?;
        }
        Ok(())
    }

    /// Checks every size, count and range (done by [`Model::from_bytes`] and before writing).
    pub fn validate(&self) -> Result<(), Error> {
        validate::model(self)
    }

    /// Number of values the encoder outputs (2 x latent for a VAE).
    pub fn encoder_out_dim(&self) -> usize {
        usize::from(self.latent.dim) * usize::from(self.kind.encoder_outputs_per_latent())
    }

    /// Bytes of raw parameters: int8 weights, int32 biases, Q31 multipliers, shifts, f32
    /// weight scales.
    pub fn raw_parameter_bytes(&self) -> usize {
        self.encoder
            .layers
            .iter()
            .chain(self.decoder.layers.iter())
            .map(|l| {
                let l = l.matrix();
                l.weights.as_bytes().len()
                    + l.bias.as_bytes().len()
                    + l.multiplier.as_bytes().len()
                    + l.shift.as_bytes().len()
                    + l.weight_scale.as_bytes().len()
            })
            .sum()
    }
}

/// [`Error::MisalignedWeights`] for the first `Tiles4x4` layer of `layers` whose tiles do not
/// start on a 4-byte boundary from `base`.
#[cfg(feature = "second-stage")]
fn misaligned(network: NetworkId, layers: &[Layer<'_>], base: usize) -> Result<(), Error> {
    for (i, l) in layers.iter().enumerate() {
        let offset = (l.packed_weights().as_ptr() as usize).wrapping_sub(base);
        if l.matrix().layout == WeightLayout::Tiles4x4 && !offset.is_multiple_of(4) {
            return Err(Error::MisalignedWeights {
                network,
                layer: i as u8,
            });
        }
    }
    Ok(())
}

/// Checks the fixed header and the checksum; returns the payload.
pub fn check_header(blob: &[u8]) -> Result<&[u8], Error> {
    header(blob).map(|(_, payload)| payload)
}

/// Checks the fixed header and the checksum; returns the version and the payload.
pub(crate) fn header(blob: &[u8]) -> Result<(u16, &[u8]), Error> {
    let available = u32::try_from(blob.len()).unwrap_or(u32::MAX);
    let header = blob.get(..HEADER_LEN).ok_or(Error::Truncated {
        needed: HEADER_LEN as u32,
        available,
    })?;
    if header[0..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let flags = u16::from_le_bytes([header[6], header[7]]);
    if flags != 0 {
        return Err(Error::UnsupportedFlags(flags));
    }
    let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let stored = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let needed = (HEADER_LEN as u32).saturating_add(len);
    let rest = &blob[HEADER_LEN..];
    let payload = rest
        .get(..len as usize)
        .ok_or(Error::Truncated { needed, available })?;
    if rest.len() > payload.len() {
        return Err(Error::TrailingBytes);
    }
    // Without `legacy` no version before 4 gets here: no CRC code in the firmware.
    let computed = if version >= 4 || !cfg!(feature = "legacy") {
        checksum(payload)
    } else {
        crc32(payload)
    };
    if computed != stored {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    Ok((version, payload))
}
