//! Regions for the Cortex-M4 cycle estimate (`cargo xtask cycles`): the firmware calls
//! `tinyvae_mark` between the operations it measures, and the QEMU plugin
//! `xtask/qemu-plugin/m4cycles.c`, told that function's address, writes the instruction mix
//! and estimated cycles of each stretch between two marks.
//!
//! Marks, in order: before sampling; after it (the start of decoding); after each decoder
//! layer (the engine's probe); after `decode` returns; after each encoder layer; after `encode`
//! returns; after each decoder layer of `decode_two` (two samples per pass); after it
//! returns; after each encoder layer of `encode_two`; after it returns. Every operation runs
//! once before, unmarked, so that each region is a repeat; the unmarked `decode_two` and
//! `encode_two` are checked against two `decode` and two `encode` calls (a difference fails
//! the run).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use tinyvae_engine::{Engine, NoProbe, Probe, Sampler, Stage};
use tinyvae_firmware::board::Board;
use tinyvae_firmware::{self as fw, ExitCode};
use tinyvae_format::Model;

use tinyvae_firmware::sizes::{LATENT, PIXELS, SCRATCH, SCRATCH_TWO};

static MARKS: AtomicU32 = AtomicU32::new(0);

/// The region boundary the plugin watches for. Its body (a count of the marks) keeps it
/// distinct from every other function, so the linker's identical-code folding leaves it alone.
#[no_mangle]
#[inline(never)]
pub extern "C" fn tinyvae_mark() {
    MARKS.store(
        MARKS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

struct Marks;

impl Probe for Marks {
    fn done(&mut self, _: Stage) {
        tinyvae_mark();
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let _board = Board::init();
    let model = match Model::from_bytes(core::hint::black_box(fw::MODEL)) {
        Ok(m) => m,
        Err(e) => fw::reject_model(e),
    };
    let (dim, pixels) = (usize::from(model.latent.dim), model.data.len());
    let input = model.golden.as_ref().and_then(|g| g.encoder.first());
    let Some(input) = input else {
        defmt::error!("the model carries no encoder golden vector to encode");
        fw::exit(ExitCode::BadModel)
    };
    let engine = match Engine::new(&model) {
        Ok(e) => e,
        Err(e) => fw::engine_error(e),
    };
    let mut scratch = [0i8; SCRATCH];
    let mut code_buf = [0i8; LATENT];
    let code = &mut code_buf[..dim];
    let mut px_buf = [0u8; PIXELS];
    let px = &mut px_buf[..pixels];
    let mut stats_buf = [0i16; 2 * LATENT];
    let stats = &mut stats_buf[..model.encoder_out_dim()];
    let mut sampler = Sampler::new(fw::SEED);
    let x = input.input.as_slice();

    // Unmarked first runs.
    let warm = engine
        .sample_prior(&mut sampler, code)
        .and_then(|_| engine.decode(code, &mut scratch, px, &mut NoProbe))
        .and_then(|_| engine.encode(x, &mut scratch, stats, &mut NoProbe));
    if let Err(e) = warm {
        fw::engine_error(e);
    }
    // Two samples per pass: a second code, both decoded together and checked.
    let mut scratch_two = [0i8; SCRATCH_TWO];
    let mut code2_buf = [0i8; LATENT];
    let code2 = &mut code2_buf[..dim];
    let (mut two_a, mut two_b) = ([0u8; PIXELS], [0u8; PIXELS]);
    let (two_a, two_b) = (&mut two_a[..pixels], &mut two_b[..pixels]);
    let mut px2_buf = [0u8; PIXELS];
    let px2 = &mut px2_buf[..pixels];
    let pair = engine
        .sample_prior(&mut sampler, code2)
        .and_then(|_| engine.decode(code2, &mut scratch, px2, &mut NoProbe))
        .and_then(|_| engine.decode(code, &mut scratch, px, &mut NoProbe))
        .and_then(|_| {
            engine.decode_two(
                [code, code2],
                &mut scratch_two,
                [two_a, two_b],
                &mut NoProbe,
            )
        });
    if let Err(e) = pair {
        fw::engine_error(e);
    }
    if two_a != px || two_b != px2 {
        defmt::error!("decode_two differs from two decode calls");
        fw::exit(ExitCode::GoldenMismatch)
    }
    // Two items encoded together (the golden input and the decoded image), and checked.
    let (mut s_a, mut s_b, mut s_2) = ([0i16; 2 * LATENT], [0i16; 2 * LATENT], [0i16; 2 * LATENT]);
    let n = stats.len();
    let (s_a, s_b, s_2) = (&mut s_a[..n], &mut s_b[..n], &mut s_2[..n]);
    let pair = engine
        .encode(px, &mut scratch, s_2, &mut NoProbe)
        .and_then(|_| engine.encode(x, &mut scratch, stats, &mut NoProbe))
        .and_then(|_| engine.encode_two([x, px], &mut scratch_two, [s_a, s_b], &mut NoProbe));
    if let Err(e) = pair {
        fw::engine_error(e);
    }
    if s_a != stats || s_b != s_2 {
        defmt::error!("encode_two differs from two encode calls");
        fw::exit(ExitCode::GoldenMismatch)
    }

    tinyvae_mark();
    if let Err(e) = engine.sample_prior(&mut sampler, code) {
        fw::engine_error(e);
    }
    tinyvae_mark();
    if let Err(e) = engine.decode(code, &mut scratch, px, &mut Marks) {
        fw::engine_error(e);
    }
    tinyvae_mark();
    if let Err(e) = engine.encode(x, &mut scratch, stats, &mut Marks) {
        fw::engine_error(e);
    }
    tinyvae_mark();
    if let Err(e) = engine.decode_two([code, code2], &mut scratch_two, [two_a, two_b], &mut Marks) {
        fw::engine_error(e);
    }
    tinyvae_mark();
    if let Err(e) = engine.encode_two([x, px], &mut scratch_two, [s_a, s_b], &mut Marks) {
        fw::engine_error(e);
    }
    tinyvae_mark();
    defmt::println!(
        "marks {=u32}: sample, {=usize} decoder layers, {=usize} encoder layers, {=usize} decoder layers and {=usize} encoder layers two samples at once",
        MARKS.load(Ordering::Relaxed),
        model.decoder.layers.len(),
        model.encoder.layers.len(),
        model.decoder.layers.len(),
        model.encoder.layers.len()
    );
    fw::exit(ExitCode::Success)
}
