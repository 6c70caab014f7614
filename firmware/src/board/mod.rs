//! What differs between boards, behind one small interface: bring-up (clocks, the counter), the
//! seed for on-device sampling, and an optional display for what was generated. Each board's
//! bring-up is its own module, chosen by its Cargo feature; each defines `Board` (what it
//! keeps), `first()` (before anything else) and `bring_up()`, and implements [`Peripherals`]
//! (a random source for the seed, a display; by default neither).
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

/// What a board may have beyond its bring-up: a random source for the seed, a display. The
/// defaults are a board with neither.
trait Peripherals {
    /// The seed for on-device sampling: `built_in`, fixed at build time.
    fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        (built_in, SeedSource::BuildTime)
    }

    /// Shows `images` on the board's display: none, nothing shown.
    fn show(&mut self, images: &[&[u8]], side: usize) {
        let _ = (images, side);
    }
}

impl Board {
    /// Brings the board up and starts the counter. Call once, first thing in `main`.
    pub fn init() -> Board {
        this::first();
        let mut cp = cortex_m::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
        counter::start(&mut cp);
        this::bring_up()
    }

    /// The seed for on-device sampling: from the hardware where the chip has a random
    /// source, else `built_in`. The firmware prints it, so that the host can reproduce the
    /// samples.
    pub fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        Peripherals::seed(self, built_in)
    }

    /// Shows `images` (each `side` x `side`, 8-bit grey) on the board's display, if it has
    /// one. A display that does not answer is reported once and then left alone.
    pub fn show(&mut self, images: &[&[u8]], side: usize) {
        Peripherals::show(self, images, side)
    }
}
