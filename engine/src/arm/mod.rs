//! The engine's Arm assembly and its safe wrappers: with `conv::few`'s ARMv6-M routine and
//! dot product (which need its walks' types), the only `unsafe` code in the engine. Each
//! wrapper checks every slice its routine reads or writes before the call and returns
//! false (having done nothing) when a check fails, for the portable kernel to run instead;
//! each `unsafe` block says why it is sound (clippy's `undocumented_unsafe_blocks`). The
//! assembly sits beside them (`*.s`), assembled through `global_asm!` with every name
//! carrying the crate's version (build.rs).

/// The Cortex-M4/M7/M33 kernels (DSP extension: `SXTB16`, `SMLAD`).
#[cfg(tinyvae_dsp)]
pub mod dsp;

/// The ARMv6-M kernel for 4 x 4 tiled int8 layers (Cortex-M0, M0+; src/arm/dense_v6m.s).
#[cfg(tinyvae_v6m)]
pub(crate) mod v6m;
