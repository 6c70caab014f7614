//! The contract between a tinyvae firmware run and the host that reads its log: the exit
//! codes a run ends with, the keywords that start the lines the host parses, and what the
//! `vae` firmware computes in one session. The firmware and xtask both use these constants,
//! so neither side can change one alone; with the `std` feature, [`log`] parses a run's log.
//!
//! Line formats (one per line; `[..]` is a comma-separated list of integers):
//!
//! | line | meaning |
//! |---|---|
//! | `generating N samples, seed S (SOURCE)` | the session's sampler seed and sample count |
//! | `sample K [..]`, `resample K [..]`, `interp K [..]` | the K-th image of that kind, u8 |
//! | `input [..]`, `recon [..]` | the encoded input and its reconstruction, u8 |
//! | `counts in UNIT` | the unit of the `count` lines: `instructions` or `cycles` |
//! | `count NAME N [SHAPE]` | a measurement |
//! | `ram NAME N` | bytes of RAM (`static`, `stack`) |
//! | `bench NAME IN OUT KERNEL N` | a kernel benchmark (the `bench` firmware) |
//! | `exit CODE` | the run's last line: one of [`ExitCode`] |
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod log;

/// How a firmware run ends (the semihosting exit status, and the `exit CODE` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Every check passed.
    Success = 0,
    /// A check failed (the log names it).
    CheckFailed = 1,
    /// The embedded model was rejected at boot (the log gives the format error).
    BadModel = 2,
    /// A golden vector differed from the engine's output.
    GoldenMismatch = 3,
    /// The engine refused to run (scratch too small, wrong lengths).
    EngineError = 4,
    /// A Rust panic.
    Panic = 101,
    /// A HardFault or other unexpected exception.
    Fault = 102,
}

impl ExitCode {
    /// Every code, in order.
    pub const ALL: [ExitCode; 7] = [
        ExitCode::Success,
        ExitCode::CheckFailed,
        ExitCode::BadModel,
        ExitCode::GoldenMismatch,
        ExitCode::EngineError,
        ExitCode::Panic,
        ExitCode::Fault,
    ];

    /// The status the run exits with.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The code for a status, if it is one of ours.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::CheckFailed => "check failed",
            ExitCode::BadModel => "bad model",
            ExitCode::GoldenMismatch => "golden mismatch",
            ExitCode::EngineError => "engine error",
            ExitCode::Panic => "panic",
            ExitCode::Fault => "fault",
        }
    }
}

/// The name of an exit status, `unknown` for one that is not an [`ExitCode`].
pub fn exit_name(code: i32) -> &'static str {
    ExitCode::from_code(code).map_or("unknown", ExitCode::name)
}

/// The words that start the lines the host reads.
pub mod keyword {
    /// `sample K [..]`: an image generated from the prior.
    pub const SAMPLE: &str = "sample";
    /// `resample K [..]`: an image decoded from z = mu + sigma eps around the input.
    pub const RESAMPLE: &str = "resample";
    /// `interp K [..]`: a step of the interpolation between two inputs.
    pub const INTERP: &str = "interp";
    /// `input [..]`: the input the firmware encodes.
    pub const INPUT: &str = "input";
    /// `recon [..]`: the decoding of its mean code.
    pub const RECON: &str = "recon";
    /// `f32 K [..]`: an image of the f32 decoder path.
    pub const F32: &str = "f32";
    /// `class K [..]`: an image generated from a class the firmware asked for, class
    /// `K / CLASS_SAMPLES` (a prior grouped by class only).
    pub const CLASS: &str = "class";
    /// `counts in UNIT`.
    pub const COUNTS_IN: &str = "counts in";
    /// `count NAME N [SHAPE]`.
    pub const COUNT: &str = "count";
    /// `ram NAME N`.
    pub const RAM: &str = "ram";
    /// `bench NAME IN OUT KERNEL N`.
    pub const BENCH: &str = "bench";
    /// `generating N samples, seed S (SOURCE)`.
    pub const GENERATING: &str = "generating";
    /// `exit CODE`.
    pub const EXIT: &str = "exit";
    /// `boot FIRMWARE`: the `vae` firmware's first line, so that a host reading a port it
    /// opened before the board was reset (a serial line) starts this run's log there.
    pub const BOOT: &str = "boot";
    /// Every image keyword the `vae` firmware prints with an index.
    pub const INDEXED_IMAGES: [&str; 5] = [SAMPLE, RESAMPLE, INTERP, F32, CLASS];
    /// Every image keyword printed without an index.
    pub const SINGLE_IMAGES: [&str; 2] = [INPUT, RECON];
}

/// What the `vae` firmware computes in one session (FORMAT.md, section 7): from one sampler
/// seeded with the session's seed, [`SAMPLES`] prior draws, each decoded; then, for a model
/// with an encoder and at least two golden encoder inputs, the first input's reconstruction
/// (its mean code decoded), [`RESAMPLES`] draws around it (VAE only) from the same sampler
/// stream, and the interpolation to the second input in [`INTERPOLATION_STEPS`] steps
/// (`INTERPOLATION_STEPS + 1` images, both ends included); last, for a prior grouped by
/// class, [`CLASS_SAMPLES`] draws of each class in turn from the same stream.
pub mod session {
    /// Images generated from the prior.
    pub const SAMPLES: usize = 16;
    /// Images resampled around the first input (VAE only).
    pub const RESAMPLES: usize = 4;
    /// The interpolation's denominator: images `k / INTERPOLATION_STEPS` for `k` in
    /// `0..=INTERPOLATION_STEPS`.
    pub const INTERPOLATION_STEPS: u16 = 7;
    /// Images generated for each class of a prior grouped by class.
    pub const CLASS_SAMPLES: usize = 4;
    /// The seed of on-device sampling when the build names none.
    pub const DEFAULT_SEED: u64 = 2026;
}

pub use session::{CLASS_SAMPLES, INTERPOLATION_STEPS, RESAMPLES, SAMPLES};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for (i, c) in ExitCode::ALL.iter().enumerate() {
            assert_eq!(ExitCode::from_code(c.code()), Some(*c));
            for d in &ExitCode::ALL[i + 1..] {
                assert_ne!(c.code(), d.code());
                assert_ne!(c.name(), d.name());
            }
        }
        assert_eq!(exit_name(7), "unknown");
        assert_eq!(ExitCode::Success.code(), 0, "a clean run exits 0");
    }
}
