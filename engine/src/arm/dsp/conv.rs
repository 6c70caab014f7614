//! The convolutions' DSP routines: one output channel's requantization, the widening of a
//! pair of patches and its gather from the input's rows, the raw tile loop and the scatter
//! form's row of pixels.

use super::*;

/// What [`tinyvae_requantize_i8`] reads: one output channel's accumulators and outputs,
/// its requantization on the fast path (multiplier in `[2^30, 2^31)`, right shift).
/// (Builds for size; the others requantize whole rows, [`requantize_rows`].)
#[cfg(tinyvae_small)]
#[repr(C)]
pub(super) struct RequantJob {
    acc: *const u32,
    out: *mut i8,
    n: usize,
    /// The activation's lower bound in each byte.
    lo: u32,
    acc_stride: usize,
    out_stride: usize,
    /// Twice the multiplier, wrapping.
    double_multiplier: u32,
    /// The right shift, 1 to 31.
    e: u32,
    zero_point: i32,
}

/// Requantizes channel `o` of `r`: accumulators `acc[p r + o]` to outputs `y[p r + o]`
/// for every position `p` both slices hold, with the multiplier, shift, zero-point and
/// lower bound given, in assembly (`tinyvae_requantize_i8`). Returns false, having done
/// nothing, off its fast path (a multiplier below 2^30 or a shift that is not a right
/// shift) or when no position is whole, for the caller's loop instead.
#[cfg(tinyvae_small)]
pub(crate) fn requantize_channel(
    (acc, y): (&[u32], &mut [i8]),
    (o, r): (usize, usize),
    (multiplier, shift): (i32, i8),
    (zero_point, lo): (i32, i32),
) -> bool {
    let n = (acc.len() / r.max(1)).min(y.len() / r.max(1));
    if o >= r || n == 0 || shift >= 0 || multiplier < 1 << 30 {
        return false;
    }
    let (Some(acc), Some(y)) = (acc.get(o..), y.get_mut(o..)) else {
        return false;
    };
    let job = RequantJob {
        acc: acc.as_ptr(),
        out: y.as_mut_ptr(),
        n,
        lo: u32::from(lo as u8) * 0x0101_0101,
        acc_stride: 4 * r,
        out_stride: r,
        double_multiplier: (multiplier as u32).wrapping_shl(1),
        e: u32::from(shift.unsigned_abs()),
        zero_point,
    };
    // SAFETY: the routine reads `acc[p r + o]` and writes `y[p r + o]` (of the slices as
    // given) for `p < n`, inside both (`n r <= len`, `o < r`), and follows the AAPCS.
    unsafe { tinyvae_requantize_i8(&job) };
    true
}

/// What [`tinyvae_requantize_rows`] reads: [`RequantJob`]'s fields for rows of outputs,
/// and the rows' shape.
#[cfg(not(tinyvae_small))]
#[repr(C)]
pub(super) struct RowsJob {
    acc: *const u32,
    out: *mut i8,
    rows: usize,
    lo: u32,
    acc_stride: usize,
    out_stride: usize,
    double_multiplier: u32,
    e: u32,
    zero_point: i32,
    cols: usize,
    acc_gap: usize,
    out_gap: usize,
}

/// [`requantize_channel`] over `rows` rows of `cols` positions of `r` channels, channel
/// `o`: accumulator `acc[i w + p r + o]` to output `y[(i cols + p) r + o]` for row `i` and
/// position `p`, `w` the accumulators' words a row (at least `cols r`), in one call
/// (`tinyvae_requantize_rows`). Returns false, having done nothing, off the fast path or
/// when a slice is short.
#[cfg(not(tinyvae_small))]
pub(crate) fn requantize_rows(
    (acc, y): (&[u32], &mut [i8]),
    (rows, cols, w): (usize, usize, usize),
    (o, r): (usize, usize),
    (multiplier, shift): (i32, i8),
    (zero_point, lo): (i32, i32),
) -> bool {
    let last = |row: usize| {
        (rows.checked_sub(1)?.checked_mul(row)?)
            .checked_add((cols.checked_sub(1)?).checked_mul(r)?)?
            .checked_add(o)
    };
    let fits = matches!(last(w), Some(a) if a < acc.len())
        && matches!(last(cols * r), Some(b) if b < y.len())
        && o < r
        && w >= cols * r;
    let (Some(acc), Some(y)) = (acc.get(o..), y.get_mut(o..)) else {
        return false;
    };
    if !fits || shift >= 0 || multiplier < 1 << 30 {
        return false;
    }
    let job = RowsJob {
        acc: acc.as_ptr(),
        out: y.as_mut_ptr(),
        rows,
        lo: u32::from(lo as u8) * 0x0101_0101,
        acc_stride: 4 * r,
        out_stride: r,
        double_multiplier: (multiplier as u32).wrapping_shl(1),
        e: u32::from(shift.unsigned_abs()),
        zero_point,
        cols,
        acc_gap: 4 * (w - cols * r),
        out_gap: 0,
    };
    // SAFETY: the routine reads `acc[i w + p r + o]` and writes `y[(i cols + p) r + o]`
    // for i < rows, p < cols, inside both (the largest of each checked above), and follows
    // the AAPCS.
    unsafe { tinyvae_requantize_rows(&job) };
    true
}

/// int8 inputs to int16 pairs as [`widen`] makes them, into every other pair of words
/// of `pairs` (one position's patch of a pair, [`tiled_i8_pair`]). `x` holds whole
/// groups of four; nothing is written when `pairs` is short.
#[cfg(not(tinyvae_small))]
pub(crate) fn widen_pairs(x: &[i8], pairs: &mut [u32]) {
    let groups = x.len() / 4;
    if groups > 0 && pairs.len() >= 4 * groups - 2 {
        // SAFETY: `x` holds 4 * groups bytes (unaligned word loads, which ARMv7E-M
        // allows); the routine writes words 4 g and 4 g + 1 for g < groups, inside
        // `pairs` (checked), and follows the AAPCS.
        unsafe { tinyvae_widen_i8_pairs(x.as_ptr(), pairs.as_mut_ptr(), groups) };
    }
}

/// [`widen_pairs`] over `rows` runs of `x` of `4 * groups` bytes each, the first at `at`,
/// each `stride` bytes after the one before, one after another into `pairs` (a patch
/// whose taps all lie inside the input, gathered from its rows). False, having written
/// nothing, when `x` or `pairs` is short or a count is zero.
#[cfg(not(tinyvae_small))]
pub(crate) fn gather_pairs(
    x: &[i8],
    (at, stride, rows): (usize, usize, usize),
    groups: usize,
    pairs: &mut [u32],
) -> bool {
    let last = (rows.wrapping_sub(1))
        .checked_mul(stride)
        .and_then(|d| d.checked_add(at))
        .and_then(|a| a.checked_add(4 * groups));
    // (With `stride >= 4 groups`, `4 groups rows <= rows stride`, which `x` bounds.)
    let fits = groups > 0
        && rows > 0
        && stride >= 4 * groups
        && matches!(last, Some(end) if end <= x.len())
        && pairs.len() >= 4 * groups * rows - 2;
    if fits {
        // SAFETY: checked above: the `rows` runs of `4 * groups` bytes from `at`, `stride`
        // apart, lie inside `x` (unaligned word loads, which ARMv7E-M allows); the routine
        // writes words 4 g and 4 g + 1 for g < groups * rows, inside `pairs`; it follows
        // the AAPCS.
        unsafe {
            tinyvae_gather_i8_pairs(
                x.as_ptr().wrapping_add(at),
                pairs.as_mut_ptr(),
                groups,
                rows,
                stride,
            )
        };
    }
    fits
}

/// What [`tinyvae_tiles_raw`] reads and advances.
#[repr(C)]
pub(super) struct RawJob {
    tiles: *const u32,
    wide: *const u32,
    groups: usize,
    blocks: usize,
    out: *mut u32,
}

/// The dot products of one widened input (`2 * groups` words, by [`widen`]) with every
/// row of `blocks` blocks of 4 x 4 tiles (`4 * groups` words per block, each word a row's
/// four int8 weights), into `sums` (four per block), wrapping. Returns false, having done
/// nothing, when a slice is short.
pub(crate) fn tiles_raw(tiles: &[u32], wide: &[u32], groups: usize, sums: &mut [u32]) -> bool {
    let blocks = sums.len() / 4;
    if groups == 0 || wide.len() < 2 * groups || tiles.len() < 4 * groups * blocks {
        return false;
    }
    let mut job = RawJob {
        tiles: tiles.as_ptr(),
        wide: wide.as_ptr(),
        groups,
        blocks,
        out: sums.as_mut_ptr(),
    };
    // SAFETY: checked above: `tiles` holds the 4 * groups words of each of `blocks`
    // blocks, `wide` 2 * groups words, `sums` 4 * blocks words; the routine reads and
    // writes exactly those and follows the AAPCS.
    unsafe { tinyvae_tiles_raw(&mut job) };
    true
}

/// What [`tinyvae_scatter_row`] reads (and advances: the pixel count).
#[cfg(not(tinyvae_small))]
#[repr(C)]
pub(super) struct RowJob {
    tiles: *const u32,
    wide: *const u32,
    groups: usize,
    blocks: usize,
    out: *mut u32,
    steps: *const u32,
    pixels: usize,
    pixel_step: usize,
}

/// The scatter form's tile loop over `pixels` input pixels, their widened inputs one after
/// another in `wide` (`2 * groups` words each, by [`widen`]): each pixel against every row
/// of the tiles as in [`tiles_raw`], row `n`'s sum added (wrapping) to accumulator
/// `acc[at + p * step + steps[n]]` for pixel `p`, where each block's four rows land on
/// neighbouring accumulators (`steps[4 b + j] = steps[4 b] + j`; `steps` holds four
/// entries per block). Returns false, having done nothing, when a slice is short, a
/// block's rows are not neighbours or an accumulator lies outside `acc`.
#[cfg(not(tinyvae_small))]
#[inline(never)]
pub(crate) fn scatter_row(
    tiles: &[u32],
    (wide, groups, pixels): (&[u32], usize, usize),
    (acc, at, step): (&mut [u32], usize, usize),
    steps: &[u32],
) -> bool {
    let blocks = steps.len() / 4;
    let fits = row_fits(tiles, (groups, pixels), (acc.len(), at, step), steps)
        && wide.len() / 2 / groups >= pixels;
    if !fits {
        return false;
    }
    let mut job = RowJob {
        tiles: tiles.as_ptr(),
        wide: wide.as_ptr(),
        groups,
        blocks,
        out: acc.as_mut_ptr().wrapping_add(at),
        steps: steps.as_ptr(),
        pixels,
        pixel_step: 4 * step,
    };
    // SAFETY: checked above: `tiles` holds the 4 * groups words of each of `blocks`
    // blocks, `wide` 2 * groups words for each of `pixels` pixels, and every block's four
    // accumulators of every pixel, `at + p step + steps[4 b] + j` for j < 4, lie inside
    // `acc` (word-aligned: a `u32` slice; the largest step bounds them all, the rows of a
    // block being neighbours); the routine reads `steps[4 b]` for b < blocks, reads and
    // writes exactly those, and follows the AAPCS.
    unsafe { tinyvae_scatter_row(&mut job) };
    true
}

/// What [`tinyvae_scatter_pairs`] reads.
#[cfg(not(tinyvae_small))]
#[repr(C)]
pub(super) struct PairRowJob {
    tiles: *const u32,
    pairs: *const u32,
    groups: usize,
    blocks: usize,
    out: *mut u32,
    steps: *const u32,
    count: usize,
    pixel_step: usize,
}

/// A row of pixels as [`scatter_pairs`] runs it, checked once for a whole layer
/// ([`PairsPlan::new`]): everything but the row's inputs and its first accumulator.
#[cfg(not(tinyvae_small))]
#[derive(Clone, Copy)]
pub(crate) struct PairsPlan<'a> {
    tiles: &'a [u32],
    steps: &'a [u32],
    groups: usize,
    pixels: usize,
    /// Words from one pixel's first accumulator to the next's.
    step: usize,
    /// Words from a pixel's first accumulator past its last.
    reach: usize,
}

#[cfg(not(tinyvae_small))]
impl<'a> PairsPlan<'a> {
    /// The plan for rows of `pixels` pixels of `4 * groups` channels against `tiles` (its
    /// blocks' rows landing `steps` words past a pixel's first accumulator), pixels `step`
    /// words apart; `None` unless there are at least two pixels, `groups` and the blocks
    /// (`steps.len() / 4`) are at least 1, `tiles` holds every block's `4 * groups` words,
    /// each block's four rows are neighbours (`steps[4 b + j] = steps[4 b] + j`), and
    /// `step` is at least two words (each half block holds two neighbouring accumulators
    /// per pixel in registers: the two pixels' must not overlap, as a step of one word, a
    /// stride of 1 to one channel, would make them).
    pub(crate) fn new(
        tiles: &'a [u32],
        (groups, pixels): (usize, usize),
        step: usize,
        steps: &'a [u32],
    ) -> Option<PairsPlan<'a>> {
        let blocks = steps.len() / 4;
        let neighbours = steps
            .chunks_exact(4)
            .all(|s| (1..4).all(|j| s[j] == s[0].wrapping_add(j as u32)));
        let reach = steps.iter().max().map(|m| *m as usize + 1)?;
        let ok = pixels >= 2
            && step >= 2
            && groups > 0
            && blocks > 0
            && tiles.len() / 4 / groups >= blocks
            && neighbours;
        ok.then_some(PairsPlan {
            tiles,
            steps,
            groups,
            pixels,
            step,
            reach,
        })
    }
}

/// [`scatter_row`] for a row of the plan's pixels (int8, `4 * groups` channels each, one
/// after another in `x`) taken two at a time, the input zero-point `zp` taken off every
/// input (the caller folds its share into the biases): each pair widened into `wide` (`4 *
/// groups` words a pair, interleaved per group as [`tiled_i8_pair`] reads them) and run with
/// each weight's SXTB16 serving both pixels (`tinyvae_scatter_pairs`); pixel `p`'s first
/// accumulator is `acc[at + p step]`. A last, odd pixel runs alone ([`scatter_row`]).
/// Returns false, having done nothing, when `x` or `wide` is short or an accumulator lies
/// outside `acc`.
#[cfg(not(tinyvae_small))]
pub(crate) fn scatter_pairs(
    plan: &PairsPlan<'_>,
    (x, wide, zp): (&[i8], &mut [u32], i8),
    (acc, at): (&mut [u32], usize),
) -> bool {
    let (groups, pixels, step) = (plan.groups, plan.pixels, plan.step);
    let (ch, count) = (4 * groups, pixels / 2);
    // The last pixel's last accumulator.
    let end = ((pixels - 1) * step)
        .checked_add(at)
        .and_then(|a| a.checked_add(plan.reach));
    let fits = matches!(end, Some(e) if e <= acc.len())
        && x.len() >= ch * pixels
        && wide.len() >= 4 * groups * count;
    if !fits {
        return false;
    }
    // A last, odd pixel first, alone: the one-pixel routine's checks all hold (the plan's
    // and the row's, above), so it does not refuse, and nothing is left half done.
    if pixels % 2 == 1 {
        let last = x.get(ch * (pixels - 1)..ch * pixels).unwrap_or_default();
        widen_less(last, zp, wide);
        let at = at + (pixels - 1) * step;
        if !scatter_row(plan.tiles, (wide, groups, 1), (acc, at, step), plan.steps) {
            return false;
        }
    }
    let z = u32::from((-i16::from(zp)) as u16) * 0x0001_0001;
    // SAFETY: `x` holds the 2 count pixels' 4 groups bytes each (unaligned word loads,
    // which ARMv7E-M allows), `wide` the 4 groups words of each of `count` pairs (checked
    // above); the routine reads and writes exactly those and follows the AAPCS.
    unsafe { tinyvae_widen_row_pairs(x.as_ptr(), wide.as_mut_ptr(), groups, count, z) };
    let job = PairRowJob {
        tiles: plan.tiles.as_ptr(),
        pairs: wide.as_ptr(),
        groups,
        blocks: plan.steps.len() / 4,
        out: acc.as_mut_ptr().wrapping_add(at),
        steps: plan.steps.as_ptr(),
        count,
        pixel_step: 4 * step,
    };
    // SAFETY: the plan holds that `tiles` holds the 4 * groups words of each of the
    // `steps.len() / 4` blocks and that a block's four rows are neighbours; checked above
    // that every block's four accumulators of every one of the row's pixels, `at + p step
    // + steps[4 b] + j` for j < 4 (below `at + p step + reach`), lie inside `acc`
    // (word-aligned: a `u32` slice) and that `wide` holds the 4 * groups words of each of
    // `count` pairs. The routine reads `steps[4 b]`, reads and writes exactly those
    // accumulators (the first 2 count pixels'), and follows the AAPCS.
    unsafe { tinyvae_scatter_pairs(&job) };
    true
}

/// One pixel's int8 inputs less the zero-point `zp`, widened to int16 pairs as [`widen`]
/// writes them (per group of four: (x0 - zp, x2 - zp), (x1 - zp, x3 - zp)); zeros past
/// `x` in its last group. Nothing is written past `wide`.
#[cfg(not(tinyvae_small))]
#[inline(never)]
pub(crate) fn widen_less(x: &[i8], zp: i8, wide: &mut [u32]) {
    let half = |v: i8| u32::from((i16::from(v) - i16::from(zp)) as u16);
    for (g, w) in x.chunks(4).zip(wide.chunks_exact_mut(2)) {
        let mut t = [zp; 4];
        t.iter_mut().zip(g).for_each(|(d, v)| *d = *v);
        w[0] = half(t[0]) | half(t[2]) << 16;
        w[1] = half(t[1]) | half(t[3]) << 16;
    }
}

/// The scatter routines' bounds for a row of `pixels` pixels: `groups` and the blocks
/// (`steps.len() / 4`) at least 1, `tiles` holding every block's `4 * groups` words, each
/// block's four rows neighbours (`steps[4 b + j] = steps[4 b] + j`), and every
/// accumulator a pixel's rows reach, `at + p step + steps[n]`, inside `acc_len`
/// (checked without overflow).
#[cfg(not(tinyvae_small))]
fn row_fits(
    tiles: &[u32],
    (groups, pixels): (usize, usize),
    (acc_len, at, step): (usize, usize, usize),
    steps: &[u32],
) -> bool {
    let blocks = steps.len() / 4;
    let neighbours = steps
        .chunks_exact(4)
        .all(|s| (1..4).all(|j| s[j] == s[0].wrapping_add(j as u32)));
    let reach = steps.iter().max().map(|m| *m as usize + 1);
    // The last pixel's last accumulator.
    let end = pixels
        .checked_sub(1)
        .and_then(|p| p.checked_mul(step))
        .and_then(|d| d.checked_add(at))
        .zip(reach)
        .and_then(|(a, r)| a.checked_add(r));
    matches!(end, Some(e) if e <= acc_len)
        && groups > 0
        && blocks > 0
        && tiles.len() / 4 / groups >= blocks
        && neighbours
}
