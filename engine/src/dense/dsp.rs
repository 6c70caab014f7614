use tinyvae_format::Dense;

// The tile loop (TINYVAE_TILE), the fused int8 layer routine (`tinyvae_dense_i8_smlad`),
// the raw tile loop (`tinyvae_tiles_raw`) and the widening loop (`tinyvae_widen_i8`), in
// src/dense_dsp.s. Module assembly is assembled for the bare target: off ARMv7E-M, the DSP
// instructions need the CPU named even where `-C target-cpu` gives the compiled code the
// extension (build.rs, tinyvae_format::dsp_rule).
#[cfg(tinyvae_small)]
core::arch::global_asm!(
    env!("TINYVAE_ASM_CPU"),
    include_str!(concat!(env!("OUT_DIR"), "/dense_dsp.s")),
    options(raw)
);
// With the two-position convolution kernel, which uses dense_dsp.s's macros.
#[cfg(not(tinyvae_small))]
core::arch::global_asm!(
    env!("TINYVAE_ASM_CPU"),
    include_str!(concat!(env!("OUT_DIR"), "/dense_dsp.s")),
    include_str!(concat!(env!("OUT_DIR"), "/conv_pair_dsp.s")),
    options(raw)
);

/// What [`tinyvae_dense_i8_smlad`] reads (into its frame, where it advances its own
/// copies): at least one block of four rows. The biases and outputs are found from the
/// multipliers and shifts, which advance at the same strides (16 and 4 bytes a block).
#[repr(C)]
struct Job {
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
struct PairJob {
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

/// What [`tinyvae_requantize_i8`] reads: one output channel's accumulators and outputs,
/// its requantization on the fast path (multiplier in `[2^30, 2^31)`, right shift).
#[repr(C)]
struct RequantJob {
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

// The routines' names carry the crate's version (build.rs: `crate::ASM_PREFIX`).
extern "C" {
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "requantize_i8")]
    fn tinyvae_requantize_i8(job: *const RequantJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "dense_i8_smlad")]
    fn tinyvae_dense_i8_smlad(job: *const Job);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "widen_i8")]
    fn tinyvae_widen_i8(x: *const i8, wide: *mut u32, groups: usize);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "tiles_raw")]
    fn tinyvae_tiles_raw(job: *mut RawJob);
}

#[cfg(not(tinyvae_small))]
extern "C" {
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "dense2_i8_smlad")]
    fn tinyvae_dense2_i8_smlad(job: *mut PairJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "widen_i8_pairs")]
    fn tinyvae_widen_i8_pairs(x: *const i8, pairs: *mut u32, groups: usize);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "scatter_row")]
    fn tinyvae_scatter_row(job: *mut RowJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "gather_i8_pairs")]
    fn tinyvae_gather_i8_pairs(
        x: *const i8,
        pairs: *mut u32,
        groups: usize,
        rows: usize,
        stride: usize,
    );
}

/// An int8 layer with the fused kernel: every block of four rows in assembly,
/// requantization included (the last block, when `out_dim % 4` rows remain, through
/// four-entry copies of its parameters). Returns false, having done nothing, when the
/// preconditions fail (see [`ready`]), for another kernel to run instead.
#[inline(never)]
pub(super) fn tiled_i8(layer: &Dense<'_>, x: &[i8], y: &mut [i8], spare: &mut [i8]) -> bool {
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
pub(super) fn tiled_i16(layer: &Dense<'_>, x: &[i8], y: &mut [i16], spare: &mut [i8]) -> bool {
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
                *out = super::requantized(layer, row, acc)
                    .clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
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
    let range = super::output_range(layer);
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
    let (zero_point, lo) = super::output_range(layer);
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
pub(super) fn ready(layer: &Dense<'_>, spare: &[i8]) -> bool {
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

/// What [`tinyvae_tiles_raw`] reads and advances.
#[repr(C)]
struct RawJob {
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
struct RowJob {
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
pub(crate) fn scatter_row(
    tiles: &[u32],
    (wide, groups, pixels): (&[u32], usize, usize),
    (acc, at, step): (&mut [u32], usize, usize),
    steps: &[u32],
) -> bool {
    let blocks = steps.len() / 4;
    let neighbours = steps
        .chunks_exact(4)
        .all(|s| (1..4).all(|j| s[j] == s[0].wrapping_add(j as u32)));
    let reach = steps.iter().max().map(|m| *m as usize + 1);
    // The last pixel's last accumulator, checked without overflow.
    let end = pixels
        .checked_sub(1)
        .and_then(|p| p.checked_mul(step))
        .and_then(|d| d.checked_add(at))
        .zip(reach)
        .and_then(|(a, r)| a.checked_add(r));
    let fits = matches!(end, Some(e) if e <= acc.len())
        && groups > 0
        && blocks > 0
        && tiles.len() / 4 / groups >= blocks
        && wide.len() / 2 / groups >= pixels;
    if !(fits && neighbours) {
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

/// The aligned words of `bytes`.
pub(crate) fn words(bytes: &mut [i8]) -> &mut [u32] {
    // SAFETY: any bit pattern is a valid u32; align_to_mut only re-slices.
    let (_, words, _) = unsafe { bytes.align_to_mut::<u32>() };
    words
}

/// int8 inputs to int16 pairs, per group of 4: (x0, x2), (x1, x3); zeros past the end.
#[inline(never)]
pub(crate) fn widen(x: &[i8], wide: &mut [u32]) {
    let half = |v: i8| u32::from(i16::from(v) as u16);
    let full = (x.len() / 4).min(wide.len() / 2);
    if full > 0 {
        // SAFETY: `x` holds 4 * full bytes (read as words, unaligned loads, which
        // ARMv7E-M allows), `wide` 2 * full words; the routine touches exactly those
        // and follows the AAPCS.
        unsafe { tinyvae_widen_i8(x.as_ptr(), wide.as_mut_ptr(), full) };
    }
    // A last, partial group (zeros past the end), when there is room for it.
    let tail = x.get(4 * full..).unwrap_or_default();
    if let (Some(p), false) = (wide.get_mut(2 * full..2 * full + 2), tail.is_empty()) {
        let mut t = [0i8; 4];
        t.iter_mut().zip(tail).for_each(|(d, v)| *d = *v);
        p[0] = half(t[0]) | half(t[2]) << 16;
        p[1] = half(t[1]) | half(t[3]) << 16;
    }
}
