//! Built to fail: never exits; the harness must stop it at its time limit and report it.
#![no_std]
#![no_main]

use tinyvae_firmware as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    // Brought up like every binary: on a board whose log is a UART, nothing is said before.
    let _board = tinyvae_firmware::board::Board::init();
    defmt::println!("this firmware hangs on purpose");
    loop {
        cortex_m::asm::nop();
    }
}
