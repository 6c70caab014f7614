//! Built to fail: the harness must report this run as a failure (exit code 1).
#![no_std]
#![no_main]

use tinyvae_firmware as fw;

#[cortex_m_rt::entry]
fn main() -> ! {
    // Brought up like every binary: on a board whose log is a UART, nothing is said before.
    let _board = fw::board::Board::init();
    defmt::println!("this firmware fails a check on purpose");
    fw::check(1 + 1 == 3, "arithmetic (deliberate failure)");
    fw::exit(fw::ExitCode::Success)
}
