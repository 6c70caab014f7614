//! Built to fail: panics; the harness must report it (exit code 101).
#![no_std]
#![no_main]

use tinyvae_firmware as fw;

#[cortex_m_rt::entry]
fn main() -> ! {
    // Brought up like every binary: on a board whose log is a UART, nothing is said before.
    let _board = fw::board::Board::init();
    defmt::println!("this firmware panics on purpose");
    let v = core::hint::black_box([1u8, 2, 3]);
    let i = core::hint::black_box(7usize);
    defmt::println!("{}", v[i]);
    fw::exit(fw::ExitCode::Success)
}
