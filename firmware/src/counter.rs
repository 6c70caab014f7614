//! What an inference costs: instructions retired under QEMU, core cycles on real chips.
//!
//! **Under QEMU** (feature `icount`) the DWT cycle counter reads 0, so the count is
//! instructions. QEMU runs with `-icount shift=ICOUNT_SHIFT`: every instruction advances virtual
//! time by 2^ICOUNT_SHIFT ns, and SysTick, clocked from the machine's system clock (25 MHz on
//! most MPS2 boards, 20 MHz on the AN505), counts that virtual time. So `instructions = ticks *
//! ns_per_tick / 2^ICOUNT_SHIFT`. The board's shift (7: 128 ns per instruction, 3.2 ticks of
//! 40 ns, 2.56 of 50 ns, or 2.05 ticks of the nRF51's 62.5 ns; 8 on the B-L475E-IOT01A, whose
//! SysTick QEMU runs at 10 MHz: 2.56 ticks of 100 ns) makes an instruction longer than two
//! ticks: the one-tick uncertainty at each end of an interval is under half an instruction, so
//! the rounded count is exact wherever the interval starts. (With 1.6 ticks, counts of one code
//! could differ by one.) SysTick's 24 bits are extended by counting its wraps in its exception
//! handler.
//!
//! **One image for QEMU and the chip** (feature `auto-counter`, the B-L475E-IOT01A): at boot
//! the DWT cycle counter is enabled and watched; it stands still under QEMU, which selects the
//! SysTick count of instructions (its period measured against a known loop, [`calibrate`]),
//! and runs on the chip, which selects cycles. [`unit`] says which.
//!
//! **On Cortex-M3/M4/M7 hardware** (feature `dwt-cycles`) the count is core cycles from the DWT
//! cycle counter, extended past 32 bits in software.
//!
//! **On Cortex-M0/M0+ hardware** (no DWT cycle counter) the count is core cycles from SysTick
//! clocked by the core, extended past 24 bits as under QEMU.
//!
//! [`unit`] names what the numbers are; the firmware prints it with every table.

use core::sync::atomic::{AtomicU32, Ordering};

/// What [`measure`] returns: "instructions" under QEMU, "cycles" on a real chip.
pub fn unit() -> &'static str {
    if emulated() {
        "instructions"
    } else {
        "cycles"
    }
}

/// True when the counts are instructions under QEMU: fixed by the board (feature `icount`),
/// or found at boot by [`start`] (feature `auto-counter`: the DWT cycle counter, enabled,
/// stands still under QEMU and runs on the chip).
pub fn emulated() -> bool {
    #[cfg(feature = "auto-counter")]
    {
        EMULATED.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "auto-counter"))]
    {
        cfg!(feature = "icount")
    }
}

#[cfg(feature = "auto-counter")]
static EMULATED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The `-icount shift` QEMU must run with (the board's description says it; xtask passes it).
pub const ICOUNT_SHIFT: u32 = include!(concat!(env!("OUT_DIR"), "/icount_shift.rs"));

#[cfg(not(feature = "dwt-cycles"))]
mod systick {
    //! SysTick, free-running from the core clock, its wraps counted by its exception.
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::SYST;

    static WRAPS: AtomicU32 = AtomicU32::new(0);

    #[cortex_m_rt::exception]
    fn SysTick() {
        // The only writer (no read-modify-write atomics on Cortex-M0).
        WRAPS.store(
            WRAPS.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    pub fn start(cp: &mut cortex_m::Peripherals) {
        let syst = &mut cp.SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    #[inline(never)]
    pub fn ticks() -> u64 {
        loop {
            let hi = WRAPS.load(Ordering::Relaxed);
            let val = SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == hi {
                return (u64::from(hi) << 24) + u64::from(0x00FF_FFFF - val);
            }
        }
    }

    /// Waits, when less than half a SysTick period is left before the next wrap, for that
    /// wrap: a measurement started after this and shorter than half a period (about 5 million
    /// instructions on the MPS2 boards) never includes the wrap's exception handler, so it
    /// counts the same instructions every time, wherever it starts.
    pub fn settle() {
        let w = WRAPS.load(Ordering::Relaxed);
        if SYST::get_current() < 0x0080_0000 {
            while WRAPS.load(Ordering::Relaxed) == w {}
        }
    }
}

#[cfg(any(feature = "dwt-cycles", feature = "auto-counter"))]
mod dwt {
    //! The DWT cycle counter, extended past 32 bits: every read notices a wrap since the
    //! previous one (reads come far more often than every 2^32 cycles, 67 s at 64 MHz).
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::DWT;

    static HIGH: AtomicU32 = AtomicU32::new(0);
    static LAST: AtomicU32 = AtomicU32::new(0);

    pub fn start(cp: &mut cortex_m::Peripherals) {
        cp.DCB.enable_trace();
        DWT::unlock();
        cp.DWT.set_cycle_count(0);
        cp.DWT.enable_cycle_counter();
    }

    #[inline(never)]
    pub fn ticks() -> u64 {
        // Only the main thread reads the counter: no interrupt updates these.
        let now = DWT::cycle_count();
        let mut high = HIGH.load(Ordering::Relaxed);
        if now < LAST.load(Ordering::Relaxed) {
            high = high.wrapping_add(1);
            HIGH.store(high, Ordering::Relaxed);
        }
        LAST.store(now, Ordering::Relaxed);
        (u64::from(high) << 32) | u64::from(now)
    }

    /// Nothing to wait for: no interrupt interrupts the count.
    #[cfg_attr(feature = "auto-counter", allow(dead_code))]
    pub fn settle() {}
}

#[cfg(not(any(feature = "dwt-cycles", feature = "auto-counter")))]
use systick as source;

#[cfg(feature = "dwt-cycles")]
use dwt as source;

#[cfg(feature = "auto-counter")]
mod source {
    //! SysTick under QEMU, the DWT cycle counter on the chip, as [`super::emulated`] says.
    use super::{dwt, systick, EMULATED};
    use core::sync::atomic::Ordering;

    pub fn start(cp: &mut cortex_m::Peripherals) {
        dwt::start(cp);
        // A few hundred cycles on the chip; nothing at all under QEMU, whose DWT model
        // keeps CYCCNT at 0.
        cortex_m::asm::delay(256);
        let emulated = cortex_m::peripheral::DWT::cycle_count() == 0;
        EMULATED.store(emulated, Ordering::Relaxed);
        if emulated {
            systick::start(cp);
        }
    }

    pub fn ticks() -> u64 {
        if EMULATED.load(Ordering::Relaxed) {
            systick::ticks()
        } else {
            dwt::ticks()
        }
    }

    pub fn settle() {
        if EMULATED.load(Ordering::Relaxed) {
            systick::settle()
        }
    }

    /// Under QEMU, SysTick's period in eighths of a ns, measured: the ticks that a known
    /// number of instructions take, each 2^ICOUNT_SHIFT ns of virtual time, rounded to the
    /// nearest eighth (every clock here is a whole number of eighths: 12.5 ns at 80 MHz, 100
    /// at 10 MHz). Two runs of a two-instruction loop differ by exactly twice the difference
    /// of their iterations, whatever the calls around them cost.
    pub fn calibrate() {
        if !EMULATED.load(Ordering::Relaxed) {
            return;
        }
        let run = |iterations: u32| {
            systick::settle();
            let t0 = systick::ticks();
            // SAFETY: a register-only loop: `iterations` (>= 1) times SUBS and BNE.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "subs {0}, #1",
                    "bne 2b",
                    inout(reg) iterations => _,
                    options(nomem, nostack)
                )
            };
            systick::ticks() - t0
        };
        let (short, long) = (run(1 << 15), run(1 << 16));
        let instructions = 2 * ((1u64 << 16) - (1 << 15));
        let ticks = long.saturating_sub(short).max(1);
        let eighths = (instructions * (8 << super::ICOUNT_SHIFT) + ticks / 2) / ticks;
        super::TICK_EIGHTHS_NS.store(eighths as u32, Ordering::Relaxed);
    }
}

/// SysTick's period under QEMU in eighths of a ns, as [`calibrate`] measured it.
#[cfg(feature = "auto-counter")]
static TICK_EIGHTHS_NS: AtomicU32 = AtomicU32::new(0);

/// Under `auto-counter` and QEMU, measures SysTick's period against a known number of
/// instructions (QEMU's model of the clock tree need not run SysTick at the chip's rate): call
/// once the clocks are set up, before any count. Elsewhere a no-op (the board's description
/// gives the period).
pub fn calibrate() {
    #[cfg(feature = "auto-counter")]
    source::calibrate();
}

/// SysTick's period in ns under QEMU, as (numerator, denominator).
fn tick_ns() -> (u64, u64) {
    #[cfg(feature = "auto-counter")]
    {
        (u64::from(TICK_EIGHTHS_NS.load(Ordering::Relaxed)), 8)
    }
    #[cfg(not(feature = "auto-counter"))]
    {
        // From the board's description (boards/boards.rs): 40 ns for the 25 MHz system clock
        // of the AN385/386/500, 50 for the AN505's 20 MHz, 62.5 for the nRF51's 16 MHz.
        include!(concat!(env!("OUT_DIR"), "/tick_ns.rs"))
    }
}

/// Starts the counter (SysTick or the DWT cycle counter, as the board has; under
/// `auto-counter`, as [`emulated`] finds).
pub fn start(cp: &mut cortex_m::Peripherals) {
    source::start(cp)
}

/// Ticks since [`start`], 64 bits.
pub fn ticks() -> u64 {
    source::ticks()
}

/// Converts a tick difference to the [`unit`] reported: instructions retired under QEMU
/// (SysTick counts virtual time), core cycles on hardware (the ticks themselves).
pub fn count(ticks: u64) -> u64 {
    if emulated() {
        let (num, den) = tick_ns();
        let per = den << ICOUNT_SHIFT;
        (ticks * num + per / 2) / per
    } else {
        ticks
    }
}

/// Measures what `f` costs in [`unit`]s, minus the cost of the measurement itself. Exact and
/// repeatable under QEMU for anything shorter than half a SysTick period.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, u64) {
    source::settle();
    let t0 = ticks();
    let r = f();
    let t1 = ticks();
    (r, count(t1 - t0).saturating_sub(overhead()))
}

static OVERHEAD: AtomicU32 = AtomicU32::new(u32::MAX);

/// The count of an empty measurement (calibrated once).
pub fn overhead() -> u64 {
    let o = OVERHEAD.load(Ordering::Relaxed);
    if o != u32::MAX {
        return u64::from(o);
    }
    source::settle();
    let t0 = ticks();
    let t1 = ticks();
    let o = count(t1 - t0) as u32;
    OVERHEAD.store(o, Ordering::Relaxed);
    u64::from(o)
}
