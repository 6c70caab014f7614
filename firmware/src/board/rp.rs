//! Raspberry Pi Pico (RP2040) and Pico 2 (RP2350): the boot blocks their boot ROMs want, clocks
//! from the 12 MHz crystal, the ring oscillator's random bits for the seed; no display.

use super::SeedSource;
use crate::{exit, ExitCode};

/// The ring oscillator, for the seed.
pub struct Board {
    rosc: rp_hal::rosc::RingOscillator<rp_hal::rosc::Enabled>,
}

/// The RP2350's image definition: the boot ROM runs a flash image only where it finds one in
/// the first 4 KiB (memory.x puts this right after the vector table): an executable for the
/// Arm cores, in the Secure state.
#[cfg(feature = "rp2350")]
#[link_section = ".start_block"]
#[used]
pub static IMAGE_DEF: rp235x_hal::block::ImageDef = rp235x_hal::block::ImageDef::secure_exe();

/// The RP2040's second-stage bootloader, for the Pico's W25Q080 flash (the boot ROM copies
/// these 256 bytes to RAM and runs them to set up execute-in-place).
#[cfg(feature = "rp2040")]
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The RP2040's and RP2350's HALs, whose bring-up API is the same.
#[cfg(feature = "rp2040")]
use rp2040_hal as rp_hal;
#[cfg(feature = "rp2350")]
use rp235x_hal as rp_hal;

/// The RP2040 and RP2350 keep their hardware spinlocks across a debugger's reset, and their
/// HALs' critical sections use one: release them before anything takes a critical section
/// (what the HALs' own `entry` macro does; the firmware's `main` is shared by every board,
/// so it uses cortex-m-rt's).
pub(super) fn first() {
    // SAFETY: first thing in main, before any spinlock, atomic or critical section.
    unsafe { rp_hal::sio::spinlock_reset() };
}

/// splitmix64's output function: a bijection of u64 in which every input bit reaches every
/// output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Raspberry Pi Pico and Pico 2: clocks from the 12 MHz crystal (125 MHz on the RP2040, 150 MHz
/// on the RP2350), the ring oscillator for the seed.
pub(super) fn bring_up() -> Board {
    use rp_hal::{clocks, pac, rosc::RingOscillator, Watchdog};
    let mut p = pac::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
    let mut watchdog = Watchdog::new(p.WATCHDOG);
    let clocks = clocks::init_clocks_and_plls(
        12_000_000,
        p.XOSC,
        p.CLOCKS,
        p.PLL_SYS,
        p.PLL_USB,
        &mut p.RESETS,
        &mut watchdog,
    );
    if clocks.is_err() {
        defmt::error!("clock setup failed (no 12 MHz crystal?)");
        exit(ExitCode::Fault);
    }
    Board {
        rosc: RingOscillator::new(p.ROSC).initialize(),
    }
}

impl super::Peripherals for Board {
    /// The seed: the ring oscillator's jitter. Back-to-back reads are correlated, so 256
    /// reads, spaced, each folded into a 64-bit state through a mixing step (splitmix64's
    /// finaliser), which spreads every raw bit over the whole seed. The firmware prints it,
    /// so that the host can reproduce the samples.
    fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        let _ = built_in;
        let mut state = 0u64;
        for _ in 0..256 {
            cortex_m::asm::delay(64);
            state = mix(state ^ u64::from(self.rosc.get_random_bit()));
        }
        (state, SeedSource::Hardware)
    }
}
