//! Integer-only inference for tinyvae models.
//!
//! The same code runs in host tests and on Cortex-M: int8 dense layers and convolutions with
//! TFLite/CMSIS-NN requantization, the encoder (u8 pixels to mu and log-variance in
//! Q`frac` fixed point), the decoder (int8 latent code to u8 pixels) and a seeded N(0, 1)
//! sampler in Q12 with the reparameterization z = mu + sigma * eps. A model exported by
//! `trainer export` decodes here to the bits the host computed, which the file's golden
//! vectors record.
//!
//! # The whole flow
//!
//! Embed the model word-aligned ([`include_model!`]), read it in place
//! ([`format::Model::from_bytes`] checks every byte before anything runs), make an
//! [`Engine`], draw a latent code from the model's prior and decode it:
//!
//! ```
//! use tinyvae_engine::{format::Model, include_model, Engine, NoProbe, Sampler};
//!
//! // In a firmware, `mod sizes { include!(concat!(env!("OUT_DIR"), "/tinyvae_sizes.rs")); }`
//! // gives these for the target being built (`build::emit_sizes` in build.rs, feature `std`).
//! const SCRATCH: usize = 1024;
//! const LATENT: usize = 4;
//! const PIXELS: usize = 64;
//!
//! static MODEL: &[u8] = include_model!("../tests/data/tiny.tvae");
//!
//! # fn main() -> Result<(), Box<dyn core::fmt::Debug>> {
//! let model = Model::from_bytes(MODEL).map_err(|e| Box::new(e) as _)?;
//! let engine = Engine::new(&model).map_err(|e| Box::new(e) as _)?;
//! assert!(engine.scratch_len() <= SCRATCH);
//!
//! let mut scratch = [0i8; SCRATCH];
//! let mut code = [0i8; LATENT];
//! let mut pixels = [0u8; PIXELS];
//! let mut sampler = Sampler::new(2026);
//! for _ in 0..4 {
//!     engine.sample_prior(&mut sampler, &mut code).map_err(|e| Box::new(e) as _)?;
//!     engine
//!         .decode(&code, &mut scratch, &mut pixels, &mut NoProbe)
//!         .map_err(|e| Box::new(e) as _)?;
//!     // `pixels` holds a generated 8 x 8 image.
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`Engine::decoding`] runs the same decode one layer per call, for an async task that
//! yields between layers; [`Engine::decode_two`] decodes two codes in one pass over the
//! weights ([`batch`]); [`Engine::kernel`] says whether the DSP kernel runs, and why not.
//! With a prior grouped by class (format version 5, feature `classes`, on by default),
//! [`Engine::sample_class`] draws a chosen class ("draw a 7"); [`Engine::classes`] says how
//! many there are.
//!
//! # Profiles
//!
//! Measured on the emulated Cortex-M4F with a conv 32-64 model (`cargo xtask lib-cost`,
//! results/library-cost.md in the repository):
//! - At opt-level `s` or `z` the convolutions' two-position DSP kernel is left out (for
//!   flash): a convolutional decode takes 30% more instructions (2.60 M against 2.00 M).
//!   `[profile.release.package.tinyvae-engine] opt-level = 3` keeps it where the image is
//!   not built with fat LTO (which applies one level to the whole image).
//! - A debug build at opt-level 0 validates a model 21 times slower (6.1 M instructions
//!   against 0.30 M) and needs 65 KB of stack against 24 KB. Build the engine and the format
//!   optimized even in `dev` (`[profile.dev.package.tinyvae-engine] opt-level = 3`, the same
//!   for `tinyvae-format`): validation and decode then cost what they cost in release, and
//!   the stack is what the rest of the firmware's unoptimized code needs.
//!
//! # Invariants
//!
//! Enforced by the crate's attributes and its tests:
//! - `#![no_std]` with no `alloc`: nothing allocates. Scratch memory is a caller's buffer,
//!   checked against the model ([`Engine::scratch_len`]); too small is an [`Error`], not a panic.
//! - No float: `clippy::float_arithmetic` is denied for the whole crate.
//! - No platform-dependent arithmetic: only integer operations with defined results (wrapping
//!   or saturating where they could overflow), so x86-64, thumbv6m, thumbv7m and thumbv7em
//!   produce the same bits.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::float_arithmetic))]
// The Arm assembly's wrappers (`arm`) are the module allowed unsafe code (and conv::few's
// ARMv6-M routine beside its walks).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[cfg(any(tinyvae_dsp, tinyvae_v6m))]
mod arm;
pub mod batch;
#[cfg(feature = "std")]
pub mod build;
pub mod conv;
pub mod dense;
mod embed;
mod error;
pub mod golden;
mod kernel;
mod second_stage;
mod steps;
/// Which targets run the DSP-extension kernel (the rule engine/build.rs applies), for build
/// scripts that size a firmware's buffers on the host.
pub use tinyvae_format::dsp_rule;
pub mod gauss;
pub mod known_answers;
pub mod requant;
pub mod rng;

pub use embed::Aligned;
pub use error::Error;
pub use gauss::Sampler;
pub use kernel::{Fallback, Kernel};
pub use steps::{Decoding, Encoding};

/// The prefix of the assembly routines' symbols (`tinyvae_v0_1_0_` for version 0.1.0): they
/// carry the crate's version, so that two versions of the engine link into one image.
pub const ASM_PREFIX: &str = env!("TINYVAE_ASM_PREFIX");
pub use tinyvae_format as format;

use tinyvae_format::{Layer, Mixture, Model, ModelKind, EPS_FRAC_BITS, SIGMA_FRAC_BITS};

/// A stage of inference, reported to a [`Probe`] when it completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stage {
    /// Encoder layer `n` (the pixel conversion is counted in layer 0).
    Encoder(u8),
    /// Decoder layer `n` (the pixel table is counted in the last layer).
    Decoder(u8),
}

/// Observes inference stage by stage (the firmware reads its counters here).
pub trait Probe {
    /// Called when `stage` has completed.
    fn done(&mut self, stage: Stage);
}

/// A probe that does nothing.
pub struct NoProbe;
impl Probe for NoProbe {
    #[inline(always)]
    fn done(&mut self, _: Stage) {}
}

/// The scratch's parts for `model` on a target with (`simd`) or without the DSP kernel: the
/// two activation buffers (a network's input and the outputs of its odd layers in the first,
/// the outputs of its even layers in the second), the convolutions' patch room
/// ([`conv::patch_room`]), and the kernels' spare bytes ([`dense::spare_len`],
/// [`conv::spare_room`]).
fn scratch_parts(model: &Model<'_>, simd: bool) -> [usize; 4] {
    let (mut a, mut b, mut patch, mut spare) = (0, 0, 0, 0);
    let nets = [
        (&model.encoder, model.data.len()),
        (&model.decoder, usize::from(model.latent.dim)),
    ];
    for (net, input) in nets {
        if !net.layers.is_empty() {
            a = a.max(input);
        }
        for (i, l) in net.layers.iter().enumerate() {
            let out = len(l.out_len());
            if i % 2 == 0 {
                b = b.max(out);
            } else {
                a = a.max(out);
            }
            match l {
                Layer::Dense(d) => {
                    if simd {
                        spare = spare.max(dense::spare_len(usize::from(d.in_dim)));
                    }
                }
                Layer::Conv2d(c) | Layer::ConvTranspose2d(c) => {
                    let t = matches!(l, Layer::ConvTranspose2d(_));
                    patch = patch.max(conv::patch_room(c, t));
                    spare = spare.max(conv::spare_room(c, t, simd));
                }
            }
        }
    }
    [a, b, patch, spare]
}

/// The scratch bytes [`Engine::scratch_len`] returns for `model` on a target with (`simd`: see
/// [`dsp_rule::has_dsp_extension`] and [`dense::SIMD`]) or without the DSP kernel: for build scripts that size a
/// firmware's buffers on the host.
pub fn scratch_len_for(model: &Model<'_>, simd: bool) -> usize {
    scratch_parts(model, simd).iter().sum()
}

/// A validated layer's length as `usize` (at most [`tinyvae_format::MAX_WIDTH`]).
fn len(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Runs one layer of a validated model with an int8 output: `x` its input, `y` its output,
/// `patch` room for one convolution patch (`Layer::patch_len`), `spare` the dense kernels'
/// spare bytes ([`dense::spare_len`]; may be empty off DSP targets).
pub fn run_i8(l: &Layer<'_>, x: &[i8], y: &mut [i8], patch: &mut [i8], spare: &mut [i8]) {
    match l {
        Layer::Dense(d) => dense::dense_i8(d, x, y, spare),
        Layer::Conv2d(c) => conv::conv_i8(c, false, x, y, patch, spare),
        Layer::ConvTranspose2d(c) => conv::conv_i8(c, true, x, y, patch, spare),
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The first `n` values of an activation buffer. Never short for a validated model and a
/// scratch of [`Engine::scratch_len`] bytes (split checks it); an error rather than a slice
/// index, whose panic would format its message (core::fmt in the firmware).
fn head(buf: &[i8], n: u64) -> Result<&[i8], Error> {
    buf.get(..len(n)).ok_or(Error::ScratchTooSmall {
        needed: len_u32(len(n)),
        available: len_u32(buf.len()),
    })
}

/// [`head`], mutable.
fn head_mut(buf: &mut [i8], n: u64) -> Result<&mut [i8], Error> {
    let available = len_u32(buf.len());
    buf.get_mut(..len(n)).ok_or(Error::ScratchTooSmall {
        needed: len_u32(len(n)),
        available,
    })
}

fn check_len(expected: usize, found: usize, input: bool) -> Result<(), Error> {
    if expected == found {
        return Ok(());
    }
    let (expected, found) = (len_u32(expected), len_u32(found));
    Err(if input {
        Error::InputLength { expected, found }
    } else {
        Error::OutputLength { expected, found }
    })
}

/// Runs a validated [`Model`].
#[derive(Clone, Copy, Debug)]
pub struct Engine<'m, 'a> {
    model: &'m Model<'a>,
    /// The scratch's parts ([`scratch_parts`]), worked out once: every encode and decode
    /// splits its scratch by them.
    parts: [usize; 4],
}

/// A scratch split into the two activation buffers, the patch and the spare bytes.
pub(crate) type Split<'s> = (&'s mut [i8], &'s mut [i8], &'s mut [i8], &'s mut [i8]);

impl<'m, 'a> Engine<'m, 'a> {
    /// An engine for `model` (validated by [`Model::from_bytes`]). On a core with an
    /// assembly kernel (the DSP extension's, or ARMv6-M's on the Cortex-M0), a model whose
    /// bytes are not word-aligned is [`Error::Misaligned`]: embed it with
    /// [`include_model!`], or take the portable kernels with [`Engine::new_unaligned`].
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        Self::checked(model, kernel::Assembly::THIS)
    }

    /// [`Engine::new`] for a build with the assembly kernels `asm`.
    fn checked(model: &'m Model<'a>, asm: kernel::Assembly) -> Result<Self, Error> {
        match kernel::misalignment(model).filter(|_| asm != kernel::Assembly::None) {
            Some(offset) => Err(Error::Misaligned { offset }),
            None => Ok(Self::new_unaligned(model)),
        }
    }

    /// An engine for `model` wherever its bytes lie: a model that is not word-aligned runs on
    /// the portable kernels (the same bits, 12 to 14 times the instructions of the DSP
    /// kernel), which [`Engine::kernel`] reports. The explicit fallback; [`Engine::new`]
    /// refuses such a model instead.
    pub fn new_unaligned(model: &'m Model<'a>) -> Self {
        Engine {
            model,
            parts: scratch_parts(model, dense::SIMD),
        }
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    /// Which kernels run the model's tiled layers, and why: [`Kernel::Dsp`] on a core with
    /// the DSP extension and [`Kernel::ArmV6M`] on ARMv6-M, for a word-aligned tiled model,
    /// else [`Kernel::Portable`] with the reason.
    pub fn kernel(&self) -> Kernel {
        kernel::choose(self.model, kernel::Assembly::THIS)
    }

    fn parts(&self) -> [usize; 4] {
        self.parts
    }

    /// Scratch bytes `encode` and `decode` need: the two activation buffers, a convolution
    /// patch, and on DSP targets room for the widest weight row's inputs widened to int16
    /// ([`dense::spare_len`]). The same figure for a build's target at compile time:
    /// [`scratch_len_for`], or the `build` module's constants (feature `std`).
    pub fn scratch_len(&self) -> usize {
        self.parts().iter().sum()
    }

    /// Splits the scratch into the two activation buffers, the patch and the spare bytes.
    fn split<'s>(&self, scratch: &'s mut [i8]) -> Result<Split<'s>, Error> {
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall {
                needed: len_u32(needed),
                available: len_u32(scratch.len()),
            });
        }
        let [a, b, patch, _] = self.parts();
        let (a, rest) = scratch.split_at_mut(a);
        let (b, rest) = rest.split_at_mut(b);
        let (patch, spare) = rest.split_at_mut(patch);
        Ok((a, b, patch, spare))
    }

    /// Starts encoding one item of u8 pixels, one layer per [`Encoding::step`]; `out` as for
    /// [`Engine::encode`]. The lengths are checked here.
    pub fn encoding<'b>(
        &self,
        pixels: &[u8],
        scratch: &'b mut [i8],
        out: &'b mut [i16],
    ) -> Result<Encoding<'m, 'b>, Error> {
        let m = self.model;
        if !m.has_encoder() {
            return Err(Error::NoEncoder);
        }
        check_len(m.data.len(), pixels.len(), true)?;
        check_len(m.encoder_out_dim(), out.len(), false)?;
        let (src, dst, patch, spare) = self.split(scratch)?;
        // u8 pixel p is the int8 value p - 128 (scale 1/255, zero-point -128).
        for (q, &p) in src.iter_mut().zip(pixels) {
            *q = (p ^ 0x80) as i8;
        }
        Ok(Encoding {
            model: m,
            src,
            dst,
            patch,
            spare,
            out,
            next: 0,
        })
    }

    /// Encodes one item of u8 pixels. For a VAE, `out` receives mu then log-variance
    /// (`2 * latent` values); for an autoencoder, z (`latent` values); all in Q`frac_bits` (the latent's `frac_bits`).
    #[inline(never)]
    pub fn encode(
        &self,
        pixels: &[u8],
        scratch: &mut [i8],
        out: &mut [i16],
        probe: &mut dyn Probe,
    ) -> Result<(), Error> {
        let mut job = self.encoding(pixels, scratch, out)?;
        while let Some(stage) = job.step()? {
            probe.done(stage);
        }
        Ok(())
    }

    /// Starts decoding one int8 latent code into u8 pixels, one layer per
    /// [`Decoding::step`]. The lengths are checked here.
    pub fn decoding<'b>(
        &self,
        code: &[i8],
        scratch: &'b mut [i8],
        pixels: &'b mut [u8],
    ) -> Result<Decoding<'m, 'b>, Error> {
        let m = self.model;
        check_len(usize::from(m.latent.dim), code.len(), true)?;
        check_len(m.data.len(), pixels.len(), false)?;
        let (src, dst, patch, spare) = self.split(scratch)?;
        src.iter_mut().zip(code).for_each(|(d, &c)| *d = c);
        Ok(Decoding {
            model: m,
            src,
            dst,
            patch,
            spare,
            pixels,
            next: 0,
        })
    }

    /// Decodes one int8 latent code into u8 pixels.
    #[inline(never)]
    pub fn decode(
        &self,
        code: &[i8],
        scratch: &mut [i8],
        pixels: &mut [u8],
        probe: &mut dyn Probe,
    ) -> Result<(), Error> {
        let mut job = self.decoding(code, scratch, pixels)?;
        while let Some(stage) = job.step()? {
            probe.done(stage);
        }
        Ok(())
    }

    /// Converts a latent value in Q`frac_bits` to the decoder's int8 code.
    #[inline]
    pub fn code_from_fixed(&self, z: i32) -> i8 {
        let l = &self.model.latent;
        let q = requant::requantize(z, l.to_code_multiplier, l.to_code_shift)
            .saturating_add(i32::from(l.zero_point));
        q.clamp(-128, 127) as i8
    }

    /// sigma = exp(log-variance / 2) in Q16, from the model's table with linear interpolation.
    pub fn sigma_q16(&self, logvar: i16) -> u32 {
        let t = &self.model.latent.sigma;
        let n = t.values.len();
        let d = (i32::from(logvar) - i32::from(t.logvar_min)).max(0) as u32;
        let step = u32::from(t.step_log2);
        let (i, f) = match (d >> step) as usize {
            i if i + 1 < n => (i, d & ((1 << step) - 1)),
            _ => (n - 2, 1 << step),
        };
        let (v0, v1) = (
            i64::from(t.values.get(i).unwrap_or(0)),
            i64::from(t.values.get(i + 1).unwrap_or(0)),
        );
        (v0 + (((v1 - v0) * i64::from(f)) >> step)) as u32
    }

    /// `mu + sigma * eps` in Q`frac_bits`, with sigma in Q16 and eps in Q12.
    #[inline]
    fn shifted(&self, mu: i32, sigma_q16: u32, eps: i16) -> i32 {
        let frac = u32::from(self.model.latent.frac_bits);
        let shift = u32::from(SIGMA_FRAC_BITS) + u32::from(EPS_FRAC_BITS) - frac;
        let prod = i64::from(sigma_q16) * i64::from(eps);
        let noise = (prod + (1i64 << (shift - 1))) >> shift;
        mu.saturating_add(noise.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// Draws a latent code from the model's prior (N(0, I), its mixture, or its second
    /// stage).
    #[inline(never)]
    pub fn sample_prior(&self, sampler: &mut Sampler, code: &mut [i8]) -> Result<(), Error> {
        let m = self.model;
        let dim = usize::from(m.latent.dim);
        check_len(dim, code.len(), false)?;
        if let Some(drawn) = self.second_stage(sampler, code) {
            return drawn;
        }
        match m.prior.mixture() {
            None => {
                // N(0, 1) is mu = 0, sigma = 1.
                for c in code.iter_mut() {
                    let z = self.shifted(0, 1 << SIGMA_FRAC_BITS, sampler.normal());
                    *c = self.code_from_fixed(z);
                }
            }
            Some(mix) => self.mixture_draw(mix, sampler, code),
        }
        Ok(())
    }

    /// Classes of the model's prior: how many [`Engine::sample_class`] takes (0 unless the
    /// prior is grouped by class).
    pub fn classes(&self) -> usize {
        self.model.prior.classes()
    }

    /// Draws a latent code from class `class` of the model's prior ("draw a 7"): one raw
    /// draw picks a component among the class's, in proportion to their weights, then one
    /// N(0, 1) draw per dimension (FORMAT.md, section 3, Prior).
    #[inline(never)]
    pub fn sample_class(
        &self,
        sampler: &mut Sampler,
        class: usize,
        code: &mut [i8],
    ) -> Result<(), Error> {
        let dim = usize::from(self.model.latent.dim);
        check_len(dim, code.len(), false)?;
        let no_class = Error::NoSuchClass {
            class: u32::try_from(class).unwrap_or(u32::MAX),
            classes: self.classes() as u32,
        };
        let prior = &self.model.prior;
        let (Some(range), Some(mix)) = (prior.class_range(class), prior.mixture()) else {
            return Err(no_class);
        };
        if range.is_empty() {
            return Err(no_class);
        }
        let cum = |k: usize| u64::from(mix.cumulative.get(k).unwrap_or(u32::MAX));
        // The class's slice of the cumulative weights, [lo, hi), and the draw scaled into it.
        let lo = range.start.checked_sub(1).map_or(0, cum);
        let hi = if range.end == usize::from(mix.components) {
            1 << 32
        } else {
            cum(range.end - 1)
        };
        let v = lo + ((u64::from(sampler.uniform()) * (hi - lo)) >> 32);
        let last = range.end - 1;
        let k = range.clone().find(|&k| v < cum(k)).unwrap_or(last);
        self.component(mix, k, sampler, code);
        Ok(())
    }

    /// Draws `code` from `mix`: one raw draw picks the component, then [`Engine::component`].
    fn mixture_draw(&self, mix: &Mixture<'_>, sampler: &mut Sampler, code: &mut [i8]) {
        let u = sampler.uniform();
        let k = mix
            .cumulative
            .iter()
            .position(|c| u < c)
            .unwrap_or(usize::from(mix.components) - 1);
        self.component(mix, k, sampler, code);
    }

    /// Draws `code` from component `k` of `mix`: one N(0, 1) draw per dimension.
    fn component(&self, mix: &Mixture<'_>, k: usize, sampler: &mut Sampler, code: &mut [i8]) {
        let dim = usize::from(self.model.latent.dim);
        let means = mix.means.iter().skip(k * dim);
        let sigmas = mix.sigmas.iter().skip(k * dim);
        for ((c, mu), s) in code.iter_mut().zip(means).zip(sigmas) {
            let z = self.shifted(i32::from(mu), s, sampler.normal());
            *c = self.code_from_fixed(z);
        }
    }

    /// Draws z = mu + sigma * eps around an encoding (`stats` = mu then log-variance, as
    /// [`Engine::encode`] writes for a VAE) and writes its int8 code.
    #[inline(never)]
    pub fn reparameterize(
        &self,
        stats: &[i16],
        sampler: &mut Sampler,
        code: &mut [i8],
    ) -> Result<(), Error> {
        let m = self.model;
        if m.kind != ModelKind::Vae {
            return Err(Error::NotAVae);
        }
        let dim = usize::from(m.latent.dim);
        check_len(2 * dim, stats.len(), true)?;
        check_len(dim, code.len(), false)?;
        let (mu, lv) = stats.split_at(dim);
        for ((c, &mu), &lv) in code.iter_mut().zip(mu).zip(lv) {
            let z = self.shifted(i32::from(mu), self.sigma_q16(lv), sampler.normal());
            *c = self.code_from_fixed(z);
        }
        Ok(())
    }

    /// The code of the encoding's mean (z = mu, or z itself for an autoencoder).
    #[inline(never)]
    pub fn mean_code(&self, stats: &[i16], code: &mut [i8]) -> Result<(), Error> {
        let dim = usize::from(self.model.latent.dim);
        check_len(self.model.encoder_out_dim(), stats.len(), true)?;
        check_len(dim, code.len(), false)?;
        for (c, &mu) in code.iter_mut().zip(stats) {
            *c = self.code_from_fixed(i32::from(mu));
        }
        Ok(())
    }

    /// The code of `a + (b - a) * num / den` between two encodings' means, for interpolation.
    #[inline(never)]
    pub fn interpolate(
        &self,
        a: &[i16],
        b: &[i16],
        num: u16,
        den: u16,
        code: &mut [i8],
    ) -> Result<(), Error> {
        let dim = usize::from(self.model.latent.dim);
        check_len(self.model.encoder_out_dim(), a.len(), true)?;
        check_len(self.model.encoder_out_dim(), b.len(), true)?;
        check_len(dim, code.len(), false)?;
        let den = i32::from(den.max(1));
        let num = i32::from(num).min(den);
        for ((c, &x), &y) in code.iter_mut().zip(a).zip(b) {
            let (x, y) = (i32::from(x), i32::from(y));
            // (y - x) * num / den truncated toward zero, as sign * (|y - x| * num / den):
            // |y - x| <= 65535 and num <= 65535, so the product fits a u32, and the division
            // is one UDIV instead of a 64-bit division routine.
            let d = y - x;
            let q = (d.unsigned_abs() * num as u32 / den as u32) as i32;
            let z = x + if d < 0 { -q } else { q };
            *c = self.code_from_fixed(z);
        }
        Ok(())
    }
}
