//! The global defmt logger over a UART, for boards whose log travels by serial port both under
//! QEMU (its `-serial` chardev) and on the chip (a debug probe's virtual COM port): the same
//! frames, the same decoder (`defmt-print`), and so the same image in both places.
//!
//! Frames are written byte by byte, each when the transmit register is empty, inside a critical
//! section (interrupts masked) held from a frame's first byte to its last, so that frames never
//! interleave. Nothing is logged before [`install`] hands the logger the transmitter the HAL
//! configured.
//!
//! **What QEMU lacks.** QEMU's STM32L4x5 USART model accepts only 32-bit accesses to its
//! registers; the HAL's `Tx::write` stores the byte into TDR with an 8-bit store, which QEMU
//! answers with a bus fault (a precise BusFault at 0x4001_3828, USART1's TDR). The chip takes
//! either width (RM0351), so the logger writes TDR as a 32-bit word through the PAC, the same
//! on both.

use core::cell::UnsafeCell;

use stm32l4xx_hal::pac;

/// The line's speed (8N1), from the board's description (boards/boards.rs): what the host's
/// serial port is set to.
pub const BAUD: u32 = include!(concat!(env!("OUT_DIR"), "/uart_baud.rs"));

/// The transmitter the logger writes to.
pub type Tx = stm32l4xx_hal::serial::Tx<stm32l4xx_hal::pac::USART1>;

struct State {
    tx: Option<Tx>,
    encoder: defmt::Encoder,
    taken: bool,
    restore: bool,
}

struct Shared(UnsafeCell<State>);

// SAFETY: the state is touched only with interrupts masked (single core), or in `install`
// before any frame.
unsafe impl Sync for Shared {}

static STATE: Shared = Shared(UnsafeCell::new(State {
    tx: None,
    encoder: defmt::Encoder::new(),
    taken: false,
    restore: false,
}));

/// Hands the logger its transmitter; frames before this are dropped.
pub fn install(tx: Tx) {
    cortex_m::interrupt::free(|_| {
        // SAFETY: interrupts are masked and no frame is open (frames are opened and closed
        // within one defmt call, never across this one).
        unsafe { (*STATE.0.get()).tx = Some(tx) };
    });
}

fn send(tx: &mut Option<Tx>, bytes: &[u8]) {
    // The transmitter is the proof that the HAL set USART1 up (clock, pins, baud rate).
    if tx.is_none() {
        return;
    }
    // SAFETY: USART1's registers, owned by the `Tx` held above; only the logger writes TDR.
    let usart = unsafe { &*pac::USART1::ptr() };
    for &b in bytes {
        while usart.isr.read().txe().bit_is_clear() {}
        usart.tdr.write(|w| w.tdr().bits(u16::from(b)));
    }
}

#[defmt::global_logger]
struct UartLogger;

// SAFETY: acquire/release bracket each frame with interrupts masked; `write` and `flush` run
// only between them, as defmt guarantees.
unsafe impl defmt::Logger for UartLogger {
    fn acquire() {
        let active = cortex_m::register::primask::read().is_active();
        cortex_m::interrupt::disable();
        // SAFETY: interrupts are now masked on this single core.
        let s = unsafe { &mut *STATE.0.get() };
        if s.taken {
            // defmt called from inside a frame (a log in a panic while logging): stop without
            // another word.
            crate::end(crate::ExitCode::Fault.code());
        }
        s.taken = true;
        s.restore = active;
        let State { tx, encoder, .. } = s;
        encoder.start_frame(|b| send(tx, b));
    }

    unsafe fn flush() {
        // SAFETY: within acquire/release.
        let s = unsafe { &*STATE.0.get() };
        if s.tx.is_some() {
            // SAFETY: as in `send`: the status register, read only.
            let usart = unsafe { &*pac::USART1::ptr() };
            while usart.isr.read().tc().bit_is_clear() {}
        }
    }

    unsafe fn release() {
        // SAFETY: within acquire/release.
        let s = unsafe { &mut *STATE.0.get() };
        let State { tx, encoder, .. } = s;
        encoder.end_frame(|b| send(tx, b));
        s.taken = false;
        if s.restore {
            // SAFETY: interrupts were enabled when the frame began.
            unsafe { cortex_m::interrupt::enable() };
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: within acquire/release.
        let s = unsafe { &mut *STATE.0.get() };
        let State { tx, encoder, .. } = s;
        encoder.write(bytes, |b| send(tx, b));
    }
}
