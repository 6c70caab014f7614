//! Random int8 layers built in RAM, in both weight layouts, for the kernel equivalence test
//! (`dspcheck`) and the benchmarks (`bench`): drawn by the generator the host's property
//! tests and synthetic models use ([`tinyvae_format::testkit::random`]), then laid out here.

use tinyvae_format::testkit::random::{self, Bits, Drawn, MatrixMut, ShapeLimits};
use tinyvae_format::{
    bytes_as_i8_mut, Activation, Conv, ConvShape, Dense, LeArray, OutputType, WeightLayout,
};

pub use tinyvae_format::testkit::random::{inputs, Params};

/// Largest weight count a layer may have here (784 x 400; on a board with little RAM,
/// the Cortex-M0's 16 KiB, 2,048).
#[cfg(feature = "large-ram")]
pub const MAX_WEIGHTS: usize = 784 * 400;
/// Largest weight count a layer may have here (784 x 400; on a board with little RAM,
/// the Cortex-M0's 16 KiB, 2,048).
#[cfg(not(feature = "large-ram"))]
pub const MAX_WEIGHTS: usize = 2048;
/// Largest output count (of a transposed convolution: phases times channels).
pub const MAX_OUT: usize = if cfg!(feature = "large-ram") {
    1024
} else {
    128
};
/// Room for the tiles' padding beyond [`MAX_WEIGHTS`].
const TILE_PAD: usize = if cfg!(feature = "large-ram") {
    4096
} else {
    1024
};

/// Buffers one layer lives in: the same weights row-major and in 4 x 4 tiles.
pub struct LayerBufs {
    rows: [u8; MAX_WEIGHTS],
    tiles: crate::Aligned<[u8; MAX_WEIGHTS + TILE_PAD]>,
    drawn: [[i32; MAX_OUT]; 2],
    bias: [u8; 4 * MAX_OUT],
    multiplier: [u8; 4 * MAX_OUT],
    shift: [u8; MAX_OUT],
    shape: (usize, usize),
    chosen: Drawn,
    /// A transposed convolution's tiled bytes and phase count.
    phase_bytes: (usize, usize),
}

impl LayerBufs {
    /// Zeroed buffers (place them in a `static`: they are large).
    pub const fn new() -> Self {
        LayerBufs {
            rows: [0; MAX_WEIGHTS],
            tiles: crate::Aligned([0; MAX_WEIGHTS + TILE_PAD]),
            drawn: [[0; MAX_OUT]; 2],
            bias: [0; 4 * MAX_OUT],
            multiplier: [0; 4 * MAX_OUT],
            shift: [0; MAX_OUT],
            shape: (0, 0),
            chosen: Drawn {
                relu: false,
                input_zero_point: 0,
                output_zero_point: 0,
            },
            phase_bytes: (0, 0),
        }
    }

    /// Draws an `inp -> out` layer. Returns false when it does not fit the buffers.
    pub fn fill(&mut self, bits: &mut impl Bits, inp: usize, out: usize, params: Params) -> bool {
        if inp * out > MAX_WEIGHTS
            || WeightLayout::Tiles4x4.packed_len(inp, out) > self.tiles.0.len()
        {
            return false;
        }
        let [bias, multiplier] = &mut self.drawn;
        let mut shift = [0i8; MAX_OUT];
        let m = MatrixMut {
            weights: bytes_as_i8_mut(&mut self.rows),
            bias,
            multiplier,
            shift: &mut shift,
        };
        let Ok(chosen) = random::dense(bits, params, (inp, out), m) else {
            return false;
        };
        self.shape = (inp, out);
        self.keep(chosen, out, &shift);
        self.tiles.0.fill(0);
        self.tile(0, 0, inp, out);
        true
    }

    /// Keeps what the draw chose and the per-channel arrays as the format's bytes.
    fn keep(&mut self, chosen: Drawn, out: usize, shift: &[i8]) {
        self.chosen = chosen;
        let [bias, multiplier] = &self.drawn;
        for (b, v) in self.bias.chunks_exact_mut(4).zip(bias) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        for (b, v) in self.multiplier.chunks_exact_mut(4).zip(&multiplier[..out]) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        for (b, &v) in self.shift.iter_mut().zip(&shift[..out]) {
            *b = v as u8;
        }
    }

    /// Tiles the row-major `out x n` matrix at `rows[from..]` (the whole layer, or one
    /// phase of a transposed convolution) into `tiles[at..]`; returns the bytes written.
    fn tile(&mut self, at: usize, from: usize, n: usize, out: usize) -> usize {
        for o in 0..out {
            for j in 0..n {
                let idx = WeightLayout::Tiles4x4.index(n, o, j);
                self.tiles.0[at + idx] = self.rows[from + o * n + j];
            }
        }
        WeightLayout::Tiles4x4.packed_len(n, out)
    }

    /// The layer in `layout`, with an int8 output (or int16 when `i16_out`).
    pub fn dense(&self, layout: WeightLayout, i16_out: bool) -> Dense<'_> {
        let (inp, out) = self.shape;
        let weights: &[u8] = match layout {
            WeightLayout::RowMajor => &self.rows[..inp * out],
            WeightLayout::Tiles4x4 => &self.tiles.0[..layout.packed_len(inp, out)],
        };
        Dense {
            in_dim: inp as u16,
            out_dim: out as u16,
            activation: match (i16_out, self.chosen.relu) {
                (false, true) => Activation::Relu,
                _ => Activation::None,
            },
            output_type: if i16_out {
                OutputType::I16
            } else {
                OutputType::I8
            },
            layout,
            input_zero_point: 0,
            output_zero_point: if i16_out {
                0
            } else {
                self.chosen.output_zero_point
            },
            weights: arr(weights),
            bias: arr(&self.bias[..4 * out]),
            multiplier: arr(&self.multiplier[..4 * out]),
            shift: arr(&self.shift[..out]),
            input_scale: 1.0,
            output_scale: 1.0,
            weight_scale: LeArray::empty(),
        }
    }
}

impl LayerBufs {
    /// Draws a random convolution geometry within `limits` ([`random::conv_shape`]), then
    /// its weights and per-channel parameters (FORMAT.md section 3: a transposed
    /// convolution's phases one after the other, a bias per phase and channel). Returns the
    /// shape, or `None` when the draw does not fit (draw again).
    pub fn fill_conv(
        &mut self,
        bits: &mut impl Bits,
        transposed: bool,
        limits: ShapeLimits,
        params: Params,
    ) -> Option<ConvShape> {
        self.fill_conv_if(bits, (transposed, limits, params), |_| true)
    }

    /// [`LayerBufs::fill_conv`] for a shape `wanted` accepts only (`None`, having drawn
    /// no weights, for any other: draw again).
    pub fn fill_conv_if(
        &mut self,
        bits: &mut impl Bits,
        (transposed, limits, params): (bool, ShapeLimits, Params),
        wanted: impl Fn(&ConvShape) -> bool,
    ) -> Option<ConvShape> {
        let s = random::conv_shape(bits, transposed, limits).filter(|s| wanted(s))?;
        let (k, r) = (s.patch_len() as usize, usize::from(s.out_channels));
        let phases = if transposed {
            usize::from(s.stride).pow(2)
        } else {
            1
        };
        if phases > 9 || phases * r > MAX_OUT || !self.fill_matrix(bits, &s, transposed, params) {
            return None;
        }
        self.shape = (k, r);
        if transposed {
            // The logical matrix (drawn into the tile buffer) stored as the format does:
            // each phase's columns as their own row-major matrix, phase after phase; then
            // each phase tiled on its own.
            let (mut first, mut lens) = (0, [0usize; 9]);
            for (p, n) in lens.iter_mut().take(phases).enumerate() {
                *n = s.phase_len(
                    (p / usize::from(s.stride)) as u8,
                    (p % usize::from(s.stride)) as u8,
                ) as usize;
                for o in 0..r {
                    for j in 0..*n {
                        self.rows[r * first + o * *n + j] = self.tiles.0[o * k + first + j];
                    }
                }
                first += *n;
            }
            self.tiles.0.fill(0);
            let (mut from, mut at) = (0, 0);
            for &n in &lens[..phases] {
                if at + WeightLayout::Tiles4x4.packed_len(n, r) > self.tiles.0.len() {
                    return None;
                }
                at += self.tile(at, from, n, r);
                from += r * n;
            }
            self.phase_bytes = (at, phases);
        } else {
            self.tiles.0.fill(0);
            self.tile(0, 0, k, r);
        }
        Some(s)
    }

    /// The matrix of convolution `s`, drawn into the buffers.
    fn fill_matrix(
        &mut self,
        bits: &mut impl Bits,
        s: &ConvShape,
        transposed: bool,
        params: Params,
    ) -> bool {
        let (k, r) = (s.patch_len() as usize, usize::from(s.out_channels));
        if k * r > MAX_WEIGHTS || WeightLayout::Tiles4x4.packed_len(k, r) > self.tiles.0.len() {
            return false;
        }
        let [bias, multiplier] = &mut self.drawn;
        let mut shift = [0i8; MAX_OUT];
        // A transposed convolution's logical matrix is not its stored order: drawn aside.
        let weights = if transposed {
            &mut self.tiles.0[..]
        } else {
            &mut self.rows[..]
        };
        let m = MatrixMut {
            weights: bytes_as_i8_mut(weights),
            bias,
            multiplier,
            shift: &mut shift,
        };
        let Ok(chosen) = random::conv(bits, params, s, transposed, m) else {
            return false;
        };
        self.keep(chosen, r, &shift);
        true
    }

    /// The convolution drawn by [`LayerBufs::fill_conv`], its matrix in `layout`.
    pub fn conv(&self, s: &ConvShape, transposed: bool, layout: WeightLayout) -> Conv<'_> {
        let mut m = self.dense(layout, false);
        m.input_zero_point = self.chosen.input_zero_point;
        if transposed {
            let (tiled, phases) = self.phase_bytes;
            let r = usize::from(s.out_channels);
            if layout == WeightLayout::Tiles4x4 {
                m.weights = arr(&self.tiles.0[..tiled]);
            }
            m.bias = arr(&self.bias[..4 * phases * r]);
        }
        Conv {
            shape: *s,
            matrix: m,
        }
    }
}

fn arr<T: tinyvae_format::LeElem>(b: &[u8]) -> LeArray<'_, T> {
    LeArray::from_bytes(b).unwrap_or(LeArray::empty())
}

impl Default for LayerBufs {
    fn default() -> Self {
        Self::new()
    }
}
