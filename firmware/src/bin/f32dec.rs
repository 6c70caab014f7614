//! The f32 decoder beside the int8 one, under the same harness: both decode the same prior
//! draws (the int8 path the code it quantizes z = eps to, the f32 path z = eps itself), each
//! measured. The host computes each path's PSNR against its own float decoder.
//!
//! Output lines the host (xtask) reads: `sample K [..]` (int8 path), `f32 K [..]` (f32 path),
//! `counts in UNIT`, `count decode-int8 N`, `count decode-f32 N`, `count macs N`.
#![no_std]
#![no_main]

use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_f32::FloatDecoder;
use tinyvae_firmware::board::Board;
use tinyvae_firmware::{self as fw, counter, keyword, ExitCode};
use tinyvae_format::{Model, Prior};

/// Prior draws decoded by both paths.
const DRAWS: usize = 8;
use tinyvae_firmware::sizes::{LATENT, PIXELS, SCRATCH};
/// The float decoder's scratch, in f32 values.
const F32_SCRATCH: usize = 4096;

fn refuse(what: &str) -> ! {
    defmt::error!("{=str}", what);
    fw::exit(ExitCode::BadModel)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let _board = Board::init();
    let model = match Model::from_bytes(core::hint::black_box(fw::MODEL)) {
        Ok(m) => m,
        Err(e) => fw::reject_model(e),
    };
    let dec = match FloatDecoder::from_bytes(core::hint::black_box(fw::F32_DECODER)) {
        Ok(d) => d,
        Err(e) => {
            defmt::error!("float decoder rejected at boot: {}", e);
            fw::exit(ExitCode::BadModel)
        }
    };
    let (dim, pixels) = (usize::from(model.latent.dim), model.data.len());
    if dec.latent_dim() != dim || dec.pixels() != pixels {
        refuse("the float decoder and the int8 model have different shapes");
    }
    if !matches!(model.prior, Prior::StandardNormal) {
        refuse("f32dec compares the paths on N(0, I) draws: export without a mixture prior");
    }
    if dec.scratch_len() > F32_SCRATCH {
        refuse("float decoder too large for this firmware's buffers");
    }
    let engine = match Engine::new(&model) {
        Ok(e) => e,
        Err(e) => fw::engine_error(e),
    };
    let mut scratch = [0i8; SCRATCH];
    let mut fscratch = [0f32; F32_SCRATCH];
    let mut code_buf = [0i8; LATENT];
    let code = &mut code_buf[..dim];
    let mut z_buf = [0f32; LATENT];
    let z = &mut z_buf[..dim];
    let mut px_buf = [0u8; PIXELS];
    let px = &mut px_buf[..pixels];
    let mut sampler = Sampler::new(fw::SEED);
    defmt::println!(
        "{=str} {=usize} samples, seed {=u64} (build time)",
        keyword::GENERATING,
        DRAWS,
        fw::SEED
    );
    let eps_scale = 1.0 / (1u32 << tinyvae_engine::gauss::FRAC_BITS) as f32;
    let (mut int8_cost, mut f32_cost) = (0, 0);
    for k in 0..DRAWS {
        // The same draws for both paths: the int8 code of z, and z itself.
        let mut twin = sampler.clone();
        if let Err(e) = engine.sample_prior(&mut sampler, code) {
            fw::engine_error(e);
        }
        for v in z.iter_mut() {
            *v = f32::from(twin.normal()) * eps_scale;
        }
        let (r, n) = counter::measure(|| engine.decode(code, &mut scratch, px, &mut NoProbe));
        if let Err(e) = r {
            fw::engine_error(e);
        }
        int8_cost = n;
        defmt::println!("{=str} {=usize} {=[u8]}", keyword::SAMPLE, k, px);
        let (r, n) = counter::measure(|| dec.decode(z, &mut fscratch, px));
        if let Err(e) = r {
            defmt::error!("f32 decoder refused to run: {}", e);
            fw::exit(ExitCode::EngineError);
        }
        f32_cost = n;
        defmt::println!("{=str} {=usize} {=[u8]}", keyword::F32, k, px);
    }
    defmt::println!("{=str} {=str}", keyword::COUNTS_IN, counter::unit());
    defmt::println!("{=str} decode-int8 {=u64}", keyword::COUNT, int8_cost);
    defmt::println!("{=str} decode-f32 {=u64}", keyword::COUNT, f32_cost);
    defmt::println!("{=str} macs {=usize}", keyword::COUNT, dec.macs());
    defmt::println!("flash f32-decoder {=usize}", fw::F32_DECODER.len());
    defmt::println!("flash int8-model {=usize}", fw::MODEL.len());
    fw::exit(ExitCode::Success)
}
