//! Built to fail: the harness must report this run as a failure (exit code 1).
#![no_std]
#![no_main]

use tinyvae_firmware as fw;

#[cortex_m_rt::entry]
fn main() -> ! {
    defmt::println!("this firmware fails a check on purpose");
    fw::check(1 + 1 == 3, "arithmetic (deliberate failure)");
    fw::exit(fw::ExitCode::Success)
}
