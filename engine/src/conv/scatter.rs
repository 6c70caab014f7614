//! The scatter form of a transposed convolution with few output channels, where the DSP
//! kernels run (thumbv7em): every input pixel meets every tap in one pass of the tile loop,
//! its sums added to a grid of accumulators ([`ScatterGrid`]), requantized at the end.

use tinyvae_format::Conv;

use super::ScatterGrid;
use crate::dense;
use crate::requant::requantize_q31;

/// A transposed convolution with few output channels in scatter form: every input pixel
/// times every tap is one dot product over the input channels, and lands on exactly one
/// output (or outside the output, at the borders): so each pixel's channels, widened once,
/// meet all `k^2 R` weight rows in one pass of the tile loop, four useful sums per block,
/// and each sum is added to its output's accumulator, in a grid with a border wide enough
/// that no tap needs clipping ([`ScatterGrid`]). The grid's output rows start at their
/// phases' biases ([`fill_biases`]; builds for size: at zero, the biases added at the end).
/// Where a block's four rows land on neighbouring accumulators (`k R` a multiple of 4,
/// e.g. a 4 x 4 kernel) the tile loop adds them in place, two pixels of a row at a time
/// ([`dense::dsp::scatter_pairs`]: the input zero-point taken off the inputs and folded
/// into the biases) or one ([`dense::dsp::scatter_row`]), else the sums are stored
/// ([`dense::dsp::tiles_raw`]) and added here. Without the fold, where the phase form
/// reads the input zero-point (a tap outside the input), this form walks the same pixels
/// outside the input and adds each row's weights times the zero-point. Requantized once
/// at the end ([`requantize_all`]). The same sums as the phase-by-phase form, in another
/// order (integer sums wrap, so the order cannot change a result). False, having done
/// nothing, when `spare` is too small.
#[inline(never)]
pub(super) fn scattered(c: &Conv<'_>, x: &[i8], y: &mut [i8], spare: &mut [i8]) -> bool {
    let s = &c.shape;
    let (ch, r) = (usize::from(s.in_channels), usize::from(c.matrix.out_dim));
    let (k, st) = (usize::from(s.kernel), usize::from(s.stride));
    let (ih, iw) = (usize::from(s.in_height), usize::from(s.in_width));
    let Some(g) = ScatterGrid::of(s) else {
        return false;
    };
    let cp = ch.div_ceil(4) * 4;
    let (groups, blocks) = (cp / 4, (k * k * r).div_ceil(4));
    let words = dense::dsp::words(spare);
    let Some((acc, rest)) = words.split_at_mut_checked(g.height * g.width * r) else {
        return false;
    };
    let Some((tiles, rest)) = rest.split_at_mut_checked(blocks * cp) else {
        return false;
    };
    let Some((wide, rest)) = rest.split_at_mut_checked(iw * cp / 2) else {
        return false;
    };
    let Some((sums, rest)) = rest.split_at_mut_checked(4 * blocks) else {
        return false;
    };
    let Some((zsums, rest)) = rest.split_at_mut_checked(4 * blocks) else {
        return false;
    };
    let Some(steps) = rest.get_mut(..k * k * r) else {
        return false;
    };
    if ch == 0 || r == 0 || r > MAX_R {
        return false;
    }
    let Some(mut biases) = phase_biases(c) else {
        return false;
    };
    if !load_taps(c, tiles, zsums) {
        return false;
    }
    // Row n (tap ky k + kx, channel o: n = (ky k + kx) r + o) of a pixel lands ky grid rows
    // and kx r + o words past the pixel's first accumulator.
    for (n, step) in steps.iter_mut().enumerate() {
        *step = ((n / (k * r)) * g.width * r + n % (k * r)) as u32;
    }
    let steps: &[u32] = steps;
    // Where a block's four rows land on neighbouring accumulators, the tile loop adds them
    // itself, for a whole row of pixels at a time where the pixels are whole groups of
    // four channels (widened together).
    // (Builds for size leave this out: flash.)
    let fused = !cfg!(tinyvae_small) && (k * r).is_multiple_of(4);
    let rows = fused && ch.is_multiple_of(4);
    let step = st * r;
    // Where the rows of input pixels can go two at a time (the shape decides, checked once:
    // `PairsPlan`; each row's bounds as it goes), the zero-point is taken off the inputs as
    // they are widened and its share, each phase's rows' weight sums times it, folded into
    // the phases' biases: the pixels outside the input then add nothing.
    #[cfg(not(tinyvae_small))]
    let plan = rows
        .then(|| dense::dsp::PairsPlan::new(tiles, (groups, iw), step, steps))
        .flatten();
    #[cfg(not(tinyvae_small))]
    let folded = plan.is_some();
    #[cfg(tinyvae_small)]
    let folded = false;
    if folded {
        fold_zero_point(&mut biases, zsums, (k, st, r));
    }
    // Each accumulator starts at its output's phase bias (builds for size: at zero, the
    // biases added when the outputs are gathered).
    #[cfg(not(tinyvae_small))]
    fill_biases(acc, (g, r, st, usize::from(s.out_height)), &biases);
    #[cfg(tinyvae_small)]
    acc.fill(0);
    for vy in 0..g.ny {
        let iy = vy.wrapping_sub(g.before);
        let line = (vy * g.width) * step;
        let inputs = if iy < ih {
            x.get(iy * iw * ch..(iy + 1) * iw * ch)
        } else {
            None
        };
        // The pixels outside the input: the zero-point's (folded: nothing).
        for vx in (0..g.nx).filter(|_| !folded) {
            if inputs.is_none() || vx < g.before || vx >= g.before + iw {
                #[cfg(not(tinyvae_small))]
                if fused {
                    add_blocks((acc, line + vx * step), steps, zsums);
                    continue;
                }
                add_rows((acc, line + vx * step), steps, zsums);
            }
        }
        let Some(inputs) = inputs else {
            continue;
        };
        let first = line + g.before * step;
        #[cfg(not(tinyvae_small))]
        if let Some(plan) = &plan {
            // Two pixels at a time, each weight widened once for both.
            let zp = c.matrix.input_zero_point;
            if dense::dsp::scatter_pairs(plan, (inputs, &mut *wide, zp), (acc, first)) {
                continue;
            }
            // (Where the row's accumulators or inputs would not fit, which the grid and
            // the scratch rule out:) pixel by pixel, the zero-point taken off as the pairs
            // take it.
            for (ix, p) in inputs.chunks_exact(ch).enumerate() {
                let at = first + ix * step;
                dense::dsp::widen_less(p, zp, wide);
                dense::dsp::tiles_raw(tiles, wide, groups, sums);
                add_rows((acc, at), steps, sums);
            }
            continue;
        }
        #[cfg(not(tinyvae_small))]
        if rows {
            dense::dsp::widen(inputs, wide);
            if dense::dsp::scatter_row(tiles, (wide, groups, iw), (acc, first, step), steps) {
                continue;
            }
        }
        for (ix, p) in inputs.chunks_exact(ch).enumerate() {
            let at = first + ix * step;
            dense::dsp::widen(p, wide);
            #[cfg(not(tinyvae_small))]
            if fused && dense::dsp::scatter_row(tiles, (wide, groups, 1), (acc, at, step), steps) {
                continue;
            }
            dense::dsp::tiles_raw(tiles, wide, groups, sums);
            add_rows((acc, at), steps, sums);
        }
    }
    requantize_all(c, acc, y, (g, &biases));
    true
}

/// [`add_rows`] where each block's four rows land on neighbouring accumulators
/// (`steps[4 b + j] = steps[4 b] + j`): four at a time.
#[cfg(not(tinyvae_small))]
fn add_blocks((acc, at): (&mut [u32], usize), steps: &[u32], v: &[u32]) {
    for (s, v) in steps.chunks_exact(4).zip(v.chunks_exact(4)) {
        let a = at + s[0] as usize;
        if let Some(d) = acc.get_mut(a..a + 4) {
            d.iter_mut()
                .zip(v)
                .for_each(|(d, v)| *d = d.wrapping_add(*v));
        }
    }
}

/// Adds each row's value `v[n]` to its accumulator `acc[at + steps[n]]`, wrapping.
fn add_rows((acc, at): (&mut [u32], usize), steps: &[u32], v: &[u32]) {
    for (step, v) in steps.iter().zip(v) {
        if let Some(a) = acc.get_mut(at + *step as usize) {
            *a = a.wrapping_add(*v);
        }
    }
}

/// The most output channels [`scattered`] takes (fewer than [`super::FEW_CHANNELS`]).
const MAX_R: usize = 3;
/// The largest stride [`scattered`] takes (its phases' biases live on the stack).
const MAX_STRIDE: usize = 4;

/// Each phase's biases, phase `ry s + rx` (at most [`MAX_STRIDE`]^2 phases of [`MAX_R`]
/// channels).
type Biases = [[i32; MAX_R]; MAX_STRIDE * MAX_STRIDE];

/// Adds to each phase's biases its share of the input zero-point: the weight sums times
/// the zero-point (`zsums`, one per row `(ky k + kx) r + o`) of every tap of the phase (`ky
/// mod s`, `kx mod s`), wrapping: what the phase form's taps outside the input add, and
/// what the inputs lose when the zero-point is taken off them.
fn fold_zero_point(biases: &mut Biases, zsums: &[u32], (k, st, r): (usize, usize, usize)) {
    for ky in 0..k {
        for kx in 0..k {
            let phase = (ky % st.max(1)) * st + kx % st.max(1);
            let Some(b) = biases.get_mut(phase) else {
                continue;
            };
            for (o, b) in b.iter_mut().enumerate().take(r) {
                let z = zsums.get((ky * k + kx) * r + o).copied().unwrap_or(0);
                *b = b.wrapping_add(z as i32);
            }
        }
    }
}

/// The layer's [`Biases`], read where the matrix holds them (phase `ry s + rx`'s `R` after
/// the phases before it: FORMAT.md, section 3, as `Conv::phase` slices them); `None` when
/// the stride is above [`MAX_STRIDE`] or a bias is missing.
fn phase_biases(c: &Conv<'_>) -> Option<Biases> {
    let st = usize::from(c.shape.stride);
    let out = usize::from(c.matrix.out_dim);
    if st == 0 || st > MAX_STRIDE {
        return None;
    }
    let mut biases = [[0i32; MAX_R]; MAX_STRIDE * MAX_STRIDE];
    for (i, b) in biases.iter_mut().enumerate().take(st * st) {
        for (o, b) in b.iter_mut().enumerate().take(out) {
            *b = c.matrix.bias.get(i * out + o)?;
        }
    }
    Some(biases)
}

/// The int8 outputs of the accumulators in grid `g` (every phase shares the layer's
/// multipliers, shifts, zero-point and activation; only the biases differ). Channel by
/// channel, every output row where the grid holds it, in assembly on the fast path
/// ([`dense::dsp::requantize_rows`]), else (a dead channel or a left shift) by the
/// definition; the grid holds the biases already ([`fill_biases`]). Builds for size first
/// move the outputs' accumulators to the grid's start, row after row (each to a lower
/// place: in place), each plus the bias of its output's phase (output `y` is in phase `(y
/// + p) mod s`, FORMAT.md, section 3, tracked without a division), then requantize each
/// channel in one run (`requantize_span`).
#[inline(never)]
fn requantize_all(
    c: &Conv<'_>,
    acc: &mut [u32],
    y: &mut [i8],
    (g, biases): (ScatterGrid, &Biases),
) {
    let (m, s) = (&c.matrix, &c.shape);
    let r = usize::from(m.out_dim).clamp(1, MAX_R);
    // Outside builds for size the grid holds the biases already: each output row
    // requantized where it lies.
    #[cfg(not(tinyvae_small))]
    {
        let _ = biases;
        let (oh, ow) = (usize::from(s.out_height), usize::from(s.out_width));
        let (w, n) = (g.width * r, ow * r);
        let acc: &[u32] = acc.get(g.top * w + g.top * r..).unwrap_or_default();
        let range = crate::requant::output_range(m);
        for o in 0..r {
            let (mult, shift) = (
                m.multiplier.get(o).unwrap_or(0),
                m.shift.get(o).unwrap_or(0),
            );
            let rows = (oh, ow, w);
            if dense::dsp::requantize_rows((acc, y), rows, (o, r), (mult, shift), range) {
                continue;
            }
            // Off the fast path (a dead channel or a left shift): the definition.
            let (zp, lo) = range;
            for (i, y) in y.chunks_mut(n.max(1)).take(oh).enumerate() {
                let a = acc.get(i * w..).unwrap_or_default();
                let outputs = y.iter_mut().skip(o).step_by(r);
                for (y, &a) in outputs.zip(a.iter().skip(o).step_by(r)) {
                    let v = requantize_q31(a as i32, mult, shift);
                    *y = v.saturating_add(zp).max(lo).min(127) as i8;
                }
            }
        }
    }
    #[cfg(tinyvae_small)]
    {
        let (st, pad) = (usize::from(s.stride), usize::from(s.padding));
        let mut at = 0;
        let mut ry = pad % st.max(1);
        for i in 0..usize::from(s.out_height) {
            let mut from = (i + g.top) * g.width * r + g.top * r;
            let mut rx = pad % st.max(1);
            for _ in 0..s.out_width {
                let b = biases.get(ry * st + rx).unwrap_or(&[0; MAX_R]);
                for b in b.iter().take(r) {
                    if let (Some(v), true) = (acc.get(from).copied(), at < acc.len()) {
                        acc[at] = v.wrapping_add(*b as u32);
                    }
                    (at, from) = (at + 1, from + 1);
                }
                rx = if rx + 1 == st { 0 } else { rx + 1 };
            }
            ry = if ry + 1 == st { 0 } else { ry + 1 };
        }
        requantize_span(m, r, acc, y);
    }
}

/// Accumulators `acc[p r + o]` (biases in) to outputs `y[p r + o]`, channel by channel:
/// in assembly on the fast path ([`dense::dsp::requantize_channel`]), else (a dead
/// channel or a left shift) by the definition. (Builds for size; the others requantize
/// the grid's rows where they lie, [`dense::dsp::requantize_rows`].)
#[cfg(tinyvae_small)]
fn requantize_span(m: &tinyvae_format::Dense<'_>, r: usize, acc: &[u32], y: &mut [i8]) {
    let range = crate::requant::output_range(m);
    for o in 0..r {
        let (mult, shift) = (
            m.multiplier.get(o).unwrap_or(0),
            m.shift.get(o).unwrap_or(0),
        );
        if dense::dsp::requantize_channel((acc, y), (o, r), (mult, shift), range) {
            continue;
        }
        let (zp, lo) = range;
        let outputs = y.iter_mut().skip(o).step_by(r);
        for (y, &a) in outputs.zip(acc.iter().skip(o).step_by(r)) {
            let v = requantize_q31(a as i32, mult, shift);
            *y = v.saturating_add(zp).max(lo).min(127) as i8;
        }
    }
}

/// The grid's rows that hold outputs (`oh` rows from row `top`), each accumulator set to
/// the bias of its place's phase: grid row `v` and column `u` hold output (`v - top`, `u -
/// top`) where it is one, in phase (`v mod s`, `u mod s`) (output `y` is in phase `(y + p)
/// mod s`, FORMAT.md, section 3, and `top` is `p` plus a multiple of `s`), so each row
/// repeats one period of `s` places of `r` channels. The places in those rows that are no
/// output take a bias too; the rows above and below are left as they are: the tile loop
/// adds to them, wrapping, and nothing reads them.
#[cfg(not(tinyvae_small))]
fn fill_biases(
    acc: &mut [u32],
    (g, r, st, oh): (ScatterGrid, usize, usize, usize),
    biases: &Biases,
) {
    let (st, w) = (st.clamp(1, MAX_STRIDE), g.width * r);
    let Some(acc) = acc.get_mut(g.top * w..(g.top + oh) * w) else {
        return;
    };
    // One period of each row phase's biases: places u = 0, 1, ... (mod s), channel by
    // channel.
    let mut periods = [[0u32; MAX_STRIDE * MAX_R]; MAX_STRIDE];
    for (ry, period) in periods.iter_mut().enumerate().take(st) {
        for (u, p) in period.chunks_exact_mut(r).take(st).enumerate() {
            let b = biases.get(ry * st + u).unwrap_or(&[0; MAX_R]);
            p.iter_mut().zip(b).for_each(|(p, b)| *p = *b as u32);
        }
    }
    let len = st * r;
    for (i, row) in acc.chunks_mut(w).enumerate() {
        let period = periods.get((g.top + i) % st).unwrap_or(&periods[0]);
        // Stores of a period known at compile time where it is short (one channel at stride
        // 1 or 2), else the period copied along the row.
        match len {
            1 => repeat::<1>(row, period),
            2 => repeat::<2>(row, period),
            _ => {
                let period = period.get(..len).unwrap_or_default();
                for chunk in row.chunks_mut(len.max(1)) {
                    chunk.iter_mut().zip(period).for_each(|(d, p)| *d = *p);
                }
            }
        }
    }
}

/// `row` filled with the first `L` words of `period` repeated (the last repeat cut short).
#[cfg(not(tinyvae_small))]
fn repeat<const L: usize>(row: &mut [u32], period: &[u32; MAX_STRIDE * MAX_R]) {
    let Some(p) = period.first_chunk::<L>() else {
        return;
    };
    let (whole, rest) = row.as_chunks_mut::<L>();
    for c in whole {
        *c = *p;
    }
    rest.iter_mut().zip(p).for_each(|(d, p)| *d = *p);
}

/// The weights of a transposed convolution as [`scattered`] reads them: row `tap r + o`
/// (tap `ky k + kx`) holds the weights of output channel `o` under that tap, one int8 per
/// input channel (zeros past them), four rows per block of 4 x 4 tiles, each word one row's
/// four columns; and each row's sum times the input zero-point in `zsums`. Phase by phase:
/// a tap belongs to phase (`ky mod s`, `kx mod s`), where it is tap (`ky / s`, `kx / s`)
/// (FORMAT.md, section 3). With input channels in fours, a group of four columns is one
/// word in either layout, read as one. False when a phase is missing.
#[inline(never)]
fn load_taps(c: &Conv<'_>, tiles: &mut [u32], zsums: &mut [u32]) -> bool {
    let s = &c.shape;
    let (ch, r) = (usize::from(s.in_channels), usize::from(c.matrix.out_dim));
    let (k, st) = (usize::from(s.kernel), usize::from(s.stride));
    let zp = i32::from(c.matrix.input_zero_point);
    let groups = ch.div_ceil(4);
    // (Builds for size read byte by byte: flash.)
    let whole = !cfg!(tinyvae_small) && ch.is_multiple_of(4);
    tiles.fill(0);
    for phase in 0..st * st {
        let (ry, rx) = (phase / st, phase % st);
        let Some(m) = c.phase(ry as u8, rx as u8) else {
            return false;
        };
        let (ny, nx) = (
            usize::from(s.phase_taps(ry as u8)),
            usize::from(s.phase_taps(rx as u8)),
        );
        let (packed, in_dim) = (m.packed_weights(), usize::from(m.in_dim));
        for tap in 0..ny * nx {
            let (ty, tx) = (tap / nx, tap % nx);
            let (ky, kx) = (ry + st * ty, rx + st * tx);
            let col0 = tap * ch;
            for o in 0..r {
                let row = (ky * k + kx) * r + o;
                let (block, j) = (row / 4, row % 4);
                let mut sum = 0i32;
                for g in 0..groups {
                    let word = if whole {
                        let at = m.layout.index(in_dim, o, col0 + 4 * g);
                        packed.get(at..at + 4).map_or(0, |b| {
                            u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
                        })
                    } else {
                        (0..4.min(ch - 4 * g)).fold(0u32, |w, b| {
                            w | u32::from(m.weight(o, col0 + 4 * g + b) as u8) << (8 * b)
                        })
                    };
                    sum += word
                        .to_le_bytes()
                        .iter()
                        .map(|b| i32::from(*b as i8))
                        .sum::<i32>();
                    if let Some(t) = tiles.get_mut((block * groups + g) * 4 + j) {
                        *t = word;
                    }
                }
                if let Some(z) = zsums.get_mut(row) {
                    *z = sum.wrapping_mul(zp) as u32;
                }
            }
        }
    }
    true
}
