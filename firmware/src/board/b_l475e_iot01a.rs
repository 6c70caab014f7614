//! B-L475E-IOT01A (STM32L475VG): 80 MHz from the PLL, USART1 to the ST-LINK's virtual COM port
//! for the log, the counter's period found at boot (instructions under QEMU, DWT cycles on the
//! chip); the seed fixed at build time; no display.

use crate::{counter, exit, ExitCode};

/// Nothing to keep.
pub struct Board {}

/// Nothing before the counter.
pub(super) fn first() {}

/// B-L475E-IOT01A: 80 MHz, USART1 handed to the logger, the counter's period measured (under
/// QEMU).
pub(super) fn bring_up() -> Board {
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

/// The seed fixed at build time (the part has an RNG, but the emulator of the kit does not:
/// one image for both), no display.
impl super::Peripherals for Board {}
