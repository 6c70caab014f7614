//! The DSP-extension kernels' Rust side (thumbv7em, and thumbv8m.main with the extension:
//! `cfg(tinyvae_dsp)`): the assembly (src/arm/dense_dsp.s, and src/arm/conv_pair_dsp.s
//! outside builds for size) and a safe wrapper per routine, which checks every slice the
//! routine reads or writes before the call; a failed check returns false, for the portable
//! kernel to run instead. The dense layers' routines in [`layer`], the convolutions' in
//! [`conv`].

// The tile loop (TINYVAE_TILE), the fused int8 layer routine (`tinyvae_dense_i8_smlad`),
// the raw tile loop (`tinyvae_tiles_raw`) and the widening loop (`tinyvae_widen_i8`), in
// src/arm/dense_dsp.s. Module assembly is assembled for the bare target: off ARMv7E-M, the DSP
// instructions need the CPU named even where `-C target-cpu` gives the compiled code the
// extension (build.rs, tinyvae_format::dsp_rule).
#[cfg(tinyvae_small)]
core::arch::global_asm!(
    env!("TINYVAE_ASM_CPU"),
    include_str!(concat!(env!("OUT_DIR"), "/dense_dsp.s")),
    options(raw)
);
// With the two-position convolution kernel, which uses dense_dsp.s's macros.
#[cfg(not(tinyvae_small))]
core::arch::global_asm!(
    env!("TINYVAE_ASM_CPU"),
    include_str!(concat!(env!("OUT_DIR"), "/dense_dsp.s")),
    include_str!(concat!(env!("OUT_DIR"), "/conv_pair_dsp.s")),
    options(raw)
);

mod conv;
mod layer;

pub(crate) use conv::*;
pub(crate) use layer::*;

// The routines' names carry the crate's version (build.rs: `crate::ASM_PREFIX`).
extern "C" {
    #[cfg(tinyvae_small)]
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "requantize_i8")]
    fn tinyvae_requantize_i8(job: *const RequantJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "dense_i8_smlad")]
    fn tinyvae_dense_i8_smlad(job: *const Job);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "widen_i8")]
    fn tinyvae_widen_i8(x: *const i8, wide: *mut u32, groups: usize);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "tiles_raw")]
    fn tinyvae_tiles_raw(job: *mut RawJob);
}

#[cfg(not(tinyvae_small))]
extern "C" {
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "dense2_i8_smlad")]
    fn tinyvae_dense2_i8_smlad(job: *mut PairJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "widen_i8_pairs")]
    fn tinyvae_widen_i8_pairs(x: *const i8, pairs: *mut u32, groups: usize);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "scatter_row")]
    fn tinyvae_scatter_row(job: *mut RowJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "scatter_pairs")]
    fn tinyvae_scatter_pairs(job: *const PairRowJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "requantize_rows")]
    fn tinyvae_requantize_rows(job: *const RowsJob);
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "widen_row_pairs")]
    fn tinyvae_widen_row_pairs(
        x: *const i8,
        pairs: *mut u32,
        groups: usize,
        count: usize,
        zero_point: u32,
    );
    #[link_name = concat!(env!("TINYVAE_ASM_PREFIX"), "gather_i8_pairs")]
    fn tinyvae_gather_i8_pairs(
        x: *const i8,
        pairs: *mut u32,
        groups: usize,
        rows: usize,
        stride: usize,
    );
}

/// The aligned words of `bytes`.
pub(crate) fn words(bytes: &mut [i8]) -> &mut [u32] {
    // SAFETY: any bit pattern is a valid u32; align_to_mut only re-slices.
    let (_, words, _) = unsafe { bytes.align_to_mut::<u32>() };
    words
}

/// int8 inputs to int16 pairs, per group of 4: (x0, x2), (x1, x3); zeros past the end.
#[inline(never)]
pub(crate) fn widen(x: &[i8], wide: &mut [u32]) {
    let half = |v: i8| u32::from(i16::from(v) as u16);
    let full = (x.len() / 4).min(wide.len() / 2);
    if full > 0 {
        // SAFETY: `x` holds 4 * full bytes (read as words, unaligned loads, which
        // ARMv7E-M allows), `wide` 2 * full words; the routine touches exactly those
        // and follows the AAPCS.
        unsafe { tinyvae_widen_i8(x.as_ptr(), wide.as_mut_ptr(), full) };
    }
    // A last, partial group (zeros past the end), when there is room for it.
    let tail = x.get(4 * full..).unwrap_or_default();
    if let (Some(p), false) = (wide.get_mut(2 * full..2 * full + 2), tail.is_empty()) {
        let mut t = [0i8; 4];
        t.iter_mut().zip(tail).for_each(|(d, v)| *d = *v);
        p[0] = half(t[0]) | half(t[2]) << 16;
        p[1] = half(t[1]) | half(t[3]) << 16;
    }
}
