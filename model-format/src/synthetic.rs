//! Random models valid by construction (std only), dense or convolutional, for tests,
//! benchmarks and fuzz seeds.

use crate::owned::{
    Channels, OwnedDense, OwnedGolden, OwnedLatent, OwnedLayer, OwnedModel, OwnedOp, OwnedPrior,
    OwnedProvenance,
};
use crate::tables::{pixel_table, quantize_multiplier, LATENT_FRAC_BITS};
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

impl OwnedModel {
    /// A model of the given shape with random parameters, valid by construction, with
    /// activations that stay in range: for tests and benchmarks. Deterministic in `seed`.
    pub fn synthetic(spec: &SyntheticSpec, seed: u64) -> OwnedModel {
        let mut r = SplitMix(seed);
        let pixels = u16::try_from(
            usize::from(spec.width) * usize::from(spec.height) * usize::from(spec.channels),
        )
        .unwrap_or(u16::MAX);
        let frac = LATENT_FRAC_BITS;
        let enc_out = spec.latent * spec.kind.encoder_outputs_per_latent();
        // `phases` biases per output channel: a transposed convolution's stride^2.
        let mut layer_with =
            |i: u16, o: u16, phases: usize, act, ty, in_zp: i8, out_zp: i8, target: f64| {
                let mut c = Channels {
                    weights: (0..usize::from(i) * usize::from(o))
                        .map(|_| r.range(-127, 127) as i8)
                        .collect(),
                    bias: (0..usize::from(o) * phases)
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
        let mut layer = |i: u16, o: u16, act, ty, in_zp: i8, out_zp: i8, target: f64| {
            layer_with(i, o, 1, act, ty, in_zp, out_zp, target)
        };
        let shapes = spec.conv_shapes();
        let flat = shapes
            .last()
            .map_or(pixels, |c| c.out_len().min(u64::from(u16::MAX)) as u16);
        // Encoder: convolutions, then dense layers to the head.
        let mut encoder: Vec<OwnedLayer> = Vec::new();
        for c in &shapes {
            let m = layer(
                c.patch_len() as u16,
                c.out_channels,
                Activation::Relu,
                OutputType::I8,
                -128,
                -128,
                60.0,
            );
            encoder.push(OwnedLayer {
                op: OwnedOp::Conv2d(*c),
                matrix: m,
            });
        }
        let mut widths = vec![flat];
        widths.extend(&spec.hidden);
        for w in widths.windows(2) {
            let m = layer(
                w[0],
                w[1],
                Activation::Relu,
                OutputType::I8,
                -128,
                -128,
                60.0,
            );
            encoder.push(m.into());
        }
        let last_in = *widths.last().unwrap_or(&flat);
        let head = layer(
            last_in,
            enc_out,
            Activation::None,
            OutputType::I16,
            -128,
            0,
            f64::from(1u32 << frac),
        );
        encoder.push(head.into());
        // Decoder: dense layers to the last stage's shape, then transposed convolutions.
        let mut dwidths = vec![spec.latent];
        dwidths.extend(spec.hidden.iter().rev());
        dwidths.push(flat);
        let mut decoder: Vec<OwnedLayer> = Vec::new();
        let count = dwidths.len() - 1 + shapes.len();
        let act = |k: usize| {
            if k + 1 == count {
                (Activation::PixelTable, 0)
            } else {
                (Activation::Relu, -128)
            }
        };
        let mut in_zp = 0i8;
        for (k, w) in dwidths.windows(2).enumerate() {
            let (a, zp) = act(k);
            decoder.push(layer(w[0], w[1], a, OutputType::I8, in_zp, zp, 60.0).into());
            in_zp = -128;
        }
        for (k, c) in shapes.iter().rev().enumerate() {
            let (a, zp) = act(dwidths.len() - 1 + k);
            let t = ConvShape {
                in_height: c.out_height,
                in_width: c.out_width,
                in_channels: c.out_channels,
                out_height: c.in_height,
                out_width: c.in_width,
                out_channels: c.in_channels,
                ..*c
            };
            let phases = usize::from(t.stride) * usize::from(t.stride);
            let m = layer_with(
                t.patch_len() as u16,
                t.out_channels,
                phases,
                a,
                OutputType::I8,
                -128,
                zp,
                60.0,
            );
            decoder.push(OwnedLayer::new(OwnedOp::ConvTranspose2d(t), m));
        }
        if spec.decoder_only {
            encoder.clear();
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
                encoder: if spec.decoder_only {
                    vec![]
                } else {
                    vec![(
                        bytes(px),
                        bytes(2 * usize::from(enc_out))
                            .chunks(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]]))
                            .collect(),
                    )]
                },
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
                channels: spec.channels,
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
