//! Owned counterparts of the borrowed model types (std only), for writers: build an
//! [`OwnedModel`] from typed vectors, then [`OwnedModel::view`] it as a [`Model`] to validate,
//! serialize or run it.

use crate::{
    Activation, DataShape, DecoderVector, Dense, EncoderVector, Error, Golden, Latent, LeArray,
    Mixture, Model, ModelKind, Network, OutputType, Prior, Provenance, SamplerVector, SigmaTable,
    WeightLayout,
};

fn bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

fn arr<T: crate::LeElem>(b: &[u8]) -> LeArray<'_, T> {
    // Lengths are whole elements by construction (built from typed vectors).
    LeArray::from_bytes(b).unwrap_or(LeArray::empty())
}

/// An owned [`Dense`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedDense {
    /// Inputs.
    pub in_dim: u16,
    /// Outputs.
    pub out_dim: u16,
    /// Activation.
    pub activation: Activation,
    /// Output type.
    pub output_type: OutputType,
    /// Input zero-point (metadata; folded into the bias).
    pub input_zero_point: i8,
    /// Output zero-point.
    pub output_zero_point: i8,
    /// Input scale (metadata).
    pub input_scale: f32,
    /// Output scale (metadata).
    pub output_scale: f32,
    layout: WeightLayout,
    /// The weight array as stored: lead bytes (tiled layouts only), then the packed weights.
    weights: Vec<u8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
    weight_scale: Vec<u8>,
}

/// The per-output-channel arrays of a layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Channels {
    /// Row-major int8 weights, `out * in` (whatever the layer's storage layout).
    pub weights: Vec<i8>,
    /// int32 biases with the input offset folded in.
    pub bias: Vec<i32>,
    /// Q31 multipliers.
    pub multiplier: Vec<i32>,
    /// Shifts.
    pub shift: Vec<i8>,
    /// Weight scales (metadata).
    pub weight_scale: Vec<f32>,
}

impl OwnedDense {
    /// A layer from its shape, its quantization metadata and its per-channel arrays.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_dim: u16,
        out_dim: u16,
        activation: Activation,
        output_type: OutputType,
        (input_zero_point, input_scale): (i8, f32),
        (output_zero_point, output_scale): (i8, f32),
        c: &Channels,
    ) -> Self {
        OwnedDense {
            in_dim,
            out_dim,
            activation,
            output_type,
            input_zero_point,
            output_zero_point,
            input_scale,
            output_scale,
            layout: WeightLayout::RowMajor,
            weights: bytes(&c.weights, |x: i8| x.to_le_bytes()),
            bias: bytes(&c.bias, i32::to_le_bytes),
            multiplier: bytes(&c.multiplier, i32::to_le_bytes),
            shift: bytes(&c.shift, |x: i8| x.to_le_bytes()),
            weight_scale: bytes(&c.weight_scale, f32::to_le_bytes),
        }
    }

    /// The per-channel arrays, decoded (weights row-major whatever the layout).
    pub fn channels(&self) -> Channels {
        let v = self.view();
        let (inp, out) = (usize::from(self.in_dim), usize::from(self.out_dim));
        Channels {
            weights: (0..out)
                .flat_map(|o| (0..inp).map(move |i| (o, i)))
                .map(|(o, i)| v.weight(o, i))
                .collect(),
            bias: v.bias.iter().collect(),
            multiplier: v.multiplier.iter().collect(),
            shift: v.shift.iter().collect(),
            weight_scale: v.weight_scale.iter().collect(),
        }
    }

    /// The same layer with other per-channel arrays (row-major weights), in the same layout.
    pub fn with_channels(&self, c: &Channels) -> OwnedDense {
        OwnedDense::new(
            self.in_dim,
            self.out_dim,
            self.activation,
            self.output_type,
            (self.input_zero_point, self.input_scale),
            (self.output_zero_point, self.output_scale),
            c,
        )
        .with_layout(self.layout)
    }

    /// The storage order of the weights.
    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    /// The same layer with its weights stored in `layout` (no lead bytes; the model writer
    /// adds those that align tiles).
    pub fn with_layout(&self, layout: WeightLayout) -> OwnedDense {
        let rows = self.channels().weights;
        let (inp, out) = (usize::from(self.in_dim), usize::from(self.out_dim));
        let mut packed = vec![0u8; layout.packed_len(inp, out)];
        for (k, &w) in rows.iter().enumerate() {
            packed[layout.index(inp, k / inp, k % inp)] = w as u8;
        }
        OwnedDense {
            layout,
            weights: packed,
            ..self.clone()
        }
    }

    /// Number of lead bytes before the packed weights.
    fn lead(&self) -> usize {
        let packed = self
            .layout
            .packed_len(usize::from(self.in_dim), usize::from(self.out_dim));
        self.weights.len() - packed
    }

    /// Sets the number of zero lead bytes (0 to 3) before the packed weights.
    fn set_lead(&mut self, lead: usize) {
        let old = self.lead();
        self.weights.splice(..old, core::iter::repeat_n(0, lead));
    }

    /// The borrowed view.
    pub fn view(&self) -> Dense<'_> {
        Dense {
            in_dim: self.in_dim,
            out_dim: self.out_dim,
            activation: self.activation,
            output_type: self.output_type,
            layout: self.layout,
            input_zero_point: self.input_zero_point,
            output_zero_point: self.output_zero_point,
            weights: arr(&self.weights),
            bias: arr(&self.bias),
            multiplier: arr(&self.multiplier),
            shift: arr(&self.shift),
            input_scale: self.input_scale,
            output_scale: self.output_scale,
            weight_scale: arr(&self.weight_scale),
        }
    }
}

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
    /// Encoder layers.
    pub encoder: Vec<OwnedDense>,
    /// Decoder layers.
    pub decoder: Vec<OwnedDense>,
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
    prior: [Vec<u8>; 3],
    golden: Vec<Vec<u8>>,
}

fn network<'a>(layers: &'a [OwnedDense]) -> Result<Network<'a>, Error> {
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
        if let OwnedPrior::Mixture {
            cumulative,
            means,
            sigmas,
        } = &self.prior
        {
            b.prior = [
                bytes(cumulative, u32::to_le_bytes),
                bytes(means, i16::to_le_bytes),
                bytes(sigmas, u32::to_le_bytes),
            ];
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
        for l in m.encoder.iter_mut().chain(m.decoder.iter_mut()) {
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
        let layers = m.encoder.len() + m.decoder.len();
        for _ in 0..=2 * layers {
            let blob = m.serialize()?;
            let (network, layer) = match Model::from_bytes(&blob).map(|_| ()) {
                Ok(()) => return Ok(blob),
                Err(Error::MisalignedWeights { network, layer }) => (network, usize::from(layer)),
                Err(e) => return Err(e),
            };
            let offset = {
                let payload = &blob[crate::HEADER_LEN..];
                let (model, _) = postcard::take_from_bytes::<Model<'_>>(payload)
                    .map_err(|_| Error::Malformed)?;
                let net = match network {
                    crate::NetworkId::Encoder => &model.encoder,
                    crate::NetworkId::Decoder => &model.decoder,
                };
                let l = net.layers.get(layer).ok_or(Error::Malformed)?;
                l.packed_weights().as_ptr() as usize - blob.as_ptr() as usize
            };
            let l = match network {
                crate::NetworkId::Encoder => &mut m.encoder[layer],
                crate::NetworkId::Decoder => &mut m.decoder[layer],
            };
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
        let payload = postcard::to_allocvec(&model).map_err(|_| Error::Serialize)?;
        Ok(crate::write::frame(model.min_version(), &payload))
    }
}

/// Splits a real multiplier into a Q31 multiplier in `[2^30, 2^31)` and a shift in
/// `[-31, 30]`, as TFLite's `QuantizeMultiplier` does, in f64. Multipliers too small for a
/// right shift of 31 become `(0, 0)` (the channel outputs its zero-point); too large ones
/// saturate at the largest representable value. Returns `None` for a negative or non-finite
/// input.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i8)> {
    if !real.is_finite() || real < 0.0 {
        return None;
    }
    if real == 0.0 {
        return Some((0, 0));
    }
    // real = frac * 2^exp with frac in [0.5, 1)
    let mut exp = real.log2().floor() as i32 + 1;
    let mut frac = real / 2f64.powi(exp);
    if frac >= 1.0 {
        frac /= 2.0;
        exp += 1;
    } else if frac < 0.5 {
        frac *= 2.0;
        exp -= 1;
    }
    let mut q = (frac * 2f64.powi(31)).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        exp += 1;
    }
    if exp < -31 {
        return Some((0, 0));
    }
    if exp > 30 {
        return Some((i32::MAX, 30));
    }
    Some((q as i32, exp as i8))
}

/// The shape of a synthetic model.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// What kind of model.
    pub kind: ModelKind,
    /// Image width.
    pub width: u16,
    /// Image height.
    pub height: u16,
    /// Hidden layer widths of the encoder (the decoder mirrors them).
    pub hidden: Vec<u16>,
    /// Latent dimensions.
    pub latent: u16,
    /// Include golden vectors (random contents: for format tests only).
    pub golden: bool,
    /// Use a mixture prior with this many components (0: N(0, I)).
    pub mixture: u16,
}

/// The sigma table every exporter writes for `frac_bits` fractional bits: log-variance in
/// [-16, 16) in steps of 1/8, sigma = exp(lv / 2) in Q16.
pub fn sigma_table(frac_bits: u8) -> (i16, u8, Vec<u32>) {
    let step_log2 = frac_bits - 3;
    let min = -16i32 << frac_bits;
    let values = (0..=256)
        .map(|i| {
            let lv = -16.0 + f64::from(i) / 8.0;
            ((lv / 2.0).exp() * 65536.0)
                .round()
                .min(f64::from(1u32 << 30)) as u32
        })
        .collect();
    (
        min.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
        step_log2,
        values,
    )
}

/// The table from int8 logits (scale `scale`, zero-point `zero_point`) to u8 pixels:
/// `round(255 * sigmoid(scale * (q - zero_point)))`, index `q + 128`.
pub fn pixel_table(scale: f32, zero_point: i8) -> Vec<u8> {
    (-128i32..=127)
        .map(|q| {
            let x = f64::from(scale) * f64::from(q - i32::from(zero_point));
            (255.0 / (1.0 + (-x).exp())).round() as u8
        })
        .collect()
}

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// Fractional bits of the latent fixed point that synthetic models and the exporter use.
pub const LATENT_FRAC_BITS: u8 = 11;

impl OwnedModel {
    /// A model of the given shape with random parameters, valid by construction, with
    /// activations that stay in range: for tests and benchmarks. Deterministic in `seed`.
    pub fn synthetic(spec: &SyntheticSpec, seed: u64) -> OwnedModel {
        let mut r = SplitMix(seed);
        let pixels =
            u16::try_from(usize::from(spec.width) * usize::from(spec.height)).unwrap_or(u16::MAX);
        let frac = LATENT_FRAC_BITS;
        let enc_out = spec.latent * spec.kind.encoder_outputs_per_latent();
        let mut layer = |i: u16, o: u16, act, ty, in_zp: i8, out_zp: i8, target: f64| {
            let mut c = Channels {
                weights: (0..usize::from(i) * usize::from(o))
                    .map(|_| r.range(-127, 127) as i8)
                    .collect(),
                bias: (0..o)
                    .map(|_| r.range(-(1 << 12), 1 << 12) as i32)
                    .collect(),
                ..Default::default()
            };
            // Typical |acc| ~ sqrt(in) * 73 * 73; aim the output at `target`.
            let typical = (f64::from(i)).sqrt() * 73.0 * 73.0;
            for _ in 0..o {
                let jitter = 0.75 + 0.5 * (r.next() % 1000) as f64 / 1000.0;
                let (m, s) = quantize_multiplier(target / typical * jitter).unwrap_or((0, 0));
                c.multiplier.push(m);
                c.shift.push(s);
                c.weight_scale.push(0.01);
            }
            OwnedDense::new(i, o, act, ty, (in_zp, 1.0 / 255.0), (out_zp, 0.05), &c)
        };
        let mut widths = vec![pixels];
        widths.extend(&spec.hidden);
        let mut encoder = Vec::new();
        let mut in_zp = -128i8;
        for w in widths.windows(2) {
            encoder.push(layer(
                w[0],
                w[1],
                Activation::Relu,
                OutputType::I8,
                in_zp,
                -128,
                60.0,
            ));
            in_zp = -128;
        }
        let last_in = *widths.last().unwrap_or(&pixels);
        encoder.push(layer(
            last_in,
            enc_out,
            Activation::None,
            OutputType::I16,
            in_zp,
            0,
            f64::from(1u32 << frac),
        ));
        let mut dwidths = vec![spec.latent];
        dwidths.extend(spec.hidden.iter().rev());
        dwidths.push(pixels);
        let mut decoder = Vec::new();
        let mut in_zp = 0i8;
        for (k, w) in dwidths.windows(2).enumerate() {
            let last = k + 2 == dwidths.len();
            let (act, zp) = if last {
                (Activation::PixelTable, 0)
            } else {
                (Activation::Relu, -128)
            };
            decoder.push(layer(w[0], w[1], act, OutputType::I8, in_zp, zp, 60.0));
            in_zp = -128;
        }
        let scale = 4.5f32 / 127.0;
        let dim = usize::from(spec.latent);
        let prior = if spec.mixture == 0 {
            OwnedPrior::StandardNormal
        } else {
            let k = u32::from(spec.mixture);
            OwnedPrior::Mixture {
                cumulative: (1..=k)
                    .map(|i| ((u64::from(i) << 32) / u64::from(k)).min(u64::from(u32::MAX)) as u32)
                    .collect(),
                means: (0..dim * usize::from(spec.mixture))
                    .map(|_| r.range(-(2 << frac), 2 << frac) as i16)
                    .collect(),
                sigmas: (0..dim * usize::from(spec.mixture))
                    .map(|_| r.range(1 << 13, 1 << 16) as u32)
                    .collect(),
            }
        };
        let golden = spec.golden.then(|| {
            let px = usize::from(pixels);
            let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| r.next() as u8).collect() };
            OwnedGolden {
                encoder: vec![(
                    bytes(px),
                    bytes(2 * usize::from(enc_out))
                        .chunks(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                )],
                decoder: vec![(bytes(dim).into_iter().map(|b| b as i8).collect(), bytes(px))],
                sampler: vec![(
                    seed,
                    bytes(16)
                        .chunks(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                    bytes(dim).into_iter().map(|b| b as i8).collect(),
                    bytes(px),
                )],
            }
        });
        OwnedModel {
            kind: spec.kind,
            data: DataShape {
                width: spec.width,
                height: spec.height,
                channels: 1,
                pixel: crate::PixelEncoding::U8,
            },
            latent: OwnedLatent::symmetric(spec.latent, scale),
            encoder,
            decoder,
            pixel_table: pixel_table(0.0625, 0),
            prior,
            provenance: OwnedProvenance {
                dataset: "synthetic".into(),
                architecture: format!("{}-{:?}-{}", pixels, spec.hidden, spec.latent),
                epochs: 0,
                seed,
                beta: 1.0,
                test_neg_elbo: 0.0,
                trainer: concat!("tinyvae-format ", env!("CARGO_PKG_VERSION")).into(),
            },
            golden,
        }
    }
}
