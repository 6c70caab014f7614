//! Random int8 layers, valid by construction, drawn into the caller's buffers without an
//! allocator: the one generator behind the engine's property tests, the chip's kernel check
//! (`dspcheck`) and benchmarks, and the synthetic models (format tests, fuzz seeds).
//!
//! A layer is a matrix of `R` rows (output channels) by `K` columns, row-major, with the
//! per-channel arrays beside it; a transposed convolution's columns are its phases' blocks
//! side by side (FORMAT.md section 3: the logical matrix) and its bias has one entry per
//! phase and channel, phase after phase. Every bias leaves the accumulator room for the
//! worst input of its row (of its phase's columns), so the drawn layer passes validation.

use crate::ConvShape;

/// A source of uniformly distributed bits.
pub trait Bits {
    /// The next 32 random bits.
    fn next_u32(&mut self) -> u32;
}

/// SplitMix64 (Steele, Lea and Flood): a generator whose whole stream is fixed by its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Bits for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// How a layer's weights and requantization parameters are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Params {
    /// What an exporter writes: weights over the int8 range, multipliers in [2^30, 2^31),
    /// right shifts of 2 to 13.
    Typical,
    /// Anything the format allows: shifts over [-31, 30], zero and extreme multipliers,
    /// biases at the accumulator bound, sometimes every weight -128: most outputs saturate.
    Extreme,
    /// Left shifts (0 to 3) on small accumulators (weights -1 to 1, small biases), so that
    /// the left-shift path's outputs land inside the int8 range instead of saturating.
    Left,
    /// A trained model's look: weights over the int8 range, biases within +-2^12, and each
    /// row's multiplier scaled so that a typical output (an input of int8 values spread as
    /// widely as the weights) is about the given magnitude, +-25%.
    #[cfg(feature = "std")]
    Aimed(f64),
}

impl Params {
    /// The three kinds a kernel test cycles through, by index (modulo 3).
    pub fn kernel_test(i: u32) -> Params {
        [Params::Typical, Params::Extreme, Params::Left][(i % 3) as usize]
    }
}

/// The buffers one matrix is drawn into; each may be longer than the layer needs.
pub struct MatrixMut<'a> {
    /// `R x K`, row-major (the logical matrix).
    pub weights: &'a mut [i8],
    /// `R` per phase, phase after phase.
    pub bias: &'a mut [i32],
    /// `R` Q31 multipliers.
    pub multiplier: &'a mut [i32],
    /// `R` shifts.
    pub shift: &'a mut [i8],
}

/// What the draw chose beside the arrays (a caller may use them or set its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drawn {
    /// A ReLU on the int8 output.
    pub relu: bool,
    /// The input zero-point (a convolution's padding value).
    pub input_zero_point: i8,
    /// The output zero-point.
    pub output_zero_point: i8,
}

/// A draw that cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrawError {
    /// A buffer of [`MatrixMut`] is shorter than the layer: `needed` entries of the named
    /// array.
    BufferTooSmall {
        /// Which array.
        array: &'static str,
        /// Entries the layer needs.
        needed: usize,
    },
    /// The layer has no rows or no columns.
    Empty,
}

/// Draws a dense `inputs -> outputs` layer.
pub fn dense(
    bits: &mut impl Bits,
    params: Params,
    (inputs, outputs): (usize, usize),
    m: MatrixMut<'_>,
) -> Result<Drawn, DrawError> {
    matrix(bits, params, outputs, [inputs].into_iter(), m)
}

/// Draws the matrix of a convolution of shape `s` (a transposed one when `transposed`:
/// `stride^2` phases of `phase_len` columns each).
pub fn conv(
    bits: &mut impl Bits,
    params: Params,
    s: &ConvShape,
    transposed: bool,
    m: MatrixMut<'_>,
) -> Result<Drawn, DrawError> {
    let rows = usize::from(s.out_channels);
    if transposed {
        let st = s.stride;
        let phases = (0..st).flat_map(move |ry| (0..st).map(move |rx| (ry, rx)));
        let cols = phases.map(|(ry, rx)| usize::try_from(s.phase_len(ry, rx)).unwrap_or(0));
        matrix(bits, params, rows, cols, m)
    } else {
        let k = usize::try_from(s.patch_len()).unwrap_or(usize::MAX);
        matrix(bits, params, rows, [k].into_iter(), m)
    }
}

/// The largest convolution [`conv_shape`] may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeLimits {
    /// Matrix columns (values of one patch).
    pub cols: usize,
    /// Matrix rows (output channels).
    pub rows: usize,
    /// Values of the input tensor and of the output tensor, each.
    pub len: usize,
}

/// Draws a convolution's geometry: kernel 1 to 5, stride 1 to min(kernel, 3), padding below
/// the kernel, 1 to 32 input channels (so that the tile loops' unrolled iterations are
/// entered at every offset), 1 to 5 or 1 to 40 output channels, a 1 x 1 to
/// 10 x 10 image on the large side (the input of a convolution, the output of a transposed
/// one, which runs the same geometry backward). `None` when the draw is outside `limits` or
/// leaves no output (draw again).
pub fn conv_shape(
    bits: &mut impl Bits,
    transposed: bool,
    limits: ShapeLimits,
) -> Option<ConvShape> {
    let mut pick = |n: u32| (bits.next_u32() % n) as u16;
    let kernel = 1 + pick(5) as u8;
    let stride = 1 + pick(u32::from(kernel).min(3)) as u8;
    let padding = pick(u32::from(kernel)) as u8;
    let in_channels = 1 + pick(32);
    let many = pick(2) == 0;
    let out_channels = 1 + pick(if many { 40 } else { 5 });
    let (big_h, big_w) = (1 + pick(10), 1 + pick(10));
    let mut s = ConvShape {
        in_height: big_h,
        in_width: big_w,
        in_channels,
        out_height: 0,
        out_width: 0,
        out_channels,
        kernel,
        stride,
        padding,
    };
    let (small_h, small_w) = (s.conv_out(big_h)?, s.conv_out(big_w)?);
    if small_h == 0 || small_w == 0 {
        return None;
    }
    if transposed {
        (s.out_height, s.out_width) = (big_h, big_w);
        (s.in_height, s.in_width) = (small_h, small_w);
    } else {
        (s.out_height, s.out_width) = (small_h, small_w);
    }
    let too_big = |n: u64| n > limits.len as u64;
    let fits = s.patch_len() <= limits.cols as u64
        && usize::from(out_channels) <= limits.rows
        && !too_big(s.in_len())
        && !too_big(s.out_len());
    fits.then_some(s)
}

/// Random int8 inputs: a quarter of the time all -128, a quarter all 127 (the largest
/// products), else uniform.
pub fn inputs(bits: &mut impl Bits, x: &mut [i8]) {
    let mode = bits.next_u32() % 4;
    for v in x.iter_mut() {
        *v = match mode {
            0 => -128,
            1 => 127,
            _ => bits.next_u32() as i8,
        };
    }
}

/// Draws `rows` rows whose phases have the columns `phases` yields (one phase for a dense
/// layer or a convolution). The order of draws is fixed: the zero-points and ReLU, the
/// weights row by row, each row's multiplier and shift, each phase's biases.
fn matrix(
    bits: &mut impl Bits,
    params: Params,
    rows: usize,
    phases: impl Iterator<Item = usize> + Clone,
    m: MatrixMut<'_>,
) -> Result<Drawn, DrawError> {
    let cols: usize = phases.clone().sum();
    let nphases = phases.clone().count();
    if rows == 0 || cols == 0 {
        return Err(DrawError::Empty);
    }
    let fit = |array: &'static str, have: usize, needed: usize| {
        (have >= needed)
            .then_some(())
            .ok_or(DrawError::BufferTooSmall { array, needed })
    };
    fit("weights", m.weights.len(), rows * cols)?;
    fit("bias", m.bias.len(), rows * nphases)?;
    fit("multiplier", m.multiplier.len(), rows)?;
    fit("shift", m.shift.len(), rows)?;
    let drawn = Drawn {
        relu: bits.next_u32() & 1 == 1,
        input_zero_point: bits.next_u32() as i8,
        output_zero_point: bits.next_u32() as i8,
    };
    let weights = &mut m.weights[..rows * cols];
    for w in weights.iter_mut() {
        *w = match params {
            Params::Left => (bits.next_u32() % 3) as i8 - 1,
            _ => bits.next_u32() as i8,
        };
    }
    if params == Params::Extreme && bits.next_u32().is_multiple_of(4) {
        weights.fill(-128);
    }
    for o in 0..rows {
        (m.multiplier[o], m.shift[o]) = requantization(bits, params, cols / nphases);
    }
    let mut first = 0;
    for (p, k) in phases.enumerate() {
        for o in 0..rows {
            let row = &weights[o * cols + first..o * cols + first + k];
            let abs: i64 = row.iter().map(|&w| i64::from(w).abs()).sum();
            // The accumulator's room beside the worst input (every value -128).
            let room = i64::from(i32::MAX) - 128 * abs;
            m.bias[p * rows + o] = bias(bits, params, room);
        }
        first += k;
    }
    Ok(drawn)
}

/// One row's multiplier and shift, for rows of about `cols` columns.
#[cfg_attr(not(feature = "std"), allow(unused_variables))]
fn requantization(bits: &mut impl Bits, params: Params, cols: usize) -> (i32, i8) {
    let normal = |bits: &mut dyn FnMut() -> u32| (1 << 30) | (bits() >> 2) as i32;
    let mut next = || bits.next_u32();
    match params {
        Params::Typical => (normal(&mut next), -((next() % 12) as i8) - 2),
        Params::Left => (normal(&mut next), (next() % 4) as i8),
        Params::Extreme => {
            let m = match next() % 4 {
                0 => 0,
                1 => i32::MAX,
                2 => 1 << 30,
                _ => normal(&mut next),
            };
            (m, (next() % 62) as i8 - 31)
        }
        #[cfg(feature = "std")]
        Params::Aimed(target) => {
            // Typical |acc| ~ sqrt(cols) 73 73 (73: the spread of uniform int8 values).
            let typical = (cols.max(1) as f64).sqrt() * 73.0 * 73.0;
            let jitter = 0.75 + 0.5 * f64::from(next() % 1000) / 1000.0;
            crate::tables::quantize_multiplier(target / typical * jitter).unwrap_or((0, 0))
        }
    }
}

/// One bias, within `room` of the accumulator's bound.
fn bias(bits: &mut impl Bits, params: Params, room: i64) -> i32 {
    let r = bits.next_u32();
    let b = match params {
        Params::Typical => i64::from((r as i32) >> 14),
        Params::Left => i64::from((r as i32) >> 25),
        Params::Extreme => match r % 3 {
            0 => room,
            1 => -room,
            _ => (i64::from(bits.next_u32() as i32) * room) >> 31,
        },
        #[cfg(feature = "std")]
        Params::Aimed(_) => i64::from((r as i32) >> 19),
    };
    b.clamp(-room, room) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(params: Params, rows: usize, cols: usize, seed: u64) -> (Vec<i8>, Vec<i32>) {
        let (mut w, mut b) = (vec![0i8; rows * cols], vec![0i32; rows]);
        let (mut m, mut s) = (vec![0i32; rows], vec![0i8; rows]);
        let buffers = MatrixMut {
            weights: &mut w,
            bias: &mut b,
            multiplier: &mut m,
            shift: &mut s,
        };
        let drawn = dense(&mut SplitMix(seed), params, (cols, rows), buffers);
        assert!(drawn.is_ok());
        (w, b)
    }

    #[test]
    fn every_bias_leaves_room_for_the_worst_input() {
        for seed in 0..200 {
            for p in 0..3 {
                let (w, b) = draw(Params::kernel_test(p), 7, 33, seed);
                for (row, &b) in w.chunks(33).zip(&b) {
                    let worst: i64 = row.iter().map(|&w| 128 * i64::from(w).abs()).sum();
                    assert!(worst + i64::from(b).abs() <= i64::from(i32::MAX));
                }
            }
        }
    }

    #[test]
    fn the_stream_is_fixed_by_the_seed() {
        assert_eq!(
            draw(Params::Typical, 3, 5, 9),
            draw(Params::Typical, 3, 5, 9)
        );
        assert_ne!(
            draw(Params::Typical, 3, 5, 9),
            draw(Params::Typical, 3, 5, 10)
        );
    }

    #[test]
    fn short_buffers_are_refused_by_name() {
        let (mut w, mut b, mut m, mut s) = ([0i8; 10], [0i32; 2], [0i32; 2], [0i8; 2]);
        let buffers = MatrixMut {
            weights: &mut w,
            bias: &mut b,
            multiplier: &mut m,
            shift: &mut s,
        };
        let e = dense(&mut SplitMix(1), Params::Typical, (6, 2), buffers);
        assert_eq!(
            e,
            Err(DrawError::BufferTooSmall {
                array: "weights",
                needed: 12
            })
        );
    }
}
