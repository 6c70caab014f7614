//! On-chip self-test: the engine's known answers (requantization edge cases, the sampler's
//! committed stream) must come out bit for bit as on the host.
#![no_std]
#![no_main]

use tinyvae_engine::{known_answers as ka, requant::requantize, Sampler};
use tinyvae_firmware::{self as fw, counter, ExitCode};

// 400 nops in a function of their own: LLVM cannot size a `.rept` inside inline asm when it
// places Thumb-1 literal pools, so the block stays out of Rust functions.
core::arch::global_asm!(
    ".section .text.nops400,\"ax\",%progbits",
    ".global nops400",
    ".type nops400,%function",
    ".thumb_func",
    "nops400:",
    ".rept 400",
    "nop",
    ".endr",
    "bx lr",
);

extern "C" {
    fn nops400();
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let _board = fw::board::Board::init();
    // The instruction counter: a call to 400 nops is 402 instructions (bl, the nops, bx lr).
    // SAFETY: `nops400` is the assembly routine above: 400 `nop`s and `bx lr`; it reads and
    // writes no memory and no register the calling convention does not give it.
    let (_, n) = counter::measure(|| unsafe { nops400() });
    defmt::println!(
        "counter: a call to 400 nops counted as {=u64} instructions",
        n
    );
    fw::check(n == 402, "instruction counter");
    defmt::println!("selftest: engine known answers");
    for (i, &(x, m, s, want)) in ka::REQUANTIZE.iter().enumerate() {
        let got = requantize(x, m, s);
        if got != want {
            defmt::error!(
                "requantize case {=usize}: ({=i32}, {=i32}, {=i8}) gave {=i32}, host gives {=i32}",
                i,
                x,
                m,
                s,
                got,
                want
            );
            fw::exit(ExitCode::GoldenMismatch);
        }
    }
    defmt::println!("requantize: {=usize} cases bit-exact", ka::REQUANTIZE.len());

    let mut sampler = Sampler::new(ka::SEED);
    for (i, &want) in ka::EPS.iter().enumerate() {
        let got = sampler.normal();
        if got != want {
            defmt::error!(
                "sampler draw {=usize}: {=i16}, host gives {=i16}",
                i,
                got,
                want
            );
            fw::exit(ExitCode::GoldenMismatch);
        }
    }
    let hash = ka::stream_hash(ka::SEED, ka::STREAM_LEN);
    fw::check(hash == ka::STREAM_HASH, "sampler stream hash");
    defmt::println!(
        "sampler: first {=usize} draws and hash of {=u32} draws bit-exact",
        ka::EPS.len(),
        ka::STREAM_LEN
    );
    defmt::println!("selftest: all checks passed");
    fw::exit(ExitCode::Success)
}
