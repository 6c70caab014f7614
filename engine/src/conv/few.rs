//! The portable path for convolutions with few output channels (fewer than
//! [`FEW_CHANNELS`](super::FEW_CHANNELS)): the dense kernels work on blocks of four rows and
//! would throw three of four sums away, so each output channel's sum is computed alone, each
//! tap's input pixel read where it lies, with no patch copied. (Where the DSP kernels run,
//! [`super::dsp`] takes the transposed ones instead.)

use tinyvae_format::{Conv, ConvShape, Dense};

use super::{for_each_product, max_patch, Taps};
use crate::dense;

/// Runs a convolution with few output channels: per output position and channel, each tap's
/// input pixel (or the zero-point's pixel, where the tap lies outside the input) dotted with
/// the tap's run of the weight row where it lies, without a patch; false, having done
/// nothing, when the scratch is too small for it.
#[inline(never)]
pub(super) fn few_channels(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) -> bool {
    let s = &c.shape;
    let ch = usize::from(s.in_channels);
    let k = max_patch(c, transposed);
    let kp = k.div_ceil(4) * 4;
    let r = usize::from(c.matrix.out_dim);
    let Some(pad) = patch.get_mut(..ch) else {
        return false;
    };
    let mut rows = match Rows::new(spare, r * kp) {
        Some(rows) => rows,
        None => return false,
    };
    pad.fill(c.matrix.input_zero_point);
    let pad: &[i8] = pad;
    for_each_product(c, transposed, &mut |m, walk| {
        rows.load(&m);
        walk.run(s, &mut |at, taps| {
            for o in 0..r {
                let row = rows.row(o);
                let mut acc = m.bias.get(o).unwrap_or(0);
                let mut j0 = 0;
                for ty in 0..taps.ny {
                    for tx in 0..taps.nx {
                        let px = pixel(s, x, pad, taps, ty, tx);
                        if let Some(w) = row.get(j0..j0 + ch) {
                            acc = acc.wrapping_add(dot(w, px));
                        }
                        j0 += ch;
                    }
                }
                if let Some(out) = y.get_mut(at * r + o) {
                    *out = dense::output_i8(&m, o, acc);
                }
            }
        });
    });
    true
}

/// The input pixel (its `C` values) under tap (`ty`, `tx`) of `t`, or `pad` (the
/// zero-point's) where the tap lies outside the input.
#[inline(always)]
fn pixel<'a>(s: &ConvShape, x: &'a [i8], pad: &'a [i8], t: Taps, ty: usize, tx: usize) -> &'a [i8] {
    let ch = usize::from(s.in_channels);
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    let iy = t.y0.wrapping_add(ty.wrapping_mul(t.dir));
    let ix = t.x0.wrapping_add(tx.wrapping_mul(t.dir));
    if iy < h && ix < w {
        let at = (iy * w + ix) * ch;
        x.get(at..at + ch).unwrap_or(pad)
    } else {
        pad
    }
}

/// A layer's (or phase's) weight rows, `kp` int8 values each (zeros past its columns).
struct Rows<'s> {
    narrow: &'s mut [i8],
    kp: usize,
}

impl<'s> Rows<'s> {
    /// Rows in `spare`, `len` int8 values in all (`None` when it is too short).
    fn new(spare: &'s mut [i8], len: usize) -> Option<Self> {
        let narrow = spare.get_mut(..len)?;
        Some(Rows { narrow, kp: 0 })
    }

    /// Loads the rows of `m`.
    fn load(&mut self, m: &Dense<'_>) {
        let k = usize::from(m.in_dim);
        let kp = k.div_ceil(4) * 4;
        self.kp = kp;
        for (o, row) in self.narrow.chunks_exact_mut(kp).enumerate() {
            if o >= usize::from(m.out_dim) {
                break;
            }
            for (j, w) in row.iter_mut().enumerate() {
                *w = if j < k { m.weight(o, j) } else { 0 };
            }
        }
    }

    /// Row `o` (`kp` values).
    fn row(&self, o: usize) -> &[i8] {
        self.narrow
            .get(o * self.kp..(o + 1) * self.kp)
            .unwrap_or_default()
    }
}

/// One tap's dot product, out of line: inside the position loop the compiler ran short of
/// registers on the Cortex-M0 and spilled in the multiply-accumulate loop.
#[inline(never)]
fn dot(w: &[i8], x: &[i8]) -> i32 {
    dense::dot_i8(w, x)
}
