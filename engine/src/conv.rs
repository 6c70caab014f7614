//! int8 convolutions (format version 3): each output position is one dense product of the
//! layer's `R x K` matrix with the position's patch of `K` values (FORMAT.md, section 3),
//! so every dense kernel, the DSP one included, serves convolutions too, bit for bit.
//!
//! A patch holds, for every tap of the kernel and every input channel, the input value under
//! the tap, or the input zero-point where there is none (padding; for a transposed
//! convolution, the taps of the other phases). The zero-point contributes nothing: the bias
//! already holds `-zero_point * sum_j w(o, j)`.

use tinyvae_format::{Conv, ConvShape};

use crate::dense;

/// Builds the patch of a convolution's output position (`oy`, `ox`) from its input `x`.
pub fn conv2d_patch(
    s: &ConvShape,
    zero_point: i8,
    x: &[i8],
    (oy, ox): (usize, usize),
    patch: &mut [i8],
) {
    let (k, c) = (usize::from(s.kernel), usize::from(s.in_channels));
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    let (stride, pad) = (usize::from(s.stride), usize::from(s.padding));
    for (ky, row) in patch.chunks_exact_mut(k * c).take(k).enumerate() {
        let iy = (oy * stride + ky).checked_sub(pad).filter(|&v| v < h);
        for (kx, tap) in row.chunks_exact_mut(c).enumerate() {
            let ix = (ox * stride + kx).checked_sub(pad).filter(|&v| v < w);
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let at = (iy * w + ix) * c;
                    tap.copy_from_slice(&x[at..at + c]);
                }
                _ => tap.fill(zero_point),
            }
        }
    }
}

/// Builds the patch of a transposed convolution's output position (`oy`, `ox`): the block of
/// its phase holds the taps it receives, every other column the zero-point.
pub fn conv_transpose2d_patch(
    s: &ConvShape,
    zero_point: i8,
    x: &[i8],
    (oy, ox): (usize, usize),
    patch: &mut [i8],
) {
    let c = usize::from(s.in_channels);
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    let (stride, pad) = (usize::from(s.stride), usize::from(s.padding));
    let (ry, rx) = ((oy + pad) % stride, (ox + pad) % stride);
    // Columns before this phase's block: the blocks of the phases before it.
    let mut start = 0;
    for py in 0..stride {
        for px in 0..stride {
            if (py, px) == (ry, rx) {
                break;
            }
            start += usize::from(s.phase_taps(py as u8)) * usize::from(s.phase_taps(px as u8)) * c;
        }
        if py == ry {
            break;
        }
    }
    let (ny, nx) = (
        usize::from(s.phase_taps(ry as u8)),
        usize::from(s.phase_taps(rx as u8)),
    );
    let (before, rest) = patch.split_at_mut(start.min(patch.len()));
    before.fill(zero_point);
    let (block, after) = rest.split_at_mut((ny * nx * c).min(rest.len()));
    after.fill(zero_point);
    if block.is_empty() {
        // A stride longer than the kernel leaves some phases without a tap.
        return;
    }
    // Input row of tap jy: (oy + pad - ry) / stride - jy, when in range.
    let (by, bx) = ((oy + pad - ry) / stride, (ox + pad - rx) / stride);
    for (jy, row) in block.chunks_exact_mut(nx * c).enumerate() {
        let iy = by.checked_sub(jy).filter(|&v| v < h);
        for (jx, tap) in row.chunks_exact_mut(c).enumerate() {
            let ix = bx.checked_sub(jx).filter(|&v| v < w);
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let at = (iy * w + ix) * c;
                    tap.copy_from_slice(&x[at..at + c]);
                }
                _ => tap.fill(zero_point),
            }
        }
    }
}

/// Runs a convolution (`transposed`: a transposed one) of a validated model: `x` its input
/// tensor, `y` its output tensor, `patch` room for one patch, `spare` the dense kernels'
/// spare bytes ([`dense::spare_len`] of the patch length).
pub fn conv_i8(
    c: &Conv<'_>,
    transposed: bool,
    x: &[i8],
    y: &mut [i8],
    patch: &mut [i8],
    spare: &mut [i8],
) {
    let s = &c.shape;
    let m = &c.matrix;
    let (k, r) = (usize::from(m.in_dim), usize::from(m.out_dim));
    let (patch, zp) = (&mut patch[..k], m.input_zero_point);
    let ow = usize::from(s.out_width);
    for (pos, out) in y.chunks_exact_mut(r).enumerate() {
        let at = (pos / ow, pos % ow);
        if transposed {
            conv_transpose2d_patch(s, zp, x, at, patch);
        } else {
            conv2d_patch(s, zp, x, at, patch);
        }
        dense::dense_i8(m, patch, out, spare);
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
                    let mut acc = m.bias.get(o).unwrap_or(0);
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix, col) = if transposed {
                                // Output y receives tap ky from input (y + p - ky) / s when
                                // that divides; otherwise the tap does not exist.
                                let (ny, nx) = (oy + p - ky, ox + p - kx);
                                if ny.rem_euclid(st) != 0 || nx.rem_euclid(st) != 0 {
                                    continue;
                                }
                                let (ry, rx) = (ky % st, kx % st);
                                let phase_start: i64 = (0..st)
                                    .flat_map(|a| (0..st).map(move |b| (a, b)))
                                    .take_while(|&ph| ph != (ry, rx))
                                    .map(|(a, b)| {
                                        i64::from(s.phase_taps(a as u8))
                                            * i64::from(s.phase_taps(b as u8))
                                            * ch
                                    })
                                    .sum();
                                let nxp = i64::from(s.phase_taps(rx as u8));
                                let col = phase_start + ((ky / st) * nxp + kx / st) * ch;
                                (ny.div_euclid(st), nx.div_euclid(st), col)
                            } else {
                                (oy * st + ky - p, ox * st + kx - p, (ky * k + kx) * ch)
                            };
                            for cc in 0..ch {
                                let v = if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                    i32::from(x[((iy * w + ix) * ch + cc) as usize])
                                } else {
                                    zp
                                };
                                let wt = i32::from(m.weight(o, (col + cc) as usize));
                                acc = acc.wrapping_add(wt * v);
                            }
                        }
                    }
                    // Taps that do not exist read the zero-point: their share of the folded
                    // bias is added back here, column by column of the other phases.
                    if transposed {
                        let ry = (oy + p).rem_euclid(st);
                        let rx = (ox + p).rem_euclid(st);
                        let mut col = 0i64;
                        for a in 0..st {
                            for b in 0..st {
                                let n = i64::from(s.phase_taps(a as u8))
                                    * i64::from(s.phase_taps(b as u8))
                                    * ch;
                                if (a, b) != (ry, rx) {
                                    for j in col..col + n {
                                        acc = acc
                                            .wrapping_add(i32::from(m.weight(o, j as usize)) * zp);
                                    }
                                }
                                col += n;
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
        let m = &c.matrix;
        let k = usize::from(m.in_dim);
        let mut patch = vec![0i8; k];
        let mut out = Vec::new();
        for oy in 0..usize::from(s.out_height) {
            for ox in 0..usize::from(s.out_width) {
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
                prop_assert_eq!(engine_accumulators(c, transposed, &x), direct(c, transposed, &x));
                let out = usize::try_from(c.shape.out_len()).unwrap();
                let k = usize::from(c.matrix.in_dim);
                let run = |l: &Layer<'_>| {
                    let (Layer::Conv2d(c) | Layer::ConvTranspose2d(c)) = l else { unreachable!() };
                    let mut y = vec![0i8; out];
                    let mut patch = vec![0i8; k];
                    let mut spare = vec![0i8; dense::spare_len(k)];
                    conv_i8(c, transposed, &x, &mut y, &mut patch, &mut spare);
                    y
                };
                prop_assert_eq!(run(l1), run(l2));
            }
        }
    }
}
