//! The emulated MPS2 boards and the micro:bit: no peripherals to set up, the seed fixed at
//! build time, no display.

use super::SeedSource;

/// Nothing to keep.
pub struct Board {}

/// Nothing before the counter.
pub(super) fn first() {}

/// No peripherals to set up.
pub(super) fn bring_up() -> Board {
    Board {}
}

impl Board {
    /// The seed: `built_in` (no random source). The firmware prints it, so that the host can
    /// reproduce the samples.
    pub fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        (built_in, SeedSource::BuildTime)
    }

    /// No display: nothing shown.
    pub fn show(&mut self, images: &[&[u8]], side: usize) {
        let _ = (images, side);
    }
}
