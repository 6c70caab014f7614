//! The DSP kernel against the portable kernels, on the chip: random layers (widths that are
//! not multiples of 4, odd row counts, extreme multipliers and shifts, saturating outputs),
//! int8 and int16 outputs, and int8 for two inputs at once (`batch::dense_i8`); then random convolutions and transposed convolutions (kernels 1
//! to 5, strides up to 3, padding, 1 to 32 input channels, few and many output channels,
//! input zero-points that padding reads) through the engine's convolution path with every
//! kernel it can choose, against the same layer run position by position with the portable
//! row-major kernel. Any difference fails the run naming the case, shape and row.
//!
//! On a core without the DSP extension the same binary checks the portable tiled kernel
//! against the row-major one, and says so; on ARMv6-M (the micro:bit's Cortex-M0, smaller
//! shapes for its 16 KiB of RAM) the ARMv6-M assembly kernel against both.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use tinyvae_engine::batch;
use tinyvae_engine::conv::{self, conv_i8};
use tinyvae_engine::dense::{self, dense_i16, dense_i8, dense_i8_portable, uses_simd, uses_v6m};
use tinyvae_firmware::synth::{inputs, LayerBufs, Params};
use tinyvae_firmware::{self as fw, ExitCode};
use tinyvae_format::testkit::random::{Bits, ShapeLimits, SplitMix};
use tinyvae_format::{ConvShape, WeightLayout};

const CASES: usize = 600;
/// Largest layer (inputs, outputs); on the Cortex-M0's 16 KiB of RAM, smaller shapes.
const MAX_IN: usize = if LARGE { 203 } else { 61 };
const MAX_OUT: usize = if LARGE { 67 } else { 33 };
const LARGE: bool = cfg!(feature = "large-ram");
/// Random convolutions, half of them transposed.
const CONV_CASES: usize = 240;
/// Then random transposed convolutions in the shapes whose scatter form (DSP cores) adds
/// a whole row of input pixels in one pass: few output channels, a kernel of 4 (or `k R` a
/// multiple of 4), input channels in fours, more than one input column.
const ROW_CASES: usize = 24;
/// Largest convolution matrix (columns, rows) and tensor.
const CONV_MAX: ShapeLimits = if LARGE {
    ShapeLimits {
        cols: 300,
        rows: 40,
        len: 1200,
    }
} else {
    ShapeLimits {
        cols: 80,
        rows: 24,
        len: 300,
    }
};
const PATCH: usize = 4 * CONV_MAX.cols + 8;
/// With the DSP kernels, the scatter form of a transposed convolution with few output
/// channels keeps an int32 accumulator per output (up to 1200) beside its weight tiles.
const SPARE: usize = if dense::SIMD {
    4 * 1600 + 8
} else {
    2 * 4 * CONV_MAX.cols + 8
};

static mut BUFS: LayerBufs = LayerBufs::new();

/// Fails the run at the first row where `got` differs from `want` (the portable row-major
/// kernel's output).
fn same<T: Copy + PartialEq + Into<i32>>(
    case: usize,
    inp: usize,
    what: &str,
    got: &[T],
    want: &[T],
) {
    if let Some(r) = got.iter().zip(want).position(|(a, b)| a != b) {
        defmt::error!(
            "case {=usize} ({=usize} -> {=usize}) {=str}: row {=usize} is {=i32}, the portable kernel gives {=i32}",
            case, inp, want.len(), what, r, got[r].into(), want[r].into()
        );
        fw::exit(ExitCode::GoldenMismatch)
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to BUFS, taken once before anything else runs.
    let bufs = unsafe { &mut *addr_of_mut!(BUFS) };
    let mut rng = SplitMix(0x7E57_D5B0);
    let (mut x, mut x2) = ([0i8; MAX_IN], [0i8; MAX_IN]);
    let mut spare = [0i8; batch::spare_len(MAX_IN)];
    let (mut y_ref, mut y, mut y_pt) = ([0i8; MAX_OUT], [0i8; MAX_OUT], [0i8; MAX_OUT]);
    let (mut y2_ref, mut y_two) = ([0i8; MAX_OUT], [0i8; 2 * MAX_OUT]);
    let (mut z_ref, mut z) = ([0i16; MAX_OUT], [0i16; MAX_OUT]);
    let (mut simd_cases, mut v6m_cases) = (0usize, 0usize);
    for case in 0..CASES {
        // Mostly small and ragged shapes, some wide ones.
        let inp = 1 + (rng.next_u32() as usize % if case % 5 == 0 { MAX_IN } else { 19 });
        let out = 1 + (rng.next_u32() as usize % if case % 3 == 0 { MAX_OUT } else { 11 });
        let params = match case % 4 {
            0 | 2 => Params::Extreme,
            1 => Params::Typical,
            _ => Params::Left,
        };
        fw::check(bufs.fill(&mut rng, inp, out, params), "layer fits");
        inputs(&mut rng, &mut x[..inp]);
        inputs(&mut rng, &mut x2[..inp]);
        let (x, x2) = (&x[..inp], &x2[..inp]);

        let rows = bufs.dense(WeightLayout::RowMajor, false);
        let tiles = bufs.dense(WeightLayout::Tiles4x4, false);
        if dense::SIMD {
            fw::check(
                uses_simd(&tiles, &spare),
                "the DSP kernel runs the tiled layer",
            );
            simd_cases += 1;
        }
        if dense::V6M {
            fw::check(uses_v6m(&tiles), "the ARMv6-M kernel runs the tiled layer");
            v6m_cases += 1;
        }
        dense_i8(&rows, x, &mut y_ref[..out], &mut spare);
        dense_i8(&tiles, x, &mut y[..out], &mut spare);
        dense_i8_portable(&tiles, x, &mut y_pt[..out]);
        same(case, inp, "int8 (tiled kernel)", &y[..out], &y_ref[..out]);
        same(
            case,
            inp,
            "int8 (portable tiled)",
            &y_pt[..out],
            &y_ref[..out],
        );
        // Two inputs in one pass (each weight widened once for both, where built).
        dense_i8(&rows, x2, &mut y2_ref[..out], &mut spare);
        batch::dense_i8(&tiles, [x, x2], &mut y_two[..2 * out], &mut spare);
        same(
            case,
            inp,
            "int8, two inputs: the first",
            &y_two[..out],
            &y_ref[..out],
        );
        let second = &y_two[out..2 * out];
        same(
            case,
            inp,
            "int8, two inputs: the second",
            second,
            &y2_ref[..out],
        );
        let rows = bufs.dense(WeightLayout::RowMajor, true);
        let tiles = bufs.dense(WeightLayout::Tiles4x4, true);
        dense_i16(&rows, x, &mut z_ref[..out], &mut spare);
        dense_i16(&tiles, x, &mut z[..out], &mut spare);
        same(case, inp, "int16 (tiled kernel)", &z[..out], &z_ref[..out]);
    }
    defmt::println!(
        "dspcheck: {=usize} random layers bit-exact, int8 and int16 outputs, and int8 for two inputs at once; {=usize} ran the DSP kernel; {=usize} ran the ARMv6-M kernel; the two inputs shared each widened weight: {=bool}",
        CASES,
        simd_cases,
        v6m_cases,
        batch::SHARED
    );
    let (few, staged) = convolutions(bufs, &mut rng);
    defmt::println!(
        "dspcheck: {=usize} random convolutions bit-exact ({=usize} with fewer than {=usize} output channels, {=usize} with patches in whole fours from input channels that are not, {=usize} transposed in shapes whose scatter form adds rows of pixels), tiled and row-major, against the portable kernel position by position",
        CONV_CASES + ROW_CASES,
        few,
        conv::FEW_CHANNELS,
        staged,
        ROW_CASES
    );
    fw::exit(ExitCode::Success)
}

/// Random convolutions: the engine's path (per-position products, the few-channel path, or
/// the scatter form of a transposed one; DSP where the core has it) with tiled and row-major weights, against the reference run
/// with no spare room (per position, portable row-major kernel). Returns how many had few
/// output channels, and how many were convolutions whose patches come in whole groups of
/// four though their input channels do not (one input channel, a 4 x 4 kernel: staged
/// patches on DSP cores).
fn convolutions(bufs: &mut LayerBufs, rng: &mut SplitMix) -> (usize, usize) {
    let mut x = [0i8; CONV_MAX.len];
    let (mut want, mut got) = ([0i8; CONV_MAX.len], [0i8; CONV_MAX.len]);
    let (mut patch, mut spare) = ([0i8; PATCH], [0i8; SPARE]);
    let (mut case, mut few, mut staged) = (0, 0, 0);
    while case < CONV_CASES + ROW_CASES {
        let rows = case >= CONV_CASES;
        let transposed = case % 2 == 1 || rows;
        let params = match case % 6 {
            0 | 1 => Params::Typical,
            2 | 3 => Params::Extreme,
            _ => Params::Left,
        };
        let row_shape = |s: &ConvShape| {
            let r = usize::from(s.out_channels);
            r < conv::FEW_CHANNELS
                && (usize::from(s.kernel) * r).is_multiple_of(4)
                && s.in_channels.is_multiple_of(4)
                && s.in_width > 1
        };
        let wanted = |s: &ConvShape| !rows || row_shape(s);
        let Some(s) = bufs.fill_conv_if(rng, (transposed, CONV_MAX, params), wanted) else {
            continue;
        };
        let (n_in, n_out) = (s.in_len() as usize, s.out_len() as usize);
        inputs(rng, &mut x[..n_in]);
        let x = &x[..n_in];
        let rows = bufs.conv(&s, transposed, WeightLayout::RowMajor);
        let k = s.patch_len() as usize;
        // The reference: room for one patch only, no spare bytes.
        conv_i8(
            &rows,
            transposed,
            x,
            &mut want[..n_out],
            &mut patch[..k],
            &mut [],
        );
        for layout in [WeightLayout::Tiles4x4, WeightLayout::RowMajor] {
            let c = bufs.conv(&s, transposed, layout);
            let (p, sp) = (
                conv::patch_room(&c, transposed),
                conv::spare_room(&c, transposed, dense::SIMD),
            );
            fw::check(p <= PATCH && sp <= SPARE, "convolution buffers fit");
            conv_i8(
                &c,
                transposed,
                x,
                &mut got[..n_out],
                &mut patch[..p],
                &mut spare[..sp],
            );
            if let Some(i) = got[..n_out]
                .iter()
                .zip(&want[..n_out])
                .position(|(a, b)| a != b)
            {
                defmt::error!(
                    "convolution case {=usize} (transposed {=bool}, {}, {}): value {=usize} is {=i8}, the portable kernel gives {=i8}",
                    case, transposed, s, layout, i, got[i], want[i]
                );
                fw::exit(ExitCode::GoldenMismatch)
            }
        }
        few += usize::from(usize::from(s.out_channels) < conv::FEW_CHANNELS);
        staged +=
            usize::from(!transposed && s.in_channels % 4 != 0 && s.patch_len().is_multiple_of(4));
        case += 1;
    }
    (few, staged)
}
