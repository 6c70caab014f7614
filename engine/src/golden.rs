//! The model's golden vectors run against this engine: what a firmware checks at boot and the
//! host's `trainer inspect` checks too, with one implementation, so that the two cannot
//! disagree about a model.

use crate::{Engine, Error, NoProbe, Sampler};

/// Which kind of golden vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Vector {
    /// An encoder vector: pixels in, statistics out.
    Encoder,
    /// A decoder vector: code in, pixels out.
    Decoder,
    /// A sampler vector's N(0, 1) draws.
    SamplerEps,
    /// A sampler vector's prior code.
    SamplerCode,
    /// A sampler vector's decoded prior sample.
    SamplerPixels,
}

impl Vector {
    /// Its name in reports: `encoder`, `decoder`, `sampler eps`, `sampler code`,
    /// `sampler pixels`.
    pub fn name(self) -> &'static str {
        match self {
            Vector::Encoder => "encoder",
            Vector::Decoder => "decoder",
            Vector::SamplerEps => "sampler eps",
            Vector::SamplerCode => "sampler code",
            Vector::SamplerPixels => "sampler pixels",
        }
    }
}

/// A golden vector this engine does not reproduce: which, where, and both values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Mismatch {
    /// The kind of vector.
    pub vector: Vector,
    /// Its index among its kind.
    pub index: usize,
    /// The first element that differs.
    pub element: usize,
    /// What this engine computed.
    pub got: i32,
    /// What the file stores (what the exporting host's engine computed).
    pub want: i32,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "golden {} vector {}: element {} is {}, the host engine computed {}",
            self.vector.name(),
            self.index,
            self.element,
            self.got,
            self.want
        )
    }
}

/// Why the golden vectors did not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Failure {
    /// A buffer was short or the model cannot run the vector (an engine error).
    Engine(Error),
    /// A vector differs.
    Mismatch(Mismatch),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Engine(e)
    }
}

/// How many golden vectors of each kind passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Checked {
    /// Encoder vectors.
    pub encoder: usize,
    /// Decoder vectors.
    pub decoder: usize,
    /// Sampler vectors.
    pub sampler: usize,
}

/// The first element where `got` and `want` differ, as a mismatch of `vector` `index`.
fn compare<T: Copy + Into<i32>, U: Into<i32>>(
    (vector, index): (Vector, usize),
    got: &[T],
    want: impl Iterator<Item = U>,
) -> Result<(), Failure> {
    for (element, (g, w)) in got.iter().zip(want).enumerate() {
        let (got, want): (i32, i32) = ((*g).into(), w.into());
        if got != want {
            return Err(Failure::Mismatch(Mismatch {
                vector,
                index,
                element,
                got,
                want,
            }));
        }
    }
    Ok(())
}

impl Engine<'_, '_> {
    /// Runs every golden vector the model carries and compares, bit for bit: `None` when it
    /// carries none. The buffers: `scratch` ([`Engine::scratch_len`]), `stats` (the
    /// encoder's output count), `code` (the latent size), `pixels` (the data's values).
    pub fn check_golden(
        &self,
        scratch: &mut [i8],
        stats: &mut [i16],
        code: &mut [i8],
        pixels: &mut [u8],
    ) -> Result<Option<Checked>, Failure> {
        let Some(g) = &self.model().golden else {
            return Ok(None);
        };
        for (i, v) in g.encoder.iter().enumerate() {
            self.encode(v.input.as_slice(), scratch, stats, &mut NoProbe)?;
            compare((Vector::Encoder, i), stats, v.expected.iter())?;
        }
        for (i, v) in g.decoder.iter().enumerate() {
            self.decode(v.code.as_i8_slice(), scratch, pixels, &mut NoProbe)?;
            compare((Vector::Decoder, i), pixels, v.expected.iter())?;
        }
        for (i, v) in g.sampler.iter().enumerate() {
            let mut s = Sampler::new(v.seed);
            for (j, want) in v.eps.iter().enumerate() {
                compare(
                    (Vector::SamplerEps, i),
                    &[s.normal()],
                    core::iter::once(want),
                )
                .map_err(|e| with_element(e, j))?;
            }
            let mut s = Sampler::new(v.seed);
            self.sample_prior(&mut s, code)?;
            compare((Vector::SamplerCode, i), code, v.prior_code.iter())?;
            self.decode(code, scratch, pixels, &mut NoProbe)?;
            compare((Vector::SamplerPixels, i), pixels, v.prior_pixels.iter())?;
        }
        Ok(Some(Checked {
            encoder: g.encoder.len(),
            decoder: g.decoder.len(),
            sampler: g.sampler.len(),
        }))
    }
}

/// A mismatch found comparing one element at a time, at element `j`.
fn with_element(f: Failure, j: usize) -> Failure {
    match f {
        Failure::Mismatch(m) => Failure::Mismatch(Mismatch { element: j, ..m }),
        other => other,
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Engine(e) => write!(f, "golden vectors: {e}"),
            Failure::Mismatch(m) => m.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Failure {}
