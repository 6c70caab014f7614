//! What tests and benchmarks draw models and layers from (feature `test-kit`), kept apart from
//! what a firmware reads: random int8 layers valid by construction, drawn without an
//! allocator ([`random`]: the engine's property tests, the chip's kernel check and
//! benchmarks), and whole synthetic models ([`synthetic`], std: format tests, fuzz seeds,
//! the firmware's models without training).

pub mod random;
#[cfg(feature = "std")]
pub mod synthetic;
