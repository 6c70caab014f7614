//! The portable path for convolutions with few output channels (fewer than
//! [`FEW_CHANNELS`](super::FEW_CHANNELS)): the dense kernels work on blocks of four rows and
//! would throw three of four sums away, so each output channel's sum is computed alone, each
//! tap's input pixel read where it lies, with no patch copied: a row of taps lying inside the
//! input is one dot product over its neighbouring pixels, the weights stored in the pixels'
//! order. (Where the DSP kernels run, [`super::dsp`] takes the transposed ones instead.)

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
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    for_each_product(c, transposed, &mut |m, walk| {
        // A row of taps reads `nx` neighbouring pixels, backward in a transposed layer's
        // phase: its weights are stored in the order of the pixels in memory, so that a row
        // lying inside the input is one dot product.
        let back = walk.dir != 1;
        rows.load(&m, walk.nx, ch, back);
        walk.run(s, &mut |at, taps| {
            let run = taps.nx * ch;
            for o in 0..r {
                let row = rows.row(o);
                let mut acc = m.bias.get(o).unwrap_or(0);
                for ty in 0..taps.ny {
                    let iy = taps.y0.wrapping_add(ty.wrapping_mul(taps.dir));
                    // The leftmost pixel the row reads.
                    let left = if back {
                        taps.x0.wrapping_sub(taps.nx - 1)
                    } else {
                        taps.x0
                    };
                    let j0 = ty * run;
                    if iy < h && left < w && left + taps.nx <= w {
                        let at = (iy * w + left) * ch;
                        if let (Some(ws), Some(px)) = (row.get(j0..j0 + run), x.get(at..at + run)) {
                            acc = acc.wrapping_add(dot_run(ws, px));
                        }
                        continue;
                    }
                    // A row reaching past the input's edge: tap by tap, the zero-point's
                    // pixel outside.
                    for tx in 0..taps.nx {
                        let px = pixel(s, x, pad, taps, ty, tx);
                        let t = if back { taps.nx - 1 - tx } else { tx };
                        let j = j0 + t * ch;
                        if let Some(ws) = row.get(j..j + ch) {
                            acc = acc.wrapping_add(dot(ws, px));
                        }
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

    /// Loads the rows of `m`, whose columns are taps of `ch` values, `nx` taps to a row of
    /// the kernel; with `back`, each kernel row's taps in reverse order.
    fn load(&mut self, m: &Dense<'_>, nx: usize, ch: usize, back: bool) {
        let k = usize::from(m.in_dim);
        let kp = k.div_ceil(4) * 4;
        self.kp = kp;
        let run = (nx * ch).max(1);
        for (o, row) in self.narrow.chunks_exact_mut(kp).enumerate() {
            if o >= usize::from(m.out_dim) {
                break;
            }
            for (j, w) in row.iter_mut().enumerate() {
                // Column j of the stored row: kernel row j / run, tap (j % run) / ch
                // (reversed with `back`), channel j % ch; the matrix's own column order is
                // kernel row, tap, channel.
                let src = if back && j < k {
                    let (base, t, c) = (j - j % run, (j % run) / ch.max(1), j % ch.max(1));
                    base + (nx - 1 - t) * ch + c
                } else {
                    j
                };
                *w = if j < k { m.weight(o, src) } else { 0 };
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

/// One row of taps' (or one tap's) dot product, out of line: inlined into the position loop
/// it ran short of registers on the Cortex-M0 and M3 and spilled (measured: 2% and 25% more
/// instructions on their last decoder layer).
#[inline(never)]
fn dot(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let whole = n / 4 * 4;
    let (w, x) = (&w[..n], &x[..n]);
    let tail = dense::dot_i8(&w[whole..], &x[whole..]);
    tail.wrapping_add(dot4(&w[..whole], &x[..whole]))
}

/// A row of taps' dot product: on ARMv6-M the assembly loop in line when the length is a
/// multiple of four (measured: 2% fewer instructions on `conv-mcu`'s last layer than a
/// call); elsewhere [`dot`] (in line, the compiled loop spilled: 23% more on the M3's).
#[inline(always)]
fn dot_run(w: &[i8], x: &[i8]) -> i32 {
    if cfg!(all(target_arch = "arm", tinyvae_no_umull)) && w.len().is_multiple_of(4) {
        dot4(w, x)
    } else {
        dot(w, x)
    }
}

/// `w . x` for lengths that are a multiple of four (and equal), four products at a time.
#[cfg(not(all(target_arch = "arm", tinyvae_no_umull)))]
#[inline(always)]
fn dot4(w: &[i8], x: &[i8]) -> i32 {
    w.chunks_exact(4)
        .zip(x.chunks_exact(4))
        .fold(0i32, |acc, (a, b)| {
            let p = |i: usize| i32::from(a[i]) * i32::from(b[i]);
            acc.wrapping_add(
                p(0).wrapping_add(p(1))
                    .wrapping_add(p(2))
                    .wrapping_add(p(3)),
            )
        })
}

/// [`dot4`] on ARMv6-M, where the compiler's loop spills: both arrays read backward from
/// their ends by one index register counting up to zero (`LDRSB` has only the
/// register-offset form), five instructions per product.
#[cfg(all(target_arch = "arm", tinyvae_no_umull))]
#[allow(unsafe_code)]
#[inline(always)]
fn dot4(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len()) / 4 * 4;
    if n == 0 {
        return 0;
    }
    let (we, xe) = (w[..n].as_ptr_range().end, x[..n].as_ptr_range().end);
    let mut acc = 0i32;
    // One product: w[n + i] x[n + i] added, i advanced (its flags end the loop at zero).
    macro_rules! mac {
        () => {
            "ldrsb {a}, [{we}, {i}]\nldrsb {b}, [{xe}, {i}]\nmuls {a}, {b}, {a}\n\
             adds {acc}, {acc}, {a}\nadds {i}, #1"
        };
    }
    // SAFETY: reads w[n - k] and x[n - k] for k = n down to 1 (i runs from -n up to -1):
    // inside both slices; writes only the registers declared.
    unsafe {
        core::arch::asm!(
            "2:",
            mac!(),
            mac!(),
            mac!(),
            mac!(),
            "bne 2b",
            we = in(reg) we,
            xe = in(reg) xe,
            i = inout(reg) (n as isize).wrapping_neg() => _,
            acc = inout(reg) acc,
            a = out(reg) _,
            b = out(reg) _,
            options(nostack, readonly),
        );
    }
    acc
}
