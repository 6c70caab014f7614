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

#[cfg(tinyvae_dsp)]
mod dsp;
#[cfg(not(tinyvae_dsp))]
mod few;
#[cfg(tinyvae_dsp)]
mod scatter;

/// Below this many output channels a convolution takes its few-channel path (see
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

/// Patch bytes [`conv_i8`] uses for a convolution: one patch.
pub fn patch_room(c: &Conv<'_>, transposed: bool) -> usize {
    max_patch(c, transposed)
}

/// Spare bytes [`conv_i8`] uses for a convolution at full speed, with (`simd`) or without
/// the DSP kernel: the dense kernels' ([`dense::spare_len`]), with it two widened patches
/// where the patches come in whole groups of four (two positions at a time); for one with few
/// output channels without the DSP kernel its weight rows, with it (a transposed one) the
/// scatter form's words, 3 bytes to align them.
pub fn spare_room(c: &Conv<'_>, transposed: bool, simd: bool) -> usize {
    let k = max_patch(c, transposed);
    let (kp, r) = (k.div_ceil(4) * 4, usize::from(c.matrix.out_dim));
    let pairs = if c.shape.in_channels.is_multiple_of(4) || whole_groups(c, transposed) {
        2
    } else {
        1
    };
    match (few(c), simd) {
        (true, true) if transposed => dense::spare_len(k).max(4 * scatter_words(c) + 3),
        (true, false) => r * kp,
        (_, true) => dense::spare_len(pairs * k),
        (false, false) => 0,
    }
}

/// True when every dense product of a convolution (its matrix, or each phase's) has a
/// multiple of 4 columns: its patch is whole groups of four, as the DSP kernels read them,
/// even where a tap's input channels are not (one input channel, a kernel of 4 x 4).
fn whole_groups(c: &Conv<'_>, transposed: bool) -> bool {
    let s = &c.shape;
    if !transposed {
        return c.matrix.in_dim.is_multiple_of(4);
    }
    (0..s.stride).all(|ry| (0..s.stride).all(|rx| s.phase_len(ry, rx).is_multiple_of(4)))
}

/// The scratch words of the scatter form (on DSP targets) of a transposed convolution with
/// few output channels: the int32 accumulators of every output and of a border around
/// them ([`ScatterGrid`]), the weights as 4 x 4 tiles (one row per tap and output channel,
/// the input channels padded to a multiple of 4), a widened row of input pixels, one
/// pixel's dot products with every row, each row's zero-point sum and each row's place in
/// the grid.
/// Computed on every target: the host sizes a firmware's scratch too.
fn scatter_words(c: &Conv<'_>) -> usize {
    let s = &c.shape;
    let r = usize::from(c.matrix.out_dim);
    let cp = usize::from(s.in_channels).div_ceil(4) * 4;
    let k = usize::from(s.kernel);
    let blocks = (k * k * r).div_ceil(4);
    let g = ScatterGrid::of(s).unwrap_or(ScatterGrid::EMPTY);
    let row = usize::from(s.in_width) * cp / 2;
    g.height * g.width * r + blocks * cp + row + 12 * blocks
}

/// Where the scatter form of a transposed convolution (shape `s`) walks and adds: input
/// pixel `(vy - before, vx - before)`, for `vy < ny`, `vx < nx` (those outside the input
/// stand for the zero-point), lands its tap `(ky, kx)` on row `vy stride + ky`, column
/// `vx stride + kx` of a grid of `height x width` accumulators, where output `(y, x)` is at
/// `(y + top, x + top)`: every tap of every pixel walked lands inside the grid, so none is
/// clipped; the border's sums are thrown away.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(tinyvae_dsp), allow(dead_code))]
pub(crate) struct ScatterGrid {
    pub ny: usize,
    pub nx: usize,
    pub before: usize,
    pub top: usize,
    pub height: usize,
    pub width: usize,
}

impl ScatterGrid {
    const EMPTY: ScatterGrid = ScatterGrid {
        ny: 0,
        nx: 0,
        before: 0,
        top: 0,
        height: 0,
        width: 0,
    };

    /// The grid of shape `s`; `None` when its stride is 0 or above its kernel (some
    /// outputs then receive no tap: the phase form runs it), or its padding is not below
    /// its kernel (a validated model has none).
    pub fn of(s: &ConvShape) -> Option<ScatterGrid> {
        let (k, st, pad) = (
            usize::from(s.kernel),
            usize::from(s.stride),
            usize::from(s.padding),
        );
        let (oh, ow) = (usize::from(s.out_height), usize::from(s.out_width));
        if st == 0 || st > k || pad >= k || oh == 0 || ow == 0 {
            return None;
        }
        // Pixel v's taps land on outputs v s - (before s + p) + t, t < k: the pixels that
        // reach an output run from v = 0 (input -before) to (out + p - 1) / s + before;
        // the last lands its last tap on grid row ((out + p - 1) / s + before) s + k - 1
        // >= out + p - s + before s + k - 1 >= out - 1 + top when k >= s: every output
        // lies inside the grid (a unit test walks it).
        let before = (k - 1 - pad) / st;
        let top = before * st + pad;
        let (ny, nx) = (
            (oh + pad - 1) / st + 1 + before,
            (ow + pad - 1) / st + 1 + before,
        );
        Some(ScatterGrid {
            ny,
            nx,
            before,
            top,
            height: (ny - 1) * st + k,
            width: (nx - 1) * st + k,
        })
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
/// One copy in flash for every destination (`dyn`: a call per run, a small share of its
/// work).
/// (Built for size, tap by tap: the size profile's flash budget has no room for the
/// forward rows' copy.)
fn patch_to(s: &ConvShape, zero_point: i8, x: &[i8], t: Taps, patch: &mut dyn PatchOut) {
    #[cfg(not(tinyvae_small))]
    if t.dir == 1 {
        return forward_patch(s, zero_point, x, t, patch);
    }
    tap_by_tap(s, zero_point, x, t, patch)
}

/// [`patch_to`] for a convolution's taps (forward): a row of them reads neighbouring
/// pixels, so the part of it inside the input goes as one run, the parts outside as one
/// fill each.
#[cfg(not(tinyvae_small))]
#[inline(never)]
fn forward_patch(s: &ConvShape, zero_point: i8, x: &[i8], t: Taps, patch: &mut dyn PatchOut) {
    let c = usize::from(s.in_channels);
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    let row = t.nx * c;
    let (lead, inside) = forward_run(t, w);
    let trail = t.nx - lead - inside;
    let mut j0 = 0;
    for ty in 0..t.ny {
        let iy = t.y0.wrapping_add(ty);
        if iy >= h {
            patch.fill(j0, row, zero_point);
            j0 += row;
            continue;
        }
        if lead > 0 {
            patch.fill(j0, lead * c, zero_point);
        }
        if inside > 0 {
            let at = (iy * w + t.x0.wrapping_add(lead)) * c;
            if let Some(src) = x.get(at..at + inside * c) {
                patch.run(j0 + lead * c, src);
            }
        }
        if trail > 0 {
            patch.fill(j0 + (lead + inside) * c, trail * c, zero_point);
        }
        j0 += row;
    }
}

/// [`patch_to`] tap by tap: a transposed convolution's phase taps (backward), or any.
#[inline(never)]
fn tap_by_tap(s: &ConvShape, zero_point: i8, x: &[i8], t: Taps, patch: &mut dyn PatchOut) {
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

/// A row of forward taps from column `t.x0` (wrapping: a column before the first is a huge
/// value) over an input `w` columns wide: the taps before the input's first column, and
/// then those inside it (the rest lie past its last).
#[cfg(not(tinyvae_small))]
fn forward_run(t: Taps, w: usize) -> (usize, usize) {
    let lead = if t.x0 > usize::MAX / 2 {
        0usize.wrapping_sub(t.x0).min(t.nx)
    } else {
        0
    };
    let start = t.x0.wrapping_add(lead);
    let inside = if start < w {
        (w - start).min(t.nx - lead)
    } else {
        0
    };
    (lead, inside)
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
/// Each output position is one dense product of its patch (on DSP targets, with patches in
/// whole groups of 4, the patch widened as it is gathered), except with fewer
/// than [`FEW_CHANNELS`] output channels: then four positions' patches are laid out as the
/// four rows of 4 x 4 tiles and multiplied by each weight row, four useful sums per block
/// (portable targets), or a transposed convolution runs in scatter form (DSP targets).
pub fn conv_i8(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) {
    #[cfg(not(tinyvae_dsp))]
    if few(c) && few::few_channels(c, transposed, x, y, patch, spare) {
        return;
    }
    #[cfg(tinyvae_dsp)]
    if few(c) && transposed && scatter::scattered(c, x, y, spare) {
        return;
    }
    #[cfg(tinyvae_dsp)]
    if dsp::wide_patches(c, transposed, x, y, (patch, spare)) {
        return;
    }
    let s = &c.shape;
    let r = usize::from(c.matrix.out_dim);
    let zp = c.matrix.input_zero_point;
    for_each_product(c, transposed, &mut |m, walk| {
        let Some(patch) = patch.get_mut(..usize::from(m.in_dim)) else {
            return;
        };
        // On ARMv6-M the product's requantization is read from aligned words, made once for
        // every position (the format's arrays are read byte by byte otherwise).
        #[cfg(tinyvae_v6m)]
        let mut table = [crate::arm::v6m::Quant::default(); crate::arm::v6m::MAX_PREPARED];
        #[cfg(tinyvae_v6m)]
        let prepared = crate::arm::v6m::prepare(&m, &mut table);
        walk.run(s, &mut |at, taps| {
            patch_to(s, zp, x, taps, &mut Flat(&mut *patch));
            if let Some(out) = y.get_mut(at * r..at * r + r) {
                #[cfg(tinyvae_v6m)]
                if let Some(t) = prepared {
                    if crate::arm::v6m::tiled_i8_prepared(&m, t, patch, out, spare) {
                        return;
                    }
                }
                dense::dense_i8(&m, patch, out, spare);
            }
        });
    });
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

    /// [`Walk::run`] a row of outputs at a time: `visit(first output's index, its taps,
    /// positions in the row)`; position `k` of a row is output `first + k step`, its taps'
    /// first column `x0 + k tstep`.
    #[cfg(tinyvae_v6m)]
    #[inline(never)]
    fn run_rows(&self, s: &ConvShape, visit: &mut dyn FnMut(usize, Taps, usize)) {
        let (oh, ow) = (usize::from(s.out_height), usize::from(s.out_width));
        let (mut count, mut ox) = (0, self.ox0);
        while ox < ow {
            (count, ox) = (count + 1, ox + self.step);
        }
        let (mut oy, mut ty) = (self.oy0, self.ty0);
        while oy < oh && count > 0 {
            let taps = Taps {
                y0: ty,
                x0: self.tx0,
                ny: self.ny,
                nx: self.nx,
                dir: self.dir,
            };
            visit(oy * ow + self.ox0, taps, count);
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

#[cfg(test)]
mod tests;
