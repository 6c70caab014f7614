//! The DSP kernel against the portable kernels, on the chip: random layers (widths that are
//! not multiples of 4, odd row counts, extreme multipliers and shifts, saturating outputs),
//! int8 and int16 outputs. Any difference fails the run naming the case, shape and row.
//!
//! On a core without the DSP extension the same binary checks the portable tiled kernel
//! against the row-major one, and says so.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use tinyvae_engine::dense::{self, dense_i16, dense_i8, dense_i8_portable, uses_simd};
use tinyvae_engine::rng::Rng;
use tinyvae_firmware::synth::{inputs, LayerBufs, Params};
use tinyvae_firmware::{self as fw, exit_code};
use tinyvae_format::WeightLayout;

const CASES: usize = 600;
const MAX_IN: usize = 203;
const MAX_OUT: usize = 67;

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
        fw::exit(exit_code::GOLDEN_MISMATCH)
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to BUFS, taken once before anything else runs.
    let bufs = unsafe { &mut *addr_of_mut!(BUFS) };
    let mut rng = Rng::new(0x7E57_D5B0);
    let mut x = [0i8; MAX_IN];
    let mut spare = [0i8; dense::spare_len(MAX_IN)];
    let (mut y_ref, mut y, mut y_pt) = ([0i8; MAX_OUT], [0i8; MAX_OUT], [0i8; MAX_OUT]);
    let (mut z_ref, mut z) = ([0i16; MAX_OUT], [0i16; MAX_OUT]);
    let mut simd_cases = 0usize;
    for case in 0..CASES {
        // Mostly small and ragged shapes, some wide ones.
        let inp = 1 + (rng.next_u32() as usize % if case % 5 == 0 { MAX_IN } else { 19 });
        let out = 1 + (rng.next_u32() as usize % if case % 3 == 0 { MAX_OUT } else { 11 });
        let params = if case % 2 == 0 {
            Params::Extreme
        } else {
            Params::Typical
        };
        fw::check(bufs.fill(&mut rng, inp, out, params), "layer fits");
        inputs(&mut rng, &mut x[..inp]);
        let x = &x[..inp];

        let rows = bufs.dense(WeightLayout::RowMajor, false);
        let tiles = bufs.dense(WeightLayout::Tiles4x4, false);
        if dense::SIMD {
            fw::check(
                uses_simd(&tiles, &spare),
                "the DSP kernel runs the tiled layer",
            );
            simd_cases += 1;
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
        let rows = bufs.dense(WeightLayout::RowMajor, true);
        let tiles = bufs.dense(WeightLayout::Tiles4x4, true);
        dense_i16(&rows, x, &mut z_ref[..out], &mut spare);
        dense_i16(&tiles, x, &mut z[..out], &mut spare);
        same(case, inp, "int16 (tiled kernel)", &z[..out], &z_ref[..out]);
    }
    defmt::println!(
        "dspcheck: {=usize} random layers bit-exact, int8 and int16 outputs; {=usize} ran the DSP kernel",
        CASES,
        simd_cases
    );
    fw::exit(exit_code::SUCCESS)
}
