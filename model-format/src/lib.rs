//! The tinyvae model container: a versioned, checksummed, postcard-serialized int8 model that
//! the trainer writes and the firmware reads where it lies in flash.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "TVAE"
//! 4       2     format version, u16 little-endian (this crate: FORMAT_VERSION)
//! 6       2     header flags, u16 little-endian (none defined: must be 0)
//! 8       4     payload length in bytes, u32 little-endian
//! 12      4     payload checksum, u32 little-endian: [`checksum`] (versions 1 to 3:
//!               the CRC-32/ISO-HDLC, [`crc32`])
//! 16      n     payload: the postcard encoding of [`Model`]
//! ```
//!
//! [`Model::from_bytes`] checks the header, the checksum, decodes the payload borrowing every array
//! from the blob, and validates every size, count and range, so that a model that parses is safe
//! to run: shapes chain, lengths match, shifts are in range and no int32 accumulator can
//! overflow. It never allocates and never panics. See FORMAT.md for the field-by-field
//! specification and the compatibility rules.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(missing_docs)]
#![forbid(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod array;
mod check;
/// Which Cortex-M targets get the DSP-extension code paths (the checksum's `UMAAL` loop here,
/// the engine's `SMLAD` kernels): one rule, read from the target and the rustc flags, that
/// this crate's and the engine's build scripts apply and that a firmware's build script calls
/// to size its buffers for the engine.
pub mod dsp_rule;
mod error;
#[cfg(feature = "std")]
pub mod owned;
pub mod random;
#[cfg(feature = "std")]
pub mod synthetic;
#[cfg(feature = "std")]
pub mod tables;
mod validate;
#[cfg(feature = "std")]
mod write;

pub use array::{bytes_as_i8, bytes_as_i8_mut, F32s, I16s, I32s, I8s, LeArray, LeElem, U32s, U8s};
pub use check::{checksum, crc32, payload_check, CHECKSUM_MULTIPLIER};
pub use error::{Error, NetworkId};

use serde::{Deserialize, Serialize};

/// The four bytes every model blob starts with.
pub const MAGIC: [u8; 4] = *b"TVAE";
/// The format version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version this crate reads: 1 with the `legacy` feature (the default),
/// else 4.
pub const MIN_FORMAT_VERSION: u16 = if cfg!(feature = "legacy") { 1 } else { 4 };
/// Size of the fixed header that precedes the payload.
pub const HEADER_LEN: usize = 16;
/// Most layers a network may have.
pub const MAX_LAYERS: usize = 8;
/// Most golden vectors of each kind a model may carry.
pub const MAX_GOLDEN: usize = 8;
/// Widest layer (inputs or outputs) the format accepts; a convolution's matrix (`K`, `R`)
/// too.
pub const MAX_WIDTH: u16 = 16384;
/// Largest stride of a transposed convolution: its `stride^2` phases are each a dense
/// product, and finding each walks the ones before it, so validation and a decode take
/// `stride^4` steps at most (4,096).
pub const MAX_TRANSPOSED_STRIDE: u8 = 8;
/// Largest latent size the format accepts.
pub const MAX_LATENT: u16 = 256;
/// Fractional bits of the engine's N(0, 1) draws (Q3.12 in an i16).
pub const EPS_FRAC_BITS: u8 = 12;
/// Fractional bits of the sigma table's values (sigma in Q16 in a u32).
pub const SIGMA_FRAC_BITS: u8 = 16;

/// What the model was trained as.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModelKind {
    /// A deterministic autoencoder: the encoder outputs the code z.
    Autoencoder,
    /// An autoencoder trained to reconstruct clean inputs from noisy ones.
    DenoisingAutoencoder,
    /// A variational autoencoder: the encoder outputs mu and log-variance.
    Vae,
}

impl ModelKind {
    /// How many values per latent dimension the encoder outputs: 2 (mu, log-variance) for a
    /// VAE, 1 (z) for the autoencoders.
    pub fn encoder_outputs_per_latent(self) -> u16 {
        match self {
            ModelKind::Vae => 2,
            _ => 1,
        }
    }
}

/// How a pixel is stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PixelEncoding {
    /// One byte per channel; intensity = value / 255.
    U8,
}

/// The shape of one data item.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataShape {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Channels per pixel.
    pub channels: u8,
    /// Encoding of each channel value.
    pub pixel: PixelEncoding,
}

impl DataShape {
    /// Values per item: width x height x channels (saturating at `usize::MAX`, which no
    /// validated model reaches: see [`DataShape::len_u64`]).
    pub fn len(&self) -> usize {
        usize::try_from(self.len_u64()).unwrap_or(usize::MAX)
    }

    /// Values per item in 64 bits: the same on every target, never wrapping.
    pub fn len_u64(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.channels)
    }
    /// True for a zero-sized shape (never valid in a model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The function applied after requantization.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// None: the requantized value is the output.
    None,
    /// ReLU, fused as a lower clamp at the output zero-point.
    Relu,
    /// The decoder's last layer: int8 logits are mapped to u8 pixels by
    /// [`Model::pixel_table`] (index = logit + 128).
    PixelTable,
}

/// The type a layer writes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OutputType {
    /// Asymmetric int8 with the layer's output zero-point.
    I8,
    /// Symmetric int16 fixed point with [`Latent::frac_bits`] fractional bits: the encoder's
    /// last layer (mu and log-variance, or z for an autoencoder).
    I16,
}

/// The order of the weights in a layer's weight array.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WeightLayout {
    /// `out_dim` rows of `in_dim` weights: weight (o, i) at `o * in_dim + i`.
    RowMajor,
    /// 4 x 4 tiles, the order the SIMD kernels read (format version 2): rows and columns are
    /// padded with zero weights to multiples of 4; tile (b, g) holds rows `4b..4b+4` and
    /// columns `4g..4g+4`, row by row (16 bytes); tiles are stored block of rows by block of
    /// rows, and within a block by column group. Weight (o, i) is at
    /// `((o / 4) * G + i / 4) * 16 + (o % 4) * 4 + i % 4`, with `G = ceil(in_dim / 4)`.
    /// The array may start with up to 3 zero bytes so that the tiles begin on a 4-byte
    /// boundary of the blob.
    Tiles4x4,
}

impl WeightLayout {
    /// Bytes of weights an `out_dim x in_dim` layer stores in this layout (without the lead
    /// bytes a `Tiles4x4` array may start with).
    pub const fn packed_len(self, in_dim: usize, out_dim: usize) -> usize {
        match self {
            WeightLayout::RowMajor => in_dim * out_dim,
            WeightLayout::Tiles4x4 => in_dim.div_ceil(4) * 4 * out_dim.div_ceil(4) * 4,
        }
    }

    /// Position of weight (o, i) in the packed weights of a layer with `in_dim` inputs.
    #[inline]
    pub const fn index(self, in_dim: usize, o: usize, i: usize) -> usize {
        match self {
            WeightLayout::RowMajor => o * in_dim + i,
            WeightLayout::Tiles4x4 => {
                ((o / 4) * in_dim.div_ceil(4) + i / 4) * 16 + (o % 4) * 4 + i % 4
            }
        }
    }
}

/// A fully connected int8 layer with per-output-channel requantization.
///
/// For output channel `o` and int8 input `x`:
/// `acc = bias[o] + sum_i w[o][i] * x[i]` (the input zero-point is already folded into the
/// bias), then `y = requantize(acc, multiplier[o], shift[o]) + output_zero_point`, clamped to
/// the output type's range (and at the zero-point for ReLU).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Dense<'a> {
    /// Inputs.
    pub in_dim: u16,
    /// Outputs.
    pub out_dim: u16,
    /// Activation fused after requantization.
    pub activation: Activation,
    /// What the layer writes.
    pub output_type: OutputType,
    /// Order of the weights.
    pub layout: WeightLayout,
    /// Zero-point of the int8 input: of a dense layer, metadata (already folded into `bias`);
    /// of a convolution's matrix, the value its padding reads.
    pub input_zero_point: i8,
    /// Zero-point of the int8 output (0 for an `I16` output).
    pub output_zero_point: i8,
    /// int8 weights, symmetric per output channel, in the order `layout` states (see
    /// [`Dense::packed_weights`] and [`Dense::weight`]).
    #[serde(borrow)]
    pub weights: I8s<'a>,
    /// int32 biases with the input offset folded in, `out_dim` of them.
    #[serde(borrow)]
    pub bias: I32s<'a>,
    /// Q31 requantization multipliers in `[2^30, 2^31)`, or 0 for a dead channel; `out_dim`.
    #[serde(borrow)]
    pub multiplier: I32s<'a>,
    /// Requantization shifts in `[-31, 30]` (positive: left); `out_dim`.
    #[serde(borrow)]
    pub shift: I8s<'a>,
    /// Metadata for host-side dequantization: scale of the input.
    pub input_scale: f32,
    /// Metadata: scale of the output.
    pub output_scale: f32,
    /// Metadata: per-output-channel weight scales, `out_dim` of them.
    #[serde(borrow)]
    pub weight_scale: F32s<'a>,
}

impl<'a> Dense<'a> {
    /// The weights in `layout` order, without the alignment bytes a `Tiles4x4` array may start
    /// with. For a layer that has not been validated, whatever the array holds past those.
    pub fn packed_weights(&self) -> &'a [i8] {
        let all = self.weights.as_i8_slice();
        let packed = self
            .layout
            .packed_len(usize::from(self.in_dim), usize::from(self.out_dim));
        all.get(all.len().saturating_sub(packed)..).unwrap_or(all)
    }

    /// Weight (o, i), whatever the layout; 0 outside the shape.
    pub fn weight(&self, o: usize, i: usize) -> i8 {
        if o >= usize::from(self.out_dim) || i >= usize::from(self.in_dim) {
            return 0;
        }
        let k = self.layout.index(usize::from(self.in_dim), o, i);
        self.packed_weights().get(k).copied().unwrap_or(0)
    }
}

/// The tensor shapes and geometry of a convolution layer (format version 3).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConvShape {
    /// Input height.
    pub in_height: u16,
    /// Input width.
    pub in_width: u16,
    /// Input channels.
    pub in_channels: u16,
    /// Output height.
    pub out_height: u16,
    /// Output width.
    pub out_width: u16,
    /// Output channels.
    pub out_channels: u16,
    /// Kernel height and width.
    pub kernel: u8,
    /// Stride in both directions.
    pub stride: u8,
    /// Zero padding on every side.
    pub padding: u8,
}

impl ConvShape {
    /// Values of the input tensor, in 64 bits (never wraps).
    pub fn in_len(&self) -> u64 {
        u64::from(self.in_height) * u64::from(self.in_width) * u64::from(self.in_channels)
    }

    /// Values of the output tensor, in 64 bits.
    pub fn out_len(&self) -> u64 {
        u64::from(self.out_height) * u64::from(self.out_width) * u64::from(self.out_channels)
    }

    /// Values of one patch, `kernel^2 in_channels`: the weight matrix's columns.
    pub fn patch_len(&self) -> u64 {
        u64::from(self.kernel) * u64::from(self.kernel) * u64::from(self.in_channels)
    }

    /// `(size + 2 padding - kernel) / stride + 1`, the output size of a convolution over
    /// `size`, or `None` when the kernel does not fit or the stride is 0.
    pub fn conv_out(&self, size: u16) -> Option<u16> {
        let span =
            (u32::from(size) + 2 * u32::from(self.padding)).checked_sub(u32::from(self.kernel))?;
        let out = span.checked_div(u32::from(self.stride))? + 1;
        u16::try_from(out).ok()
    }

    /// Values of the patch of phase (`ry`, `rx`) of a transposed convolution:
    /// `phase_taps(ry) phase_taps(rx) in_channels`.
    pub fn phase_len(&self, ry: u8, rx: u8) -> u64 {
        u64::from(self.phase_taps(ry))
            * u64::from(self.phase_taps(rx))
            * u64::from(self.in_channels)
    }

    /// Taps of kernel phase `r` along one axis of a transposed convolution: kernel rows
    /// `r, r + stride, ...` below `kernel`.
    pub fn phase_taps(&self, r: u8) -> u8 {
        match self.kernel.checked_sub(r) {
            Some(left) if self.stride > 0 => left.div_ceil(self.stride),
            _ => 0,
        }
    }
}

/// `HxWxC->H'xW'xR`, the tensors a convolution reads and writes (for reports).
impl core::fmt::Display for ConvShape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}x{}x{}->{}x{}x{}",
            self.in_height,
            self.in_width,
            self.in_channels,
            self.out_height,
            self.out_width,
            self.out_channels
        )
    }
}

/// A convolution layer: its shapes and, as a [`Dense`] of `in_dim = kernel^2 in_channels`
/// inputs and `out_dim = out_channels` outputs, its weight matrix and per-channel arrays.
/// Each output position is that dense product applied to the position's patch (FORMAT.md,
/// section 3).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Conv<'a> {
    /// Shapes and geometry.
    pub shape: ConvShape,
    /// Weights (`out_channels` x patch) and per-channel arrays.
    #[serde(borrow)]
    pub matrix: Dense<'a>,
}

impl<'a> Conv<'a> {
    /// For a transposed convolution: the dense layer of phase (`ry`, `rx`), its `R x K_p`
    /// weights (no lead bytes) and `R` biases, sharing the matrix's multipliers, shifts and
    /// quantization metadata (FORMAT.md, section 3). `None` outside `0..stride` or when the
    /// arrays are too short for it (never for a validated layer).
    pub fn phase(&self, ry: u8, rx: u8) -> Option<Dense<'a>> {
        let s = &self.shape;
        if ry >= s.stride || rx >= s.stride {
            return None;
        }
        let m = &self.matrix;
        let r = usize::from(m.out_dim);
        // One pass: where the phase starts, its size, and the whole (for the lead bytes).
        let (mut at, mut total, mut found) = (0usize, 0usize, None);
        let mut index = 0usize;
        for py in 0..s.stride {
            for px in 0..s.stride {
                let k = usize::try_from(s.phase_len(py, px)).ok()?;
                let len = m.layout.packed_len(k, r);
                if (py, px) == (ry, rx) {
                    found = Some((at, len, k, index));
                }
                at += len;
                total += len;
                index += 1;
            }
        }
        let (start, len, k, index) = found?;
        let all = m.weights.as_bytes();
        let lead = all.len().checked_sub(total)?;
        Some(Dense {
            in_dim: u16::try_from(k).ok()?,
            weights: I8s::from_bytes(all.get(lead + start..lead + start + len)?)?,
            bias: m.bias.slice(index * r, r)?,
            ..*m
        })
    }

    /// Bytes of a transposed convolution's packed weights: every phase's matrix in the
    /// layout, without lead bytes.
    pub fn packed_len(&self) -> Option<usize> {
        let s = &self.shape;
        let r = usize::from(self.matrix.out_dim);
        let mut total = 0usize;
        for py in 0..s.stride {
            for px in 0..s.stride {
                let k = usize::try_from(s.phase_len(py, px)).ok()?;
                total = total.checked_add(self.matrix.layout.packed_len(k, r))?;
            }
        }
        Some(total)
    }
}

/// One layer of a network.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum Layer<'a> {
    /// Fully connected.
    #[serde(borrow)]
    Dense(Dense<'a>),
    /// A convolution.
    #[serde(borrow)]
    Conv2d(Conv<'a>),
    /// A transposed convolution (the decoder's upsampling).
    #[serde(borrow)]
    ConvTranspose2d(Conv<'a>),
}

impl<'a> Layer<'a> {
    /// The weight matrix and per-channel arrays: the layer itself for a dense layer, the
    /// per-patch product for a convolution.
    pub fn matrix(&self) -> &Dense<'a> {
        match self {
            Layer::Dense(d) => d,
            Layer::Conv2d(c) | Layer::ConvTranspose2d(c) => &c.matrix,
        }
    }

    /// The weight matrix and per-channel arrays, to change (writers and tests).
    pub fn matrix_mut(&mut self) -> &mut Dense<'a> {
        match self {
            Layer::Dense(d) => d,
            Layer::Conv2d(c) | Layer::ConvTranspose2d(c) => &mut c.matrix,
        }
    }

    /// Values of the longest patch a convolution builds (a transposed convolution's longest
    /// phase); `None` for a dense layer.
    pub fn patch_len(&self) -> Option<usize> {
        match self {
            Layer::Dense(_) => None,
            Layer::Conv2d(c) => Some(usize::from(c.matrix.in_dim)),
            // Phase (0, 0) has the most taps along each axis.
            Layer::ConvTranspose2d(c) => usize::try_from(c.shape.phase_len(0, 0)).ok(),
        }
    }

    /// The weight array without its lead bytes (every phase of a transposed convolution).
    pub fn packed_weights(&self) -> &'a [i8] {
        match self {
            Layer::ConvTranspose2d(c) => {
                let all = c.matrix.weights.as_i8_slice();
                let n = c.packed_len().unwrap_or(all.len()).min(all.len());
                &all[all.len() - n..]
            }
            _ => self.matrix().packed_weights(),
        }
    }

    /// What the layer is, for reports: `dense`, `conv` or `convT`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Layer::Dense(_) => "dense",
            Layer::Conv2d(_) => "conv",
            Layer::ConvTranspose2d(_) => "convT",
        }
    }

    /// The convolution's shapes, for a convolution layer.
    pub fn conv(&self) -> Option<&ConvShape> {
        match self {
            Layer::Dense(_) => None,
            Layer::Conv2d(c) | Layer::ConvTranspose2d(c) => Some(&c.shape),
        }
    }

    /// Values the layer reads, in 64 bits.
    pub fn in_len(&self) -> u64 {
        match self {
            Layer::Dense(d) => u64::from(d.in_dim),
            Layer::Conv2d(c) | Layer::ConvTranspose2d(c) => c.shape.in_len(),
        }
    }

    /// Values the layer writes, in 64 bits.
    pub fn out_len(&self) -> u64 {
        match self {
            Layer::Dense(d) => u64::from(d.out_dim),
            Layer::Conv2d(c) | Layer::ConvTranspose2d(c) => c.shape.out_len(),
        }
    }

    /// Multiply-accumulates of one run, as the kernels compute them: rows times columns, for
    /// a convolution once per output position (padding taps included), for a transposed
    /// convolution with each position's phase.
    pub fn macs(&self) -> u64 {
        let m = self.matrix();
        let rows = u64::from(m.out_dim);
        match self {
            Layer::Dense(_) => u64::from(m.in_dim) * rows,
            Layer::Conv2d(c) => {
                let positions = u64::from(c.shape.out_height) * u64::from(c.shape.out_width);
                positions * u64::from(m.in_dim) * rows
            }
            Layer::ConvTranspose2d(c) => {
                let s = &c.shape;
                let per_axis = |n: u16, r: u8| {
                    // Output positions along an axis whose phase is `r`.
                    (0..n)
                        .filter(|&y| {
                            (u32::from(y) + u32::from(s.padding)) % u32::from(s.stride.max(1))
                                == u32::from(r)
                        })
                        .count() as u64
                };
                let mut total = 0;
                for ry in 0..s.stride {
                    for rx in 0..s.stride {
                        total += per_axis(s.out_height, ry)
                            * per_axis(s.out_width, rx)
                            * s.phase_len(ry, rx);
                    }
                }
                total * rows
            }
        }
    }

    /// Multiply-accumulates of one run whose input lies inside the input tensor: what a
    /// convolution computes, padding taps left out (the denominator peers such as CMSIS-NN
    /// report per-MAC figures in). Equal to [`Layer::macs`] for a dense layer and for a
    /// convolution without padding.
    pub fn useful_macs(&self) -> u64 {
        let m = self.matrix();
        let rows = u64::from(m.out_dim);
        let (c, transposed) = match self {
            Layer::Dense(_) => return u64::from(m.in_dim) * rows,
            Layer::Conv2d(c) => (c, false),
            Layer::ConvTranspose2d(c) => (c, true),
        };
        let s = &c.shape;
        let (k, st, p) = (
            i64::from(s.kernel),
            i64::from(s.stride),
            i64::from(s.padding),
        );
        // Along one axis: the (input, tap) pairs that meet, input `i` of `n_in` reaching
        // output `i s - p + t` of `n_out` (the convolution it transposes, read backwards),
        // or output `o` reading input `o s - p + t`.
        let pairs = |n_in: u16, n_out: u16| -> u64 {
            let (n_in, n_out) = (i64::from(n_in), i64::from(n_out));
            let (outer, inner) = if transposed {
                (n_in, n_out)
            } else {
                (n_out, n_in)
            };
            (0..outer)
                .map(|a| {
                    (0..k)
                        .filter(|t| (0..inner).contains(&(a * st - p + t)))
                        .count() as u64
                })
                .sum()
        };
        let ys = pairs(s.in_height, s.out_height);
        let xs = pairs(s.in_width, s.out_width);
        ys * xs * u64::from(s.in_channels) * rows
    }

    /// The activation after requantization.
    pub fn activation(&self) -> Activation {
        self.matrix().activation
    }

    /// What the layer writes.
    pub fn output_type(&self) -> OutputType {
        self.matrix().output_type
    }
}

/// One network: layers applied in order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Network<'a> {
    /// The layers, first to last.
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
}

impl Network<'_> {
    /// Widest input or output of any layer (values): the size of each activation buffer.
    /// Saturates at `usize::MAX`; validated models stay within [`MAX_WIDTH`].
    pub fn max_width(&self) -> usize {
        let widest = self
            .layers
            .iter()
            .map(|l| l.in_len().max(l.out_len()))
            .max()
            .unwrap_or(0);
        usize::try_from(widest).unwrap_or(usize::MAX)
    }

    /// Weights and biases in all layers (padding and lead bytes of tiled layouts not
    /// counted).
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                let m = l.matrix();
                usize::from(m.in_dim) * usize::from(m.out_dim) + m.bias.len()
            })
            .sum()
    }
}

/// The encoding of versions 1 and 2: networks of dense layers without layer tags.
#[cfg(feature = "legacy")]
pub mod legacy {
    use super::*;

    /// A network as versions 1 and 2 encode it.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct NetworkV2<'a> {
        /// Dense layers, first to last.
        #[serde(borrow)]
        pub layers: heapless::Vec<Dense<'a>, MAX_LAYERS>,
    }

    /// A model as versions 1 and 2 encode it: [`Model`] with [`NetworkV2`] networks.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[allow(missing_docs)]
    pub struct ModelV2<'a> {
        pub kind: ModelKind,
        pub data: DataShape,
        #[serde(borrow)]
        pub latent: Latent<'a>,
        #[serde(borrow)]
        pub encoder: NetworkV2<'a>,
        #[serde(borrow)]
        pub decoder: NetworkV2<'a>,
        #[serde(borrow)]
        pub pixel_table: U8s<'a>,
        #[serde(borrow)]
        pub prior: Prior<'a>,
        #[serde(borrow)]
        pub provenance: Provenance<'a>,
        #[serde(borrow)]
        pub golden: Option<Golden<'a>>,
    }

    impl<'a> From<NetworkV2<'a>> for Network<'a> {
        fn from(n: NetworkV2<'a>) -> Self {
            // Pushes rather than collect(): both hold MAX_LAYERS, and heapless's collect
            // would bring a panic message into a firmware's flash.
            let mut layers = heapless::Vec::new();
            for d in n.layers {
                let _ = layers.push(Layer::Dense(d));
            }
            Network { layers }
        }
    }

    impl<'a> NetworkV2<'a> {
        /// The network, if every layer is dense.
        pub fn of(n: &Network<'a>) -> Option<Self> {
            let mut layers = heapless::Vec::new();
            for l in &n.layers {
                match l {
                    Layer::Dense(d) => layers.push(*d).ok()?,
                    _ => return None,
                }
            }
            Some(NetworkV2 { layers })
        }
    }

    impl<'a> From<ModelV2<'a>> for Model<'a> {
        fn from(m: ModelV2<'a>) -> Self {
            Model {
                kind: m.kind,
                data: m.data,
                latent: m.latent,
                encoder: m.encoder.into(),
                decoder: m.decoder.into(),
                pixel_table: m.pixel_table,
                prior: m.prior,
                provenance: m.provenance,
                golden: m.golden,
            }
        }
    }

    impl<'a> ModelV2<'a> {
        /// The model in the version-2 encoding, if it has dense layers only.
        pub fn of(m: &Model<'a>) -> Option<Self> {
            Some(ModelV2 {
                kind: m.kind,
                data: m.data,
                latent: m.latent,
                encoder: NetworkV2::of(&m.encoder)?,
                decoder: NetworkV2::of(&m.decoder)?,
                pixel_table: m.pixel_table,
                prior: m.prior,
                provenance: m.provenance,
                golden: m.golden.clone(),
            })
        }
    }
}

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

/// The distribution generation draws z from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum Prior<'a> {
    /// N(0, I).
    StandardNormal,
    /// A mixture of diagonal Gaussians (the aggregate posterior).
    #[serde(borrow)]
    Mixture(Mixture<'a>),
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

    /// The oldest format version that can express this model: 3 with a convolution layer or
    /// without an encoder, else 2 with a tiled layer, else 1.
    pub fn min_version(&self) -> u16 {
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

/// Checks the fixed header and the checksum; returns the payload.
pub fn check_header(blob: &[u8]) -> Result<&[u8], Error> {
    header(blob).map(|(_, payload)| payload)
}

/// Checks the fixed header and the checksum; returns the version and the payload.
fn header(blob: &[u8]) -> Result<(u16, &[u8]), Error> {
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
