//! What differs between boards, behind one small interface: bring-up (clocks, the counter), the
//! seed for on-device sampling, and an optional display for what was generated.
//!
//! | board        | counter           | seed                         | display            |
//! |--------------|-------------------|------------------------------|--------------------|
//! | QEMU (all)   | instructions      | build time (`TINYVAE_SEED`)  | none               |
//! | nRF52840-DK  | DWT cycles        | the chip's RNG peripheral    | SSD1306 on TWIM0   |
//! | RP2040       | SysTick cycles    | ring-oscillator random bits  | none               |
//! | RP2350       | DWT cycles        | ring-oscillator random bits  | none               |
//! | B-L475E-IOT01A | instructions under QEMU, DWT cycles on the chip (found at boot) | build time | none |

use crate::{counter, exit, ExitCode};

/// Where the sampler's seed came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum SeedSource {
    /// Fixed when the firmware was built, so that the host can reproduce every sample.
    BuildTime,
    /// Drawn from the chip's hardware random number generator at boot.
    Hardware,
}

/// The board the firmware was built for, brought up.
pub struct Board {
    #[cfg(feature = "nrf52840dk")]
    rng: nrf52840_hal::Rng,
    #[cfg(feature = "nrf52840dk")]
    i2c: Option<nrf52840_hal::Twim<nrf52840_hal::pac::TWIM0>>,
    #[cfg(any(feature = "rp2040", feature = "rp2350"))]
    rosc: rp_hal::rosc::RingOscillator<rp_hal::rosc::Enabled>,
}

/// The RP2350's image definition: the boot ROM runs a flash image only where it finds one in
/// the first 4 KiB (memory.x puts this right after the vector table): an executable for the
/// Arm cores, in the Secure state.
#[cfg(feature = "rp2350")]
#[link_section = ".start_block"]
#[used]
pub static IMAGE_DEF: rp235x_hal::block::ImageDef = rp235x_hal::block::ImageDef::secure_exe();

/// splitmix64's output function: a bijection of u64 in which every input bit reaches every
/// output bit.
#[cfg(any(feature = "rp2040", feature = "rp2350"))]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// nRF52840 build code F (rev 3, DK v3.x) locks its debug port again at every reset unless
/// UICR.APPROTECT holds 0x5A ("HwDisabled") and the firmware writes 0x5A to
/// APPROTECT.DISABLE at each boot (the second `probe-rs run` would meet "Core is locked").
/// On earlier build codes any UICR value but 0xFF enables the protection, so nothing is
/// written there. An erased UICR is programmed once (then the chip resets to take it); a UICR
/// that holds another value is left alone (only a full erase changes it:
/// `probe-rs erase --allow-erase-all`).
#[cfg(feature = "nrf52840dk")]
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

/// No peripherals to set up (the emulated MPS2 boards and the micro:bit).
#[cfg(not(any(
    feature = "nrf52840dk",
    feature = "rp2040",
    feature = "rp2350",
    feature = "b-l475e-iot01a"
)))]
fn bring_up() -> Board {
    Board {}
}

/// nRF52840-DK: the debug port kept open, the instruction cache on, the RNG, the OLED's I2C.
#[cfg(feature = "nrf52840dk")]
fn bring_up() -> Board {
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

/// Raspberry Pi Pico and Pico 2: clocks from the 12 MHz crystal (125 MHz on the RP2040, 150 MHz
/// on the RP2350), the ring oscillator for the seed.
#[cfg(any(feature = "rp2040", feature = "rp2350"))]
fn bring_up() -> Board {
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

/// B-L475E-IOT01A: 80 MHz, USART1 handed to the logger, the counter's period measured (under
/// QEMU).
#[cfg(feature = "b-l475e-iot01a")]
fn bring_up() -> Board {
    use stm32l4xx_hal::{pac, prelude::*, serial::Serial};
    let p = pac::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
    let mut flash = p.FLASH.constrain();
    let mut rcc = p.RCC.constrain();
    let mut pwr = p.PWR.constrain(&mut rcc.apb1r1);
    // 80 MHz, the part's maximum, from the PLL fed by the 16 MHz HSI (the HAL's choice
    // when neither an HSE crystal, which the kit lacks, nor the MSI is configured: its
    // rcc.rs); four flash wait states, set by the HAL.
    let clocks = rcc
        .cfgr
        .sysclk(80.MHz())
        .pclk1(80.MHz())
        .pclk2(80.MHz())
        .freeze(&mut flash.acr, &mut pwr);
    // USART1 on PB6 (TX) and PB7 (RX), AF7: the ST-LINK's virtual COM port.
    let mut gpiob = p.GPIOB.split(&mut rcc.ahb2);
    let tx = gpiob
        .pb6
        .into_alternate(&mut gpiob.moder, &mut gpiob.otyper, &mut gpiob.afrl);
    let rx = gpiob
        .pb7
        .into_alternate(&mut gpiob.moder, &mut gpiob.otyper, &mut gpiob.afrl);
    let serial = Serial::usart1(
        p.USART1,
        (tx, rx),
        crate::uart_log::BAUD.bps(),
        clocks,
        &mut rcc.apb2,
    );
    crate::uart_log::install(serial.split().0);
    counter::calibrate();
    Board {}
}

impl Board {
    /// Brings the board up and starts the counter. Call once, first thing in `main`.
    pub fn init() -> Board {
        // The RP2040 and RP2350 keep their hardware spinlocks across a debugger's reset, and
        // their HALs' critical sections use one: release them before anything takes a
        // critical section (what the HALs' own `entry` macro does; the firmware's `main` is
        // shared by every board, so it uses cortex-m-rt's).
        #[cfg(any(feature = "rp2040", feature = "rp2350"))]
        // SAFETY: first thing in main, before any spinlock, atomic or critical section.
        unsafe {
            rp_hal::sio::spinlock_reset()
        };
        let mut cp = cortex_m::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
        counter::start(&mut cp);
        bring_up()
    }

    /// The seed for on-device sampling: from the hardware where the chip has a random source,
    /// else `built_in`. The firmware prints it, so that the host can reproduce the samples.
    pub fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        #[cfg(feature = "nrf52840dk")]
        {
            let _ = built_in;
            (self.rng.random_u64(), SeedSource::Hardware)
        }
        #[cfg(any(feature = "rp2040", feature = "rp2350"))]
        {
            let _ = built_in;
            // The ring oscillator's jitter: back-to-back reads are correlated, so 256 reads,
            // spaced, each folded into a 64-bit state through a mixing step (splitmix64's
            // finaliser), which spreads every raw bit over the whole seed.
            let mut state = 0u64;
            for _ in 0..256 {
                cortex_m::asm::delay(64);
                state = mix(state ^ u64::from(self.rosc.get_random_bit()));
            }
            (state, SeedSource::Hardware)
        }
        #[cfg(not(any(feature = "nrf52840dk", feature = "rp2040", feature = "rp2350")))]
        {
            (built_in, SeedSource::BuildTime)
        }
    }

    /// Shows `images` (each `side` x `side`, 8-bit grey) on the board's display, if it has one.
    /// A display that does not answer is reported once and then left alone.
    pub fn show(&mut self, images: &[&[u8]], side: usize) {
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
