//! The emulated MPS2 boards and the micro:bit: no peripherals to set up, the seed fixed at
//! build time, no display.

/// Nothing to keep.
pub struct Board {}

/// Nothing before the counter.
pub(super) fn first() {}

/// No peripherals to set up.
pub(super) fn bring_up() -> Board {
    Board {}
}

/// No random source (the seed fixed at build time), no display.
impl super::Peripherals for Board {}
