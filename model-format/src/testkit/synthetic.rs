//! Random models valid by construction (std only), dense or convolutional, for tests,
//! benchmarks and fuzz seeds; their layers come from the shared generator, [`crate::testkit::random`].

use crate::owned::{
    Channels, OwnedDense, OwnedGolden, OwnedLatent, OwnedLayer, OwnedModel, OwnedOp, OwnedPrior,
    OwnedProvenance,
};
#[cfg(feature = "second-stage")]
use crate::tables::quantize_multiplier;
use crate::tables::{pixel_table, LATENT_FRAC_BITS};
use crate::testkit::random::{self, MatrixMut, Params, SplitMix};
use crate::{Activation, ConvShape, DataShape, ModelKind, OutputType};

/// One convolution stage of a synthetic model: the encoder's Conv2d, mirrored by a
/// ConvTranspose2d in the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticConv {
    /// Output channels.
    pub channels: u16,
    /// Kernel size.
    pub kernel: u8,
    /// Stride.
    pub stride: u8,
    /// Padding (below the kernel size).
    pub padding: u8,
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
    /// Values per pixel.
    pub channels: u8,
    /// Convolution stages before the dense layers (stages that do not fit the image left
    /// by the ones before are left out).
    pub conv: Vec<SyntheticConv>,
    /// Hidden layer widths of the encoder's dense part (the decoder mirrors them).
    pub hidden: Vec<u16>,
    /// Latent dimensions.
    pub latent: u16,
    /// Include golden vectors (random contents: for format tests only).
    pub golden: bool,
    /// Use a mixture prior with this many components (0: N(0, I)).
    pub mixture: u16,
    /// Leave the encoder out (a decoder-only model, format version 3).
    pub decoder_only: bool,
}

impl Default for SyntheticSpec {
    /// A grey 8 x 8 VAE with one hidden layer of 16 and a latent of 4, N(0, I) prior.
    fn default() -> Self {
        SyntheticSpec {
            kind: ModelKind::Vae,
            width: 8,
            height: 8,
            channels: 1,
            conv: Vec::new(),
            hidden: vec![16],
            latent: 4,
            golden: false,
            mixture: 0,
            decoder_only: false,
        }
    }
}

impl SyntheticSpec {
    /// The encoder's convolution shapes: the stages that fit, in order.
    pub fn conv_shapes(&self) -> Vec<ConvShape> {
        let (mut h, mut w, mut c) = (self.height, self.width, u16::from(self.channels));
        let mut out = Vec::new();
        for st in &self.conv {
            let mut shape = ConvShape {
                in_height: h,
                in_width: w,
                in_channels: c,
                out_height: 0,
                out_width: 0,
                out_channels: st.channels,
                kernel: st.kernel,
                stride: st.stride,
                padding: st.padding,
            };
            // A stride above the kernel would leave the mirrored transposed convolution
            // phases without taps.
            let fits = st.channels > 0 && st.padding < st.kernel && st.stride <= st.kernel;
            match (fits, shape.conv_out(h), shape.conv_out(w)) {
                (true, Some(oh), Some(ow)) if oh > 0 && ow > 0 => {
                    (shape.out_height, shape.out_width) = (oh, ow);
                    let len = shape.out_len().max(shape.patch_len());
                    if len > u64::from(crate::MAX_WIDTH) {
                        break;
                    }
                    out.push(shape);
                    (h, w, c) = (oh, ow, st.channels);
                }
                _ => break,
            }
        }
        out
    }
}

/// A uniform draw from `lo..=hi`.
fn range(r: &mut SplitMix, lo: i64, hi: i64) -> i64 {
    lo + (r.next_u64() % (hi - lo + 1) as u64) as i64
}

/// One int8 layer's shape and what its outputs should look like.
#[derive(Clone, Copy)]
struct LayerSpec {
    inputs: u16,
    outputs: u16,
    /// A transposed convolution's shape (its matrix has phases), else `None`.
    transposed: Option<ConvShape>,
    act: Activation,
    ty: OutputType,
    in_zp: i8,
    out_zp: i8,
    /// The typical output magnitude the multipliers aim at.
    target: f64,
}

impl LayerSpec {
    /// A hidden layer: int8 in, ReLU, int8 out around 60.
    fn hidden(inputs: u16, outputs: u16) -> Self {
        LayerSpec {
            inputs,
            outputs,
            transposed: None,
            act: Activation::Relu,
            ty: OutputType::I8,
            in_zp: -128,
            out_zp: -128,
            target: 60.0,
        }
    }
}

/// The random parameters of a synthetic model, drawn in a fixed order from one stream.
struct Draw(SplitMix);

impl Draw {
    /// One layer's matrix from the shared generator ([`random`]), its multipliers aimed at
    /// the spec's output magnitude.
    fn layer(&mut self, l: LayerSpec) -> OwnedDense {
        let (i, o) = (usize::from(l.inputs), usize::from(l.outputs));
        let phases = l.transposed.map_or(1, |t| usize::from(t.stride).pow(2));
        let mut c = Channels {
            weights: vec![0; i * o],
            bias: vec![0; o * phases],
            multiplier: vec![0; o],
            shift: vec![0; o],
            weight_scale: vec![0.01; o],
        };
        let m = MatrixMut {
            weights: &mut c.weights,
            bias: &mut c.bias,
            multiplier: &mut c.multiplier,
            shift: &mut c.shift,
        };
        let params = Params::Aimed(l.target);
        // The buffers are the layer's sizes: the draw cannot fail (an empty layer stays
        // zero, and validation names it).
        let _ = match &l.transposed {
            Some(t) => random::conv(&mut self.0, params, t, true, m),
            None => random::dense(&mut self.0, params, (i, o), m),
        };
        OwnedDense::new(
            l.inputs,
            l.outputs,
            l.act,
            l.ty,
            (l.in_zp, 1.0 / 255.0),
            (l.out_zp, 0.05),
            &c,
        )
    }

    /// Convolutions, then dense layers to the head (mean and log-variance, int16).
    fn encoder(
        &mut self,
        spec: &SyntheticSpec,
        shapes: &[ConvShape],
        flat: u16,
    ) -> Vec<OwnedLayer> {
        let mut encoder: Vec<OwnedLayer> = Vec::new();
        for c in shapes {
            let m = self.layer(LayerSpec::hidden(c.patch_len() as u16, c.out_channels));
            encoder.push(OwnedLayer {
                op: OwnedOp::Conv2d(*c),
                matrix: m,
            });
        }
        let mut widths = vec![flat];
        widths.extend(&spec.hidden);
        for w in widths.windows(2) {
            encoder.push(self.layer(LayerSpec::hidden(w[0], w[1])).into());
        }
        let head = LayerSpec {
            inputs: *widths.last().unwrap_or(&flat),
            outputs: spec.latent * spec.kind.encoder_outputs_per_latent(),
            act: Activation::None,
            ty: OutputType::I16,
            out_zp: 0,
            target: f64::from(1u32 << LATENT_FRAC_BITS),
            ..LayerSpec::hidden(0, 0)
        };
        encoder.push(self.layer(head).into());
        encoder
    }

    /// Dense layers to the last stage's shape, then the transposed convolutions; the last
    /// layer maps through the pixel table.
    fn decoder(
        &mut self,
        spec: &SyntheticSpec,
        shapes: &[ConvShape],
        flat: u16,
    ) -> Vec<OwnedLayer> {
        let mut dwidths = vec![spec.latent];
        dwidths.extend(spec.hidden.iter().rev());
        dwidths.push(flat);
        let count = dwidths.len() - 1 + shapes.len();
        let last = |l: LayerSpec, k: usize| {
            if k + 1 == count {
                LayerSpec {
                    act: Activation::PixelTable,
                    out_zp: 0,
                    ..l
                }
            } else {
                l
            }
        };
        let mut decoder: Vec<OwnedLayer> = Vec::new();
        for (k, w) in dwidths.windows(2).enumerate() {
            let in_zp = if k == 0 { 0 } else { -128 };
            let l = last(
                LayerSpec {
                    in_zp,
                    ..LayerSpec::hidden(w[0], w[1])
                },
                k,
            );
            decoder.push(self.layer(l).into());
        }
        for (k, c) in shapes.iter().rev().enumerate() {
            let t = ConvShape {
                in_height: c.out_height,
                in_width: c.out_width,
                in_channels: c.out_channels,
                out_height: c.in_height,
                out_width: c.in_width,
                out_channels: c.in_channels,
                ..*c
            };
            let l = LayerSpec {
                transposed: Some(t),
                ..LayerSpec::hidden(t.patch_len() as u16, t.out_channels)
            };
            let m = self.layer(last(l, dwidths.len() - 1 + k));
            decoder.push(OwnedLayer::new(OwnedOp::ConvTranspose2d(t), m));
        }
        decoder
    }

    fn prior(&mut self, spec: &SyntheticSpec) -> OwnedPrior {
        if spec.mixture == 0 {
            return OwnedPrior::StandardNormal;
        }
        let r = &mut self.0;
        let (frac, k) = (LATENT_FRAC_BITS, u32::from(spec.mixture));
        let n = usize::from(spec.latent) * usize::from(spec.mixture);
        OwnedPrior::Mixture {
            cumulative: (1..=k)
                .map(|i| ((u64::from(i) << 32) / u64::from(k)).min(u64::from(u32::MAX)) as u32)
                .collect(),
            means: (0..n)
                .map(|_| range(r, -(2 << frac), 2 << frac) as i16)
                .collect(),
            sigmas: (0..n).map(|_| range(r, 1 << 13, 1 << 16) as u32).collect(),
        }
    }

    /// Golden vectors of random contents (the format's tests only read them back).
    fn golden(&mut self, spec: &SyntheticSpec, pixels: u16, seed: u64) -> OwnedGolden {
        let (px, dim) = (usize::from(pixels), usize::from(spec.latent));
        let enc_out = usize::from(spec.latent * spec.kind.encoder_outputs_per_latent());
        let r = &mut self.0;
        let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| r.next_u64() as u8).collect() };
        let i16s = |b: Vec<u8>| -> Vec<i16> {
            b.chunks(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        };
        let i8s = |b: Vec<u8>| -> Vec<i8> { b.into_iter().map(|b| b as i8).collect() };
        OwnedGolden {
            encoder: if spec.decoder_only {
                vec![]
            } else {
                vec![(bytes(px), i16s(bytes(2 * enc_out)))]
            },
            decoder: vec![(i8s(bytes(dim)), bytes(px))],
            sampler: vec![(seed, i16s(bytes(16)), i8s(bytes(dim)), bytes(px))],
        }
    }
}

impl OwnedModel {
    /// The model with its mixture prior grouped into `classes` classes of consecutive
    /// components (as even as the count allows) and given uneven random weights drawn with
    /// `seed`: a class-conditional prior (format version 5) for tests. Unchanged unless the
    /// prior is a mixture of at least `classes >= 1` components.
    #[cfg(feature = "classes")]
    pub fn with_classes(mut self, classes: u16, seed: u64) -> OwnedModel {
        let OwnedPrior::Mixture {
            cumulative,
            means,
            sigmas,
        } = &self.prior
        else {
            return self;
        };
        let k = cumulative.len();
        if classes == 0 || k < usize::from(classes) {
            return self;
        }
        let mut r = SplitMix(seed);
        let weights: Vec<u64> = (0..k).map(|_| 1 + (r.next_u64() >> 40)).collect();
        let total: u64 = weights.iter().sum();
        let mut acc = 0u64;
        let mut cum: Vec<u32> = weights
            .iter()
            .map(|w| {
                acc += w;
                ((u128::from(acc) << 32) / u128::from(total)).min(u128::from(u32::MAX)) as u32
            })
            .collect();
        if let Some(last) = cum.last_mut() {
            *last = u32::MAX;
        }
        let c = usize::from(classes);
        let class_ends = (1..=c).map(|i| (i * k / c) as u16).collect();
        self.prior = OwnedPrior::ClassMixture {
            cumulative: cum,
            means: means.clone(),
            sigmas: sigmas.clone(),
            class_ends,
        };
        self
    }

    /// The model with a second-stage prior (format version 6) of random dense layers drawn
    /// with `seed`: `draws` N(0, 1) draws through hidden layers of `hidden` widths (ReLU) to
    /// the latent's z in `I16`, for tests. `draws` and every width in `1..=256`.
    #[cfg(feature = "second-stage")]
    pub fn with_second_stage(mut self, draws: u16, hidden: &[u16], seed: u64) -> OwnedModel {
        let mut draw = Draw(SplitMix(seed));
        let mut widths = vec![draws];
        widths.extend(hidden);
        let mut layers: Vec<OwnedLayer> = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            let l = LayerSpec {
                in_zp: if i == 0 { 0 } else { -128 },
                ..LayerSpec::hidden(w[0], w[1])
            };
            layers.push(draw.layer(l).into());
        }
        let head = LayerSpec {
            inputs: *widths.last().unwrap_or(&draws),
            outputs: self.latent.dim,
            act: Activation::None,
            ty: OutputType::I16,
            in_zp: if hidden.is_empty() { 0 } else { -128 },
            out_zp: 0,
            target: f64::from(1u32 << LATENT_FRAC_BITS),
            ..LayerSpec::hidden(0, 0)
        };
        layers.push(draw.layer(head).into());
        // N(0, 1) in Q12 to codes of about 32 per unit.
        let (input_multiplier, input_shift) = quantize_multiplier(32.0 / 4096.0).unwrap_or((0, 0));
        self.prior = OwnedPrior::SecondStage {
            input_multiplier,
            input_shift,
            input_zero_point: 0,
            layers,
        };
        self
    }

    /// A model of the given shape with random parameters, valid by construction, with
    /// activations that stay in range: for tests and benchmarks. Deterministic in `seed`.
    pub fn synthetic(spec: &SyntheticSpec, seed: u64) -> OwnedModel {
        let mut draw = Draw(SplitMix(seed));
        let pixels = u16::try_from(
            usize::from(spec.width) * usize::from(spec.height) * usize::from(spec.channels),
        )
        .unwrap_or(u16::MAX);
        let shapes = spec.conv_shapes();
        let flat = shapes
            .last()
            .map_or(pixels, |c| c.out_len().min(u64::from(u16::MAX)) as u16);
        let mut encoder = draw.encoder(spec, &shapes, flat);
        let decoder = draw.decoder(spec, &shapes, flat);
        if spec.decoder_only {
            encoder.clear();
        }
        let prior = draw.prior(spec);
        let golden = spec.golden.then(|| draw.golden(spec, pixels, seed));
        OwnedModel {
            kind: spec.kind,
            data: DataShape {
                width: spec.width,
                height: spec.height,
                channels: spec.channels,
                pixel: crate::PixelEncoding::U8,
            },
            latent: OwnedLatent::symmetric(spec.latent, 4.5f32 / 127.0),
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
