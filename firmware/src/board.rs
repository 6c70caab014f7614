//! What differs between boards, behind one small interface: bring-up (clocks, the counter), the
//! seed for on-device sampling, and an optional display for what was generated.
//!
//! | board        | counter           | seed                         | display            |
//! |--------------|-------------------|------------------------------|--------------------|
//! | QEMU (all)   | instructions      | build time (`TINYVAE_SEED`)  | none               |
//! | nRF52840-DK  | DWT cycles        | the chip's RNG peripheral    | SSD1306 on TWIM0   |
//! | RP2040       | SysTick cycles    | ring-oscillator random bits  | none               |
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
    #[cfg(feature = "rp2040")]
    rosc: rp2040_hal::rosc::RingOscillator<rp2040_hal::rosc::Enabled>,
}

/// The RP2040's second-stage bootloader, for the Pico's W25Q080 flash (the boot ROM copies
/// these 256 bytes to RAM and runs them to set up execute-in-place).
#[cfg(feature = "rp2040")]
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

impl Board {
    /// Brings the board up and starts the counter. Call once, first thing in `main`.
    pub fn init() -> Board {
        // The RP2040 keeps its hardware spinlocks across a debugger's reset, and its HAL's
        // critical sections use one: release them before anything takes a critical section
        // (what the HAL's own `entry` macro does; the firmware's `main` is shared by every
        // board, so it uses cortex-m-rt's).
        #[cfg(feature = "rp2040")]
        // SAFETY: first thing in main, before any spinlock, atomic or critical section.
        unsafe {
            rp2040_hal::sio::spinlock_reset()
        };
        let mut cp = cortex_m::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
        counter::start(&mut cp);
        #[cfg(feature = "nrf52840dk")]
        {
            use nrf52840_hal::{gpio::p0, pac, twim, Rng, Twim};
            let p = pac::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
            let pins = p0::Parts::new(p.P0);
            // The DK's Arduino header: SDA on P0.26, SCL on P0.27.
            let twim_pins = twim::Pins {
                sda: pins.p0_26.into_floating_input().degrade(),
                scl: pins.p0_27.into_floating_input().degrade(),
            };
            Board {
                rng: Rng::new(p.RNG),
                i2c: Some(Twim::new(p.TWIM0, twim_pins, twim::Frequency::K400)),
            }
        }
        #[cfg(feature = "rp2040")]
        {
            use rp2040_hal::{clocks, pac, rosc::RingOscillator, Watchdog};
            let mut p = pac::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
            let mut watchdog = Watchdog::new(p.WATCHDOG);
            // The Pico's 12 MHz crystal; the system clock runs at 125 MHz.
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
        #[cfg(feature = "b-l475e-iot01a")]
        {
            use stm32l4xx_hal::{pac, prelude::*, serial::Serial};
            let p = pac::Peripherals::take().unwrap_or_else(|| exit(ExitCode::Fault));
            let mut flash = p.FLASH.constrain();
            let mut rcc = p.RCC.constrain();
            let mut pwr = p.PWR.constrain(&mut rcc.apb1r1);
            // 80 MHz, the part's maximum, from the PLL fed by the 4 MHz MSI (the kit has no
            // HSE crystal); four flash wait states, set by the HAL.
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
        #[cfg(not(any(feature = "nrf52840dk", feature = "rp2040", feature = "b-l475e-iot01a")))]
        {
            Board {}
        }
    }

    /// The seed for on-device sampling: from the hardware where the chip has a random source,
    /// else `built_in`. The firmware prints it, so that the host can reproduce the samples.
    pub fn seed(&mut self, built_in: u64) -> (u64, SeedSource) {
        #[cfg(feature = "nrf52840dk")]
        {
            let _ = built_in;
            (self.rng.random_u64(), SeedSource::Hardware)
        }
        #[cfg(feature = "rp2040")]
        {
            let _ = built_in;
            // The ring oscillator's jitter, one bit per read: a weak source, but a different
            // seed on every boot, which is what sampling needs.
            let seed = (0..64).fold(0u64, |s, _| {
                (s << 1) | u64::from(self.rosc.get_random_bit())
            });
            (seed, SeedSource::Hardware)
        }
        #[cfg(not(any(feature = "nrf52840dk", feature = "rp2040")))]
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
