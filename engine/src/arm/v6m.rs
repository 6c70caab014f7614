//! The ARMv6-M kernel for int8 layers in 4 x 4 tiles (Cortex-M0, M0+; ARMv8-M Baseline):
//! the tile loop and the requantization in one assembly routine (src/arm/dense_v6m.s), where
//! the compiled portable loop spills registers and builds the requantization's 64-bit
//! product through calls. The same bits as the portable kernels, checked on the chip
//! against them (`dspcheck` on the micro:bit) and on the host by the shared tests.

use tinyvae_format::Dense;

// With the few-channel convolutions' routine (`conv::few`), which uses dense_v6m.s's
// macros: one assembly input for both.
core::arch::global_asm!(
    include_str!(concat!(env!("OUT_DIR"), "/dense_v6m.s")),
    include_str!(concat!(env!("OUT_DIR"), "/few_v6m.s")),
    options(raw)
);

/// What [`tinyvae_dense_i8_v6m`] reads and advances: blocks of four rows from `tiles`,
/// `bias`, `multiplier`, `shift` and `out` on; the routine counts `blocks` down as it
/// finishes each, and stops early, with the job at the block, on parameters off its fast
/// path.
#[repr(C)]
struct Job {
    /// The block's tiles, word-aligned (advanced past a block even when it stops there).
    tiles: *const i8,
    x: *const i8,
    /// `x` plus the inputs' length, a multiple of 4.
    x_end: *const i8,
    bias: *const u8,
    multiplier: *const u8,
    shift: *const u8,
    out: *mut i8,
    blocks: usize,
    zero_point: i32,
    lo: i32,
}

// The routine's name carries the crate's version (build.rs: `crate::ASM_PREFIX`).
extern "C" {
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "dense_i8_v6m")]
    fn tinyvae_dense_i8_v6m(job: *mut Job);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "dense_i8q_v6m")]
    fn tinyvae_dense_i8q_v6m(job: *mut Job);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "tiles_v6m")]
    fn tinyvae_tiles_v6m(tiles: *const i8, x: *const i8, x_end: *const i8, sums: *mut [i32; 4]);
}

/// Runs an int8 layer in 4 x 4 tiles whose tiles are word-aligned, with the assembly
/// routine for every whole block of four rows on its fast path (a multiplier in
/// `[2^30, 2^31)` and a right shift, as trained layers have), and the definition for the
/// rest. The inputs are read in place when their number is a multiple of 4, else from a
/// zero-padded copy in `spare`. Returns false, having done nothing, when a precondition
/// fails (the tiles misaligned or short, `spare` too small for a copy, short slices).
#[inline(never)]
pub(crate) fn tiled_i8(layer: &Dense<'_>, x: &[i8], y: &mut [i8], spare: &mut [i8]) -> bool {
    blocks(layer, None, x, y, spare)
}

/// One output channel's requantization as [`tiled_i8_prepared`]'s routine reads it: aligned
/// words, where the format's arrays are not (ARMv6-M faults on an unaligned word load and
/// the routine would read them byte by byte), and checked on the fast path once.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Quant {
    bias: i32,
    /// The multiplier's high and low 16 bits.
    mh: i32,
    ml: i32,
    /// The right shift, 1 to 31.
    e: i32,
}

/// The most output channels [`prepare`] takes (a table of 1 KiB, on the stack).
pub(crate) const MAX_PREPARED: usize = 64;

/// `layer`'s requantization as a table for [`tiled_i8_prepared`], in `table`; None when the
/// layer has more than [`MAX_PREPARED`] outputs or a row off the fast path (a multiplier
/// outside `[2^30, 2^31)`, a shift outside `[-31, -1]`).
pub(crate) fn prepare<'t>(
    layer: &Dense<'_>,
    table: &'t mut [Quant; MAX_PREPARED],
) -> Option<&'t [Quant]> {
    let rows = table.get_mut(..usize::from(layer.out_dim))?;
    for (o, q) in rows.iter_mut().enumerate() {
        let (m, shift) = (layer.multiplier.get(o)?, layer.shift.get(o)?);
        if !(1 << 30..=i32::MAX).contains(&m) || !(-31..=-1).contains(&shift) {
            return None;
        }
        *q = Quant {
            bias: layer.bias.get(o)?,
            mh: m >> 16,
            ml: m & 0xFFFF,
            e: -i32::from(shift),
        };
    }
    Some(rows)
}

/// [`tiled_i8`] with the requantization read from `table` (from [`prepare`] for this
/// layer): for a layer run many times, a convolution's product at every position.
#[inline(never)]
pub(crate) fn tiled_i8_prepared(
    layer: &Dense<'_>,
    table: &[Quant],
    x: &[i8],
    y: &mut [i8],
    spare: &mut [i8],
) -> bool {
    table.len() == usize::from(layer.out_dim) && blocks(layer, Some(table), x, y, spare)
}

/// [`tiled_i8`], the requantization from the format's arrays or, with `table`, from it.
fn blocks(
    layer: &Dense<'_>,
    table: Option<&[Quant]>,
    x: &[i8],
    y: &mut [i8],
    spare: &mut [i8],
) -> bool {
    let (n, out) = (usize::from(layer.in_dim), usize::from(layer.out_dim));
    let (bias, multiplier, shift) = (
        layer.bias.as_bytes(),
        layer.multiplier.as_bytes(),
        layer.shift.as_bytes(),
    );
    let Some((tiles, groups)) = tiles(layer) else {
        return false;
    };
    let ready = bias.len() >= 4 * out
        && multiplier.len() >= 4 * out
        && shift.len() >= out
        && x.len() >= n
        && y.len() >= out;
    if !ready {
        return false;
    }
    let Some(x) = inputs(x, n, spare) else {
        return false;
    };
    let (zero_point, lo) = crate::requant::output_range(layer);
    let blocks = out / 4;
    let mut b = 0;
    while b < blocks {
        // (Pointer offsets, not indexing: no panic path in the firmware.)
        let mut job = Job {
            tiles: tiles.as_ptr().wrapping_add(16 * groups * b),
            x: x.as_ptr(),
            x_end: x.as_ptr_range().end,
            bias: bias.as_ptr().wrapping_add(16 * b),
            multiplier: multiplier.as_ptr().wrapping_add(16 * b),
            shift: shift.as_ptr().wrapping_add(4 * b),
            out: y.as_mut_ptr().wrapping_add(4 * b),
            blocks: blocks - b,
            zero_point,
            lo,
        };
        match table {
            Some(t) => {
                job.bias = t.as_ptr().wrapping_add(4 * b).cast();
                // SAFETY: as below, the requantization read from `t`'s rows of blocks
                // b..blocks (`t` holds a row per output, checked by the caller), aligned
                // words; every row is on the fast path (`prepare`), so the routine runs
                // every block.
                unsafe { tinyvae_dense_i8q_v6m(&mut job) };
            }
            // SAFETY: blocks b..blocks exist in every slice (checked above: the tiles hold
            // `16 * groups` bytes per block and start on a word; four biases, multipliers,
            // shifts and outputs per block); the routine reads `x` to `x_end` (`4 * groups`
            // bytes, byte by byte), words of the tiles, bytes of the rest, writes only the
            // outputs of the blocks it runs, and follows the AAPCS.
            None => unsafe { tinyvae_dense_i8_v6m(&mut job) },
        }
        b = blocks - job.blocks;
        if b < blocks {
            // A block off the fast path: the definition for its four rows.
            rows(layer, x, y, 4 * b..4 * b + 4);
            b += 1;
        }
    }
    rows(layer, x, y, 4 * blocks..out);
    true
}

/// Runs a layer with int16 outputs (the encoder's last) in 4 x 4 tiles whose tiles are
/// word-aligned: the tile loop in assembly a block of four rows at a time, its sums
/// requantized here (any multiplier and shift). Returns false, having done nothing, on the
/// preconditions of [`tiled_i8`].
#[inline(never)]
pub(crate) fn tiled_i16(layer: &Dense<'_>, x: &[i8], y: &mut [i16], spare: &mut [i8]) -> bool {
    let (n, out) = (usize::from(layer.in_dim), usize::from(layer.out_dim));
    let Some((tiles, groups)) = tiles(layer) else {
        return false;
    };
    if x.len() < n || y.len() < out {
        return false;
    }
    let Some(x) = inputs(x, n, spare) else {
        return false;
    };
    for b in 0..out.div_ceil(4) {
        let mut sums = [0i32; 4];
        // SAFETY: block b's `16 * groups` tile bytes exist and start on a word (checked
        // above); the routine reads them as words, `x` to `x_end` (`4 * groups` bytes)
        // byte by byte, writes the four sums, and follows the AAPCS.
        unsafe {
            tinyvae_tiles_v6m(
                tiles.as_ptr().wrapping_add(16 * groups * b),
                x.as_ptr(),
                x.as_ptr_range().end,
                &mut sums,
            )
        };
        for (j, s) in sums.into_iter().enumerate() {
            let row = 4 * b + j;
            if let (Some(o), true) = (y.get_mut(row), row < out) {
                let acc = layer.bias.get(row).unwrap_or(0).wrapping_add(s);
                *o = crate::requant::output_i16(layer, row, acc);
            }
        }
    }
    true
}

/// The layer's tiles and its number of column groups, when it is tiled, its tiles are
/// word-aligned and complete, and it has inputs.
fn tiles<'a>(layer: &Dense<'a>) -> Option<(&'a [i8], usize)> {
    let groups = usize::from(layer.in_dim).div_ceil(4);
    let tiles = layer.packed_weights();
    let ready = layer.layout == tinyvae_format::WeightLayout::Tiles4x4
        && (tiles.as_ptr() as usize).is_multiple_of(4)
        && tiles.len() == 16 * groups * usize::from(layer.out_dim).div_ceil(4)
        && groups > 0;
    ready.then_some((tiles, groups))
}

/// The layer's `n` inputs in whole groups of four: `x` itself when `n` is a multiple of 4,
/// else a zero-padded copy in `spare` (None when `spare` is too small).
fn inputs<'x>(x: &'x [i8], n: usize, spare: &'x mut [i8]) -> Option<&'x [i8]> {
    if n.is_multiple_of(4) {
        return x.get(..n);
    }
    let copy = spare.get_mut(..n.div_ceil(4) * 4)?;
    copy.fill(0);
    copy.iter_mut().zip(x).for_each(|(d, &v)| *d = v);
    Some(copy)
}

/// Rows `range` of the layer by the definition, weight by weight (the last, partial block,
/// and blocks whose parameters are off the routine's fast path).
fn rows(layer: &Dense<'_>, x: &[i8], y: &mut [i8], range: core::ops::Range<usize>) {
    for o in range {
        let acc = x.iter().enumerate().fold(0i32, |a, (j, &v)| {
            a.wrapping_add(i32::from(layer.weight(o, j)) * i32::from(v))
        });
        if let Some(out) = y.get_mut(o) {
            *out = crate::requant::output_i8(
                layer,
                o,
                layer.bias.get(o).unwrap_or(0).wrapping_add(acc),
            );
        }
    }
}
