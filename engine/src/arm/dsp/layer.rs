//! The dense layers' DSP routines: the fused int8 layer (one position, and two positions
//! for convolutions), the int16 layer through the raw tile loop, and their preconditions.

use tinyvae_format::Dense;

use super::*;

/// What [`tinyvae_dense_i8_smlad`] reads (into its frame, where it advances its own
/// copies): at least one block of four rows. The biases and outputs are found from the
/// multipliers and shifts, which advance at the same strides (16 and 4 bytes a block).
#[repr(C)]
pub(super) struct Job {
    tiles: *const i8,
    wide: *const u32,
    groups: usize,
    /// Unused: the routine works out its tile loop's entry.
    entry: usize,
    multiplier: *const u8,
    shift: *const u8,
    /// `out - shift - 4`, wrapping: the block's outputs from the shifts past it.
    out_from_shift: usize,
    /// The activation's lower bound in each byte.
    lo: u32,
    zero_point: i32,
    /// `bias - multiplier`, wrapping.
    bias_from_multiplier: usize,
    /// The shifts' end: `shift + 4 * blocks`.
    end: *const u8,
}

impl Job {
    /// The job for `blocks` blocks of four rows from the given parameters and outputs.
    fn new(
        (tiles, wide, groups): (*const i8, *const u32, usize),
        (bias, multiplier, shift): (*const u8, *const u8, *const u8),
        out: *mut i8,
        blocks: usize,
        (zero_point, lo): (i32, i32),
    ) -> Job {
        Job {
            tiles,
            wide,
            groups,
            entry: 0,
            multiplier,
            shift,
            out_from_shift: (out as usize).wrapping_sub(shift as usize).wrapping_sub(4),
            lo: u32::from(lo as u8) * 0x0101_0101,
            zero_point,
            bias_from_multiplier: (bias as usize).wrapping_sub(multiplier as usize),
            end: shift.wrapping_add(4 * blocks),
        }
    }
}

/// What [`tinyvae_dense2_i8_smlad`] reads and advances: [`Job`]'s fields for two
/// positions, whose outputs are `b_offset` bytes apart; `blocks` at least 1.
#[cfg(not(tinyvae_small))]
#[repr(C)]
pub(super) struct PairJob {
    tiles: *const i8,
    pairs: *const u32,
    groups: usize,
    blocks: usize,
    bias: *const u8,
    multiplier: *const u8,
    shift: *const u8,
    out: *mut i8,
    zero_point: i32,
    lo: i32,
    b_offset: usize,
    /// Written by the routine: the tile loop's iterations and each half block's entry.
    iterations: usize,
    entries: [usize; 2],
}

/// An int8 layer with the fused kernel: every block of four rows in assembly,
/// requantization included (the last block, when `out_dim % 4` rows remain, through
/// four-entry copies of its parameters). Returns false, having done nothing, when the
/// preconditions fail (see [`ready`]), for another kernel to run instead.
#[inline(never)]
pub(crate) fn tiled_i8(layer: &Dense<'_>, x: &[i8], y: &mut [i8], spare: &mut [i8]) -> bool {
    match widened(layer, x, spare) {
        Some(wide) => tiled_i8_widened(layer, wide, y),
        None => false,
    }
}

/// The inputs widened into `spare`, when the layer's DSP preconditions hold.
fn widened<'s>(layer: &Dense<'_>, x: &[i8], spare: &'s mut [i8]) -> Option<&'s [u32]> {
    if !ready(layer, spare) {
        return None;
    }
    let groups = usize::from(layer.in_dim).div_ceil(4);
    let wide = words(spare).get_mut(..2 * groups)?;
    widen(x, wide);
    Some(wide)
}

/// An int16 layer (the encoder's last) with the tile loop ([`tiles_raw`], one block of
/// four rows at a time), then each row's bias and requantization saturated to int16.
/// Returns false, having done nothing, when the preconditions fail (see [`ready`]).
#[inline(never)]
pub(crate) fn tiled_i16(layer: &Dense<'_>, x: &[i8], y: &mut [i16], spare: &mut [i8]) -> bool {
    let (groups, out) = (
        usize::from(layer.in_dim).div_ceil(4),
        usize::from(layer.out_dim),
    );
    let Some(tiles) = tile_words(layer) else {
        return false;
    };
    let Some(wide) = widened(layer, x, spare) else {
        return false;
    };
    for (b, block) in tiles.chunks_exact(4 * groups).enumerate() {
        let mut sums = [0u32; 4];
        tiles_raw(block, wide, groups, &mut sums);
        for (j, s) in sums.into_iter().enumerate() {
            let row = 4 * b + j;
            if let (Some(out), true) = (y.get_mut(row), row < out) {
                let acc = layer.bias.get(row).unwrap_or(0).wrapping_add(s as i32);
                *out = crate::requant::output_i16(layer, row, acc);
            }
        }
    }
    true
}

/// A tiled layer's weights as words (checked word-aligned and complete).
fn tile_words<'a>(layer: &Dense<'a>) -> Option<&'a [u32]> {
    if !tiles_ready(layer) {
        return None;
    }
    let tiles = layer.packed_weights();
    // SAFETY: `tiles_ready` checked that the tiles start on a word; any bit pattern is a
    // valid u32; align_to only re-slices, and the prefix is then empty.
    let (head, words, _) = unsafe { tiles.align_to::<u32>() };
    head.is_empty().then_some(words)
}

/// A tiled layer as the assembly routines read it, checked: tiles word-aligned and
/// complete ([`tiles_ready`]), a bias, multiplier and shift per row.
struct Parts<'a> {
    out: usize,
    groups: usize,
    blocks: usize,
    rest: usize,
    tiles: &'a [i8],
    bias: &'a [u8],
    multiplier: &'a [u8],
    shift: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(layer: &Dense<'a>) -> Option<Parts<'a>> {
        let (n, out) = (usize::from(layer.in_dim), usize::from(layer.out_dim));
        let p = Parts {
            out,
            groups: n.div_ceil(4),
            blocks: out / 4,
            rest: out % 4,
            tiles: layer.packed_weights(),
            bias: layer.bias.as_bytes(),
            multiplier: layer.multiplier.as_bytes(),
            shift: layer.shift.as_bytes(),
        };
        let whole =
            p.bias.len() >= 4 * out && p.multiplier.len() >= 4 * out && p.shift.len() >= out;
        (p.groups > 0 && tiles_ready(layer) && whole).then_some(p)
    }
}

/// [`tiled_i8`] with the inputs already widened (by [`widen`]: `2 * groups` words).
/// Returns false, having done nothing, when a precondition fails.
#[inline(never)]
pub(crate) fn tiled_i8_widened(layer: &Dense<'_>, wide: &[u32], y: &mut [i8]) -> bool {
    let Some(p) = Parts::of(layer) else {
        return false;
    };
    let (out, groups, blocks, rest, tiles) = (p.out, p.groups, p.blocks, p.rest, p.tiles);
    if wide.len() < 2 * groups || y.len() < out {
        return false;
    }
    let range = crate::requant::output_range(layer);
    let tiling = (tiles.as_ptr(), wide.as_ptr(), groups);
    if blocks > 0 {
        let job = Job::new(
            tiling,
            (p.bias.as_ptr(), p.multiplier.as_ptr(), p.shift.as_ptr()),
            y.as_mut_ptr(),
            blocks,
            range,
        );
        // SAFETY: `tiles_ready` checked that the tiles are word-aligned and hold
        // `16 * groups` bytes per block of four rows, padding rows included; `wide` holds
        // `2 * groups` words; the biases, multipliers, shifts and outputs hold at least
        // `4 * blocks` entries (checked above). The routine reads and writes exactly those
        // (unaligned word loads of the little-endian biases and multipliers and unaligned
        // word stores of four outputs, which ARMv7E-M allows) and follows the AAPCS.
        unsafe { tinyvae_dense_i8_smlad(&job) };
    }
    if rest > 0 {
        // The last block: its tile rows past `out_dim` are zero padding; its parameters
        // and outputs through four-entry copies. (`get`: no panic path in the firmware.)
        let at = 4 * blocks;
        let mut o = [0i8; 4];
        let Some(last) = LastBlock::of(layer, at) else {
            return false;
        };
        let job = Job::new(
            (
                tiles.as_ptr().wrapping_add(16 * groups * blocks),
                tiling.1,
                groups,
            ),
            (
                last.bias.as_ptr(),
                last.multiplier.as_ptr(),
                last.shift.as_ptr(),
            ),
            o.as_mut_ptr(),
            1,
            range,
        );
        // SAFETY: as above; `job.tiles` points at the last block's `16 * groups` bytes,
        // the copies hold four entries each.
        unsafe { tinyvae_dense_i8_smlad(&job) };
        if let Some(dst) = y.get_mut(at..out) {
            dst.iter_mut().zip(o).for_each(|(d, v)| *d = v);
        }
    }
    true
}

/// An int8 layer for two inputs at once (a convolution's patches at positions `a` and
/// `b`, `a <= b`; equal when one is left), widened and interleaved by [`widen_pairs`]:
/// each weight's SXTB16 serves both (`tinyvae_dense2_i8_smlad`). The outputs go to
/// `y[a r..a r + r]` and `y[b r..b r + r]`, `r` the layer's rows. Returns false, having
/// done nothing, when a precondition fails.
#[cfg(not(tinyvae_small))]
#[inline(never)]
pub(crate) fn tiled_i8_pair(
    layer: &Dense<'_>,
    pairs: &[u32],
    y: &mut [i8],
    (a, b): (usize, usize),
) -> bool {
    let Some(p) = Parts::of(layer) else {
        return false;
    };
    let (out, groups, blocks, rest, tiles) = (p.out, p.groups, p.blocks, p.rest, p.tiles);
    if a > b || pairs.len() < 4 * groups || y.len() / out.max(1) <= b {
        return false;
    }
    let (zero_point, lo) = crate::requant::output_range(layer);
    let mut job = PairJob {
        tiles: tiles.as_ptr(),
        pairs: pairs.as_ptr(),
        groups,
        blocks,
        bias: p.bias.as_ptr(),
        multiplier: p.multiplier.as_ptr(),
        shift: p.shift.as_ptr(),
        out: y.as_mut_ptr().wrapping_add(a * out),
        zero_point,
        lo,
        b_offset: (b - a) * out,
        iterations: 0,
        entries: [0; 2],
    };
    if blocks > 0 {
        // SAFETY: `tiles_ready` checked that the tiles are word-aligned and hold
        // `16 * groups` bytes per block of four rows; `pairs` holds `4 * groups` words;
        // the biases, multipliers and shifts hold `out >= 4 * blocks` entries; `y` holds
        // `(b + 1) out` outputs, so both positions' `4 * blocks` outputs, at `a out` and
        // `b out`, lie inside it (checked above). The routine reads and writes exactly
        // those and follows the AAPCS.
        unsafe { tinyvae_dense2_i8_smlad(&mut job) };
    }
    if rest > 0 {
        // The last block through four-entry copies, as in `tiled_i8_widened`; the two
        // positions' outputs four bytes apart in one copy.
        let at = 4 * blocks;
        let mut o = [0i8; 8];
        let Some(last) = LastBlock::of(layer, at) else {
            return false;
        };
        job.blocks = 1;
        job.b_offset = 4;
        job.tiles = tiles.as_ptr().wrapping_add(16 * groups * blocks);
        (job.bias, job.multiplier, job.shift, job.out) = (
            last.bias.as_ptr(),
            last.multiplier.as_ptr(),
            last.shift.as_ptr(),
            o.as_mut_ptr(),
        );
        // SAFETY: as above; `job.tiles` points at the last block's `16 * groups` bytes,
        // the copies hold four entries each and the outputs eight.
        unsafe { tinyvae_dense2_i8_smlad(&mut job) };
        for (p, from) in [(a, 0), (b, 4)] {
            if let Some(dst) = y.get_mut(p * out + at..p * out + out) {
                dst.iter_mut().zip(&o[from..]).for_each(|(d, v)| *d = *v);
            }
        }
    }
    true
}

/// A dense int8 layer for two inputs at once (two samples of a batch): both widened and
/// interleaved per group as [`tiled_i8_pair`] reads them, then that routine, each weight's
/// SXTB16 serving both. The outputs go to `y[..r]` (`x[0]`'s) and `y[r..2 r]`, `r` the
/// layer's rows. `spare` holds the pairs: `16 * groups` bytes, 3 more to align them.
/// Returns false, having done nothing, when a precondition fails.
#[cfg(not(tinyvae_small))]
#[inline(never)]
pub(crate) fn tiled_i8_two(
    layer: &Dense<'_>,
    x: [&[i8]; 2],
    y: &mut [i8],
    spare: &mut [i8],
) -> bool {
    let n = usize::from(layer.in_dim);
    let (groups, whole) = (n.div_ceil(4), n / 4 * 4);
    if !tiles_ready(layer) {
        return false;
    }
    let Some(pairs) = words(spare).get_mut(..4 * groups) else {
        return false;
    };
    for (k, x) in x.into_iter().enumerate() {
        let (Some(body), Some(tail)) = (x.get(..whole), x.get(whole..n)) else {
            return false;
        };
        // Each sample's words 4 g + 2 k and 4 g + 2 k + 1 of every group g.
        if let Some(slot) = pairs.get_mut(2 * k..) {
            widen_pairs(body, slot);
        }
        if !tail.is_empty() {
            let mut t = [0i8; 4];
            t.iter_mut().zip(tail).for_each(|(d, v)| *d = *v);
            if let Some(slot) = pairs.get_mut(4 * (groups - 1) + 2 * k..) {
                widen_pairs(&t, slot);
            }
        }
    }
    tiled_i8_pair(layer, pairs, y, (0, 1))
}

/// The parameters of a layer's last, partial block of four rows (from row `at`), copied
/// into four entries each (zeros past the layer's rows) for the routines, which always
/// read four.
struct LastBlock {
    bias: [u8; 16],
    multiplier: [u8; 16],
    shift: [u8; 4],
}

impl LastBlock {
    fn of(layer: &Dense<'_>, at: usize) -> Option<LastBlock> {
        let out = usize::from(layer.out_dim);
        let mut last = LastBlock {
            bias: [0; 16],
            multiplier: [0; 16],
            shift: [0; 4],
        };
        let bias = layer.bias.as_bytes().get(4 * at..4 * out)?;
        let multiplier = layer.multiplier.as_bytes().get(4 * at..4 * out)?;
        let shift = layer.shift.as_bytes().get(at..out)?;
        // zip, not copy_from_slice, whose length panic formats its message (core::fmt).
        last.bias.iter_mut().zip(bias).for_each(|(d, v)| *d = *v);
        last.multiplier
            .iter_mut()
            .zip(multiplier)
            .for_each(|(d, v)| *d = *v);
        last.shift.iter_mut().zip(shift).for_each(|(d, v)| *d = *v);
        Some(last)
    }
}

/// The kernel's preconditions: tiles word-aligned and complete, spare room for the
/// widened inputs.
pub(crate) fn ready(layer: &Dense<'_>, spare: &[i8]) -> bool {
    let groups = usize::from(layer.in_dim).div_ceil(4);
    let skip = spare.as_ptr().align_offset(4).min(spare.len());
    tiles_ready(layer) && (spare.len() - skip) / 4 >= 2 * groups
}

/// The tiles' preconditions: a `Tiles4x4` layer whose tiles are word-aligned and complete.
pub(crate) fn tiles_ready(layer: &Dense<'_>) -> bool {
    let (n, out) = (usize::from(layer.in_dim), usize::from(layer.out_dim));
    let tiles = layer.packed_weights();
    layer.layout == tinyvae_format::WeightLayout::Tiles4x4
        && (tiles.as_ptr() as usize).is_multiple_of(4)
        && tiles.len() == 16 * n.div_ceil(4) * out.div_ceil(4)
}
