//! Fused CPU kernels as candle custom ops, where candle's plain graph is slow for these
//! shapes: the binary cross-entropy from logits with its gradient, the Adam update done in
//! place, and convolutions (im2col and one matrix product) with their backward passes.

use candle_core::{CpuStorage, Layout, Result};

pub mod adam;
pub mod bce;
pub mod conv;
pub mod gemm;
pub mod linear;
pub mod relu;

/// The contiguous `f32` values of a tensor's storage, or an error naming `what`.
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: not contiguous")))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => Err(candle_core::Error::Msg(format!("{what}: not f32"))),
    }
}

/// Sets the process up for training, before any other thread starts: `threads` for the
/// trainer's own parallel work (default: every core), candle's element-wise thread pool off
/// (its workers spin between ops and compete with the trainer's threads: measured 1.5x
/// slower), subnormal numbers flushed to zero on every thread (see [`flush_subnormals`]) and
/// freed memory kept (see [`keep_freed_memory`]).
pub fn init_runtime(threads: Option<usize>) {
    let threads = threads
        .or_else(|| std::env::var("RAYON_NUM_THREADS").ok()?.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // SAFETY (of the environment writes, `unsafe` from edition 2024 on): no other thread
    // runs yet; candle reads these when it sizes its pools.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    flush_subnormals();
    // An error means the pool exists already (a second call): it keeps its threads.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| flush_subnormals())
        .build_global();
    keep_freed_memory();
}

/// Flushes subnormal results to zero and reads subnormal inputs as zero on this thread, as
/// TensorFlow does. As training goes on, more and more squared gradients in Adam's second
/// moment fall below 2^-126, and every operation on such a value is slow: without this the
/// dense model's epochs grew from 2.4 s to 3.7 s over six epochs (measured), Adam's share of
/// the time from 7% to 28%. x86-64 only; elsewhere a no-op.
pub fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sets the FTZ (bit 15) and DAZ (bit 6) bits of this thread's MXCSR, which
    // every x86-64 processor has; nothing else changes.
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}

/// Keeps freed memory in the process. Each training step allocates and frees the same large
/// tensors; by default glibc hands blocks over 128 KiB and the heap's top back to the kernel,
/// so every step page-faults them in again (a fifth of a conv epoch, measured). Call once,
/// at start-up, before other threads run.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
