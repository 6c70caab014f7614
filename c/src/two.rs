//! Two items per call: `tinyvae_decode_two` and `tinyvae_encode_two` (the engine's
//! `decode_two` and `encode_two`: on a core with the DSP extension each dense layer's
//! weights are widened once for both items). Each takes the two items' buffers one after
//! the other in one array.

use tinyvae_engine::{Engine, NoProbe};

use crate::{
    call, figure, opened, slice, slice_mut, status, tinyvae_model, tinyvae_status,
    TINYVAE_ERR_INPUT_LENGTH, TINYVAE_ERR_NO_ENCODER, TINYVAE_ERR_OUTPUT_LENGTH,
};

/// Scratch bytes `tinyvae_decode_two` and `tinyvae_encode_two` need for this model on this
/// target (at most twice `tinyvae_scratch_len`); 0 for a handle that is not open.
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_scratch_len_two(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's contract.
    unsafe { figure(m, |model| Engine::new_unaligned(model).scratch_len_two()) }
}

/// The two halves of an input `s`, or `TINYVAE_ERR_INPUT_LENGTH` when it does not hold two
/// items of `n` values.
fn halves<T>(s: &[T], n: usize) -> Result<(&[T], &[T]), tinyvae_status> {
    match n.checked_mul(2) {
        Some(two) if two == s.len() => Ok(s.split_at(n)),
        _ => Err(TINYVAE_ERR_INPUT_LENGTH),
    }
}

/// The two halves of an output `s`, or `TINYVAE_ERR_OUTPUT_LENGTH`.
fn halves_mut<T>(s: &mut [T], n: usize) -> Result<(&mut [T], &mut [T]), tinyvae_status> {
    match n.checked_mul(2) {
        Some(two) if two == s.len() => Ok(s.split_at_mut(n)),
        _ => Err(TINYVAE_ERR_OUTPUT_LENGTH),
    }
}

/// Decodes two latent codes in one pass: `codes` holds both (`2 * tinyvae_latent` values,
/// the first code's then the second's), `scratch` at least `tinyvae_scratch_len_two` bytes,
/// `pixels` both images (`2 * tinyvae_pixels` values). The pixels of two `tinyvae_decode`
/// calls.
///
/// # Safety
/// Each pointer is NULL or valid for its length, and the buffers do not overlap.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_decode_two(
    m: *const tinyvae_model,
    codes: *const i8,
    codes_len: usize,
    scratch: *mut i8,
    scratch_len: usize,
    pixels: *mut u8,
    pixels_len: usize,
) -> tinyvae_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, codes, scratch, pixels) = unsafe {
            (
                opened(m)?,
                slice(codes, codes_len)?,
                slice_mut(scratch, scratch_len)?,
                slice_mut(pixels, pixels_len)?,
            )
        };
        let (c0, c1) = halves(codes, usize::from(model.latent.dim))?;
        let (p0, p1) = halves_mut(pixels, model.data.len())?;
        let e = Engine::new_unaligned(model);
        Ok(status(e.decode_two(
            [c0, c1],
            scratch,
            [p0, p1],
            &mut NoProbe,
        )))
    })
}

/// Encodes two images in one pass: `pixels` holds both (`2 * tinyvae_pixels` values),
/// `scratch` at least `tinyvae_scratch_len_two` bytes, `stats` both encodings (`2 *
/// tinyvae_stats_len` values, as `tinyvae_encode` writes each). What two `tinyvae_encode`
/// calls write.
///
/// # Safety
/// Each pointer is NULL or valid for its length, and the buffers do not overlap.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_encode_two(
    m: *const tinyvae_model,
    pixels: *const u8,
    pixels_len: usize,
    scratch: *mut i8,
    scratch_len: usize,
    stats: *mut i16,
    stats_len: usize,
) -> tinyvae_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, pixels, scratch, stats) = unsafe {
            (
                opened(m)?,
                slice(pixels, pixels_len)?,
                slice_mut(scratch, scratch_len)?,
                slice_mut(stats, stats_len)?,
            )
        };
        if !model.has_encoder() {
            return Ok(TINYVAE_ERR_NO_ENCODER);
        }
        let (p0, p1) = halves(pixels, model.data.len())?;
        let (s0, s1) = halves_mut(stats, model.encoder_out_dim())?;
        let e = Engine::new_unaligned(model);
        Ok(status(e.encode_two(
            [p0, p1],
            scratch,
            [s0, s1],
            &mut NoProbe,
        )))
    })
}
