//! Instructions retired, counted deterministically under QEMU.
//!
//! QEMU runs with `-icount shift=ICOUNT_SHIFT`: every instruction advances virtual time by
//! 2^ICOUNT_SHIFT ns, and SysTick, clocked from the 25 MHz system clock of the MPS2 boards,
//! counts that virtual time. So `instructions = ticks * ns_per_tick / 2^ICOUNT_SHIFT`. The
//! shift (7: 128 ns per instruction, 3.2 ticks of 40 ns, or 2.05 ticks of the nRF51's 62.5 ns)
//! makes an instruction longer than two ticks: the one-tick uncertainty at each end of an
//! interval is under half an instruction, so the rounded count is exact wherever the interval
//! starts. (With 64 ns, 1.6 ticks, counts of one code could differ by one.) SysTick's 24 bits are extended by counting its
//! wraps in its exception handler. The DWT cycle counter reads 0 under QEMU: these are
//! instructions, never cycles.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;

/// The `-icount shift` QEMU must run with (xtask passes it).
pub const ICOUNT_SHIFT: u32 = 7;
/// SysTick period in ns, as the fraction NUM / DEN: the MPS2 system clock is 25 MHz (40 ns),
/// the nRF51's 16 MHz (62.5 ns).
#[cfg(not(feature = "qemu-microbit"))]
const NS_PER_TICK: (u64, u64) = (40, 1);
#[cfg(feature = "qemu-microbit")]
const NS_PER_TICK: (u64, u64) = (125, 2);

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::exception]
fn SysTick() {
    // The only writer (no read-modify-write atomics on Cortex-M0).
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Starts SysTick free-running from the core clock, interrupting on every wrap.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Ticks since [`start`], 64 bits.
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

/// Converts a tick difference to instructions retired.
pub fn instructions(ticks: u64) -> u64 {
    let per = NS_PER_TICK.1 << ICOUNT_SHIFT;
    (ticks * NS_PER_TICK.0 + per / 2) / per
}

/// Waits, when less than half a SysTick period is left before the next wrap, for that wrap:
/// a measurement started after this and shorter than half a period (about 5 million
/// instructions on the MPS2 boards) never includes the wrap's exception handler, so it counts
/// the same instructions every time, wherever it starts.
fn settle() {
    let w = WRAPS.load(Ordering::Relaxed);
    if SYST::get_current() < 0x0080_0000 {
        while WRAPS.load(Ordering::Relaxed) == w {}
    }
}

/// Measures the instructions `f` retires, minus the cost of the measurement itself. Exact and
/// repeatable for anything shorter than half a SysTick period (see [`settle`]).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, u64) {
    settle();
    let t0 = ticks();
    let r = f();
    let t1 = ticks();
    (r, instructions(t1 - t0).saturating_sub(overhead()))
}

static OVERHEAD: AtomicU32 = AtomicU32::new(u32::MAX);

/// Instructions counted for an empty measurement (calibrated once).
pub fn overhead() -> u64 {
    let o = OVERHEAD.load(Ordering::Relaxed);
    if o != u32::MAX {
        return u64::from(o);
    }
    settle();
    let t0 = ticks();
    let t1 = ticks();
    let o = instructions(t1 - t0) as u32;
    OVERHEAD.store(o, Ordering::Relaxed);
    u64::from(o)
}
