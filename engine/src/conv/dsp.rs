//! The convolution paths that run where the DSP kernels do (thumbv7em): patches widened to
//! int16 straight from the input for the fused kernel (transposed convolutions with few
//! output channels take the scatter form, in [`super::scatter`]).

use tinyvae_format::{Conv, ConvShape};

use super::{for_each_product, max_patch, patch_to, whole_groups, PatchOut, Taps};
use crate::dense;

/// A patch widened to int16 pairs as the DSP kernel reads its inputs ([`dense::dsp::widen`]:
/// per group of 4 columns, words (x0, x2) and (x1, x3)), built straight from the input
/// without an int8 copy, a word at a time. Every run must start and end on a multiple of 4
/// (input channels in multiples of 4); one that does not sets `misaligned` and is dropped.
struct Wide<'w> {
    words: &'w mut [u32],
    misaligned: bool,
}

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

/// The patches of two positions interleaved per group of four columns, as
/// [`dense::dsp::tiled_i8_pair`] reads them: A's two words, then B's; `slot` 0 writes A's,
/// 1 B's ([`dense::dsp::widen_pairs`]). The same alignment rule as [`Wide`].
#[cfg(not(tinyvae_small))]
struct Pair<'w> {
    words: &'w mut [u32],
    slot: usize,
    misaligned: bool,
}

#[cfg(not(tinyvae_small))]
impl Pair<'_> {
    /// The words from group `j0 / 4`'s slot to the end of group `(j0 + len) / 4 - 1`.
    fn words(&mut self, j0: usize, len: usize) -> Option<&mut [u32]> {
        if j0.is_multiple_of(4) && len.is_multiple_of(4) && len > 0 {
            self.words.get_mut(j0 + 2 * self.slot..j0 + len)
        } else {
            self.misaligned |= len > 0;
            None
        }
    }
}

#[cfg(not(tinyvae_small))]
impl PatchOut for Pair<'_> {
    fn run(&mut self, j0: usize, src: &[i8]) {
        if let Some(d) = self.words(j0, src.len()) {
            dense::dsp::widen_pairs(src, d);
        }
    }

    fn fill(&mut self, j0: usize, len: usize, v: i8) {
        if let Some(d) = self.words(j0, len) {
            let both = u32::from(i16::from(v) as u16) * 0x1_0001;
            for g in d.chunks_mut(4) {
                g.iter_mut().take(2).for_each(|w| *w = both);
            }
        }
    }
}

/// A staged patch, int8, column `j` at index `j`, copied a word at a time: its runs are
/// short (a row of taps over one or two input channels), too short for a call to `memcpy`.
#[cfg(not(tinyvae_small))]
struct Stage<'p>(&'p mut [i8]);

#[cfg(not(tinyvae_small))]
impl PatchOut for Stage<'_> {
    fn run(&mut self, j0: usize, src: &[i8]) {
        if let Some(dst) = self.0.get_mut(j0..j0 + src.len()) {
            let (mut d, mut s) = (dst.chunks_exact_mut(4), src.chunks_exact(4));
            // zip, not copy_from_slice, whose length panic formats its message (core::fmt).
            for (d, s) in (&mut d).zip(&mut s) {
                d.iter_mut().zip(s).for_each(|(d, s)| *d = *s);
            }
            for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
                *d = *s;
            }
        }
    }

    fn fill(&mut self, j0: usize, len: usize, v: i8) {
        if let Some(dst) = self.0.get_mut(j0..j0 + len) {
            dst.fill(v);
        }
    }
}

/// Where a patch is written from: straight from the input (input channels in fours), or
/// (a patch of whole groups of four whose taps are not) first as int8 into `stage`, then as
/// one run.
struct Source<'a> {
    s: &'a ConvShape,
    zero_point: i8,
    x: &'a [i8],
    stage: Option<&'a mut [i8]>,
}

impl Source<'_> {
    /// Writes the patch of `taps` to `out`; for a staged one, the first `len` columns.
    #[inline(always)]
    fn patch(&mut self, taps: Taps, len: usize, out: &mut dyn PatchOut) {
        #[cfg(not(tinyvae_small))]
        if let Some(st) = self.stage.as_deref_mut().and_then(|st| st.get_mut(..len)) {
            patch_to(self.s, self.zero_point, self.x, taps, &mut Stage(&mut *st));
            out.run(0, st);
            return;
        }
        let _ = len;
        patch_to(self.s, self.zero_point, self.x, taps, out)
    }

    /// A convolution's patch whose taps all lie inside the input and whose rows of taps are
    /// whole groups of four, widened straight from the input's rows into a pair's slot
    /// (`slot`: [`Pair`]'s words from the slot's first); false, having written nothing,
    /// for any other.
    #[cfg(not(tinyvae_small))]
    fn gathered(&self, t: Taps, slot: &mut [u32]) -> bool {
        let s = self.s;
        let (c, h, w) = (
            usize::from(s.in_channels),
            usize::from(s.in_height),
            usize::from(s.in_width),
        );
        let row = t.nx * c;
        let inside = t.dir == 1
            && t.y0 < h
            && t.x0 < w
            && h - t.y0 >= t.ny
            && w - t.x0 >= t.nx
            && row.is_multiple_of(4);
        inside
            && dense::dsp::gather_pairs(self.x, ((t.y0 * w + t.x0) * c, w * c, t.ny), row / 4, slot)
    }
}

/// The DSP path of [`conv_i8`] for input channels in multiples of 4, or patches in whole
/// groups of 4 (the encoder's first convolution: one input channel, a 4 x 4 kernel): each
/// position's patch widened (straight from the input, or staged in `patch`) into `spare`
/// ([`Wide`]), then the fused int8 kernel. False when a precondition fails (tiles
/// unaligned, scratch short), having written outputs that the caller's general path then
/// writes again.
#[inline(never)]
pub(super) fn wide_patches(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    (patch, spare): (&mut [i8], &mut [i8]),
) -> bool {
    let s = &c.shape;
    let k = max_patch(c, transposed);
    let stage = if usize::from(s.in_channels).is_multiple_of(4) {
        None
    } else if !cfg!(tinyvae_small) && whole_groups(c, transposed) && patch.len() >= k {
        Some(patch)
    } else {
        return false;
    };
    let mut source = Source {
        s,
        zero_point: c.matrix.input_zero_point,
        x,
        stage,
    };
    let words = dense::dsp::words(spare);
    #[cfg(not(tinyvae_small))]
    if words.len() >= k {
        return paired_patches(c, transposed, &mut source, y, &mut words[..k]);
    }
    let Some(wide) = words.get_mut(..k / 2) else {
        return false;
    };
    let r = usize::from(c.matrix.out_dim);
    let mut ok = true;
    for_each_product(c, transposed, &mut |m, walk| {
        let n = usize::from(m.in_dim);
        let Some(wide) = wide.get_mut(..n / 2) else {
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
            source.patch(taps, n, &mut patch);
            ok &= !patch.misaligned;
            if let Some(out) = y.get_mut(at * r..at * r + r) {
                ok &= dense::dsp::tiled_i8_widened(&m, wide, out);
            }
        });
    });
    ok
}

/// [`wide_patches`] two positions at a time, when `pairs` has room for two patches
/// ([`Pair`]): the positions of each product's walk in pairs through
/// [`dense::dsp::tiled_i8_pair`], a last one alone through the one-position kernel.
#[cfg(not(tinyvae_small))]
fn paired_patches(
    c: &Conv<'_>,
    transposed: bool,
    source: &mut Source<'_>,
    y: &mut [i8],
    pairs: &mut [u32],
) -> bool {
    let s = &c.shape;
    let mut ok = true;
    for_each_product(c, transposed, &mut |m, walk| {
        let n = usize::from(m.in_dim);
        let Some(pairs) = pairs.get_mut(..n) else {
            ok = false;
            return;
        };
        if !ok || !dense::dsp::tiles_ready(&m) {
            ok = false;
            return;
        }
        let mut pending = None;
        // Only a convolution's taps (forward) read whole rows of the input.
        let forward = walk.dir == 1;
        walk.run(s, &mut |at, taps| {
            let slot = usize::from(pending.is_some());
            if !(forward && source.gathered(taps, pairs.get_mut(2 * slot..).unwrap_or_default())) {
                let mut patch = Pair {
                    words: &mut *pairs,
                    slot,
                    misaligned: false,
                };
                source.patch(taps, n, &mut patch);
                ok &= !patch.misaligned;
            }
            match pending.take() {
                None => pending = Some((at, taps)),
                Some((a, _)) => ok &= dense::dsp::tiled_i8_pair(&m, pairs, y, (a, at)),
            }
        });
        if let Some((at, taps)) = pending {
            let r = usize::from(m.out_dim);
            let Some(wide) = pairs.get_mut(..n / 2) else {
                ok = false;
                return;
            };
            let mut patch = Wide {
                words: &mut *wide,
                misaligned: false,
            };
            source.patch(taps, n, &mut patch);
            ok &= !patch.misaligned;
            if let Some(out) = y.get_mut(at * r..at * r + r) {
                ok &= dense::dsp::tiled_i8_widened(&m, wide, out);
            }
        }
    });
    ok
}
