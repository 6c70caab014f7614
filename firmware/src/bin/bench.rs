//! Kernel benchmarks: instructions retired per dense layer, for the layer shapes of the
//! default (784-400-20) and MCU-preset (784-256-16) models, with each kernel: portable on
//! row-major weights, portable on 4 x 4 tiles, and the DSP kernel on tiles (thumbv7em).
//!
//! Output lines: `bench NAME IN OUT KERNEL INSTRUCTIONS`. Each layer is measured twice and the
//! two counts must agree; the kernels' outputs must agree bit for bit.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use tinyvae_engine::dense::{self, dense_i8, dense_i8_portable};
use tinyvae_engine::rng::Rng;
use tinyvae_firmware::synth::{inputs, LayerBufs, Params};
use tinyvae_firmware::{self as fw, counter, exit_code};
use tinyvae_format::WeightLayout;

/// (name, inputs, outputs): the layers of the two presets' decoders and encoders.
const SHAPES: [(&str, usize, usize); 8] = [
    ("dec.0", 20, 400),
    ("dec.1", 400, 784),
    ("enc.0", 784, 400),
    ("enc.1", 400, 40),
    ("mcu.dec.0", 16, 256),
    ("mcu.dec.1", 256, 784),
    ("mcu.enc.0", 784, 256),
    ("mcu.enc.1", 256, 32),
];
const MAX: usize = 784;

static mut BUFS: LayerBufs = LayerBufs::new();

/// Runs `f` once unmeasured, then measures it twice: the counts must agree to within the
/// counter's resolution (one instruction: QEMU's SysTick places tick edges to within a tick).
/// Reports the smaller. (Two runs of the same build print the same numbers: xtask checks.)
fn measure_twice(name: &str, f: &mut dyn FnMut()) -> u64 {
    f();
    let (_, a) = counter::measure(&mut *f);
    let (_, b) = counter::measure(&mut *f);
    if a.abs_diff(b) > 1 {
        defmt::error!("{=str}: two runs counted {=u64} and {=u64}", name, a, b);
        fw::exit(exit_code::CHECK_FAILED);
    }
    a.min(b)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let _board = fw::board::Board::init();
    // SAFETY: the only reference to BUFS, taken once before anything else runs.
    let bufs = unsafe { &mut *addr_of_mut!(BUFS) };
    let mut rng = Rng::new(0xBE7C_4000);
    let mut x = [0i8; MAX];
    let mut spare = [0i8; dense::spare_len(MAX)];
    let (mut y0, mut y1, mut y2) = ([0i8; MAX], [0i8; MAX], [0i8; MAX]);
    for (name, inp, out) in SHAPES {
        fw::check(bufs.fill(&mut rng, inp, out, Params::Typical), "layer fits");
        inputs(&mut rng, &mut x[..inp]);
        let x = &x[..inp];
        let rows = bufs.dense(WeightLayout::RowMajor, false);
        let tiles = bufs.dense(WeightLayout::Tiles4x4, false);
        let n = measure_twice(name, &mut || dense_i8(&rows, x, &mut y0[..out], &mut spare));
        defmt::println!(
            "bench {=str} {=usize} {=usize} portable-rows {=u64}",
            name,
            inp,
            out,
            n
        );
        let n = measure_twice(name, &mut || dense_i8_portable(&tiles, x, &mut y1[..out]));
        defmt::println!(
            "bench {=str} {=usize} {=usize} portable-tiles {=u64}",
            name,
            inp,
            out,
            n
        );
        fw::check(y0[..out] == y1[..out], "portable kernels agree");
        if dense::SIMD {
            fw::check(dense::uses_simd(&tiles, &spare), "the DSP kernel runs");
            let n = measure_twice(name, &mut || {
                dense_i8(&tiles, x, &mut y2[..out], &mut spare)
            });
            defmt::println!(
                "bench {=str} {=usize} {=usize} dsp-tiles {=u64}",
                name,
                inp,
                out,
                n
            );
            fw::check(y0[..out] == y2[..out], "DSP and portable kernels agree");
        }
    }
    defmt::println!("bench: done");
    fw::exit(exit_code::SUCCESS)
}
