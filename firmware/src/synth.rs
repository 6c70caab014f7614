//! Random int8 layers built in RAM, in both weight layouts, for the kernel equivalence test
//! (`dspcheck`) and the benchmarks (`bench`).

use tinyvae_engine::rng::Rng;
use tinyvae_format::{Activation, Dense, LeArray, OutputType, WeightLayout};

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
            *w = rng.next_u32() as u8;
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
