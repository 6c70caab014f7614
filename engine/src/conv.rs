//! int8 convolutions (format version 3): each output position is one dense product of the
//! layer's `R x K` matrix with the position's patch of `K` values (FORMAT.md, section 3),
//! so every dense kernel, the DSP one included, serves convolutions too, bit for bit.
//!
//! A patch holds, for every tap of the kernel (for a transposed convolution, every tap of the
//! output's phase, whose own dense layer then runs) and every input channel, the input value
//! under the tap, or the input zero-point where it lies outside the input. The zero-point
//! contributes nothing: the bias already holds `-zero_point * sum_j w(o, j)`.

use tinyvae_format::{Conv, ConvShape, Dense};

use crate::dense;

/// Below this many output channels a convolution runs "positions as rows" (see
/// [`conv_i8`]): the dense kernels work on blocks of four output channels, so a layer with
/// fewer would compute rows it throws away.
pub const FEW_CHANNELS: usize = 4;

/// The longest patch of a convolution: its matrix's columns, or a transposed one's phase
/// (0, 0), which has the most taps along each axis.
fn max_patch(c: &Conv<'_>, transposed: bool) -> usize {
    if transposed {
        usize::try_from(c.shape.phase_len(0, 0)).unwrap_or(usize::MAX)
    } else {
        usize::from(c.matrix.in_dim)
    }
}

fn few(c: &Conv<'_>) -> bool {
    usize::from(c.matrix.out_dim) < FEW_CHANNELS
}

/// The weight row length of the few-channel path on DSP targets ([`gathered`]): each tap's
/// run of input channels padded to a multiple of 4, so that every run starts on a word.
fn gathered_row(c: &Conv<'_>, transposed: bool) -> usize {
    let ch = usize::from(c.shape.in_channels).max(1);
    max_patch(c, transposed) / ch * ch.div_ceil(4) * 4
}

/// Patch bytes [`conv_i8`] uses for a convolution at full speed, with (`simd`) or without
/// the DSP kernel: one patch; for one with few output channels, without the DSP kernel four
/// patches as the rows of 4 x 4 tiles (3 bytes to align them), with it the zero-point's pixel
/// and one weight row ([`gathered`]).
pub fn patch_room(c: &Conv<'_>, transposed: bool, simd: bool) -> usize {
    let k = max_patch(c, transposed);
    match (few(c), simd) {
        (true, true) => usize::from(c.shape.in_channels) + gathered_row(c, transposed),
        (true, false) => 4 * k.div_ceil(4) * 4 + 3,
        (false, _) => k,
    }
}

/// Spare bytes [`conv_i8`] uses for a convolution at full speed, with (`simd`) or without
/// the DSP kernel: the dense kernels' ([`dense::spare_len`]), or for one with few output
/// channels its weight rows (widened to int16 with the DSP kernel, 3 bytes to align them).
pub fn spare_room(c: &Conv<'_>, transposed: bool, simd: bool) -> usize {
    let k = max_patch(c, transposed);
    let (kp, r) = (k.div_ceil(4) * 4, usize::from(c.matrix.out_dim));
    match (few(c), simd) {
        (true, true) => 2 * r * gathered_row(c, transposed) + 3,
        (true, false) => r * kp,
        (false, true) => dense::spare_len(k),
        (false, false) => 0,
    }
}

/// Where a patch's values go: each tap's run of input channels, at its first column.
trait PatchOut {
    /// Columns `j0..j0 + src.len()` take `src`.
    fn run(&mut self, j0: usize, src: &[i8]);
    /// Columns `j0..j0 + len` take `v`.
    fn fill(&mut self, j0: usize, len: usize, v: i8);
}

/// A patch in one piece, column `j` at index `j`.
struct Flat<'p>(&'p mut [i8]);

impl PatchOut for Flat<'_> {
    fn run(&mut self, j0: usize, src: &[i8]) {
        if let Some(dst) = self.0.get_mut(j0..j0 + src.len()) {
            dst.copy_from_slice(src);
        }
    }

    fn fill(&mut self, j0: usize, len: usize, v: i8) {
        if let Some(dst) = self.0.get_mut(j0..j0 + len) {
            dst.fill(v);
        }
    }
}

/// A patch widened to int16 pairs as the DSP kernel reads its inputs ([`dense::dsp::widen`]:
/// per group of 4 columns, words (x0, x2) and (x1, x3)), built straight from the input
/// without an int8 copy, a word at a time. Every run must start and end on a multiple of 4
/// (input channels in multiples of 4); one that does not sets `misaligned` and is dropped.
#[cfg(tinyvae_dsp)]
struct Wide<'w> {
    words: &'w mut [u32],
    misaligned: bool,
}

#[cfg(tinyvae_dsp)]
impl Wide<'_> {
    fn words(&mut self, j0: usize, len: usize) -> Option<&mut [u32]> {
        if j0.is_multiple_of(4) && len.is_multiple_of(4) {
            self.words.get_mut(j0 / 2..(j0 + len) / 2)
        } else {
            self.misaligned = true;
            None
        }
    }
}

#[cfg(tinyvae_dsp)]
impl PatchOut for Wide<'_> {
    fn run(&mut self, j0: usize, src: &[i8]) {
        if let Some(d) = self.words(j0, src.len()) {
            dense::dsp::widen(src, d);
        }
    }

    fn fill(&mut self, j0: usize, len: usize, v: i8) {
        if let Some(d) = self.words(j0, len) {
            d.fill(u32::from(i16::from(v) as u16) * 0x1_0001);
        }
    }
}

/// Row `r` of 4 x 4 tiles ([`tinyvae_format::WeightLayout::Tiles4x4`]): column `j` at
/// `16 (j / 4) + 4 r + j % 4`. Runs that start on a multiple of 4 move 4 bytes at a time.
#[cfg(not(tinyvae_dsp))]
struct TileRow<'t> {
    tiles: &'t mut [i8],
    r: usize,
}

#[cfg(not(tinyvae_dsp))]
impl PatchOut for TileRow<'_> {
    fn run(&mut self, j0: usize, src: &[i8]) {
        if j0.is_multiple_of(4) {
            let mut quads = src.chunks_exact(4);
            let mut at = 4 * j0 + 4 * self.r;
            for q in &mut quads {
                if let Some(d) = self.tiles.get_mut(at..at + 4) {
                    d.copy_from_slice(q);
                }
                at += 16;
            }
            let j = j0 + (src.len() & !3);
            for (i, &v) in quads.remainder().iter().enumerate() {
                self.put(j + i, v);
            }
        } else {
            for (i, &v) in src.iter().enumerate() {
                self.put(j0 + i, v);
            }
        }
    }

    #[inline(never)]
    fn fill(&mut self, j0: usize, len: usize, v: i8) {
        for j in j0..j0 + len {
            self.put(j, v);
        }
    }
}

#[cfg(not(tinyvae_dsp))]
impl TileRow<'_> {
    #[inline(always)]
    fn put(&mut self, j: usize, v: i8) {
        if let Some(t) = self.tiles.get_mut(16 * (j / 4) + 4 * self.r + j % 4) {
            *t = v;
        }
    }
}

/// The input pixels a patch reads: tap (`ty`, `tx`), for `ty < ny` and `tx < nx`, reads
/// row `y0 + ty * dir`, column `x0 + tx * dir`, in wrapping arithmetic (`dir` is 1 or -1
/// as `usize::MAX`): a row before the first wraps to a huge value, outside like one past
/// the last. A convolution's taps go forward from its window's corner, a transposed one's
/// phase taps backward from its first.
#[derive(Clone, Copy)]
struct Taps {
    y0: usize,
    x0: usize,
    ny: usize,
    nx: usize,
    dir: usize,
}

impl Taps {
    /// The taps of a convolution's output position (`oy`, `ox`).
    fn conv2d(s: &ConvShape, (oy, ox): (usize, usize)) -> Taps {
        let (k, stride, pad) = (
            usize::from(s.kernel),
            usize::from(s.stride),
            usize::from(s.padding),
        );
        Taps {
            y0: (oy * stride).wrapping_sub(pad),
            x0: (ox * stride).wrapping_sub(pad),
            ny: k,
            nx: k,
            dir: 1,
        }
    }

    /// The taps of phase (`ry`, `rx`) whose first tap reads input row `by`, column `bx`.
    fn phase(s: &ConvShape, (ry, rx): (u8, u8), (by, bx): (usize, usize)) -> Taps {
        Taps {
            y0: by,
            x0: bx,
            ny: usize::from(s.phase_taps(ry)),
            nx: usize::from(s.phase_taps(rx)),
            dir: usize::MAX,
        }
    }
}

/// Writes the patch of `taps` over input `x` (shape `s`) to `patch`: each tap's channels,
/// or the input zero-point where the tap lies outside the input.
///
/// One copy in flash for every destination (`dyn`: a call per tap, a small share of its
/// work).
#[inline(never)]
fn patch_to(s: &ConvShape, zero_point: i8, x: &[i8], t: Taps, patch: &mut dyn PatchOut) {
    let c = usize::from(s.in_channels);
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    let mut j0 = 0;
    for ty in 0..t.ny {
        let iy = t.y0.wrapping_add(ty.wrapping_mul(t.dir));
        for tx in 0..t.nx {
            let ix = t.x0.wrapping_add(tx.wrapping_mul(t.dir));
            let src = if iy < h && ix < w {
                let at = (iy * w + ix) * c;
                x.get(at..at + c)
            } else {
                None
            };
            match src {
                Some(src) => patch.run(j0, src),
                None => patch.fill(j0, c, zero_point),
            }
            j0 += c;
        }
    }
}

/// Builds the patch of a convolution's output position (`oy`, `ox`) from its input `x`.
pub fn conv2d_patch(
    s: &ConvShape,
    zero_point: i8,
    x: &[i8],
    (oy, ox): (usize, usize),
    patch: &mut [i8],
) {
    patch_to(
        s,
        zero_point,
        x,
        Taps::conv2d(s, (oy, ox)),
        &mut Flat(patch),
    )
}

/// The phase (`ry`, `rx`) of a transposed convolution's output position (`oy`, `ox`).
pub fn phase_of(s: &ConvShape, (oy, ox): (usize, usize)) -> (u8, u8) {
    let (stride, pad) = (usize::from(s.stride), usize::from(s.padding));
    (((oy + pad) % stride) as u8, ((ox + pad) % stride) as u8)
}

/// Builds the patch of a transposed convolution's output position (`oy`, `ox`): the taps of
/// its phase, `phase_len` values, the input zero-point where a tap lies outside the input.
pub fn conv_transpose2d_patch(
    s: &ConvShape,
    zero_point: i8,
    x: &[i8],
    (oy, ox): (usize, usize),
    patch: &mut [i8],
) {
    let (stride, pad) = (usize::from(s.stride), usize::from(s.padding));
    let (ry, rx) = phase_of(s, (oy, ox));
    // The input row of the phase's first tap: (oy + pad - ry) / stride (it divides).
    let base = (
        (oy + pad - usize::from(ry)) / stride,
        (ox + pad - usize::from(rx)) / stride,
    );
    patch_to(
        s,
        zero_point,
        x,
        Taps::phase(s, (ry, rx), base),
        &mut Flat(patch),
    );
}

/// Runs a convolution (`transposed`: a transposed one) of a validated model: `x` its input
/// tensor, `y` its output tensor, `patch` and `spare` scratch ([`patch_room`] and
/// [`spare_room`] bytes for full speed; with less, one patch and the dense kernels' spare
/// bytes suffice). A transposed convolution runs phase by phase, each phase's dense layer
/// built once. No division per position (a Cortex-M0 has no divide instruction).
///
/// Each output position is one dense product of its patch, except with fewer than
/// [`FEW_CHANNELS`] output channels: then four positions' patches are laid out as the four
/// rows of 4 x 4 tiles and multiplied by each weight row, so the same tile kernels (the
/// DSP one included) compute four useful sums per block instead of one.
pub fn conv_i8(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) {
    if few(c) && few_channels(c, transposed, x, y, patch, spare) {
        return;
    }
    #[cfg(tinyvae_dsp)]
    if !few(c) && wide_patches(c, transposed, x, y, spare) {
        return;
    }
    let s = &c.shape;
    let r = usize::from(c.matrix.out_dim);
    let zp = c.matrix.input_zero_point;
    for_each_product(c, transposed, &mut |m, walk| {
        let Some(patch) = patch.get_mut(..usize::from(m.in_dim)) else {
            return;
        };
        walk.run(s, &mut |at, taps| {
            patch_to(s, zp, x, taps, &mut Flat(&mut *patch));
            if let Some(out) = y.get_mut(at * r..at * r + r) {
                dense::dense_i8(&m, patch, out, spare);
            }
        });
    });
}

/// The DSP path of [`conv_i8`] for input channels in multiples of 4: each position's patch
/// widened straight from the input into `spare` ([`Wide`]), then the fused int8 kernel.
/// False when a precondition fails (tiles unaligned, `spare` short), having written outputs
/// that the caller's general path then writes again.
#[cfg(tinyvae_dsp)]
#[inline(never)]
fn wide_patches(c: &Conv<'_>, transposed: bool, x: &[i8], y: &mut [i8], spare: &mut [i8]) -> bool {
    let s = &c.shape;
    if !usize::from(s.in_channels).is_multiple_of(4) {
        return false;
    }
    let k = max_patch(c, transposed);
    let Some(wide) = dense::dsp::words(spare).get_mut(..k / 2) else {
        return false;
    };
    let r = usize::from(c.matrix.out_dim);
    let zp = c.matrix.input_zero_point;
    let mut ok = true;
    for_each_product(c, transposed, &mut |m, walk| {
        let Some(wide) = wide.get_mut(..usize::from(m.in_dim) / 2) else {
            ok = false;
            return;
        };
        if !ok || !dense::dsp::tiles_ready(&m) {
            ok = false;
            return;
        }
        walk.run(s, &mut |at, taps| {
            let mut patch = Wide {
                words: &mut *wide,
                misaligned: false,
            };
            patch_to(s, zp, x, taps, &mut patch);
            ok &= !patch.misaligned;
            if let Some(out) = y.get_mut(at * r..at * r + r) {
                ok &= dense::dsp::tiled_i8_widened(&m, wide, out);
            }
        });
    });
    ok
}

/// The outputs one dense product computes, in raster order: rows `oy0, oy0 + step, ...`
/// below the output height, columns likewise; the patch of the first reads from `(ty0,
/// tx0)` (see [`Taps`]), which moves by `tstep` (wrapping) per output step.
struct Walk {
    oy0: usize,
    ox0: usize,
    step: usize,
    ty0: usize,
    tx0: usize,
    tstep: usize,
    ny: usize,
    nx: usize,
    dir: usize,
}

impl Walk {
    /// Calls `visit(output position index, taps)` for each output, in order. No division
    /// (a Cortex-M0 has no divide instruction); plain loops (`step_by` would bring a panic
    /// message and core::fmt to flash).
    #[inline(never)]
    fn run(&self, s: &ConvShape, visit: &mut dyn FnMut(usize, Taps)) {
        let (oh, ow) = (usize::from(s.out_height), usize::from(s.out_width));
        let (mut oy, mut ty) = (self.oy0, self.ty0);
        while oy < oh {
            let (mut ox, mut tx) = (self.ox0, self.tx0);
            while ox < ow {
                let taps = Taps {
                    y0: ty,
                    x0: tx,
                    ny: self.ny,
                    nx: self.nx,
                    dir: self.dir,
                };
                visit(oy * ow + ox, taps);
                (ox, tx) = (ox + self.step, tx.wrapping_add(self.tstep));
            }
            (oy, ty) = (oy + self.step, ty.wrapping_add(self.tstep));
        }
    }
}

/// Calls `f(dense product, its outputs)` for each of a convolution's dense products: its
/// matrix over every output, or for a transposed one each phase's over the outputs of that
/// phase.
#[inline(never)]
fn for_each_product(c: &Conv<'_>, transposed: bool, f: &mut dyn FnMut(Dense<'_>, Walk)) {
    let s = &c.shape;
    let (k, stride, pad) = (
        usize::from(s.kernel),
        usize::from(s.stride),
        usize::from(s.padding),
    );
    if !transposed {
        // Output (oy, ox) reads from (oy stride - pad, ox stride - pad) forward.
        let corner = 0usize.wrapping_sub(pad);
        let walk = Walk {
            oy0: 0,
            ox0: 0,
            step: 1,
            ty0: corner,
            tx0: corner,
            tstep: stride,
            ny: k,
            nx: k,
            dir: 1,
        };
        f(c.matrix, walk);
        return;
    }
    for ry in 0..s.stride {
        // The first output row of this phase: (y + pad) % stride == ry; its first tap's
        // input row (y + pad - ry) / stride steps by one per phase row.
        let y0 = (usize::from(ry) + stride - pad % stride) % stride;
        for rx in 0..s.stride {
            // A validated layer has every phase.
            let Some(p) = c.phase(ry, rx) else {
                return;
            };
            let x0 = (usize::from(rx) + stride - pad % stride) % stride;
            let walk = Walk {
                oy0: y0,
                ox0: x0,
                step: stride,
                ty0: (y0 + pad - usize::from(ry)) / stride,
                tx0: (x0 + pad - usize::from(rx)) / stride,
                tstep: 1,
                ny: usize::from(s.phase_taps(ry)),
                nx: usize::from(s.phase_taps(rx)),
                dir: usize::MAX,
            };
            f(p, walk);
        }
    }
}

/// The "positions as rows" path of [`conv_i8`]; false, having done nothing, when the scratch
/// is too small for it.
#[inline(never)]
fn few_channels(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) -> bool {
    #[cfg(tinyvae_dsp)]
    return gathered(c, transposed, x, y, patch, spare);
    #[cfg(not(tinyvae_dsp))]
    tiled_positions(c, transposed, x, y, patch, spare)
}

/// The portable path of [`few_channels`]: four positions' patches as the rows of 4 x 4
/// tiles, multiplied by each weight row.
#[cfg(not(tinyvae_dsp))]
fn tiled_positions(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) -> bool {
    let s = &c.shape;
    let k = max_patch(c, transposed);
    let kp = k.div_ceil(4) * 4;
    let r = usize::from(c.matrix.out_dim);
    let skip = patch.as_ptr().align_offset(4);
    let Some(tiles) = patch.get_mut(skip..skip + 4 * kp) else {
        return false;
    };
    let mut rows = match Rows::new(spare, r * kp) {
        Some(rows) => rows,
        None => return false,
    };
    let zp = c.matrix.input_zero_point;
    let mut batch = Batch::new(tiles);
    for_each_product(c, transposed, &mut |m, walk| {
        rows.load(&m, tiles_scratch(&mut batch), usize::from(m.in_dim));
        walk.run(s, &mut |at, taps| {
            patch_to(s, zp, x, taps, &mut batch.next_patch(at));
            batch.flush_if_full(&m, &rows, y);
        });
        batch.flush(&m, &rows, y);
    });
    true
}

/// The DSP path of [`few_channels`]: four positions at a time, each tap's input pixels read
/// where they lie ([`dense::dsp::gather4`], over the channels in whole groups of 4) against
/// the tap's run of the widened weight row, the last 1 to 3 channels (when the count is not
/// a multiple of 4) one by one; no patch is built. False, having done nothing, when the
/// scratch is too small.
#[cfg(tinyvae_dsp)]
#[inline(never)]
fn gathered(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) -> bool {
    let s = &c.shape;
    let ch = usize::from(s.in_channels);
    let k = gathered_row(c, transposed);
    let r = usize::from(c.matrix.out_dim);
    if ch == 0 {
        return false;
    }
    // The zero-point's pixel (taps outside the input read it), then room to load a row.
    let Some((pad, rest)) = patch.split_at_mut_checked(ch) else {
        return false;
    };
    let Some(tmp) = rest.get_mut(..k) else {
        return false;
    };
    let mut rows = match Rows::new(spare, r * k) {
        Some(rows) => rows,
        None => return false,
    };
    let zp = c.matrix.input_zero_point;
    pad.fill(zp);
    let pad: &[i8] = pad;
    let mut g = Gather {
        s,
        x,
        pad,
        at: [usize::MAX; 4],
        taps: [Taps {
            y0: usize::MAX,
            x0: usize::MAX,
            ny: 0,
            nx: 0,
            dir: 1,
        }; 4],
        n: 0,
    };
    for_each_product(c, transposed, &mut |m, walk| {
        rows.load(&m, tmp, ch);
        walk.run(s, &mut |at, taps| g.push(&m, &rows, at, taps, y));
        g.flush(&m, &rows, y);
    });
    true
}

/// Up to four output positions of one product waiting for [`Gather::flush`].
#[cfg(tinyvae_dsp)]
struct Gather<'a> {
    s: &'a ConvShape,
    x: &'a [i8],
    pad: &'a [i8],
    at: [usize; 4],
    taps: [Taps; 4],
    n: usize,
}

#[cfg(tinyvae_dsp)]
impl Gather<'_> {
    /// Adds output position `at`, whose patch `taps` reads; four make a flush.
    #[inline(never)]
    fn push(&mut self, m: &Dense<'_>, rows: &Rows<'_>, at: usize, taps: Taps, y: &mut [i8]) {
        let i = self.n & 3;
        (self.at[i], self.taps[i]) = (at, taps);
        self.n = i + 1;
        if self.n == 4 {
            self.flush(m, rows, y);
        }
    }

    /// The outputs of the waiting positions: per output channel and tap, one
    /// [`dense::dsp::gather4`] call (past the waiting positions, the last one again, whose
    /// sums are dropped).
    #[inline(never)]
    fn flush(&mut self, m: &Dense<'_>, rows: &Rows<'_>, y: &mut [i8]) {
        let n = self.n.min(4);
        self.n = 0;
        let Some(last) = n.checked_sub(1) else {
            return;
        };
        let first = self.taps[0];
        let ch = usize::from(self.s.in_channels);
        let (head, chp) = (ch / 4 * 4, ch.div_ceil(4) * 4);
        let r = usize::from(m.out_dim);
        for o in 0..r {
            let mut acc = [m.bias.get(o).unwrap_or(0); 4];
            let mut j0 = 0;
            for ty in 0..first.ny {
                for tx in 0..first.nx {
                    let mut px = [self.pad; 4];
                    for (i, p) in px.iter_mut().enumerate() {
                        *p = pixel(self.s, self.x, self.pad, self.taps[i.min(last)], ty, tx);
                    }
                    if let Some(wide) = rows.wide_run(o, j0, head) {
                        dense::dsp::gather4(px, wide, head / 4, &mut acc);
                    }
                    if head < ch {
                        tail(rows, o, j0, head..ch, &px, &mut acc);
                    }
                    j0 += chp;
                }
            }
            for (&at, &a) in self.at.iter().zip(&acc).take(n) {
                if let Some(out) = y.get_mut(at * r + o) {
                    *out = dense::output_i8_shared(m, o, a);
                }
            }
        }
    }
}

/// The last 1 to 3 input channels `js` of a tap (starting at row column `j0`) for four
/// positions, when the channel count is not a multiple of 4.
#[cfg(tinyvae_dsp)]
#[inline(never)]
fn tail(
    rows: &Rows<'_>,
    o: usize,
    j0: usize,
    js: core::ops::Range<usize>,
    px: &[&[i8]; 4],
    acc: &mut [i32; 4],
) {
    for j in js {
        let w = rows.wide_weight(o, j0 + j);
        for (a, p) in acc.iter_mut().zip(px) {
            *a = a.wrapping_add(w * i32::from(p.get(j).copied().unwrap_or(0)));
        }
    }
}

/// The input pixel (its channels) under tap (`ty`, `tx`) of `t`, or `pad` (the zero-point's)
/// where the tap lies outside the input.
#[cfg(tinyvae_dsp)]
#[inline(never)]
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

/// The tile area, free between batches: where [`Rows::load`] unpacks a weight row.
#[cfg(not(tinyvae_dsp))]
fn tiles_scratch<'b>(b: &'b mut Batch<'_>) -> &'b mut [i8] {
    b.tiles
}

/// Up to four output positions whose patches wait as the rows of 4 x 4 tiles.
#[cfg(not(tinyvae_dsp))]
struct Batch<'s> {
    tiles: &'s mut [i8],
    at: [usize; 4],
    n: usize,
}

#[cfg(not(tinyvae_dsp))]
impl<'s> Batch<'s> {
    fn new(tiles: &'s mut [i8]) -> Self {
        Batch {
            tiles,
            at: [0; 4],
            n: 0,
        }
    }

    /// The tile row for the patch of output position `at`.
    #[inline(always)]
    fn next_patch(&mut self, at: usize) -> TileRow<'_> {
        let r = self.n.min(3);
        self.at[r] = at;
        self.n = r + 1;
        TileRow {
            tiles: self.tiles,
            r,
        }
    }

    #[inline(always)]
    fn flush_if_full(&mut self, m: &Dense<'_>, rows: &Rows<'_>, y: &mut [i8]) {
        if self.n == 4 {
            self.flush(m, rows, y);
        }
    }

    /// Multiplies the waiting patches by each weight row and writes the outputs (tile rows
    /// past the waiting ones hold stale values, whose sums are dropped; columns past the
    /// patch too, which meet zero weights).
    fn flush(&mut self, m: &Dense<'_>, rows: &Rows<'_>, y: &mut [i8]) {
        let n = self.n;
        if n == 0 {
            return;
        }
        self.n = 0;
        let r = usize::from(m.out_dim);
        for o in 0..r {
            let mut acc = [m.bias.get(o).unwrap_or(0); 4];
            rows.times(o, self.tiles, &mut acc);
            for (&at, &a) in self.at.iter().zip(&acc).take(n) {
                if let Some(out) = y.get_mut(at * r + o) {
                    *out = dense::output_i8_shared(m, o, a);
                }
            }
        }
    }
}

/// A layer's (or phase's) weight rows, `kp` values each (zeros past its columns): int8
/// for the portable tile kernel, widened to int16 pairs for the DSP one.
struct Rows<'s> {
    #[cfg(tinyvae_dsp)]
    wide: &'s mut [u32],
    #[cfg(not(tinyvae_dsp))]
    narrow: &'s mut [i8],
    kp: usize,
}

impl<'s> Rows<'s> {
    /// Rows in `spare`, `len` int8 values in all (`None` when it is too short).
    fn new(spare: &'s mut [i8], len: usize) -> Option<Self> {
        #[cfg(tinyvae_dsp)]
        {
            let wide = dense::dsp::words(spare).get_mut(..len / 2)?;
            Some(Rows { wide, kp: 0 })
        }
        #[cfg(not(tinyvae_dsp))]
        {
            let narrow = spare.get_mut(..len)?;
            Some(Rows { narrow, kp: 0 })
        }
    }

    /// Loads the rows of `m`, each run of `ch` columns padded with zeros to a multiple of 4
    /// (`ch` = `in_dim`: one run; `tmp`: room for one row of int8 values, on the DSP path).
    fn load(&mut self, m: &Dense<'_>, tmp: &mut [i8], ch: usize) {
        let k = usize::from(m.in_dim);
        let ch = ch.max(1);
        let (runs, chp) = (k / ch, ch.div_ceil(4) * 4);
        let kp = runs * chp;
        self.kp = kp;
        // Column j of the padded row: run j / chp, its channel j % chp (no division).
        let fill = |o: usize, row: &mut [i8]| {
            let mut cols = row.iter_mut();
            for t in 0..runs {
                for c in 0..chp {
                    if let Some(w) = cols.next() {
                        *w = if c < ch { m.weight(o, t * ch + c) } else { 0 };
                    }
                }
            }
        };
        #[cfg(tinyvae_dsp)]
        {
            let Some(row) = tmp.get_mut(..kp) else {
                return;
            };
            for (o, wide) in self.wide.chunks_exact_mut(kp / 2).enumerate() {
                if o >= usize::from(m.out_dim) {
                    break;
                }
                fill(o, row);
                dense::dsp::widen(row, wide);
            }
        }
        #[cfg(not(tinyvae_dsp))]
        {
            let _ = tmp;
            for (o, row) in self.narrow.chunks_exact_mut(kp).enumerate() {
                if o >= usize::from(m.out_dim) {
                    break;
                }
                fill(o, row);
            }
        }
    }

    /// The widened words of row `o`'s columns `j0..j0 + len` (`j0` and `len` multiples of 4).
    #[cfg(tinyvae_dsp)]
    fn wide_run(&self, o: usize, j0: usize, len: usize) -> Option<&[u32]> {
        let at = o * self.kp / 2 + j0 / 2;
        self.wide.get(at..at + len / 2)
    }

    /// Row `o`'s weight in column `j`: in word `2 (j / 4) + j % 2` of its group, the high
    /// half when `j % 4 >= 2` ([`dense::dsp::widen`]).
    #[cfg(tinyvae_dsp)]
    fn wide_weight(&self, o: usize, j: usize) -> i32 {
        let word = self.wide.get(o * self.kp / 2 + 2 * (j / 4) + j % 2);
        let half = word.map_or(0, |w| if j % 4 >= 2 { w >> 16 } else { w & 0xffff });
        i32::from(half as u16 as i16)
    }

    /// `acc[r] += sum_j tiles(r, j) * row_o[j]`.
    #[cfg(not(tinyvae_dsp))]
    #[inline(always)]
    fn times(&self, o: usize, tiles: &[i8], acc: &mut [i32; 4]) {
        let kp = self.kp;
        // `get`, not indexing: no panic (and its formatted message) in the firmware.
        if let (Some(row), Some(t)) = (self.narrow.get(o * kp..(o + 1) * kp), tiles.get(..4 * kp)) {
            dense::tiles_times_row(t, row, acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tinyvae_format::owned::{OwnedModel, SyntheticConv, SyntheticSpec};
    use tinyvae_format::{Layer, WeightLayout};

    /// The definition, written out: for output (oy, ox) and channel o, every kernel tap
    /// (ky, kx) and channel c with its input position by the convolution's arithmetic, in
    /// range or the zero-point, in the kernel's natural (ky, kx, c) order; then the weight of
    /// that tap from the matrix by the format's column formula for its kind.
    fn direct(c: &Conv<'_>, transposed: bool, x: &[i8]) -> Vec<i32> {
        let s = &c.shape;
        let m = &c.matrix;
        let (k, ch) = (i64::from(s.kernel), i64::from(s.in_channels));
        let (st, p) = (i64::from(s.stride), i64::from(s.padding));
        let (h, w) = (i64::from(s.in_height), i64::from(s.in_width));
        let zp = i32::from(m.input_zero_point);
        let mut out = Vec::new();
        for oy in 0..i64::from(s.out_height) {
            for ox in 0..i64::from(s.out_width) {
                for o in 0..usize::from(s.out_channels) {
                    // The bias of the output's phase (the matrix's, for a convolution).
                    let bias = if transposed {
                        let (ry, rx) = ((oy + p).rem_euclid(st), (ox + p).rem_euclid(st));
                        c.phase(ry as u8, rx as u8).unwrap().bias
                    } else {
                        m.bias
                    };
                    let mut acc = bias.get(o).unwrap_or(0);
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix, col, wm) = if transposed {
                                // Output y receives tap ky from input (y + p - ky) / s when
                                // that divides; otherwise the tap does not exist.
                                let (ny, nx) = (oy + p - ky, ox + p - kx);
                                if ny.rem_euclid(st) != 0 || nx.rem_euclid(st) != 0 {
                                    continue;
                                }
                                let (ry, rx) = (ky % st, kx % st);
                                let ph = c.phase(ry as u8, rx as u8).unwrap();
                                let nxp = i64::from(s.phase_taps(rx as u8));
                                let col = ((ky / st) * nxp + kx / st) * ch;
                                (ny.div_euclid(st), nx.div_euclid(st), col, ph)
                            } else {
                                (oy * st + ky - p, ox * st + kx - p, (ky * k + kx) * ch, *m)
                            };
                            for cc in 0..ch {
                                let v = if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                    i32::from(x[((iy * w + ix) * ch + cc) as usize])
                                } else {
                                    zp
                                };
                                let wt = i32::from(wm.weight(o, (col + cc) as usize));
                                acc = acc.wrapping_add(wt * v);
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
        out
    }

    /// The accumulators the engine's kernel computes (its int8 outputs would hide them):
    /// the same patches, then bias + the row's dot product.
    fn engine_accumulators(c: &Conv<'_>, transposed: bool, x: &[i8]) -> Vec<i32> {
        let s = &c.shape;
        let mut out = Vec::new();
        for oy in 0..usize::from(s.out_height) {
            for ox in 0..usize::from(s.out_width) {
                let m = if transposed {
                    let (ry, rx) = phase_of(s, (oy, ox));
                    c.phase(ry, rx).unwrap()
                } else {
                    c.matrix
                };
                let k = usize::from(m.in_dim);
                let mut patch = vec![0i8; k];
                if transposed {
                    conv_transpose2d_patch(s, m.input_zero_point, x, (oy, ox), &mut patch);
                } else {
                    conv2d_patch(s, m.input_zero_point, x, (oy, ox), &mut patch);
                }
                for o in 0..usize::from(m.out_dim) {
                    let row: Vec<i8> = (0..k).map(|j| m.weight(o, j)).collect();
                    out.push(
                        m.bias
                            .get(o)
                            .unwrap_or(0)
                            .wrapping_add(dense::dot_i8(&row, &patch)),
                    );
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Patches from the format's column order give the sums of the direct definition, for
        /// both kinds over random shapes, strides, paddings and zero-points; and the int8
        /// kernel in either layout gives the same bytes.
        #[test]
        fn patches_match_the_direct_definition(
            w in 2u16..11, h in 2u16..11, ch in 1u8..4,
            stages in proptest::collection::vec((1u16..5, 1u8..5, 1u8..4, 0u8..3), 1..3),
            seed: u64,
            input in proptest::collection::vec(any::<i8>(), 400),
        ) {
            let conv = stages.iter().map(|&(channels, kernel, stride, padding)| SyntheticConv {
                channels, kernel, stride, padding: padding.min(kernel - 1),
            }).collect();
            let spec = SyntheticSpec { width: w, height: h, channels: ch, conv, hidden: vec![], latent: 2, ..Default::default() };
            let owned = OwnedModel::synthetic(&spec, seed);
            let tiled = owned.with_layout(WeightLayout::Tiles4x4);
            let (b1, b2) = (owned.buffers(), tiled.buffers());
            let (m1, m2) = (owned.view(&b1).unwrap(), tiled.view(&b2).unwrap());
            for (l1, l2) in m1.encoder.layers.iter().chain(&m1.decoder.layers)
                .zip(m2.encoder.layers.iter().chain(&m2.decoder.layers))
            {
                let (c, transposed) = match l1 {
                    Layer::Conv2d(c) => (c, false),
                    Layer::ConvTranspose2d(c) => (c, true),
                    Layer::Dense(_) => continue,
                };
                let n = usize::try_from(c.shape.in_len()).unwrap();
                let x: Vec<i8> = input.iter().copied().cycle().take(n).collect();
                let sums = direct(c, transposed, &x);
                prop_assert_eq!(engine_accumulators(c, transposed, &x), sums.clone());
                // The int8 outputs of the definition's sums.
                let r = usize::from(c.matrix.out_dim);
                let want: Vec<i8> = sums.iter().enumerate()
                    .map(|(i, &a)| dense::output_i8(&c.matrix, i % r, a)).collect();
                let out = usize::try_from(c.shape.out_len()).unwrap();
                let k = max_patch(c, transposed);
                // Both scratch sizes: the least (one patch at a time) and full speed
                // (few-channel layers four positions at a time), stale bytes in both.
                let run = |l: &Layer<'_>, full: bool| {
                    let (Layer::Conv2d(c) | Layer::ConvTranspose2d(c)) = l else { unreachable!() };
                    let mut y = vec![0i8; out];
                    let (p, sp) = if full {
                        (patch_room(c, transposed, dense::SIMD), spare_room(c, transposed, dense::SIMD))
                    } else {
                        (k, dense::spare_len(k))
                    };
                    let mut patch = vec![0x55i8; p];
                    let mut spare = vec![-0x33i8; sp];
                    conv_i8(c, transposed, &x, &mut y, &mut patch, &mut spare);
                    y
                };
                for full in [false, true] {
                    prop_assert_eq!(&run(l1, full), &want, "row-major, full scratch {}", full);
                    prop_assert_eq!(&run(l2, full), &want, "tiled, full scratch {}", full);
                }
            }
        }
    }
}
