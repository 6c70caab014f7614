//! Random int8 layers built in RAM, in both weight layouts, for the kernel equivalence test
//! (`dspcheck`) and the benchmarks (`bench`).

use tinyvae_engine::rng::Rng;
use tinyvae_format::{Activation, Conv, ConvShape, Dense, LeArray, OutputType, WeightLayout};

/// Largest weight count a layer may have here (784 x 400).
pub const MAX_WEIGHTS: usize = 784 * 400;
/// Largest output count.
pub const MAX_OUT: usize = 1024;

/// How the requantization parameters are drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Params {
    /// What an exporter writes: multipliers in [2^30, 2^31), shifts around -8.
    Typical,
    /// Anything the format allows: shifts over [-31, 30], some zero multipliers, extreme
    /// multipliers, biases at the accumulator bound: most outputs saturate.
    Extreme,
    /// Left shifts (0 to 3) on small accumulators (weights -1 to 1, small biases), so that
    /// the left-shift path's outputs land inside the int8 range instead of saturating.
    Left,
}

/// Buffers one layer lives in: the same weights row-major and in 4 x 4 tiles.
pub struct LayerBufs {
    rows: [u8; MAX_WEIGHTS],
    tiles: crate::Aligned<[u8; MAX_WEIGHTS + 4096]>,
    bias: [u8; 4 * MAX_OUT],
    multiplier: [u8; 4 * MAX_OUT],
    shift: [u8; MAX_OUT],
    shape: (usize, usize),
    relu: bool,
    zero_point: i8,
    /// A transposed convolution's tiled bytes and phase count.
    phase_bytes: (usize, usize),
}

impl LayerBufs {
    /// Zeroed buffers (place them in a `static`: they are large).
    pub const fn new() -> Self {
        LayerBufs {
            rows: [0; MAX_WEIGHTS],
            tiles: crate::Aligned([0; MAX_WEIGHTS + 4096]),
            bias: [0; 4 * MAX_OUT],
            multiplier: [0; 4 * MAX_OUT],
            shift: [0; MAX_OUT],
            shape: (0, 0),
            relu: false,
            zero_point: 0,
            phase_bytes: (0, 0),
        }
    }

    /// Draws an `inp -> out` layer. Returns false when it does not fit the buffers.
    pub fn fill(&mut self, rng: &mut Rng, inp: usize, out: usize, params: Params) -> bool {
        let tiled_len = WeightLayout::Tiles4x4.packed_len(inp, out);
        if inp == 0 || out == 0 || inp * out > MAX_WEIGHTS || out > MAX_OUT {
            return false;
        }
        if tiled_len > self.tiles.0.len() {
            return false;
        }
        self.shape = (inp, out);
        self.relu = rng.next_u32() & 1 == 1;
        self.zero_point = rng.next_u32() as i8;
        for w in &mut self.rows[..inp * out] {
            *w = match params {
                Params::Left => ((rng.next_u32() % 3) as i8 - 1) as u8,
                _ => rng.next_u32() as u8,
            };
        }
        if params == Params::Extreme && rng.next_u32().is_multiple_of(4) {
            // The largest products: every weight -128.
            self.rows[..inp * out].fill(0x80);
        }
        self.tiles.0[..tiled_len].fill(0);
        for o in 0..out {
            for i in 0..inp {
                let k = WeightLayout::Tiles4x4.index(inp, o, i);
                self.tiles.0[k] = self.rows[o * inp + i];
            }
        }
        for o in 0..out {
            let sum: i64 = self.rows[o * inp..(o + 1) * inp]
                .iter()
                .map(|&w| i64::from(w as i8).abs())
                .sum();
            let room = i64::from(i32::MAX) - 128 * sum;
            let r = rng.next_u32();
            let (b, m, s) = match params {
                Params::Typical => (
                    (r as i32) >> 14,
                    (1 << 30) | (rng.next_u32() >> 2) as i32,
                    -((rng.next_u32() % 12) as i8) - 2,
                ),
                Params::Left => (
                    (r as i32) >> 25,
                    (1 << 30) | (rng.next_u32() >> 2) as i32,
                    (rng.next_u32() % 4) as i8,
                ),
                Params::Extreme => {
                    let b = match r % 3 {
                        0 => room as i32,
                        1 => -(room as i32),
                        _ => ((i64::from(rng.next_u32() as i32) * room) >> 31) as i32,
                    };
                    let m = match rng.next_u32() % 4 {
                        0 => 0,
                        1 => i32::MAX,
                        2 => 1 << 30,
                        _ => (1 << 30) | (rng.next_u32() >> 2) as i32,
                    };
                    (b, m, (rng.next_u32() % 62) as i8 - 31)
                }
            };
            self.bias[4 * o..4 * o + 4].copy_from_slice(&b.to_le_bytes());
            self.multiplier[4 * o..4 * o + 4].copy_from_slice(&m.to_le_bytes());
            self.shift[o] = s as u8;
        }
        true
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
            activation: match (i16_out, self.relu) {
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
            output_zero_point: if i16_out { 0 } else { self.zero_point },
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
    /// Draws a random convolution geometry whose matrix is at most `max_k` columns by
    /// `max_r` rows, with input and output tensors of at most `max_len` values; then its
    /// weights and per-channel parameters (FORMAT.md section 3: a transposed convolution's
    /// phases one after the other, a bias per phase and channel). Returns the shape, or
    /// `None` when the draw does not fit (draw again).
    pub fn fill_conv(
        &mut self,
        rng: &mut Rng,
        transposed: bool,
        (max_k, max_r, max_len): (usize, usize, usize),
        params: Params,
    ) -> Option<ConvShape> {
        let pick = |rng: &mut Rng, n: u32| (rng.next_u32() % n) as u16;
        let kernel = 1 + pick(rng, 5) as u8;
        let stride = 1 + pick(rng, u32::from(kernel).min(3)) as u8;
        let padding = pick(rng, u32::from(kernel)) as u8;
        let channels = 1 + pick(rng, 12);
        let many = rng.next_u32() & 1 == 0;
        let r = 1 + pick(rng, if many { 40 } else { 5 });
        let mut s = ConvShape {
            in_height: 1 + pick(rng, 10),
            in_width: 1 + pick(rng, 10),
            in_channels: channels,
            out_height: 0,
            out_width: 0,
            out_channels: r,
            kernel,
            stride,
            padding,
        };
        // The forward convolution from `big` to `small`; a transposed one runs it backward.
        let (small_h, small_w) = (s.conv_out(s.in_height)?, s.conv_out(s.in_width)?);
        if small_h == 0 || small_w == 0 {
            return None;
        }
        if transposed {
            (s.out_height, s.out_width) = (s.in_height, s.in_width);
            (s.in_height, s.in_width) = (small_h, small_w);
        } else {
            (s.out_height, s.out_width) = (small_h, small_w);
        }
        let (k, r) = (s.patch_len() as usize, usize::from(r));
        let too_big = |n: u64| n > max_len as u64;
        if k > max_k || r > max_r || too_big(s.in_len()) || too_big(s.out_len()) {
            return None;
        }
        if !self.fill(rng, k, r, params) {
            return None;
        }
        self.zero_point = rng.next_u32() as i8;
        if transposed {
            self.phases(rng, &s, params)?;
        }
        Some(s)
    }

    /// Re-lays the `R x K` random bytes as a transposed convolution's phase matrices (each
    /// `R x K_p`, one after the other; tiled phase by phase) with a bias per phase and
    /// channel, each within its phase row's accumulator bound.
    fn phases(&mut self, rng: &mut Rng, s: &ConvShape, params: Params) -> Option<()> {
        let r = usize::from(s.out_channels);
        let (mut at, mut tiled, mut p) = (0usize, 0usize, 0usize);
        self.tiles.0.fill(0);
        for ry in 0..s.stride {
            for rx in 0..s.stride {
                let kp = s.phase_len(ry, rx) as usize;
                let len = WeightLayout::Tiles4x4.packed_len(kp, r);
                if tiled + len > self.tiles.0.len() || 4 * (p + 1) * r > self.bias.len() {
                    return None;
                }
                for o in 0..r {
                    let row = &self.rows[at + o * kp..at + (o + 1) * kp];
                    for (i, &w) in row.iter().enumerate() {
                        let idx = WeightLayout::Tiles4x4.index(kp, o, i);
                        self.tiles.0[tiled + idx] = w;
                    }
                    let sum: i64 = row.iter().map(|&w| i64::from(w as i8).abs()).sum();
                    let room = i64::from(i32::MAX) - 128 * sum;
                    let b = match params {
                        Params::Typical => (rng.next_u32() as i32) >> 14,
                        Params::Left => (rng.next_u32() as i32) >> 25,
                        Params::Extreme => match rng.next_u32() % 3 {
                            0 => room as i32,
                            1 => -(room as i32),
                            _ => ((i64::from(rng.next_u32() as i32) * room) >> 31) as i32,
                        },
                    };
                    let at_bias = 4 * (p * r + o);
                    self.bias[at_bias..at_bias + 4].copy_from_slice(&b.to_le_bytes());
                }
                (at, tiled, p) = (at + r * kp, tiled + len, p + 1);
            }
        }
        self.phase_bytes = (tiled, p);
        Some(())
    }

    /// The convolution drawn by [`LayerBufs::fill_conv`], its matrix in `layout`.
    pub fn conv(&self, s: &ConvShape, transposed: bool, layout: WeightLayout) -> Conv<'_> {
        let mut m = self.dense(layout, false);
        m.input_zero_point = self.zero_point;
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

/// Random int8 inputs (with some runs of the extreme values).
pub fn inputs(rng: &mut Rng, x: &mut [i8]) {
    let mode = rng.next_u32() % 4;
    for v in x.iter_mut() {
        *v = match mode {
            0 => -128,
            1 => 127,
            _ => rng.next_u32() as i8,
        };
    }
}
