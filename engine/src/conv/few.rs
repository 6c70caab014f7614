//! The portable path for convolutions with few output channels (fewer than
//! [`FEW_CHANNELS`](super::FEW_CHANNELS)): the dense kernels work on blocks of four rows and would throw three of
//! four sums away, so four positions' patches are laid out as the four rows of 4 x 4 tiles
//! and multiplied by each weight row: four useful sums per block. (Where the DSP kernels run,
//! [`super::dsp`] takes these layers instead.)

use tinyvae_format::{Conv, Dense};

use super::{for_each_product, max_patch, patch_to, PatchOut};
use crate::dense;

/// Row `r` of 4 x 4 tiles ([`tinyvae_format::WeightLayout::Tiles4x4`]): column `j` at
/// `16 (j / 4) + 4 r + j % 4`. Runs that start on a multiple of 4 move 4 bytes at a time.
struct TileRow<'t> {
    tiles: &'t mut [i8],
    r: usize,
}

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

impl TileRow<'_> {
    #[inline(always)]
    fn put(&mut self, j: usize, v: i8) {
        if let Some(t) = self.tiles.get_mut(16 * (j / 4) + 4 * self.r + j % 4) {
            *t = v;
        }
    }
}

/// Runs a convolution with few output channels four positions at a time; false, having
/// done nothing, when the scratch is too small for it.
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
        rows.load(&m);
        walk.run(s, &mut |at, taps| {
            patch_to(s, zp, x, taps, &mut batch.next_patch(at));
            batch.flush_if_full(&m, &rows, y);
        });
        batch.flush(&m, &rows, y);
    });
    true
}

/// Up to four output positions whose patches wait as the rows of 4 x 4 tiles.
struct Batch<'s> {
    tiles: &'s mut [i8],
    at: [usize; 4],
    n: usize,
}

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
                    *out = dense::output_i8(m, o, a);
                }
            }
        }
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

    /// Loads the rows of `m`.
    fn load(&mut self, m: &Dense<'_>) {
        let k = usize::from(m.in_dim);
        let kp = k.div_ceil(4) * 4;
        self.kp = kp;
        for (o, row) in self.narrow.chunks_exact_mut(kp).enumerate() {
            if o >= usize::from(m.out_dim) {
                break;
            }
            for (j, w) in row.iter_mut().enumerate() {
                *w = if j < k { m.weight(o, j) } else { 0 };
            }
        }
    }

    /// `acc[r] += sum_j tiles(r, j) * row_o[j]`.
    #[inline(always)]
    fn times(&self, o: usize, tiles: &[i8], acc: &mut [i32; 4]) {
        let kp = self.kp;
        // `get`, not indexing: no panic (and its formatted message) in the firmware.
        if let (Some(row), Some(t)) = (self.narrow.get(o * kp..(o + 1) * kp), tiles.get(..4 * kp)) {
            dense::tiles_times_row(t, row, acc);
        }
    }
}
