//! Drawing z from a second-stage prior (format version 6; feature `second-stage`, else an
//! error naming it): `u ~ N(0, I)` through the second stage's dense layers, whose last writes
//! z in Q`frac_bits` (FORMAT.md, section 3, Prior).
//!
//! The layers run in fixed buffers on the stack
//! ([`MAX_SECOND_STAGE_WIDTH`](tinyvae_format::MAX_SECOND_STAGE_WIDTH) values each, and the
//! DSP kernel's spare bytes for that width: about 1.5 KB), so that
//! [`Engine::sample_prior`] keeps its signature; the format bounds every layer's width.

#[cfg(feature = "second-stage")]
use tinyvae_format::{Layer, SecondStage, MAX_LATENT, MAX_SECOND_STAGE_WIDTH};

#[cfg(feature = "second-stage")]
use crate::{dense, requant};
use crate::{Engine, Error, Sampler};

#[cfg(feature = "second-stage")]
const WIDTH: usize = MAX_SECOND_STAGE_WIDTH as usize;

impl Engine<'_, '_> {
    /// For a second-stage prior, its draw into `code` (the latent's `dim` values, checked by
    /// the caller), or [`Error::SecondStageNotBuilt`] where the format crate reads one and
    /// this engine was built without the feature; `None` for any other prior.
    #[inline(always)]
    pub(crate) fn second_stage(
        &self,
        sampler: &mut Sampler,
        code: &mut [i8],
    ) -> Option<Result<(), Error>> {
        #[cfg(feature = "second-stage")]
        if let Some(s) = self.model().prior.second_stage() {
            self.second_stage_draw(s, sampler, code);
            return Some(Ok(()));
        }
        #[cfg(not(feature = "second-stage"))]
        if self.model().prior.is_second_stage() {
            let _ = (sampler, code);
            return Some(Err(Error::SecondStageNotBuilt));
        }
        None
    }

    /// Writes the code of one draw from the second stage `s` of a validated model into
    /// `code` (the latent's `dim` values, checked by the caller).
    #[cfg(feature = "second-stage")]
    #[inline(never)]
    pub(crate) fn second_stage_draw(
        &self,
        s: &SecondStage<'_>,
        sampler: &mut Sampler,
        code: &mut [i8],
    ) {
        let mut a = [0i8; WIDTH];
        let mut b = [0i8; WIDTH];
        let mut z = [0i16; MAX_LATENT as usize];
        let mut spare = [0i8; dense::spare_len(WIDTH)];
        // The draws, as the first layer's int8 inputs.
        for x in a.iter_mut().take(s.draws()) {
            let eps = i32::from(sampler.normal());
            let q = requant::requantize(eps, s.input_multiplier, s.input_shift)
                .saturating_add(i32::from(s.input_zero_point));
            *x = q.clamp(-128, 127) as i8;
        }
        let (mut src, mut dst) = (&mut a, &mut b);
        let last = s.layers.len().saturating_sub(1);
        for (i, l) in s.layers.iter().enumerate() {
            let Layer::Dense(d) = l else { return };
            let (n_in, n_out) = (usize::from(d.in_dim), usize::from(d.out_dim));
            let Some(x) = src.get(..n_in) else { return };
            if i == last {
                let Some(zs) = z.get_mut(..n_out) else { return };
                dense::dense_i16(d, x, zs, &mut spare);
            } else {
                let Some(y) = dst.get_mut(..n_out) else {
                    return;
                };
                dense::dense_i8(d, x, y, &mut spare);
                core::mem::swap(&mut src, &mut dst);
            }
        }
        for (c, &v) in code.iter_mut().zip(z.iter()) {
            *c = self.code_from_fixed(i32::from(v));
        }
    }
}
