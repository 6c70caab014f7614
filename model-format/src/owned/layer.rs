//! Owned layers: a dense layer's weights, biases and requantization as vectors, and a
//! convolution's shape around them.

use crate::{Activation, Conv, ConvShape, Dense, Layer, LeArray, OutputType, WeightLayout};

pub(super) fn bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

pub(super) fn arr<T: crate::LeElem>(b: &[u8]) -> LeArray<'_, T> {
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
    pub(super) layout: WeightLayout,
    /// The weight array as stored: lead bytes (tiled layouts only), then the packed weights.
    pub(super) weights: Vec<u8>,
    pub(super) bias: Vec<u8>,
    pub(super) multiplier: Vec<u8>,
    pub(super) shift: Vec<u8>,
    pub(super) weight_scale: Vec<u8>,
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

    /// The per-channel arrays, decoded as one `out_dim x in_dim` matrix (weights row-major
    /// whatever the layout). For a transposed convolution's matrix use
    /// [`OwnedLayer::channels`].
    pub fn channels_row_major(&self) -> Channels {
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

    /// The storage order of the weights.
    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    /// The same dense layer with its weights stored in `layout`.
    pub fn with_layout(&self, layout: WeightLayout) -> OwnedDense {
        OwnedLayer::from(self.clone()).with_layout(layout).matrix
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

/// What an owned layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnedOp {
    /// Fully connected.
    Dense,
    /// A convolution of this shape.
    Conv2d(ConvShape),
    /// A transposed convolution of this shape.
    ConvTranspose2d(ConvShape),
}

/// An owned [`Layer`]: what it computes and its weight matrix (a convolution's matrix has
/// one row per output channel and one column per patch value).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedLayer {
    /// Dense, convolution or transposed convolution.
    pub op: OwnedOp,
    /// Weights and per-channel arrays.
    pub matrix: OwnedDense,
}

impl From<OwnedDense> for OwnedLayer {
    fn from(matrix: OwnedDense) -> Self {
        OwnedLayer {
            op: OwnedOp::Dense,
            matrix,
        }
    }
}

/// Each phase of a transposed convolution: (its first column in the logical `R x K` matrix,
/// its columns `K_p`).
fn phase_columns(s: &ConvShape) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for ry in 0..s.stride {
        for rx in 0..s.stride {
            let k = s.phase_len(ry, rx) as usize;
            out.push((at, k));
            at += k;
        }
    }
    out
}

impl OwnedLayer {
    /// A layer from what it computes and its matrix, whose weights are given as the logical
    /// row-major `R x K` matrix (a transposed convolution's columns by phase, FORMAT.md
    /// section 3) and stored row-major; a transposed convolution's bias has `stride^2 R`
    /// entries, phase after phase.
    pub fn new(op: OwnedOp, matrix: OwnedDense) -> OwnedLayer {
        let logical = matrix.channels_row_major().weights;
        OwnedLayer { op, matrix }.stored(&logical, WeightLayout::RowMajor)
    }

    /// The same layer with its weights (`rows`, the logical row-major matrix) stored in
    /// `layout`, without lead bytes (the model writer adds those that align tiles).
    fn stored(mut self, rows: &[i8], layout: WeightLayout) -> OwnedLayer {
        let (k, r) = (
            usize::from(self.matrix.in_dim),
            usize::from(self.matrix.out_dim),
        );
        let pack = |off: usize, n: usize| {
            let mut packed = vec![0u8; layout.packed_len(n, r)];
            for o in 0..r {
                for j in 0..n {
                    packed[layout.index(n, o, j)] = rows[o * k + off + j] as u8;
                }
            }
            packed
        };
        let weights = match self.op {
            OwnedOp::ConvTranspose2d(s) => phase_columns(&s)
                .into_iter()
                .flat_map(|(off, n)| pack(off, n))
                .collect(),
            _ => pack(0, k),
        };
        self.matrix.layout = layout;
        self.matrix.weights = weights;
        self
    }

    /// The per-channel arrays, weights as the logical row-major matrix whatever the layout.
    pub fn channels(&self) -> Channels {
        let mut c = self.matrix.channels_row_major();
        if let (OwnedOp::ConvTranspose2d(s), Layer::ConvTranspose2d(conv)) = (self.op, self.view())
        {
            let (k, r) = (
                usize::from(self.matrix.in_dim),
                usize::from(self.matrix.out_dim),
            );
            let mut rows = vec![0i8; r * k];
            let mut phases = phase_columns(&s).into_iter();
            for ry in 0..s.stride {
                for rx in 0..s.stride {
                    let (off, n) = phases.next().unwrap_or((0, 0));
                    if let Some(p) = conv.phase(ry, rx) {
                        for o in 0..r {
                            for j in 0..n {
                                rows[o * k + off + j] = p.weight(o, j);
                            }
                        }
                    }
                }
            }
            c.weights = rows;
        }
        c
    }

    /// The same layer with other per-channel arrays (logical row-major weights), in the same
    /// layout.
    pub fn with_channels(&self, c: &Channels) -> OwnedLayer {
        let m = OwnedDense::new(
            self.matrix.in_dim,
            self.matrix.out_dim,
            self.matrix.activation,
            self.matrix.output_type,
            (self.matrix.input_zero_point, self.matrix.input_scale),
            (self.matrix.output_zero_point, self.matrix.output_scale),
            c,
        );
        OwnedLayer::new(self.op, m).with_layout(self.matrix.layout)
    }
    /// The borrowed view.
    pub fn view(&self) -> Layer<'_> {
        let matrix = self.matrix.view();
        match self.op {
            OwnedOp::Dense => Layer::Dense(matrix),
            OwnedOp::Conv2d(shape) => Layer::Conv2d(Conv { shape, matrix }),
            OwnedOp::ConvTranspose2d(shape) => Layer::ConvTranspose2d(Conv { shape, matrix }),
        }
    }

    /// The same layer with its weights stored in `layout`.
    pub fn with_layout(&self, layout: WeightLayout) -> OwnedLayer {
        let rows = self.channels().weights;
        self.clone().stored(&rows, layout)
    }

    /// Number of lead bytes before the packed weights.
    pub(super) fn lead(&self) -> usize {
        let v = self.view();
        self.matrix.weights.len() - v.packed_weights().len()
    }

    /// Sets the number of zero lead bytes (0 to 3) before the packed weights.
    pub(super) fn set_lead(&mut self, lead: usize) {
        let old = self.lead();
        self.matrix
            .weights
            .splice(..old, core::iter::repeat_n(0, lead));
    }
}
