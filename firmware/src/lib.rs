//! Board support shared by the firmware binaries: the defmt transport (semihosting under QEMU,
//! RTT on real boards, a UART on a board whose one image runs in both), exit codes, the panic and fault handlers, board bring-up, and the checks
//! the self-test binaries use.
#![no_std]
#![deny(missing_docs)]

use cortex_m as _; // its critical-section implementation (single-core boards)
#[cfg(feature = "rtt-log")]
use defmt_rtt as _; // the global defmt logger, over RTT (probe-rs reads it)
#[cfg(feature = "semihosting-log")]
use defmt_semihosting as _; // the global defmt logger, over semihosting (QEMU)

#[cfg(feature = "uart-log")]
pub mod uart_log;

pub mod board;
pub mod counter;
pub mod stack;
pub mod synth;

/// The interrupt part of the vector table on the MPS2 boards: their 32 external interrupts,
/// all sent to the default handler (the firmware enables none). Boards with a device crate
/// get this table from it; without one, cortex-m-rt would reserve 240 entries.
#[cfg(feature = "mps2-vectors")]
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
#[used]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 32] = [DefaultHandler; 32];

#[cfg(feature = "mps2-vectors")]
extern "C" {
    fn DefaultHandler();
}

/// The model blob xtask chose (`TINYVAE_MODEL`, copied by build.rs; empty without one),
/// word-aligned so that tiled weights are read by word loads. Only the binaries that use it
/// link it.
pub static MODEL: &[u8] = tinyvae_engine::include_model!(concat!(env!("OUT_DIR"), "/model.tvae"));

/// The same model one byte past a word boundary, for the `misaligned` binary (the engine
/// must refuse it, or run it on the portable kernels when asked to).
pub static MODEL_OFF_BY_ONE: &[u8] = {
    const PADDED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
        env!("OUT_DIR"),
        "/model-off-by-one.tvae"
    )));
    PADDED.0.split_at(1).1
};

/// The float decoder for the `f32dec` binary (`TINYVAE_F32`; empty without one), word-aligned
/// because its arrays are read in place as f32.
pub static F32_DECODER: &[u8] =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/decoder.f32"))).0;

/// The build-time seed of on-device sampling (`TINYVAE_SEED`, default 2026).
pub const SEED: u64 = include!(concat!(env!("OUT_DIR"), "/seed.rs"));

/// Buffer sizes for the embedded model, computed by build.rs from the model itself (zero
/// without a model).
pub mod sizes {
    include!(concat!(env!("OUT_DIR"), "/sizes.rs"));
}

/// Places its contents on a 4-byte boundary (the engine's wrapper).
pub use tinyvae_engine::Aligned;

/// How a run ends: the exit codes and log keywords the host (xtask) reads, shared with it.
pub use tinyvae_protocol::{keyword, ExitCode};

/// Ends the run: the emulator exits with `code` (SYS_EXIT_EXTENDED). On a real board with a
/// debugger attached, `probe-rs run` sees the same request and exits with the code. On a
/// Cortex-M3/M4 board running without a debugger (where the semihosting breakpoint would fault)
/// the core sleeps instead, leaving the display showing what was generated.
pub fn exit(code: ExitCode) -> ! {
    let code = code.code();
    // The log's last line, on every transport: the host reads the reason from the log, not
    // only from the emulator's or probe's status.
    defmt::println!("{=str} {=i32}", keyword::EXIT, code);
    // The UART's last byte out before QEMU stops or the core sleeps.
    #[cfg(feature = "uart-log")]
    defmt::flush();
    end(code)
}

/// Ends the run without logging: the semihosting exit where something answers it (QEMU, or a
/// debugger), else sleep.
pub fn end(code: i32) -> ! {
    // A board whose one image runs both under QEMU and on the chip asks the counter which it
    // is on (the DWT cycle counter stands still under QEMU).
    #[cfg(feature = "auto-counter")]
    let on_chip = !counter::emulated();
    #[cfg(not(feature = "auto-counter"))]
    let on_chip = cfg!(feature = "dwt-cycles");
    // The RP2040's Cortex-M0+ cannot tell whether a debugger is attached (DHCSR is the
    // debugger's alone on ARMv6-M), and a semihosting call with none faults, and the fault's
    // own exit locks the core: it always sleeps, its log's `exit` line ending the run for the
    // host (`cargo xtask flash` stops there).
    if cfg!(feature = "rp2040") || (on_chip && !cortex_m::peripheral::DCB::is_debugger_attached()) {
        loop {
            cortex_m::asm::wfi();
        }
    }
    semihosting::process::exit(code)
}

/// Logs why `Model::from_bytes` rejected the embedded model and ends the run with
/// [`ExitCode::BadModel`]. (The caller matches on the result itself: a function taking and
/// returning the model by value would copy it through the stack, a kilobyte more at peak.)
pub fn reject_model(e: tinyvae_format::Error) -> ! {
    defmt::error!("model rejected at boot: {}", e);
    exit(ExitCode::BadModel)
}

/// Logs why the engine refused to run and ends with [`ExitCode::EngineError`].
pub fn engine_error(e: tinyvae_engine::Error) -> ! {
    defmt::error!("engine refused to run: {}", e);
    exit(ExitCode::EngineError)
}

/// Logs and exits with [`ExitCode::CheckFailed`] when `ok` is false.
pub fn check(ok: bool, what: &str) {
    if !ok {
        defmt::error!("check failed: {=str}", what);
        exit(ExitCode::CheckFailed);
    }
}

/// Logs where the panic happened. The message is not formatted: `core::fmt` would add several
/// kilobytes of flash; the firmware's own failures are logged with defmt before they exit.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => defmt::error!("panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::error!("panic"),
    }
    exit(ExitCode::Panic)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc={=u32:#010x}", frame.pc());
    exit(ExitCode::Fault)
}

#[cortex_m_rt::exception]
unsafe fn DefaultHandler(irqn: i16) {
    defmt::error!("unexpected exception {=i16}", irqn);
    exit(ExitCode::Fault)
}
