//! Encoding and decoding one layer at a time: [`Engine::decoding`] and [`Engine::encoding`]
//! return a job whose [`step`](Decoding::step) runs the next layer, so that an async task can
//! yield between layers (a decode is about 2 M instructions on a Cortex-M4F) or a super-loop
//! can interleave other work. [`Engine::decode`] and [`Engine::encode`] are these jobs run to
//! the end: the same code, the same bits.

use tinyvae_format::{Layer, Model};

use crate::{dense, head, head_mut, run_i8, Error, Stage};

/// A decode in progress: [`step`](Decoding::step) runs the next decoder layer; after the last
/// one the pixels are written. Made by [`Engine::decoding`](crate::Engine::decoding).
pub struct Decoding<'m, 'b> {
    pub(crate) model: &'m Model<'m>,
    pub(crate) src: &'b mut [i8],
    pub(crate) dst: &'b mut [i8],
    pub(crate) patch: &'b mut [i8],
    pub(crate) spare: &'b mut [i8],
    pub(crate) pixels: &'b mut [u8],
    pub(crate) next: usize,
}

impl Decoding<'_, '_> {
    /// Runs the next layer and returns the stage it completed, or `None` when the decode is
    /// finished (the pixels written). Errors only where a caller's buffer is short, which
    /// [`Engine::decoding`](crate::Engine::decoding) has already checked.
    pub fn step(&mut self) -> Result<Option<Stage>, Error> {
        let layers = &self.model.decoder.layers;
        let Some(l) = layers.get(self.next) else {
            return Ok(None);
        };
        let i = self.next;
        let out = head_mut(self.dst, l.out_len())?;
        run_i8(l, head(self.src, l.in_len())?, out, self.patch, self.spare);
        if i + 1 == layers.len() {
            to_pixels(self.model.pixel_table.as_slice(), out, self.pixels);
        }
        core::mem::swap(&mut self.src, &mut self.dst);
        self.next += 1;
        Ok(Some(Stage::Decoder(i as u8)))
    }

    /// Layers left to run (0: the pixels are written).
    pub fn remaining(&self) -> usize {
        self.model.decoder.layers.len().saturating_sub(self.next)
    }
}

/// The decoder's last int8 outputs through the model's pixel table (256 entries: validated).
// Out of line: inlined into the step, the output pointer was reloaded from the job in
// memory every other pixel (about 400 instructions a decode of 784 pixels).
#[inline(never)]
pub(crate) fn to_pixels(table: &[u8], out: &[i8], pixels: &mut [u8]) {
    // As an array, its 256 entries need no check per pixel (a table of another length,
    // which validation rules out, or buffers of different lengths take the checked loop).
    // Builds for size keep only the checked loop (their flash).
    #[cfg(not(tinyvae_small))]
    if let (Ok(table), true) = (<&[u8; 256]>::try_from(table), pixels.len() == out.len()) {
        let at = |q: i8| table[usize::from((q as u8) ^ 0x80)];
        // Four at a time (the loads of four logits, then of four entries, pipeline).
        let (px4, px_rest) = pixels.as_chunks_mut::<4>();
        let (q4, q_rest) = out.as_chunks::<4>();
        for (p, q) in px4.iter_mut().zip(q4) {
            *p = [at(q[0]), at(q[1]), at(q[2]), at(q[3])];
        }
        for (p, &q) in px_rest.iter_mut().zip(q_rest) {
            *p = at(q);
        }
        return;
    }
    for (p, &q) in pixels.iter_mut().zip(out) {
        *p = table
            .get(usize::from((q as u8) ^ 0x80))
            .copied()
            .unwrap_or(0);
    }
}

/// An encode in progress: [`step`](Encoding::step) runs the next encoder layer; the last one
/// writes mu and log-variance (or z). Made by [`Engine::encoding`](crate::Engine::encoding).
pub struct Encoding<'m, 'b> {
    pub(crate) model: &'m Model<'m>,
    pub(crate) src: &'b mut [i8],
    pub(crate) dst: &'b mut [i8],
    pub(crate) patch: &'b mut [i8],
    pub(crate) spare: &'b mut [i8],
    pub(crate) out: &'b mut [i16],
    pub(crate) next: usize,
}

impl Encoding<'_, '_> {
    /// Runs the next layer and returns the stage it completed, or `None` when the encode is
    /// finished (the statistics written).
    pub fn step(&mut self) -> Result<Option<Stage>, Error> {
        let layers = &self.model.encoder.layers;
        let Some(l) = layers.get(self.next) else {
            return Ok(None);
        };
        let i = self.next;
        let x = head(self.src, l.in_len())?;
        match l {
            // The last layer writes mu and log-variance (dense only: validated).
            Layer::Dense(d) if i + 1 == layers.len() => {
                dense::dense_i16(d, x, self.out, self.spare)
            }
            _ => {
                run_i8(
                    l,
                    x,
                    head_mut(self.dst, l.out_len())?,
                    self.patch,
                    self.spare,
                );
                core::mem::swap(&mut self.src, &mut self.dst);
            }
        }
        self.next += 1;
        Ok(Some(Stage::Encoder(i as u8)))
    }

    /// Layers left to run (0: the statistics are written).
    pub fn remaining(&self) -> usize {
        self.model.encoder.layers.len().saturating_sub(self.next)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use tinyvae_format::owned::OwnedModel;
    use tinyvae_format::testkit::synthetic::{SyntheticConv, SyntheticSpec};
    use tinyvae_format::Model;

    use crate::{Engine, NoProbe, Probe, Sampler, Stage};

    /// A 12 x 12 conv model (one k4 s2 p1 stage of 8 channels): the engine's tests' small
    /// convolutional shape.
    pub(crate) fn small_conv() -> SyntheticSpec {
        SyntheticSpec {
            width: 12,
            height: 12,
            conv: vec![SyntheticConv {
                channels: 8,
                kernel: 4,
                stride: 2,
                padding: 1,
            }],
            ..SyntheticSpec::default()
        }
    }

    struct Stages(Vec<Stage>);
    impl Probe for Stages {
        fn done(&mut self, s: Stage) {
            self.0.push(s);
        }
    }

    #[test]
    fn layer_by_layer_equals_the_whole_call() {
        let conv = small_conv();
        for spec in [SyntheticSpec::default(), conv] {
            let blob = OwnedModel::synthetic(&spec, 7).to_bytes().unwrap();
            let m = Model::from_bytes(&blob).unwrap();
            let e = Engine::new(&m).unwrap();
            let (dim, px) = (usize::from(m.latent.dim), m.data.len());
            let mut sampler = Sampler::new(5);
            let mut scratch = vec![0i8; e.scratch_len()];
            for _ in 0..8 {
                let mut code = vec![0i8; dim];
                e.sample_prior(&mut sampler, &mut code).unwrap();
                let (mut whole, mut stepped) = (vec![0u8; px], vec![0u8; px]);
                let mut stages = Stages(vec![]);
                e.decode(&code, &mut scratch, &mut whole, &mut stages)
                    .unwrap();
                let mut job = e.decoding(&code, &mut scratch, &mut stepped).unwrap();
                let mut seen = vec![];
                assert_eq!(job.remaining(), m.decoder.layers.len());
                while let Some(s) = job.step().unwrap() {
                    seen.push(s);
                }
                assert_eq!((job.remaining(), job.step().unwrap()), (0, None));
                assert_eq!(seen, stages.0);
                assert_eq!(stepped, whole);

                let (mut a, mut b) = (vec![0i16; 2 * dim], vec![0i16; 2 * dim]);
                e.encode(&whole, &mut scratch, &mut a, &mut NoProbe)
                    .unwrap();
                let mut job = e.encoding(&whole, &mut scratch, &mut b).unwrap();
                let mut n = 0;
                while job.step().unwrap().is_some() {
                    n += 1;
                }
                assert_eq!(n, m.encoder.layers.len());
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn a_job_checks_its_buffers_before_any_layer() {
        let blob = OwnedModel::synthetic(&SyntheticSpec::default(), 1)
            .to_bytes()
            .unwrap();
        let m = Model::from_bytes(&blob).unwrap();
        let e = Engine::new(&m).unwrap();
        let mut scratch = vec![0i8; e.scratch_len() - 1];
        let mut px = vec![0u8; m.data.len()];
        let err = e.decoding(&[0; 4], &mut scratch, &mut px).err();
        assert!(matches!(err, Some(crate::Error::ScratchTooSmall { .. })));
    }
}
