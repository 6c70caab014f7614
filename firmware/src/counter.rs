//! What an inference costs: instructions retired under QEMU, core cycles on real chips.
//!
//! **Under QEMU** (feature `icount`) the DWT cycle counter reads 0, so the count is
//! instructions. QEMU runs with `-icount shift=ICOUNT_SHIFT`: every instruction advances virtual
//! time by 2^ICOUNT_SHIFT ns, and SysTick, clocked from the machine's system clock (25 MHz on
//! most MPS2 boards, 20 MHz on the AN505), counts that virtual time. So `instructions = ticks *
//! ns_per_tick / 2^ICOUNT_SHIFT`. The shift (7: 128 ns per instruction, 3.2 ticks of 40 ns, 2.56
//! of 50 ns, or 2.05 ticks of the nRF51's 62.5 ns) makes an instruction longer than two ticks: the one-tick uncertainty at each end of
//! an interval is under half an instruction, so the rounded count is exact wherever the
//! interval starts. (With 64 ns, 1.6 ticks, counts of one code could differ by one.) SysTick's
//! 24 bits are extended by counting its wraps in its exception handler.
//!
//! **On Cortex-M3/M4/M7 hardware** (feature `dwt-cycles`) the count is core cycles from the DWT
//! cycle counter, extended past 32 bits in software.
//!
//! **On Cortex-M0/M0+ hardware** (no DWT cycle counter) the count is core cycles from SysTick
//! clocked by the core, extended past 24 bits as under QEMU.
//!
//! [`UNIT`] names what the numbers are; the firmware prints it with every table.

use core::sync::atomic::{AtomicU32, Ordering};

/// What [`measure`] returns: "instructions" under QEMU, "cycles" on a real chip.
#[cfg(feature = "icount")]
pub const UNIT: &str = "instructions";
/// What [`measure`] returns: "instructions" under QEMU, "cycles" on a real chip.
#[cfg(not(feature = "icount"))]
pub const UNIT: &str = "cycles";

/// The `-icount shift` QEMU must run with (xtask passes it).
pub const ICOUNT_SHIFT: u32 = 7;

#[cfg(not(feature = "dwt-cycles"))]
mod source {
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

#[cfg(feature = "dwt-cycles")]
mod source {
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
    pub fn settle() {}
}

/// Starts the counter (SysTick or the DWT cycle counter, as the board has).
pub fn start(cp: &mut cortex_m::Peripherals) {
    source::start(cp)
}

/// Ticks since [`start`], 64 bits.
pub fn ticks() -> u64 {
    source::ticks()
}

/// Converts a tick difference to the [`UNIT`] reported: instructions retired under QEMU
/// (SysTick counts virtual time), core cycles on hardware (the ticks themselves).
pub fn count(ticks: u64) -> u64 {
    #[cfg(feature = "icount")]
    {
        // SysTick period in ns, as NUM / DEN, from the board's description (boards/boards.rs):
        // 40 ns for the 25 MHz system clock of the AN385/386/500, 50 for the AN505's 20 MHz,
        // 62.5 for the nRF51's 16 MHz.
        const NS_PER_TICK: (u64, u64) = include!(concat!(env!("OUT_DIR"), "/tick_ns.rs"));
        let per = NS_PER_TICK.1 << ICOUNT_SHIFT;
        (ticks * NS_PER_TICK.0 + per / 2) / per
    }
    #[cfg(not(feature = "icount"))]
    {
        ticks
    }
}

/// Measures what `f` costs in [`UNIT`], minus the cost of the measurement itself. Exact and
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
