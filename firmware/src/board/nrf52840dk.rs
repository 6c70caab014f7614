//! nRF52840-DK: the debug port kept open, the instruction cache on, the RNG for the seed, an
//! SSD1306 OLED on TWIM0 for what was generated (feature `oled`).

use super::SeedSource;
use crate::{exit, ExitCode};

/// The RNG and the OLED's I2C (`None` once the display has not answered).
pub struct Board {
    rng: nrf52840_hal::Rng,
    #[cfg_attr(not(feature = "oled"), allow(dead_code))]
    i2c: Option<nrf52840_hal::Twim<nrf52840_hal::pac::TWIM0>>,
}

/// Nothing before the counter.
pub(super) fn first() {}

/// nRF52840 build code F (rev 3, DK v3.x) locks its debug port again at every reset unless
/// UICR.APPROTECT holds 0x5A ("HwDisabled") and the firmware writes 0x5A to
/// APPROTECT.DISABLE at each boot (the second `probe-rs run` would meet "Core is locked").
/// On earlier build codes any UICR value but 0xFF enables the protection, so nothing is
/// written there. An erased UICR is programmed once (then the chip resets to take it); a UICR
/// that holds another value is left alone (only a full erase changes it:
/// `probe-rs erase --allow-erase-all`).
fn keep_debug_port_open(
    ficr: &nrf52840_hal::pac::FICR,
    uicr: &nrf52840_hal::pac::UICR,
    nvmc: &nrf52840_hal::pac::NVMC,
) {
    const HW_DISABLED: u32 = 0x5A;
    // FICR.INFO.VARIANT is four ASCII characters, e.g. "AAF0": the third is the build code.
    // A variant that is not four letters and digits (0xFFFFFFFF: not programmed, a part
    // this code does not know) is left alone: writing 0x5A to an older part's UICR would
    // lock its debug port.
    let variant = ficr.info.variant.read().bits().to_be_bytes();
    if !variant.iter().all(u8::is_ascii_alphanumeric) || !(b'F'..=b'Z').contains(&variant[2]) {
        return;
    }
    if uicr.approtect.read().bits() == 0xFFFF_FFFF {
        nvmc.config.write(|w| w.wen().wen());
        while nvmc.ready.read().ready().is_busy() {}
        // SAFETY: 0x5A is the value the rev-3 manual gives for "hardware protection off".
        uicr.approtect.write(|w| unsafe { w.bits(HW_DISABLED) });
        while nvmc.ready.read().ready().is_busy() {}
        nvmc.config.write(|w| w.wen().ren());
        cortex_m::peripheral::SCB::sys_reset();
    }
    // APPROTECT.DISABLE (0x4000_0558, not in the PAC): open until the next reset.
    // SAFETY: a write-only register of build code F parts, checked above.
    unsafe { core::ptr::write_volatile(0x4000_0558 as *mut u32, HW_DISABLED) };
}

/// nRF52840-DK: the debug port kept open, the instruction cache on, the RNG, the OLED's I2C.
pub(super) fn bring_up() -> Board {
    use nrf52840_hal::{gpio::p0, pac, twim, Rng, Twim};
    let p = pac::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
    keep_debug_port_open(&p.FICR, &p.UICR, &p.NVMC);
    // The instruction cache is off at reset: without it every fetch from flash waits its wait
    // states, and the cycle counts would measure the flash, not the code.
    p.NVMC.icachecnf.write(|w| w.cacheen().enabled());
    let pins = p0::Parts::new(p.P0);
    // The DK's Arduino header: SDA on P0.26, SCL on P0.27.
    let twim_pins = twim::Pins {
        sda: pins.p0_26.into_floating_input().degrade(),
        scl: pins.p0_27.into_floating_input().degrade(),
    };
    Board {
        rng: Rng::new(p.RNG),
        // 250 kHz: the TWIM's 400 kHz setting runs SCL's low phase shorter than I2C's
        // fast-mode minimum (Nordic's errata); the HAL offers no 390 kHz.
        i2c: Some(Twim::new(p.TWIM0, twim_pins, twim::Frequency::K250)),
    }
}

impl super::Peripherals for Board {
    /// The seed: from the chip's RNG peripheral. The firmware prints it, so that the host
    /// can reproduce the samples.
    fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        let _ = built_in;
        (self.rng.random_u64(), SeedSource::Hardware)
    }

    /// Shows `images` (each `side` x `side`, 8-bit grey) on the board's display, if it has one.
    /// A display that does not answer is reported once and then left alone.
    fn show(&mut self, images: &[&[u8]], side: usize) {
        #[cfg(feature = "oled")]
        if let Some(i2c) = self.i2c.take() {
            let mut frame = tinyvae_display::Frame::new();
            let n = frame.grid(images.iter().copied(), side);
            let (i2c, r) = tinyvae_display::show(i2c, tinyvae_display::DEFAULT_ADDRESS, &frame);
            match r {
                Ok(()) => {
                    defmt::println!("oled: {=usize} images shown", n);
                    self.i2c = Some(i2c);
                }
                Err(_) => defmt::warn!(
                    "oled: no SSD1306 answered at {=u8:#x}; images not shown",
                    tinyvae_display::DEFAULT_ADDRESS
                ),
            }
        }
        #[cfg(not(feature = "oled"))]
        let _ = (images, side);
    }
}
