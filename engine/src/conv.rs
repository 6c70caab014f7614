//! int8 convolutions (format version 3): each output position is one dense product of the
//! layer's `R x K` matrix with the position's patch of `K` values (FORMAT.md, section 3),
//! so every dense kernel, the DSP one included, serves convolutions too, bit for bit.
//!
//! A patch holds, for every tap of the kernel (for a transposed convolution, every tap of the
//! output's phase, whose own dense layer then runs) and every input channel, the input value
//! under the tap, or the input zero-point where it lies outside the input. The zero-point
//! contributes nothing: the bias already holds `-zero_point * sum_j w(o, j)`.

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
                    // A zip, not copy_from_slice: no length-mismatch panic (and its
                    // formatting) in flash.
                    for (t, &v) in tap.iter_mut().zip(&x[at..at + c]) {
                        *t = v;
                    }
                }
                _ => tap.fill(zero_point),
            }
        }
    }
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
    phase_patch(s, zero_point, x, (ry, rx), base, patch);
}

/// The patch of phase (`ry`, `rx`) whose first tap reads input row `by`, column `bx`: tap
/// (`jy`, `jx`) reads row `by - jy`, column `bx - jx`.
fn phase_patch(
    s: &ConvShape,
    zero_point: i8,
    x: &[i8],
    (ry, rx): (u8, u8),
    (by, bx): (usize, usize),
    patch: &mut [i8],
) {
    let c = usize::from(s.in_channels);
    let (h, w) = (usize::from(s.in_height), usize::from(s.in_width));
    let (ny, nx) = (usize::from(s.phase_taps(ry)), usize::from(s.phase_taps(rx)));
    for (jy, row) in patch.chunks_exact_mut(nx * c).take(ny).enumerate() {
        let iy = by.checked_sub(jy).filter(|&v| v < h);
        for (jx, tap) in row.chunks_exact_mut(c).enumerate() {
            let ix = bx.checked_sub(jx).filter(|&v| v < w);
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let at = (iy * w + ix) * c;
                    // A zip, not copy_from_slice: no length-mismatch panic (and its
                    // formatting) in flash.
                    for (t, &v) in tap.iter_mut().zip(&x[at..at + c]) {
                        *t = v;
                    }
                }
                _ => tap.fill(zero_point),
            }
        }
    }
}

/// Runs a convolution (`transposed`: a transposed one) of a validated model: `x` its input
/// tensor, `y` its output tensor, `patch` room for one patch, `spare` the dense kernels'
/// spare bytes ([`dense::spare_len`] of the patch length). A transposed convolution runs
/// phase by phase, each phase's dense layer built once. No division per position (a
/// Cortex-M0 has no divide instruction).
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
    let r = usize::from(m.out_dim);
    let zp = m.input_zero_point;
    let (oh, ow) = (usize::from(s.out_height), usize::from(s.out_width));
    if !transposed {
        let patch = &mut patch[..usize::from(m.in_dim)];
        let mut outs = y.chunks_exact_mut(r);
        for oy in 0..oh {
            for ox in 0..ow {
                let Some(out) = outs.next() else {
                    return;
                };
                conv2d_patch(s, zp, x, (oy, ox), patch);
                dense::dense_i8(m, patch, out, spare);
            }
        }
        return;
    }
    let (stride, pad) = (usize::from(s.stride), usize::from(s.padding));
    for ry in 0..s.stride {
        // The first output row of this phase: (y + pad) % stride == ry.
        let y0 = (usize::from(ry) + stride - pad % stride) % stride;
        for rx in 0..s.stride {
            // A validated layer has every phase.
            let Some(p) = c.phase(ry, rx) else {
                return;
            };
            let patch = &mut patch[..usize::from(p.in_dim)];
            let x0 = (usize::from(rx) + stride - pad % stride) % stride;
            // The first tap's input row and column step by one per phase row and column.
            let by0 = (y0 + pad - usize::from(ry)) / stride;
            let bx0 = (x0 + pad - usize::from(rx)) / stride;
            // (Plain loops: `step_by` would bring a panic message and core::fmt to flash.)
            let (mut oy, mut by) = (y0, by0);
            while oy < oh {
                let (mut ox, mut bx) = (x0, bx0);
                while ox < ow {
                    phase_patch(s, zp, x, (ry, rx), (by, bx), patch);
                    let at = (oy * ow + ox) * r;
                    if let Some(out) = y.get_mut(at..at + r) {
                        dense::dense_i8(&p, patch, out, spare);
                    }
                    (ox, bx) = (ox + stride, bx + 1);
                }
                (oy, by) = (oy + stride, by + 1);
            }
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
