//! The convolutions against their definition written out: every path, both layouts, both
//! scratch sizes, on random shapes (and the scatter form's grid).
use super::*;
use proptest::prelude::*;
use tinyvae_format::owned::{Channels, OwnedDense, OwnedLayer, OwnedOp};
use tinyvae_format::testkit::random::{self, MatrixMut, Params, ShapeLimits, SplitMix};
use tinyvae_format::{Activation, Layer, OutputType, WeightLayout};

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
    /// both kinds over random shapes, strides, paddings, zero-points and requantizations
    /// (the generator the chip's kernel check draws from); and the int8 kernel in either
    /// layout gives the same bytes.
    #[test]
    fn patches_match_the_direct_definition(seed: u64, transposed: bool, kind in 0u32..3) {
        let mut r = SplitMix(seed);
        let limits = ShapeLimits { cols: 400, rows: 40, len: 1200 };
        let shape = (0..1000).find_map(|_| random::conv_shape(&mut r, transposed, limits));
        let Some(shape) = shape else { return Ok(()) };
        let (k, rows) = (shape.patch_len() as usize, usize::from(shape.out_channels));
        let phases = if transposed { usize::from(shape.stride).pow(2) } else { 1 };
        let mut ch = Channels {
            weights: vec![0; k * rows],
            bias: vec![0; rows * phases],
            multiplier: vec![0; rows],
            shift: vec![0; rows],
            weight_scale: vec![],
        };
        let bufs = MatrixMut { weights: &mut ch.weights, bias: &mut ch.bias, multiplier: &mut ch.multiplier, shift: &mut ch.shift };
        let d = random::conv(&mut r, Params::kernel_test(kind), &shape, transposed, bufs).unwrap();
        let act = if d.relu { Activation::Relu } else { Activation::None };
        let m = OwnedDense::new(k as u16, rows as u16, act, OutputType::I8, (d.input_zero_point, 1.0), (d.output_zero_point, 1.0), &ch);
        let op = if transposed { OwnedOp::ConvTranspose2d(shape) } else { OwnedOp::Conv2d(shape) };
        let rowwise = OwnedLayer::new(op, m);
        let tiled = rowwise.with_layout(WeightLayout::Tiles4x4);
        let mut input = vec![0i8; shape.in_len() as usize];
        random::inputs(&mut r, &mut input);
        {
            let (l1, l2) = (rowwise.view(), tiled.view());
            let (Layer::Conv2d(c) | Layer::ConvTranspose2d(c)) = &l1 else { unreachable!() };
            let x = &input;
            let sums = direct(c, transposed, x);
            prop_assert_eq!(engine_accumulators(c, transposed, x), sums.clone());
            // The int8 outputs of the definition's sums.
            let r = usize::from(c.matrix.out_dim);
            let want: Vec<i8> = sums.iter().enumerate()
                .map(|(i, &a)| crate::requant::output_i8(&c.matrix, i % r, a)).collect();
            let out = usize::try_from(c.shape.out_len()).unwrap();
            let k = max_patch(c, transposed);
            // Both scratch sizes: the least (one patch at a time) and full speed
            // (few-channel layers four positions at a time), stale bytes in both.
            let run = |l: &Layer<'_>, full: bool| {
                let (Layer::Conv2d(c) | Layer::ConvTranspose2d(c)) = l else { unreachable!() };
                let mut y = vec![0i8; out];
                let (p, sp) = if full {
                    (patch_room(c, transposed), spare_room(c, transposed, dense::SIMD))
                } else {
                    (k, dense::spare_len(k))
                };
                let mut patch = vec![0x55i8; p];
                let mut spare = vec![-0x33i8; sp];
                conv_i8(c, transposed, x, &mut y, &mut patch, &mut spare);
                y
            };
            for full in [false, true] {
                prop_assert_eq!(&run(&l1, full), &want, "row-major, full scratch {}", full);
                prop_assert_eq!(&run(&l2, full), &want, "tiled, full scratch {}", full);
            }
        }
    }

    /// The scatter form's grid: every tap of every pixel it walks lands inside the grid,
    /// every output lies inside it, and every (output, tap, input pixel) term of the
    /// definition comes from a walked pixel: nothing is clipped, nothing is missed.
    #[test]
    fn the_scatter_grid_holds_every_tap(seed: u64) {
        let mut r = SplitMix(seed);
        let limits = ShapeLimits { cols: 400, rows: 40, len: 1200 };
        let shape = (0..1000).find_map(|_| random::conv_shape(&mut r, true, limits));
        let Some(s) = shape else { return Ok(()) };
        let (k, st, pad) = (usize::from(s.kernel), usize::from(s.stride), usize::from(s.padding));
        let oh = usize::from(s.out_height);
        let Some(g) = ScatterGrid::of(&s) else {
            prop_assert!(st > k, "{:?}", s);
            return Ok(());
        };
        // Along one axis (both use the same arithmetic): heights.
        prop_assert!((g.ny - 1) * st + k <= g.height);
        prop_assert!(oh - 1 + g.top < g.height);
        for y in 0..oh {
            for ky in 0..k {
                // Output y takes tap ky from input (y + p - ky) / s where it divides
                // (the input zero-point where that lies outside the input).
                let t = (y + pad) as i64 - ky as i64;
                if t.rem_euclid(st as i64) != 0 {
                    continue;
                }
                let v = t.div_euclid(st as i64) + g.before as i64;
                prop_assert!(v >= 0 && (v as usize) < g.ny, "{:?}: output {} tap {}", s, y, ky);
                prop_assert_eq!(v as usize * st + ky, y + g.top);
            }
        }
    }
}
