//! The layers and networks a model is made of: dense layers, convolutions and transposed
//! convolutions, each a weight matrix with its per-channel arrays.

use serde::{Deserialize, Serialize};

use crate::*;

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

/// What a layer computes: "784->400" for a dense layer, "conv 28x28x1->14x14x32 k4 s2 p1"
/// for a convolution; with `{:#}` the short form of the count tables, "784x400" and "conv
/// 28x28x1->14x14x32".
impl core::fmt::Display for Layer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self, f.alternate()) {
            (Layer::Dense(d), false) => write!(f, "{}->{}", d.in_dim, d.out_dim),
            (Layer::Dense(d), true) => write!(f, "{}x{}", d.in_dim, d.out_dim),
            (Layer::Conv2d(c) | Layer::ConvTranspose2d(c), alternate) => {
                let s = &c.shape;
                write!(f, "{} {s}", self.kind_name())?;
                if !alternate {
                    write!(f, " k{} s{} p{}", s.kernel, s.stride, s.padding)?;
                }
                Ok(())
            }
        }
    }
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
