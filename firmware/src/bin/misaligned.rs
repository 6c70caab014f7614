//! The engine's answer to a model one byte past a word boundary, on the chip: `Engine::new`
//! refuses it where the DSP kernel would run (`Error::Misaligned`), `Engine::new_unaligned`
//! runs it on the portable kernels and says so (`Engine::kernel`), and both decode the
//! model's first golden decoder vector to the bits the host computed.
//!
//! Lines the host reads: `kernel aligned: ...`, `kernel off by one: ...`, `count
//! decode-aligned N` and `count decode-off-by-one N`; exit 0 when every check holds.
#![no_std]
#![no_main]

use tinyvae_engine::{dense, Engine, Error, Fallback, Kernel, NoProbe};
use tinyvae_firmware::board::Board;
use tinyvae_firmware::sizes::{PIXELS, SCRATCH};
use tinyvae_firmware::{self as fw, counter, keyword, ExitCode};
use tinyvae_format::Model;

fn load(blob: &'static [u8]) -> Model<'static> {
    match Model::from_bytes(core::hint::black_box(blob)) {
        Ok(m) => m,
        Err(e) => fw::reject_model(e),
    }
}

/// This core has an assembly kernel that loads the tiles a word at a time (the DSP
/// extension's, or ARMv6-M's).
const ASSEMBLY: bool = dense::SIMD || dense::V6M;

#[cortex_m_rt::entry]
fn main() -> ! {
    let _board = Board::init();
    let aligned = load(fw::MODEL);
    // The format checks the tiles' offsets from the file's start: the copy is a valid model.
    let off = load(fw::MODEL_OFF_BY_ONE);
    let fast = match Engine::new(&aligned) {
        Ok(e) => e,
        Err(e) => fw::engine_error(e),
    };
    defmt::println!("kernel aligned: {}", fast.kernel());
    match Engine::new(&off) {
        Err(Error::Misaligned { offset }) => {
            defmt::println!(
                "Engine::new refused the model off by one: {}",
                Error::Misaligned { offset }
            );
            fw::check(
                ASSEMBLY && offset == 1,
                "the refusal names offset 1, on a core with an assembly kernel",
            );
        }
        Ok(e) => {
            defmt::println!("Engine::new accepted the model off by one: {}", e.kernel());
            fw::check(
                !ASSEMBLY,
                "a core with an assembly kernel accepted a misaligned model",
            );
        }
        Err(e) => fw::engine_error(e),
    }
    let slow = Engine::new_unaligned(&off);
    defmt::println!("kernel off by one: {}", slow.kernel());
    let expected_kernel = if ASSEMBLY {
        Kernel::Portable(Fallback::Misaligned { offset: 1 })
    } else {
        Kernel::Portable(Fallback::NoDspExtension)
    };
    fw::check(
        slow.kernel() == expected_kernel,
        "Engine::kernel names the fallback",
    );

    let Some(v) = aligned.golden.as_ref().and_then(|g| g.decoder.first()) else {
        defmt::error!("the model carries no golden decoder vector");
        fw::exit(ExitCode::BadModel)
    };
    let mut scratch = [0i8; SCRATCH];
    let mut px = [0u8; PIXELS];
    for (name, engine) in [("decode-aligned", &fast), ("decode-off-by-one", &slow)] {
        let t0 = counter::ticks();
        if let Err(e) = engine.decode(v.code.as_i8_slice(), &mut scratch, &mut px, &mut NoProbe) {
            fw::engine_error(e);
        }
        let n = counter::count(counter::ticks() - t0);
        let same = px.iter().copied().eq(v.expected.iter());
        fw::check(same, "the decode equals the host's golden vector");
        defmt::println!("{=str} {=str} {=u64}", keyword::COUNT, name, n);
    }
    fw::exit(ExitCode::Success)
}
