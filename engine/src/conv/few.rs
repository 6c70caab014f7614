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
    for_each_product(c, transposed, &mut |m, walk| {
        // A row of taps reads `nx` neighbouring pixels, backward in a transposed layer's
        // phase: its weights are stored in the order of the pixels in memory, so that a row
        // lying inside the input is one dot product.
        let back = walk.dir != 1;
        rows.load(&m, walk.nx, ch, back);
        let p = Product {
            s,
            x,
            pad,
            rows: &rows,
            m: &m,
            back,
            dims: (ch, usize::from(s.in_height), usize::from(s.in_width), r),
        };
        // On ARMv6-M the positions whose taps all lie inside the input run in assembly, a
        // row of outputs at a time; the others (at the edges) position by position.
        #[cfg(tinyvae_v6m)]
        walk.run_rows(s, &mut |at0, taps0, count| {
            let inside = v6m::inside(s, &walk, taps0, count);
            let (lo, hi) = inside.unwrap_or((count, count));
            let position = |k: usize| {
                let taps = Taps {
                    x0: taps0.x0.wrapping_add(k.wrapping_mul(walk.tstep)),
                    ..taps0
                };
                (at0 + k * walk.step, taps)
            };
            for k in (0..lo).chain(hi..count) {
                let (at, taps) = position(k);
                p.position(y, at, taps);
            }
            if lo < hi {
                let (at, taps) = position(lo);
                for o in 0..r {
                    let run = v6m::Run {
                        walk: &walk,
                        taps,
                        at,
                        n: hi - lo,
                        channels: (o, r),
                    };
                    if !v6m::run(&m, rows.row(o), s, x, y, run) {
                        for k in lo..hi {
                            let (at, taps) = position(k);
                            p.channel(y, at, taps, o);
                        }
                    }
                }
            }
        });
        #[cfg(not(tinyvae_v6m))]
        walk.run(s, &mut |at, taps| p.position(y, at, taps));
    });
    true
}

/// One dense product of a few-channel convolution (a transposed one's phase), its weight
/// rows loaded.
struct Product<'p, 'a> {
    s: &'p ConvShape,
    x: &'p [i8],
    /// The zero-point's pixel.
    pad: &'p [i8],
    rows: &'p Rows<'p>,
    m: &'p Dense<'a>,
    /// Taps read backward (a transposed phase's), their weights stored in the pixels' order.
    back: bool,
    /// Input channels, height and width; output channels.
    dims: (usize, usize, usize, usize),
}

impl Product<'_, '_> {
    /// Every output channel of position `at`, whose taps are `taps`.
    #[inline(always)]
    fn position(&self, y: &mut [i8], at: usize, taps: Taps) {
        for o in 0..self.dims.3 {
            self.channel(y, at, taps, o);
        }
    }

    /// Output channel `o` of position `at`.
    #[inline(always)]
    fn channel(&self, y: &mut [i8], at: usize, taps: Taps, o: usize) {
        let (s, x, m) = (self.s, self.x, self.m);
        let (ch, h, w, r) = self.dims;
        let run = taps.nx * ch;
        {
            let row = self.rows.row(o);
            let mut acc = m.bias.get(o).unwrap_or(0);
            for ty in 0..taps.ny {
                let iy = taps.y0.wrapping_add(ty.wrapping_mul(taps.dir));
                // The leftmost pixel the row reads.
                let left = if self.back {
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
                // A row reaching past the input's edge: tap by tap, the zero-point's pixel
                // outside.
                for tx in 0..taps.nx {
                    let px = pixel(s, x, self.pad, taps, ty, tx);
                    let t = if self.back { taps.nx - 1 - tx } else { tx };
                    let j = j0 + t * ch;
                    if let Some(ws) = row.get(j..j + ch) {
                        acc = acc.wrapping_add(dot(ws, px));
                    }
                }
            }
            if let Some(out) = y.get_mut(at * r + o) {
                *out = crate::requant::output_i8(m, o, acc);
            }
        }
    }
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
        let (ch, run) = (ch.max(1), nx * ch.max(1));
        for (o, row) in self.narrow.chunks_exact_mut(kp).enumerate() {
            if o >= usize::from(m.out_dim) {
                break;
            }
            // Column j of the stored row is kernel row `base / run`, tap `t` (reversed with
            // `back`), channel `c`; the matrix's own column order is kernel row, tap,
            // channel. Counters, not divisions: the Cortex-M0 has no divide instruction.
            let (mut base, mut t, mut c) = (0, 0, 0);
            for (j, w) in row.iter_mut().enumerate() {
                *w = if j >= k {
                    0
                } else if back {
                    m.weight(o, base + (nx - 1 - t) * ch + c)
                } else {
                    m.weight(o, j)
                };
                c += 1;
                if c == ch {
                    (c, t) = (0, t + 1);
                    if t == nx {
                        (t, base) = (0, base + run);
                    }
                }
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

/// The ARMv6-M routine (src/arm/few_v6m.s): a row of output positions whose taps all lie inside
/// the input, one output channel, its requantization on the fast path.
#[cfg(tinyvae_v6m)]
#[allow(unsafe_code)]
mod v6m {
    use tinyvae_format::{ConvShape, Dense};

    use super::super::{Taps, Walk};

    /// What [`tinyvae_few_run_v6m`] reads (and advances: `x`, `out`, `n`).
    #[repr(C)]
    struct RunJob {
        w: *const i8,
        x: *const i8,
        x_row_stride: isize,
        run: usize,
        ny: usize,
        x_step: isize,
        out: *mut i8,
        out_step: isize,
        n: usize,
        bias: i32,
        ml: u32,
        mh: u32,
        e: u32,
        zero_point: i32,
        lo: i32,
    }

    // The routine's name carries the crate's version (build.rs: `crate::ASM_PREFIX`); it
    // is assembled with dense_v6m.s, whose macros it uses, in `arm::v6m`.
    extern "C" {
        #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "few_run_v6m")]
        fn tinyvae_few_run_v6m(job: *mut RunJob);
    }

    /// Positions `k` of a row of outputs (their taps' first column `x0 + k tstep`) from
    /// `lo` to `hi`, whose taps all lie inside the input: `None` when none, or when a row of
    /// taps lies above or below it.
    pub(super) fn inside(
        s: &ConvShape,
        walk: &Walk,
        taps: Taps,
        count: usize,
    ) -> Option<(usize, usize)> {
        let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
        if (0..taps.ny).any(|ty| taps.y0.wrapping_add(ty.wrapping_mul(taps.dir)) >= h) {
            return None;
        }
        let back = taps.dir != 1;
        let fits = |k: usize| {
            let x0 = taps.x0.wrapping_add(k.wrapping_mul(walk.tstep));
            let left = if back {
                x0.wrapping_sub(taps.nx.wrapping_sub(1))
            } else {
                x0
            };
            left < w && left + taps.nx <= w
        };
        let lo = (0..count).find(|&k| fits(k))?;
        let hi = (lo..count).find(|&k| !fits(k)).unwrap_or(count);
        Some((lo, hi))
    }

    /// A run of positions for [`run`]: the first's taps and output index, how many, the
    /// output channel `o` of `r`.
    pub(super) struct Run<'w> {
        pub walk: &'w Walk,
        pub taps: Taps,
        pub at: usize,
        pub n: usize,
        pub channels: (usize, usize),
    }

    /// Output channel `o` of the run's positions, whose taps lie inside the input (as
    /// [`inside`] finds them; checked again here), from `row` (the channel's weights as the
    /// few-channel path stores them, in the pixels' order): in assembly. Returns false,
    /// having done nothing, off the routine's preconditions (a tap outside the input, a row
    /// of taps not a multiple of 4 bytes, a multiplier below 2^30 or a shift that is not a
    /// right shift, short slices).
    pub(super) fn run(
        m: &Dense<'_>,
        row: &[i8],
        s: &ConvShape,
        x: &[i8],
        y: &mut [i8],
        job: Run<'_>,
    ) -> bool {
        let Run {
            walk,
            taps,
            at,
            n,
            channels: (o, r),
        } = job;
        let ch = usize::from(s.in_channels);
        let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
        let len = taps.nx * ch;
        let (Some(multiplier), Some(shift)) = (m.multiplier.get(o), m.shift.get(o)) else {
            return false;
        };
        let last = (at + (n.max(1) - 1) * walk.step) * r + o;
        let ready = n > 0
            && taps.ny > 0
            && len > 0
            && len.is_multiple_of(4)
            && row.len() >= taps.ny * len
            && x.len() >= h * w * ch
            && last < y.len()
            && multiplier >= 1 << 30
            && (-31..=-1).contains(&shift);
        if !ready {
            return false;
        }
        // Every position's taps inside the input: its rows of taps (the same for all), and
        // the first and last position's columns (the columns between move one way).
        let left_of = |k: usize| {
            let x0 = taps.x0.wrapping_add(k.wrapping_mul(walk.tstep));
            if taps.dir != 1 {
                x0.wrapping_sub(taps.nx - 1)
            } else {
                x0
            }
        };
        let (left, last_left) = (left_of(0), left_of(n - 1));
        let rows_inside =
            (0..taps.ny).all(|ty| taps.y0.wrapping_add(ty.wrapping_mul(taps.dir)) < h);
        let cols_inside = left <= last_left && last_left < w && w - last_left >= taps.nx;
        if !(rows_inside && cols_inside) {
            return false;
        }
        let row_bytes = (w * ch) as isize;
        let (zero_point, lo) = crate::requant::output_range(m);
        let mut job = RunJob {
            w: row.as_ptr(),
            x: x.as_ptr().wrapping_add((taps.y0 * w + left) * ch),
            x_row_stride: if taps.dir == 1 { row_bytes } else { -row_bytes },
            run: len,
            ny: taps.ny,
            x_step: (walk.tstep * ch) as isize,
            out: y.as_mut_ptr().wrapping_add(at * r + o),
            out_step: (walk.step * r) as isize,
            n,
            bias: m.bias.get(o).unwrap_or(0),
            ml: (multiplier as u32) & 0xFFFF,
            mh: (multiplier as u32) >> 16,
            e: u32::from(shift.unsigned_abs()),
            zero_point,
            lo,
        };
        // SAFETY: every position's rows of taps lie inside the input (checked above: rows
        // `y0 + ty dir` below `h`, columns `left + k tstep .. + nx` within `w`), so each
        // reads `len` bytes inside `x` (which holds `h w ch`); the weights read are
        // `ny len` bytes of `row`; the outputs written are `y[(at + k step) r + o]` for
        // k < n, the last checked inside `y`. The routine follows the AAPCS.
        unsafe { tinyvae_few_run_v6m(&mut job) };
        true
    }
}
