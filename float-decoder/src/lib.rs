//! The f32 decoder path: the trained float decoder, run with f32 arithmetic on a Cortex-M part
//! with an FPU, beside the int8 engine, so that users see what int8 buys them (instructions,
//! flash) and what it costs them (PSNR against the host's float decoder).
//!
//! The decoder comes in its own small container (FORMAT.md, "Float decoder"): a 16-byte header
//! (magic `TVF1`, version, flags, payload length, CRC-32 of the payload) and a payload of
//! little-endian `u16`/`f32` values: the layer count, each layer's input and output widths,
//! then each layer's weights (row-major, `out x in`) and biases. Hidden layers are ReLU, the
//! last layer's logits go through the sigmoid (`exp` from micromath) to pixels
//! `round(255 * p)`, the same mapping as the int8 engine's pixel table.
//!
//! [`FloatDecoder::from_bytes`] reads the blob in place (no copy, no allocation) and checks
//! everything before any inference: a bad blob gets an [`Error`], never a panic.
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;
#[cfg(feature = "std")]
use std::vec::Vec;

use micromath::F32Ext;

/// The header's first four bytes.
pub const MAGIC: [u8; 4] = *b"TVF1";
/// The container version this crate reads and writes.
pub const VERSION: u16 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 16;
/// Most layers a decoder can have.
pub const MAX_LAYERS: usize = 8;
/// The CRC of the payload (CRC-32/ISO-HDLC, as zlib and the model file).
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why a float decoder blob was rejected or a decode refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The blob ends before the header or the payload the header announces.
    Truncated,
    /// The first four bytes are not `TVF1`.
    BadMagic,
    /// A container version this reader does not know.
    UnsupportedVersion(u16),
    /// Header flags are reserved and must be zero.
    ReservedFlags(u16),
    /// The payload's CRC-32 differs from the header's.
    CrcMismatch,
    /// No layers, or more than [`MAX_LAYERS`].
    LayerCount(u16),
    /// A layer with a zero width, or whose input width is not the previous layer's output.
    BadShape {
        /// The layer.
        layer: u8,
    },
    /// The payload's length is not what the layer shapes need.
    LengthMismatch {
        /// Bytes the shapes need.
        expected: u32,
        /// Bytes present.
        actual: u32,
    },
    /// A weight or bias is NaN or infinite.
    NotFinite {
        /// The layer.
        layer: u8,
    },
    /// The blob is not 4-byte aligned in memory (the f32 arrays are read in place), or this
    /// is a big-endian target.
    Misaligned,
    /// The caller's scratch buffer is too short.
    ScratchTooSmall {
        /// Floats needed.
        need: u32,
    },
    /// A latent or image buffer of the wrong length.
    WrongLength {
        /// Length expected.
        expected: u32,
        /// Length passed.
        actual: u32,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => write!(f, "float decoder truncated"),
            Error::BadMagic => write!(f, "not a float decoder (magic is not TVF1)"),
            Error::UnsupportedVersion(v) => write!(f, "float decoder version {v} is not supported"),
            Error::ReservedFlags(x) => write!(f, "float decoder has reserved flags {x:#06x} set"),
            Error::CrcMismatch => write!(f, "float decoder corrupted (CRC mismatch)"),
            Error::LayerCount(n) => write!(f, "float decoder has {n} layers (1 to {MAX_LAYERS})"),
            Error::BadShape { layer } => write!(f, "float decoder layer {layer} has a bad shape"),
            Error::LengthMismatch { expected, actual } => write!(
                f,
                "float decoder payload is {actual} bytes, its shapes need {expected}"
            ),
            Error::NotFinite { layer } => {
                write!(f, "float decoder layer {layer} holds a NaN or infinity")
            }
            Error::Misaligned => write!(f, "float decoder not 4-byte aligned in memory"),
            Error::ScratchTooSmall { need } => write!(f, "scratch too small: {need} floats needed"),
            Error::WrongLength { expected, actual } => {
                write!(f, "buffer of {actual} values, {expected} expected")
            }
        }
    }
}

impl core::error::Error for Error {}

/// One dense layer, borrowed from the blob.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
    /// `out_dim * in_dim` weights, row-major.
    weights: &'a [f32],
    /// `out_dim` biases.
    bias: &'a [f32],
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, Error> {
    let s = b.get(o..o + 2).ok_or(Error::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, Error> {
    let s = b.get(o..o + 4).ok_or(Error::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The f32 values of `bytes` in place: the blob's arrays are little-endian and start on
/// 4-byte boundaries of the file, so on a little-endian target with the blob 4-aligned in
/// memory (as the firmware embeds it) they are read without a copy.
fn floats(bytes: &[u8]) -> Result<&[f32], Error> {
    if cfg!(target_endian = "big") {
        return Err(Error::Misaligned);
    }
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::Misaligned)
}

/// Sum of a row's four partial sums, its tail and its bias, in one fixed order (the same in
/// every kernel path, so every path gives the same bits).
#[inline(always)]
fn finish(acc: [f32; 4], tail: f32, bias: f32, relu: bool) -> f32 {
    let v = bias + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail;
    // Written out rather than `max`, which is a library call on the FPU targets.
    match relu {
        true if v > 0.0 => v,
        true => 0.0,
        false => v,
    }
}

/// The columns past the last full group of four, summed in order.
#[inline(always)]
fn tail(row: &[f32], x: &[f32]) -> f32 {
    let body = x.len() & !3;
    let mut t = 0f32;
    for (w, xi) in row[body..].iter().zip(&x[body..]) {
        t += w * xi;
    }
    t
}

impl Layer<'_> {
    /// The weight of output `o` for input `i` (0.0 outside the layer).
    pub fn weight(&self, o: usize, i: usize) -> f32 {
        if o >= self.out_dim || i >= self.in_dim {
            return 0.0;
        }
        self.weights[o * self.in_dim + i]
    }

    /// The bias of output `o` (0.0 outside the layer).
    pub fn bias(&self, o: usize) -> f32 {
        self.bias.get(o).copied().unwrap_or(0.0)
    }

    /// y = W x + b, then ReLU when `relu`. Four rows per pass share each load of x; every row
    /// keeps four partial sums (column `i` goes to sum `i % 4`), so a row's result does not
    /// depend on which pass computed it.
    fn forward(&self, x: &[f32], y: &mut [f32], relu: bool) {
        let n = self.in_dim;
        let mut rows = self.weights.chunks_exact(4 * n);
        let mut outs = y.chunks_exact_mut(4);
        let mut biases = self.bias.chunks_exact(4);
        for ((w4, y4), b4) in (&mut rows).zip(&mut outs).zip(&mut biases) {
            let (r0, rest) = w4.split_at(n);
            let (r1, rest) = rest.split_at(n);
            let (r2, r3) = rest.split_at(n);
            let mut acc = [[0f32; 4]; 4];
            let groups = x
                .chunks_exact(4)
                .zip(r0.chunks_exact(4))
                .zip(r1.chunks_exact(4))
                .zip(r2.chunks_exact(4))
                .zip(r3.chunks_exact(4));
            for ((((xs, a), b), c), d) in groups {
                for k in 0..4 {
                    acc[0][k] += a[k] * xs[k];
                    acc[1][k] += b[k] * xs[k];
                    acc[2][k] += c[k] * xs[k];
                    acc[3][k] += d[k] * xs[k];
                }
            }
            for (r, row) in [r0, r1, r2, r3].into_iter().enumerate() {
                y4[r] = finish(acc[r], tail(row, x), b4[r], relu);
            }
        }
        for ((row, yo), b) in rows
            .remainder()
            .chunks_exact(n)
            .zip(outs.into_remainder())
            .zip(biases.remainder())
        {
            let mut acc = [0f32; 4];
            for (xs, a) in x.chunks_exact(4).zip(row.chunks_exact(4)) {
                for k in 0..4 {
                    acc[k] += a[k] * xs[k];
                }
            }
            *yo = finish(acc, tail(row, x), *b, relu);
        }
    }
}

/// The logistic sigmoid with micromath's `exp`, and the pixel `round(255 * p)`.
pub fn pixel(logit: f32) -> u8 {
    // micromath's exp, called by name: the same function on the host as on the chip.
    let p = 1.0 / (1.0 + F32Ext::exp(-logit));
    // `as` saturates: NaN -> 0, beyond 255 -> 255.
    (p * 255.0 + 0.5) as u8
}

/// A float decoder read in place from its blob.
#[derive(Clone, Copy, Debug)]
pub struct FloatDecoder<'a> {
    layers: [Option<Layer<'a>>; MAX_LAYERS],
    count: usize,
}

impl<'a> FloatDecoder<'a> {
    /// Checks the blob (header, CRC, shapes, length, finite values) and borrows its layers.
    pub fn from_bytes(blob: &'a [u8]) -> Result<Self, Error> {
        let header = blob.get(..HEADER_LEN).ok_or(Error::Truncated)?;
        if header[..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u16_at(header, 4)?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let flags = u16_at(header, 6)?;
        if flags != 0 {
            return Err(Error::ReservedFlags(flags));
        }
        let len = u32_at(header, 8)? as usize;
        let crc = u32_at(header, 12)?;
        let payload = blob
            .get(HEADER_LEN..)
            .and_then(|p| p.get(..len))
            .ok_or(Error::Truncated)?;
        if blob.len() != HEADER_LEN + len {
            return Err(Error::LengthMismatch {
                expected: (HEADER_LEN + len) as u32,
                actual: blob.len() as u32,
            });
        }
        if CRC.checksum(payload) != crc {
            return Err(Error::CrcMismatch);
        }
        let count = u16_at(payload, 0)?;
        if count == 0 || usize::from(count) > MAX_LAYERS {
            return Err(Error::LayerCount(count));
        }
        let count = usize::from(count);
        let mut dims = [(0usize, 0usize); MAX_LAYERS];
        // In u64: with 16-bit widths a layer's bytes can exceed a 32-bit usize.
        let mut need = 4 + 4 * count as u64;
        for (l, d) in dims.iter_mut().enumerate().take(count) {
            let (i, o) = (
                usize::from(u16_at(payload, 4 + 4 * l)?),
                usize::from(u16_at(payload, 6 + 4 * l)?),
            );
            *d = (i, o);
            need += 4 * (i as u64 * o as u64 + o as u64);
        }
        for l in 0..count {
            let (i, o) = dims[l];
            if i == 0 || o == 0 || (l > 0 && dims[l - 1].1 != i) {
                return Err(Error::BadShape { layer: l as u8 });
            }
        }
        // From here every offset is at most `len`, so the slicing below cannot overflow.
        if need != len as u64 {
            return Err(Error::LengthMismatch {
                expected: (HEADER_LEN as u64 + need).min(u64::from(u32::MAX)) as u32,
                actual: blob.len() as u32,
            });
        }
        let mut layers = [None; MAX_LAYERS];
        let mut at = 4 + 4 * count;
        for (l, slot) in layers.iter_mut().enumerate().take(count) {
            let (i, o) = dims[l];
            let weights = floats(&payload[at..at + 4 * i * o])?;
            at += 4 * i * o;
            let bias = floats(&payload[at..at + 4 * o])?;
            at += 4 * o;
            if weights.iter().chain(bias).any(|v| !v.is_finite()) {
                return Err(Error::NotFinite { layer: l as u8 });
            }
            *slot = Some(Layer {
                in_dim: i,
                out_dim: o,
                weights,
                bias,
            });
        }
        Ok(FloatDecoder { layers, count })
    }

    /// The layers, first to last.
    pub fn layers(&self) -> impl Iterator<Item = &Layer<'a>> {
        self.layers[..self.count].iter().flatten()
    }

    /// Latent width (the first layer's input).
    pub fn latent_dim(&self) -> usize {
        self.layers().next().map_or(0, |l| l.in_dim)
    }

    /// Pixels out (the last layer's output).
    pub fn pixels(&self) -> usize {
        self.layers().last().map_or(0, |l| l.out_dim)
    }

    /// Multiply-accumulates per decode.
    pub fn macs(&self) -> usize {
        self.layers().map(|l| l.in_dim * l.out_dim).sum()
    }

    /// Floats of scratch [`decode`](Self::decode) needs: two buffers of the widest layer.
    pub fn scratch_len(&self) -> usize {
        2 * self
            .layers()
            .map(|l| l.in_dim.max(l.out_dim))
            .max()
            .unwrap_or(0)
    }

    /// Decodes the latent vector `z` to pixels. Never inlined, so that its code, and its
    /// instruction count, do not depend on the caller.
    #[inline(never)]
    pub fn decode(&self, z: &[f32], scratch: &mut [f32], pixels: &mut [u8]) -> Result<(), Error> {
        let (dim, n) = (self.latent_dim(), self.pixels());
        for (expected, actual) in [(dim, z.len()), (n, pixels.len())] {
            if expected != actual {
                return Err(Error::WrongLength {
                    expected: expected as u32,
                    actual: actual as u32,
                });
            }
        }
        let need = self.scratch_len();
        if scratch.len() < need {
            return Err(Error::ScratchTooSmall { need: need as u32 });
        }
        let (a, b) = scratch[..need].split_at_mut(need / 2);
        let (mut src, mut dst) = (a, b);
        src[..dim].copy_from_slice(z);
        let last = self.count - 1;
        for (k, l) in self.layers().enumerate() {
            l.forward(&src[..l.in_dim], &mut dst[..l.out_dim], k != last);
            core::mem::swap(&mut src, &mut dst);
        }
        for (p, &v) in pixels.iter_mut().zip(src.iter()) {
            *p = pixel(v);
        }
        Ok(())
    }
}

/// Writes a float decoder: `layers` as (weights row-major `out x in`, biases, in, out).
#[cfg(feature = "std")]
pub fn to_bytes(layers: &[(&[f32], &[f32], usize, usize)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&(layers.len() as u16).to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    for &(_, _, i, o) in layers {
        p.extend_from_slice(&(i as u16).to_le_bytes());
        p.extend_from_slice(&(o as u16).to_le_bytes());
    }
    for &(w, b, _, _) in layers {
        for v in w.iter().chain(b) {
            p.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(HEADER_LEN + p.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC.checksum(&p).to_le_bytes());
    out.extend_from_slice(&p);
    out
}
