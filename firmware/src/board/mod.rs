//! What differs between boards, behind one small interface: bring-up (clocks, the counter), the
//! seed for on-device sampling, and an optional display for what was generated. Each board's
//! bring-up is its own module, chosen by its Cargo feature; each defines `Board` (what it
//! keeps), `first()` (before anything else), `bring_up()`, `Board::seed` and `Board::show`.
//!
//! | board        | counter           | seed                         | display            |
//! |--------------|-------------------|------------------------------|--------------------|
//! | QEMU (all)   | instructions      | build time (`TINYVAE_SEED`)  | none               |
//! | nRF52840-DK  | DWT cycles        | the chip's RNG peripheral    | SSD1306 on TWIM0   |
//! | RP2040       | SysTick cycles    | ring-oscillator random bits  | none               |
//! | RP2350       | DWT cycles        | ring-oscillator random bits  | none               |
//! | B-L475E-IOT01A | instructions under QEMU, DWT cycles on the chip (found at boot) | build time | none |

use crate::{counter, exit, ExitCode};

// A board whose feature has `bring-up` has its own module here; the others, emulated.rs.
#[cfg(feature = "b-l475e-iot01a")]
mod b_l475e_iot01a;
#[cfg(not(feature = "bring-up"))]
mod emulated;
#[cfg(feature = "nrf52840dk")]
mod nrf52840dk;
#[cfg(any(feature = "rp2040", feature = "rp2350"))]
mod rp;

#[cfg(feature = "b-l475e-iot01a")]
use b_l475e_iot01a as this;
#[cfg(not(feature = "bring-up"))]
use emulated as this;
#[cfg(feature = "nrf52840dk")]
use nrf52840dk as this;
#[cfg(any(feature = "rp2040", feature = "rp2350"))]
use rp as this;

pub use this::Board;

/// Where the sampler's seed came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum SeedSource {
    /// Fixed when the firmware was built, so that the host can reproduce every sample.
    BuildTime,
    /// Drawn from the chip's hardware random number generator at boot.
    Hardware,
}

impl Board {
    /// Brings the board up and starts the counter. Call once, first thing in `main`.
    pub fn init() -> Board {
        this::first();
        let mut cp = cortex_m::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
        counter::start(&mut cp);
        this::bring_up()
    }
}
