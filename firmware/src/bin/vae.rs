//! The tinyvae firmware: validates the embedded model at boot, checks every golden vector
//! against the engine, then generates on-device (z ~ prior, decode), encodes an input,
//! resamples around it (z = mu + sigma * eps), interpolates between two codes, and reports
//! instructions per inference and per layer, static RAM and the peak stack.
//!
//! Output lines the host (xtask) reads:
//! `sample K [..]`, `recon [..]`, `resample K [..]`, `interp K [..]`: u8 images;
//! `counts in UNIT` then `count NAME N` (`validate`: the model's validation at boot, then
//! `sample-prior`, `sample-class` with a prior per class, `decode`, ...): instructions
//! retired under QEMU, core cycles on a
//! chip; `ram static N` and `ram stack N`: bytes.
#![no_std]
#![no_main]

use tinyvae_engine::golden::{Failure, Mismatch};
use tinyvae_engine::{Engine, Probe, Sampler, Stage};
use tinyvae_firmware::board::Board;
use tinyvae_firmware::{self as fw, counter, stack, ExitCode};
use tinyvae_format::Model;

use core::sync::atomic::{AtomicU32, Ordering};

/// Buffers sized for the embedded model by build.rs (too small a scratch would be the
/// engine's `ScratchTooSmall` error, reported at its first use).
use fw::sizes::{LATENT, PIXELS, SCRATCH};
#[cfg(feature = "classes")]
use tinyvae_protocol::CLASS_SAMPLES;
use tinyvae_protocol::{keyword, INTERPOLATION_STEPS, RESAMPLES, SAMPLES};
/// Samples a board with a display shows (none without one: no buffer kept).
const SHOWN: usize = if cfg!(feature = "oled") { 2 } else { 0 };

/// Records the instructions of each stage as it completes.
struct LayerCounter {
    last: u64,
    encoder: [u64; 8],
    decoder: [u64; 8],
}

impl LayerCounter {
    fn new() -> Self {
        LayerCounter {
            last: counter::ticks(),
            encoder: [0; 8],
            decoder: [0; 8],
        }
    }
}

impl Probe for LayerCounter {
    fn done(&mut self, stage: Stage) {
        let now = counter::ticks();
        let n = counter::count(now - self.last).saturating_sub(counter::overhead());
        match stage {
            Stage::Encoder(i) => self.encoder[usize::from(i) & 7] = n,
            Stage::Decoder(i) => self.decoder[usize::from(i) & 7] = n,
        }
        self.last = counter::ticks();
    }
}

fn mismatch(m: Mismatch) -> ! {
    defmt::error!(
        "golden {=str} vector {=usize}: element {=usize} is {=i32}, the host engine computed {=i32}",
        m.vector.name(),
        m.index,
        m.element,
        m.got,
        m.want
    );
    fw::exit(ExitCode::GoldenMismatch)
}

/// The first `n` entries of a buffer build.rs sized for the model, or none, in which case
/// the engine names the length it wanted (no slice-index panic, whose message formatting
/// would cost the firmware a kilobyte).
fn first<T>(buf: &mut [T], n: usize) -> &mut [T] {
    match buf.get_mut(..n) {
        Some(s) => s,
        None => &mut [],
    }
}

/// `KEYWORD K [..]`, or `KEYWORD [..]` without an index: one image for the host.
#[inline(never)]
fn print_image(kw: &str, index: Option<usize>, px: &[u8]) {
    match index {
        Some(k) => defmt::println!("{=str} {=usize} {=[u8]}", kw, k, px),
        None => defmt::println!("{=str} {=[u8]}", kw, px),
    }
}

/// `count NAME N`, or `count NAMEi N` for layer `i`.
#[inline(never)]
fn print_count(name: &str, layer: Option<usize>, n: u64) {
    match layer {
        Some(i) => defmt::println!("{=str} {=str}{=usize} {=u64}", keyword::COUNT, name, i, n),
        None => defmt::println!("{=str} {=str} {=u64}", keyword::COUNT, name, n),
    }
}

/// `ram NAME N`.
#[inline(never)]
fn print_ram(name: &str, n: u32) {
    defmt::println!("{=str} {=str} {=u32}", keyword::RAM, name, n);
}

#[cortex_m_rt::entry]
fn main() -> ! {
    stack::paint();
    let mut board = Board::init();
    // This run's first line (a host reading a serial port starts its log here).
    defmt::println!("{=str} vae", keyword::BOOT);
    let model = load();
    run(&model, &mut board)
}

/// Validates the embedded model, in a frame of its own: the decoder's temporaries are gone
/// before `run` makes the model's buffers. What validating it cost goes to
/// [`VALIDATE_COST`], printed with the other counts.
#[inline(never)]
fn load() -> Model<'static> {
    // black_box: the blob is only known at link time as far as the code is concerned, so a
    // build without a model keeps all the code (xtask measures the code size from it).
    let blob: &'static [u8] = core::hint::black_box(fw::MODEL);
    if blob.is_empty() {
        defmt::error!("no model embedded: build with TINYVAE_MODEL=path (cargo xtask does this)");
        fw::exit(ExitCode::BadModel);
    }
    // Timed with the bare counter: `measure` would carry the model through its return value.
    let t0 = counter::ticks();
    let model = match Model::from_bytes(blob) {
        Ok(m) => m,
        Err(e) => fw::reject_model(e),
    };
    let n = counter::count(counter::ticks() - t0);
    let p = &model.provenance;
    defmt::println!(
        "model {=str} {} on {=str}: {=usize} bytes, valid",
        p.architecture,
        model.kind,
        p.dataset,
        blob.len()
    );
    VALIDATE_COST.store(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Relaxed);
    model
}

/// What [`load`] measured. (Returned beside the model, it changed how the compiler laid out
/// `run`'s frame: 1.4 KB more stack.)
static VALIDATE_COST: AtomicU32 = AtomicU32::new(0);

/// The buffers every stage shares, sized for the embedded model by build.rs.
struct Buffers {
    scratch: [i8; SCRATCH],
    stats: [i16; 2 * LATENT],
    other: [i16; 2 * LATENT],
    code: [i8; LATENT],
    px: [u8; PIXELS],
}

#[inline(never)]
fn run(model: &Model<'_>, board: &mut Board) -> ! {
    let engine = match Engine::new(model) {
        Ok(e) => e,
        Err(e) => fw::engine_error(e),
    };
    let mut b = Buffers {
        scratch: [0; SCRATCH],
        stats: [0; 2 * LATENT],
        other: [0; 2 * LATENT],
        code: [0; LATENT],
        px: [0; PIXELS],
    };
    self_check(&engine, &mut b);
    let (sample_cost, decode_cost, layers, mut sampler) = generate(&engine, &mut b, board);
    let (encode_cost, enc_layers) = encode_and_move(&engine, &mut b, &mut sampler);
    #[cfg(feature = "classes")]
    let class_cost = generate_classes(&engine, &mut b, &mut sampler);

    defmt::println!("{=str} {=str}", keyword::COUNTS_IN, counter::unit());
    let validate_cost = VALIDATE_COST.load(Ordering::Relaxed);
    print_count("validate", None, u64::from(validate_cost));
    print_count("sample-prior", None, sample_cost);
    #[cfg(feature = "classes")]
    if let Some(c) = class_cost {
        print_count("sample-class", None, c);
    }
    print_count("decode", None, decode_cost);
    // The host knows each layer's shape and work (xtask reads them from the model).
    let n = model.decoder.layers.len();
    for (i, &c) in layers.decoder.iter().enumerate().take(n) {
        print_count("decode.layer", Some(i), c);
    }
    if model.has_encoder() {
        print_count("encode", None, encode_cost);
    }
    let n = model.encoder.layers.len();
    for (i, &c) in enc_layers.encoder.iter().enumerate().take(n) {
        print_count("encode.layer", Some(i), c);
    }
    print_ram("static", stack::static_ram());
    print_ram("stack", stack::peak());
    fw::exit(ExitCode::Success)
}

/// Every golden vector the model carries, bit for bit against this engine (the engine's
/// `check_golden`, which the host's `trainer inspect` runs too).
fn self_check(engine: &Engine<'_, '_>, b: &mut Buffers) {
    let model = engine.model();
    let (pixels, dim) = (model.data.len(), usize::from(model.latent.dim));
    let (stats, code, px) = (
        first(&mut b.stats, model.encoder_out_dim()),
        first(&mut b.code, dim),
        first(&mut b.px, pixels),
    );
    match engine.check_golden(&mut b.scratch, stats, code, px) {
        Ok(Some(c)) => defmt::println!(
            "golden: {=usize} encoder, {=usize} decoder, {=usize} sampler vectors bit-exact",
            c.encoder,
            c.decoder,
            c.sampler
        ),
        Ok(None) => defmt::warn!("the model carries no golden vectors: self-check skipped"),
        Err(Failure::Engine(e)) => fw::engine_error(e),
        Err(Failure::Mismatch(m)) => mismatch(m),
    }
}

/// Generates [`SAMPLES`] images from the prior with the board's seed, prints them, shows the
/// first ones on the board's display; returns the cost of the last draw and decode, the
/// decode's per-layer counts, and the sampler (the resamples go on with its stream).
fn generate(
    engine: &Engine<'_, '_>,
    b: &mut Buffers,
    board: &mut Board,
) -> (u64, u64, LayerCounter, Sampler) {
    let model = engine.model();
    let (pixels, dim) = (model.data.len(), usize::from(model.latent.dim));
    let (code, px) = (first(&mut b.code, dim), first(&mut b.px, pixels));
    let (seed, source) = board.seed(fw::SEED);
    defmt::println!(
        "{=str} {=usize} samples, seed {=u64} ({})",
        keyword::GENERATING,
        SAMPLES,
        seed,
        source
    );
    let mut sampler = Sampler::new(seed);
    // The first samples, kept for the board's display.
    let mut shown = [[0u8; PIXELS]; SHOWN];
    let (mut sample_cost, mut decode_cost, mut layers) = (0, 0, LayerCounter::new());
    for k in 0..SAMPLES {
        let (r, n) = counter::measure(|| engine.sample_prior(&mut sampler, code));
        if let Err(e) = r {
            fw::engine_error(e);
        }
        sample_cost = n;
        // The layer counter starts inside the measurement (which may first wait for a
        // SysTick wrap).
        let (r, n) = counter::measure(|| {
            layers = LayerCounter::new();
            engine.decode(code, &mut b.scratch, px, &mut layers)
        });
        if let Err(e) = r {
            fw::engine_error(e);
        }
        decode_cost = n;
        print_image(keyword::SAMPLE, Some(k), px);
        if let Some(keep) = shown.get_mut(k) {
            keep.iter_mut().zip(px.iter()).for_each(|(d, &v)| *d = v);
        }
    }
    // The display lays out square grey images.
    if cfg!(feature = "oled") && model.data.width == model.data.height && model.data.channels == 1 {
        let side = usize::from(model.data.width);
        board.show(
            &shown.each_ref().map(|s| s.get(..pixels).unwrap_or(&[])),
            side,
        );
    }
    (sample_cost, decode_cost, layers, sampler)
}

/// Encodes a real input, decodes its mean, resamples around it and interpolates to another
/// (nothing for a decoder-only model); returns the encode's cost and per-layer counts.
fn encode_and_move(
    engine: &Engine<'_, '_>,
    b: &mut Buffers,
    sampler: &mut Sampler,
) -> (u64, LayerCounter) {
    let model = engine.model();
    let (pixels, dim) = (model.data.len(), usize::from(model.latent.dim));
    let (stats, code, px) = (
        first(&mut b.stats, model.encoder_out_dim()),
        first(&mut b.code, dim),
        first(&mut b.px, pixels),
    );
    let scratch = &mut b.scratch;
    let mut probe = tinyvae_engine::NoProbe;
    // Encode a real input, decode its mean, resample around it, interpolate to another.
    if !model.has_encoder() {
        defmt::println!("decoder-only model: no encoding, resampling or interpolation");
    }
    let inputs = model.golden.as_ref().map(|g| &g.encoder);
    let mut encode_cost = 0;
    let mut enc_layers = LayerCounter::new();
    let two = inputs.and_then(|v| Some((v.first()?.input.as_slice(), v.get(1)?.input.as_slice())));
    if let Some((input_a, input_b)) = two {
        let (r, n) = counter::measure(|| {
            enc_layers = LayerCounter::new();
            engine.encode(input_a, scratch, stats, &mut enc_layers)
        });
        if let Err(e) = r {
            fw::engine_error(e);
        }
        encode_cost = n;
        let ok = engine
            .mean_code(stats, code)
            .and_then(|_| engine.decode(code, scratch, px, &mut probe));
        if let Err(e) = ok {
            fw::engine_error(e);
        }
        print_image(keyword::INPUT, None, input_a);
        print_image(keyword::RECON, None, px);
        if model.kind == tinyvae_format::ModelKind::Vae {
            for k in 0..RESAMPLES {
                let ok = engine
                    .reparameterize(stats, sampler, code)
                    .and_then(|_| engine.decode(code, scratch, px, &mut probe));
                if let Err(e) = ok {
                    fw::engine_error(e);
                }
                print_image(keyword::RESAMPLE, Some(k), px);
            }
        }
        let other = first(&mut b.other, model.encoder_out_dim());
        if let Err(e) = engine.encode(input_b, scratch, other, &mut probe) {
            fw::engine_error(e);
        }
        for k in 0..=INTERPOLATION_STEPS {
            let ok = engine
                .interpolate(stats, other, k, INTERPOLATION_STEPS, code)
                .and_then(|_| engine.decode(code, scratch, px, &mut probe));
            if let Err(e) = ok {
                fw::engine_error(e);
            }
            print_image(keyword::INTERP, Some(usize::from(k)), px);
        }
    }

    (encode_cost, enc_layers)
}

/// For a prior grouped by class ("draw a 7"): [`CLASS_SAMPLES`] images of each class in
/// turn, the sampler's stream going on; returns the cost of the last class draw (before
/// its decode), none without such a prior.
#[cfg(feature = "classes")]
fn generate_classes(
    engine: &Engine<'_, '_>,
    b: &mut Buffers,
    sampler: &mut Sampler,
) -> Option<u64> {
    let model = engine.model();
    let (code, px) = (
        first(&mut b.code, usize::from(model.latent.dim)),
        first(&mut b.px, model.data.len()),
    );
    let mut cost = None;
    for k in 0..engine.classes() * CLASS_SAMPLES {
        let (r, n) = counter::measure(|| engine.sample_class(sampler, k / CLASS_SAMPLES, code));
        cost = Some(n);
        let ok =
            r.and_then(|_| engine.decode(code, &mut b.scratch, px, &mut tinyvae_engine::NoProbe));
        if let Err(e) = ok {
            fw::engine_error(e);
        }
        print_image(keyword::CLASS, Some(k), px);
    }
    cost
}
