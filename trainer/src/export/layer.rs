//! One layer to int8: its float weight matrix in the model format's column order, per-channel
//! symmetric int8 weights, the bias with the input zero-point folded in, Q31 multipliers.

use anyhow::{Context, Result};
use tinyvae_format::owned::{quantize_multiplier, Channels, OwnedDense, OwnedLayer, OwnedOp};
use tinyvae_format::{Activation, ConvShape, OutputType};

use crate::layers::Layer;
use crate::model::to_vec_f32;
use crate::ops::conv::ConvGeometry;

/// A layer's float weights as the model format stores the matrix: `rows` output channels of
/// `cols` values (a convolution's patch, in the format's column order), and the biases.
pub struct FloatMatrix {
    /// Row-major weights, `rows * cols`.
    pub w: Vec<f32>,
    /// One bias per row.
    pub b: Vec<f32>,
    /// Output channels.
    pub rows: usize,
    /// Values per row.
    pub cols: usize,
    /// Dense, or the convolution and its shapes.
    pub op: OwnedOp,
}

fn u16_of(v: usize, what: &str) -> Result<u16> {
    u16::try_from(v).with_context(|| format!("{what} {v} does not fit the model format"))
}

fn shape(g: &ConvGeometry, transposed: bool) -> Result<ConvShape> {
    let u8_of = |v: usize, what: &str| {
        u8::try_from(v).with_context(|| format!("{what} {v} does not fit the model format"))
    };
    let (big, small) = ((g.in_h, g.in_w, g.in_c), (g.out_h(), g.out_w(), g.out_c));
    // A transposed layer reads the small side and writes the big one.
    let (i, o) = if transposed {
        (small, big)
    } else {
        (big, small)
    };
    Ok(ConvShape {
        in_height: u16_of(i.0, "height")?,
        in_width: u16_of(i.1, "width")?,
        in_channels: u16_of(i.2, "channels")?,
        out_height: u16_of(o.0, "height")?,
        out_width: u16_of(o.1, "width")?,
        out_channels: u16_of(o.2, "channels")?,
        kernel: u8_of(g.kernel, "kernel")?,
        stride: u8_of(g.stride, "stride")?,
        padding: u8_of(g.padding, "padding")?,
    })
}

impl FloatMatrix {
    /// The matrix of a trained layer.
    pub fn of(layer: &Layer) -> Result<FloatMatrix> {
        let (w, b) = layer.vars();
        let (w, b) = (to_vec_f32(w.as_tensor())?, to_vec_f32(b.as_tensor())?);
        Ok(match layer {
            Layer::Dense(l) => {
                let (rows, cols) = l.w.as_tensor().dims2()?;
                FloatMatrix {
                    w,
                    b,
                    rows,
                    cols,
                    op: OwnedOp::Dense,
                }
            }
            // (out, k, k, in): already one row per output channel, columns (ky, kx, c).
            Layer::Conv(l) => FloatMatrix {
                w,
                b,
                rows: l.geometry.out_c,
                cols: l.geometry.patch(),
                op: OwnedOp::Conv2d(shape(&l.geometry, false)?),
            },
            Layer::ConvTranspose(l) => {
                let g = &l.geometry;
                let s = shape(g, true)?;
                FloatMatrix {
                    w: transposed_matrix(&w, g, &s),
                    b,
                    rows: g.in_c,
                    cols: g.kernel * g.kernel * g.out_c,
                    op: OwnedOp::ConvTranspose2d(s),
                }
            }
        })
    }
}

/// A transposed convolution's weights, trained as `(in, k, k, out)` (the mirrored
/// convolution's `(out_c, k, k, in_c)`), as the format's matrix: one row per output channel,
/// columns by phase `(ry, rx)`, then `(jy, jx, in)` with `ky = ry + stride jy`.
fn transposed_matrix(w: &[f32], g: &ConvGeometry, s: &ConvShape) -> Vec<f32> {
    let (k, st) = (g.kernel, g.stride);
    let (cin, cout) = (g.out_c, g.in_c);
    let at = |ci: usize, ky: usize, kx: usize, co: usize| w[((ci * k + ky) * k + kx) * cout + co];
    let mut out = Vec::with_capacity(cout * k * k * cin);
    for co in 0..cout {
        for ry in 0..st {
            for rx in 0..st {
                let (ny, nx) = (
                    usize::from(s.phase_taps(ry as u8)),
                    usize::from(s.phase_taps(rx as u8)),
                );
                for jy in 0..ny {
                    for jx in 0..nx {
                        for ci in 0..cin {
                            out.push(at(ci, ry + st * jy, rx + st * jx, co));
                        }
                    }
                }
            }
        }
    }
    out
}

/// How a layer's output is stored.
#[derive(Clone, Copy, Debug)]
pub enum Output {
    /// Asymmetric int8 at (zero-point, scale).
    I8(i8, f32),
    /// The encoder's head: int16 fixed point with `frac` fractional bits.
    I16 {
        /// Fractional bits.
        frac: u8,
    },
}

/// Quantizes one layer; also returns its weights' signal-to-quantization-noise ratio (dB).
pub fn quantize(
    m: &FloatMatrix,
    (in_zp, in_scale): (i8, f32),
    output: Output,
    activation: Activation,
) -> Result<(OwnedLayer, f64)> {
    let mut c = Channels::default();
    let (mut sig, mut noise) = (0f64, 0f64);
    // Per output channel: its int8 row and its bias at the accumulator's scale.
    let mut biases = Vec::with_capacity(m.rows);
    for o in 0..m.rows {
        let row = &m.w[o * m.cols..(o + 1) * m.cols];
        let max = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let s_w = if max > 0.0 { max / 127.0 } else { 1.0 };
        let q: Vec<i8> = row
            .iter()
            .map(|&v| (v / s_w).round().clamp(-127.0, 127.0) as i8)
            .collect();
        for (&v, &qv) in row.iter().zip(&q) {
            sig += f64::from(v).powi(2);
            noise += (f64::from(v) - f64::from(qv) * f64::from(s_w)).powi(2);
        }
        let acc_scale = f64::from(in_scale) * f64::from(s_w);
        biases.push((f64::from(m.b[o]) / acc_scale).round() as i64);
        let real = match output {
            Output::I8(_, s_out) => acc_scale / f64::from(s_out),
            Output::I16 { frac } => acc_scale * f64::from(1u32 << frac),
        };
        let (mq, sq) = quantize_multiplier(real).context("non-finite requantization multiplier")?;
        c.weights.extend(q);
        c.multiplier.push(mq);
        c.shift.push(sq);
        c.weight_scale.push(s_w);
    }
    // The input zero-point folded into each bias, over the columns of the product it belongs
    // to: every column, or for a transposed convolution, one bias per phase over its columns.
    let phases: Vec<(usize, usize)> = match m.op {
        OwnedOp::ConvTranspose2d(s) => (0..s.stride)
            .flat_map(|ry| (0..s.stride).map(move |rx| s.phase_len(ry, rx) as usize))
            .scan(0, |at, n| {
                let start = *at;
                *at += n;
                Some((start, n))
            })
            .collect(),
        _ => vec![(0, m.cols)],
    };
    for (start, n) in phases {
        for (o, &bq) in biases.iter().enumerate() {
            let cols = &c.weights[o * m.cols + start..o * m.cols + start + n];
            let wsum: i64 = cols.iter().map(|&v| i64::from(v)).sum();
            let folded = bq - i64::from(in_zp) * wsum;
            c.bias.push(i32::try_from(folded).with_context(|| {
                format!("bias of channel {o} does not fit an int32 after folding the input offset")
            })?);
        }
    }
    let (ty, (out_zp, out_scale)) = match output {
        Output::I8(zp, s) => (OutputType::I8, (zp, s)),
        Output::I16 { frac } => (OutputType::I16, (0, 1.0 / (1u32 << frac) as f32)),
    };
    let matrix = OwnedDense::new(
        u16_of(m.cols, "layer width")?,
        u16_of(m.rows, "layer width")?,
        activation,
        ty,
        (in_zp, in_scale),
        (out_zp, out_scale),
        &c,
    );
    Ok((
        OwnedLayer::new(m.op, matrix),
        10.0 * (sig / noise.max(1e-30)).log10(),
    ))
}
