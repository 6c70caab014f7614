//! Built to fail: never exits; the harness must stop it at its time limit and report it.
#![no_std]
#![no_main]

use tinyvae_firmware as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    defmt::println!("this firmware hangs on purpose");
    loop {
        cortex_m::asm::nop();
    }
}
