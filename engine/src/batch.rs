//! Two samples per pass: [`Engine::decode_two`] decodes two latent codes together, and
//! [`Engine::encode_two`] encodes two items, so that each weight a dense layer widens serves
//! both.
//!
//! On a core with the DSP extension a dense layer's two inputs are widened and interleaved
//! per group of four, and the two-position routine the convolutions use
//! (`tinyvae_dense2_i8_smlad`) runs the layer for both: one `SXTB16` per weight pair, two
//! `SMLAD`, where one sample takes one of each. Convolutions, and every layer on other cores
//! or in builds for size (which leave that routine out), run once per sample. The pixels are
//! those of two [`Engine::decode`] calls, bit for bit.

use tinyvae_format::{Dense, Layer, Model};

use crate::{dense, len, run_i8, scratch_parts, steps, Engine, Error, Probe, Stage};

/// Spare scratch bytes [`dense_i8`] needs for a layer with `in_dim` inputs on a core with the
/// DSP extension: both inputs widened to int16 (each padded to a multiple of 4), plus 3 bytes
/// to align them. [`dense::spare_len`] where each sample runs alone.
pub const fn spare_len(in_dim: usize) -> usize {
    4 * 4 * in_dim.div_ceil(4) + 3
}

/// Runs a dense layer with int8 outputs for two inputs: `x[0]`'s outputs in `y[..out_dim]`,
/// `x[1]`'s in `y[out_dim..2 * out_dim]`, the bits of two [`dense::dense_i8`] calls. Each
/// input holds `in_dim` values; `spare` [`spare_len`]`(in_dim)` bytes for the shared pass
/// (with fewer, or where that pass is not built, the two inputs run one after the other).
pub fn dense_i8(layer: &Dense<'_>, x: [&[i8]; 2], y: &mut [i8], spare: &mut [i8]) {
    #[cfg(all(tinyvae_dsp, not(tinyvae_small)))]
    if layer.layout == tinyvae_format::WeightLayout::Tiles4x4
        && dense::dsp::tiled_i8_two(layer, x, y, spare)
    {
        return;
    }
    let out = usize::from(layer.out_dim);
    let (ya, yb) = y.split_at_mut(out.min(y.len()));
    dense::dense_i8(layer, x[0], ya, spare);
    dense::dense_i8(layer, x[1], yb.get_mut(..out).unwrap_or_default(), spare);
}

/// True where [`dense_i8`] can share each widened weight between the two inputs (the DSP
/// extension, outside builds for size).
pub const SHARED: bool = cfg!(all(tinyvae_dsp, not(tinyvae_small)));

/// The scratch's parts for two samples: both samples' activations side by side in each of
/// the two buffers, one patch, and spare bytes for the widest dense layer's two inputs.
fn parts(model: &Model<'_>, simd: bool) -> [usize; 4] {
    let [a, b, patch, mut spare] = scratch_parts(model, simd);
    if simd {
        for l in model
            .decoder
            .layers
            .iter()
            .chain(model.encoder.layers.iter())
        {
            if let Layer::Dense(d) = l {
                spare = spare.max(spare_len(usize::from(d.in_dim)));
            }
        }
    }
    [2 * a, 2 * b, patch, spare]
}

/// The scratch bytes [`Engine::scratch_len_two`] returns for `model` on a target with
/// (`simd`) or without the DSP kernel, for build scripts (as [`crate::scratch_len_for`]).
pub fn scratch_len_for(model: &Model<'_>, simd: bool) -> usize {
    parts(model, simd).iter().sum()
}

impl Engine<'_, '_> {
    /// Scratch bytes [`Engine::decode_two`] and [`Engine::encode_two`] need: at most twice
    /// [`Engine::scratch_len`].
    pub fn scratch_len_two(&self) -> usize {
        scratch_len_for(self.model(), dense::SIMD)
    }

    /// The scratch split for two samples, checked long enough.
    fn split_two<'s>(&self, scratch: &'s mut [i8]) -> Result<crate::Split<'s>, Error> {
        let needed = self.scratch_len_two();
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall {
                needed: crate::len_u32(needed),
                available: crate::len_u32(scratch.len()),
            });
        }
        let [a, b, patch, _] = parts(self.model(), dense::SIMD);
        let (src, rest) = scratch.split_at_mut(a);
        let (dst, rest) = rest.split_at_mut(b);
        let (patch, spare) = rest.split_at_mut(patch);
        Ok((src, dst, patch, spare))
    }

    /// Encodes two items of u8 pixels in one pass over the encoder's weights: what two
    /// [`Engine::encode`] calls write, bit for bit (`out[k]` as `encode`'s `out` for
    /// `pixels[k]`). The int8 dense layers share their widened weights (module docs); the
    /// last layer (int16 outputs) and convolutions run once per item. `probe` hears of each
    /// layer once.
    #[inline(never)]
    pub fn encode_two(
        &self,
        pixels: [&[u8]; 2],
        scratch: &mut [i8],
        out: [&mut [i16]; 2],
        probe: &mut dyn Probe,
    ) -> Result<(), Error> {
        let m = self.model();
        if !m.has_encoder() {
            return Err(Error::NoEncoder);
        }
        let n = m.data.len();
        for p in pixels {
            crate::check_len(n, p.len(), true)?;
        }
        for o in &out {
            crate::check_len(m.encoder_out_dim(), o.len(), false)?;
        }
        let (mut src, mut dst, patch, spare) = self.split_two(scratch)?;
        // u8 pixel p is the int8 value p - 128, the first item's then the second's.
        for (k, p) in pixels.into_iter().enumerate() {
            if let Some(d) = src.get_mut(k * n..(k + 1) * n) {
                d.iter_mut()
                    .zip(p)
                    .for_each(|(q, &p)| *q = (p ^ 0x80) as i8);
            }
        }
        let layers = &m.encoder.layers;
        for (i, l) in layers.iter().enumerate() {
            let (n, o) = (len(l.in_len()), len(l.out_len()));
            let x = crate::head(src, 2 * n as u64)?;
            let (xa, xb) = x.split_at(n);
            match l {
                // The last layer writes mu and log-variance (dense only: validated).
                Layer::Dense(d) if i + 1 == layers.len() => {
                    for (x, y) in [xa, xb].into_iter().zip(out) {
                        dense::dense_i16(d, x, y, spare);
                    }
                    probe.done(Stage::Encoder(i as u8));
                    break;
                }
                Layer::Dense(d) => {
                    dense_i8(d, [xa, xb], crate::head_mut(dst, 2 * o as u64)?, spare)
                }
                _ => {
                    let (ya, yb) = crate::head_mut(dst, 2 * o as u64)?.split_at_mut(o);
                    run_i8(l, xa, ya, patch, spare);
                    run_i8(l, xb, yb, patch, spare);
                }
            }
            core::mem::swap(&mut src, &mut dst);
            probe.done(Stage::Encoder(i as u8));
        }
        Ok(())
    }

    /// Decodes two int8 latent codes into two items of u8 pixels in one pass over the
    /// decoder's weights: the pixels of two [`Engine::decode`] calls, bit for bit, in fewer
    /// instructions where a dense layer can share its weights (module docs). `probe` hears
    /// of each layer once, when both samples have passed it.
    #[inline(never)]
    pub fn decode_two(
        &self,
        codes: [&[i8]; 2],
        scratch: &mut [i8],
        mut pixels: [&mut [u8]; 2],
        probe: &mut dyn Probe,
    ) -> Result<(), Error> {
        let m = self.model();
        let dim = usize::from(m.latent.dim);
        for c in codes {
            crate::check_len(dim, c.len(), true)?;
        }
        for p in &pixels {
            crate::check_len(m.data.len(), p.len(), false)?;
        }
        let (mut src, mut dst, patch, spare) = self.split_two(scratch)?;
        // Each buffer holds the first sample's values, then the second's.
        for (k, c) in codes.into_iter().enumerate() {
            if let Some(d) = src.get_mut(k * dim..(k + 1) * dim) {
                d.iter_mut().zip(c).for_each(|(d, &c)| *d = c);
            }
        }
        let layers = &m.decoder.layers;
        for (i, l) in layers.iter().enumerate() {
            let (n, out) = (len(l.in_len()), len(l.out_len()));
            let (x, y) = (
                crate::head(src, 2 * n as u64)?,
                crate::head_mut(dst, 2 * out as u64)?,
            );
            let (xa, xb) = x.split_at(n);
            match l {
                Layer::Dense(d) => dense_i8(d, [xa, xb], y, spare),
                _ => {
                    let (ya, yb) = y.split_at_mut(out);
                    run_i8(l, xa, ya, patch, spare);
                    run_i8(l, xb, yb, patch, spare);
                }
            }
            if i + 1 == layers.len() {
                let (ya, yb) = y.split_at(out);
                for (y, p) in [ya, yb].into_iter().zip(&mut pixels) {
                    steps::to_pixels(m.pixel_table.as_slice(), y, p);
                }
            }
            core::mem::swap(&mut src, &mut dst);
            probe.done(Stage::Decoder(i as u8));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tinyvae_format::owned::OwnedModel;
    use tinyvae_format::testkit::synthetic::SyntheticSpec;
    use tinyvae_format::{Model, WeightLayout};

    use crate::{Engine, NoProbe, Sampler};

    #[test]
    fn two_at_once_equals_one_after_the_other_both_ways() {
        let conv = crate::steps::tests::small_conv();
        let odd = SyntheticSpec {
            hidden: vec![13, 7],
            latent: 5,
            ..SyntheticSpec::default()
        };
        for (s, spec) in [SyntheticSpec::default(), conv, odd].iter().enumerate() {
            for layout in [WeightLayout::RowMajor, WeightLayout::Tiles4x4] {
                let mut owned = OwnedModel::synthetic(spec, 11 + s as u64);
                for l in owned.decoder.iter_mut().chain(owned.encoder.iter_mut()) {
                    *l = l.with_layout(layout);
                }
                let blob = owned.to_bytes().unwrap();
                let m = Model::from_bytes(&blob).unwrap();
                let e = Engine::new_unaligned(&m);
                let (dim, px) = (usize::from(m.latent.dim), m.data.len());
                assert!(e.scratch_len_two() <= 2 * e.scratch_len());
                let mut scratch = vec![0x55i8; e.scratch_len_two()];
                let mut sampler = Sampler::new(3);
                for _ in 0..6 {
                    let (mut c0, mut c1) = (vec![0i8; dim], vec![0i8; dim]);
                    e.sample_prior(&mut sampler, &mut c0).unwrap();
                    e.sample_prior(&mut sampler, &mut c1).unwrap();
                    let (mut p0, mut p1) = (vec![0u8; px], vec![0u8; px]);
                    e.decode_two([&c0, &c1], &mut scratch, [&mut p0, &mut p1], &mut NoProbe)
                        .unwrap();
                    for (c, p) in [(&c0, &p0), (&c1, &p1)] {
                        let mut one = vec![0u8; px];
                        e.decode(c, &mut scratch, &mut one, &mut NoProbe).unwrap();
                        assert_eq!(&one, p, "spec {s} {layout:?}");
                    }
                    // The two images back through the encoder, together and one at a time.
                    let stats = m.encoder_out_dim();
                    let (mut s0, mut s1) = (vec![0i16; stats], vec![0i16; stats]);
                    e.encode_two([&p0, &p1], &mut scratch, [&mut s0, &mut s1], &mut NoProbe)
                        .unwrap();
                    for (p, got) in [(&p0, &s0), (&p1, &s1)] {
                        let mut one = vec![0i16; stats];
                        e.encode(p, &mut scratch, &mut one, &mut NoProbe).unwrap();
                        assert_eq!(&one, got, "spec {s} {layout:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_buffers_are_errors() {
        let blob = OwnedModel::synthetic(&SyntheticSpec::default(), 1)
            .to_bytes()
            .unwrap();
        let m = Model::from_bytes(&blob).unwrap();
        let e = Engine::new_unaligned(&m);
        let (dim, px) = (usize::from(m.latent.dim), m.data.len());
        let (c, mut p0, mut p1) = (vec![0i8; dim], vec![0u8; px], vec![0u8; px]);
        let mut short = vec![0i8; e.scratch_len_two() - 1];
        let err = e.decode_two([&c, &c], &mut short, [&mut p0, &mut p1], &mut NoProbe);
        assert!(matches!(err, Err(crate::Error::ScratchTooSmall { .. })));
        let mut scratch = vec![0i8; e.scratch_len_two()];
        let err = e.decode_two(
            [&c, &c[1..]],
            &mut scratch,
            [&mut p0, &mut p1],
            &mut NoProbe,
        );
        assert!(matches!(err, Err(crate::Error::InputLength { .. })));
        let mut p2 = vec![0u8; px + 1];
        let err = e.decode_two([&c, &c], &mut scratch, [&mut p0, &mut p2], &mut NoProbe);
        assert!(matches!(err, Err(crate::Error::OutputLength { .. })));
    }
}
