#![allow(
    clippy::undocumented_unsafe_blocks,
    reason = "the tests call the C API with pointers to live buffers of the stated lengths throughout"
)]
//! The C API from Rust, on the host: the same bits as the engine, every misuse a status.

use core::ptr::{null, null_mut};
use std::ffi::CStr;

use tinyvae_engine::format::owned::OwnedModel;
use tinyvae_engine::format::testkit::synthetic::SyntheticSpec;
use tinyvae_engine::format::Model;
use tinyvae_engine::{Engine, NoProbe, Sampler};

use super::*;

fn blob() -> Vec<u8> {
    OwnedModel::synthetic(&SyntheticSpec::default(), 4)
        .to_bytes()
        .unwrap()
}

fn zeroed() -> Box<tinyvae_model> {
    Box::new(tinyvae_model {
        _opaque: [0; TINYVAE_MODEL_WORDS],
    })
}

#[test]
fn generates_what_the_engine_generates() {
    let bytes = blob();
    let mut m = zeroed();
    assert_eq!(
        unsafe { tinyvae_open(&mut *m, bytes.as_ptr(), bytes.len()) },
        TINYVAE_OK
    );
    let model = Model::from_bytes(&bytes).unwrap();
    let e = Engine::new(&model).unwrap();
    let (dim, px) = (usize::from(model.latent.dim), model.data.len());
    unsafe {
        assert_eq!(tinyvae_scratch_len(&*m), e.scratch_len());
        assert_eq!((tinyvae_latent(&*m), tinyvae_pixels(&*m)), (dim, px));
        assert_eq!(tinyvae_stats_len(&*m), 2 * dim);
        assert_eq!(tinyvae_kernel(&*m), TINYVAE_KERNEL_PORTABLE_NO_DSP);
    }
    let mut rng = tinyvae_sampler { state: [0; 4] };
    unsafe { tinyvae_sampler_init(&mut rng, 2026) };
    let mut sampler = Sampler::new(2026);
    let mut scratch = vec![0i8; e.scratch_len()];
    for _ in 0..5 {
        let (mut code, mut want_code) = (vec![0i8; dim], vec![0i8; dim]);
        let (mut pixels, mut want) = (vec![0u8; px], vec![0u8; px]);
        e.sample_prior(&mut sampler, &mut want_code).unwrap();
        e.decode(&want_code, &mut scratch, &mut want, &mut NoProbe)
            .unwrap();
        let s = unsafe {
            tinyvae_sample_prior(&*m, &mut rng, code.as_mut_ptr(), dim);
            tinyvae_decode(
                &*m,
                code.as_ptr(),
                dim,
                scratch.as_mut_ptr(),
                scratch.len(),
                pixels.as_mut_ptr(),
                px,
            )
        };
        assert_eq!((s, &code, &pixels), (TINYVAE_OK, &want_code, &want));
        // Encode, and a resample around the encoding.
        let (mut stats, mut want_stats) = (vec![0i16; 2 * dim], vec![0i16; 2 * dim]);
        e.encode(&want, &mut scratch, &mut want_stats, &mut NoProbe)
            .unwrap();
        let s = unsafe {
            tinyvae_encode(
                &*m,
                pixels.as_ptr(),
                px,
                scratch.as_mut_ptr(),
                scratch.len(),
                stats.as_mut_ptr(),
                stats.len(),
            )
        };
        assert_eq!((s, &stats), (TINYVAE_OK, &want_stats));
        e.reparameterize(&want_stats, &mut sampler, &mut want_code)
            .unwrap();
        let s = unsafe {
            tinyvae_reparameterize(
                &*m,
                stats.as_ptr(),
                stats.len(),
                &mut rng,
                code.as_mut_ptr(),
                dim,
            )
        };
        assert_eq!((s, &code), (TINYVAE_OK, &want_code));
    }
    assert_eq!(rng.state, sampler.state());
}

#[test]
fn every_misuse_is_a_status() {
    let bytes = blob();
    let mut m = zeroed();
    let mut rng = tinyvae_sampler { state: [0; 4] };
    let mut code = [0i8; 4];
    unsafe {
        // Not opened, NULL.
        assert_eq!(
            tinyvae_sample_prior(&*m, &mut rng, code.as_mut_ptr(), 4),
            TINYVAE_ERR_NOT_OPEN
        );
        assert_eq!(tinyvae_scratch_len(&*m), 0);
        assert_eq!(tinyvae_kernel(&*m), -TINYVAE_ERR_NOT_OPEN);
        assert_eq!(
            tinyvae_open(null_mut(), bytes.as_ptr(), bytes.len()),
            TINYVAE_ERR_NULL
        );
        assert_eq!(tinyvae_open(&mut *m, null(), bytes.len()), TINYVAE_ERR_NULL);
        assert_eq!(tinyvae_sampler_init(null_mut(), 1), TINYVAE_ERR_NULL);
        // Bad bytes: cut, corrupt, not a model.
        assert_eq!(
            tinyvae_open(&mut *m, bytes.as_ptr(), 100),
            TINYVAE_ERR_TRUNCATED
        );
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert_eq!(
            tinyvae_open(&mut *m, bad.as_ptr(), bad.len()),
            TINYVAE_ERR_CHECKSUM
        );
        assert_eq!(
            tinyvae_open(&mut *m, b"hello".as_ptr(), 5),
            TINYVAE_ERR_TRUNCATED
        );
        assert_eq!(
            tinyvae_open(&mut *m, [0u8; 64].as_ptr(), 64),
            TINYVAE_ERR_BAD_MAGIC
        );
        // Opened: wrong lengths, short scratch, NULL buffers.
        assert_eq!(
            tinyvae_open(&mut *m, bytes.as_ptr(), bytes.len()),
            TINYVAE_OK
        );
        let n = tinyvae_scratch_len(&*m);
        let mut scratch = vec![0i8; n];
        let mut px = vec![0u8; tinyvae_pixels(&*m)];
        let handle: *mut tinyvae_model = &mut *m;
        let decode = |code: &[i8], scratch: &mut [i8], px: &mut [u8]| {
            tinyvae_decode(
                handle,
                code.as_ptr(),
                code.len(),
                scratch.as_mut_ptr(),
                scratch.len(),
                px.as_mut_ptr(),
                px.len(),
            )
        };
        assert_eq!(
            decode(&code, &mut scratch[..n - 1], &mut px),
            TINYVAE_ERR_SCRATCH_TOO_SMALL
        );
        assert_eq!(
            decode(&code[..3], &mut scratch, &mut px),
            TINYVAE_ERR_INPUT_LENGTH
        );
        assert_eq!(
            decode(&code, &mut scratch, &mut px[1..]),
            TINYVAE_ERR_OUTPUT_LENGTH
        );
        assert_eq!(decode(&code, &mut scratch, &mut px), TINYVAE_OK);
        assert_eq!(
            tinyvae_decode(
                &*m,
                null(),
                4,
                scratch.as_mut_ptr(),
                n,
                px.as_mut_ptr(),
                px.len()
            ),
            TINYVAE_ERR_NULL
        );
        assert_eq!(
            tinyvae_sample_prior(&*m, null_mut(), code.as_mut_ptr(), 4),
            TINYVAE_ERR_NULL
        );
        // Closed: not open again.
        tinyvae_close(handle);
        assert_eq!(decode(&code, &mut scratch, &mut px), TINYVAE_ERR_NOT_OPEN);
    }
}

/// "Draw a 7": a prior grouped by class draws what the engine draws for each class; a
/// class past the last, or any class of a model without classes, is a status.
#[test]
fn draws_a_chosen_class_as_the_engine_does() {
    let spec = SyntheticSpec {
        mixture: 5,
        ..Default::default()
    };
    let plain = blob();
    let bytes = OwnedModel::synthetic(&spec, 4)
        .with_classes(2, 3)
        .to_bytes()
        .unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let e = Engine::new(&model).unwrap();
    let dim = usize::from(model.latent.dim);
    let (mut m, mut p) = (zeroed(), zeroed());
    unsafe {
        assert_eq!(
            tinyvae_open(&mut *m, bytes.as_ptr(), bytes.len()),
            TINYVAE_OK
        );
        assert_eq!(
            tinyvae_open(&mut *p, plain.as_ptr(), plain.len()),
            TINYVAE_OK
        );
        assert_eq!((tinyvae_classes(&*m), tinyvae_classes(&*p)), (2, 0));
    }
    let mut rng = tinyvae_sampler { state: [0; 4] };
    unsafe { tinyvae_sampler_init(&mut rng, 7) };
    let mut sampler = Sampler::new(7);
    let (mut code, mut want) = (vec![0i8; dim], vec![0i8; dim]);
    for class in [0, 1, 1, 0, 1] {
        e.sample_class(&mut sampler, class, &mut want).unwrap();
        let s = unsafe { tinyvae_sample_class(&*m, &mut rng, class, code.as_mut_ptr(), dim) };
        assert_eq!((s, &code), (TINYVAE_OK, &want));
    }
    unsafe {
        assert_eq!(
            tinyvae_sample_class(&*m, &mut rng, 2, code.as_mut_ptr(), dim),
            TINYVAE_ERR_NO_SUCH_CLASS
        );
        assert_eq!(
            tinyvae_sample_class(&*p, &mut rng, 0, code.as_mut_ptr(), dim),
            TINYVAE_ERR_NO_SUCH_CLASS
        );
        assert_eq!(
            tinyvae_sample_class(&*m, null_mut(), 0, code.as_mut_ptr(), dim),
            TINYVAE_ERR_NULL
        );
    }
}

#[test]
fn every_status_has_its_own_name() {
    let codes = [
        TINYVAE_OK,
        TINYVAE_ERR_TRUNCATED,
        TINYVAE_ERR_BAD_MAGIC,
        TINYVAE_ERR_UNSUPPORTED_VERSION,
        TINYVAE_ERR_UNSUPPORTED_FLAGS,
        TINYVAE_ERR_CHECKSUM,
        TINYVAE_ERR_TRAILING_BYTES,
        TINYVAE_ERR_MALFORMED,
        TINYVAE_ERR_SHAPE,
        TINYVAE_ERR_VALUE_RANGE,
        TINYVAE_ERR_ACCUMULATOR,
        TINYVAE_ERR_SECTION,
        TINYVAE_ERR_MISALIGNED_WEIGHTS,
        TINYVAE_ERR_SCRATCH_TOO_SMALL,
        TINYVAE_ERR_INPUT_LENGTH,
        TINYVAE_ERR_OUTPUT_LENGTH,
        TINYVAE_ERR_NOT_A_VAE,
        TINYVAE_ERR_NO_ENCODER,
        TINYVAE_ERR_MISALIGNED,
        TINYVAE_ERR_NO_SUCH_CLASS,
        TINYVAE_ERR_NULL,
        TINYVAE_ERR_NOT_OPEN,
        TINYVAE_ERR_OTHER,
    ];
    let header = include_str!("../include/tinyvae.h");
    let mut names = std::collections::BTreeSet::new();
    for c in codes {
        let name = unsafe { CStr::from_ptr(tinyvae_status_name(c)) }
            .to_str()
            .unwrap();
        let symbol = name.split(':').next().unwrap();
        // The name is the header's own symbol for the code.
        assert!(
            header.contains(&format!("#define {symbol} {c}\n")),
            "{name}"
        );
        assert!(names.insert(symbol.to_string()), "{name}");
    }
    let unknown = unsafe { CStr::from_ptr(tinyvae_status_name(99)) };
    assert_eq!(unknown.to_str().unwrap(), "not a tinyvae status code");
}

/// The header's sizes of a `tinyvae_model` are the library's.
#[test]
fn the_header_sizes_the_model_as_the_library_does() {
    let header = include_str!("../include/tinyvae.h");
    let block = header
        .split("#if UINTPTR_MAX == 0xFFFFFFFFu")
        .nth(1)
        .unwrap();
    let words: Vec<&str> = block
        .lines()
        .filter_map(|l| l.strip_prefix("#define TINYVAE_MODEL_WORDS "))
        .take(2)
        .collect();
    assert_eq!(
        words,
        [MODEL_WORDS_32.to_string(), MODEL_WORDS_64.to_string()]
    );
}

#[test]
fn two_at_once_is_two_calls() {
    let bytes = blob();
    let mut m = zeroed();
    assert_eq!(
        unsafe { tinyvae_open(&mut *m, bytes.as_ptr(), bytes.len()) },
        TINYVAE_OK
    );
    let model = Model::from_bytes(&bytes).unwrap();
    let e = Engine::new(&model).unwrap();
    let (dim, px) = (usize::from(model.latent.dim), model.data.len());
    let stats = model.encoder_out_dim();
    let mut sampler = Sampler::new(9);
    let mut codes = vec![0i8; 2 * dim];
    e.sample_prior(&mut sampler, &mut codes[..dim]).unwrap();
    e.sample_prior(&mut sampler, &mut codes[dim..]).unwrap();
    let n = unsafe { tinyvae_scratch_len_two(&*m) };
    assert_eq!(n, e.scratch_len_two());
    let mut scratch = vec![0i8; n];
    let mut pixels = vec![0u8; 2 * px];
    let s = unsafe {
        tinyvae_decode_two(
            &*m,
            codes.as_ptr(),
            codes.len(),
            scratch.as_mut_ptr(),
            n,
            pixels.as_mut_ptr(),
            pixels.len(),
        )
    };
    assert_eq!(s, TINYVAE_OK);
    let mut out = vec![0i16; 2 * stats];
    let s = unsafe {
        tinyvae_encode_two(
            &*m,
            pixels.as_ptr(),
            pixels.len(),
            scratch.as_mut_ptr(),
            n,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(s, TINYVAE_OK);
    for k in 0..2 {
        let mut one = vec![0u8; px];
        e.decode(
            &codes[k * dim..(k + 1) * dim],
            &mut scratch,
            &mut one,
            &mut NoProbe,
        )
        .unwrap();
        assert_eq!(one, pixels[k * px..(k + 1) * px]);
        let mut st = vec![0i16; stats];
        e.encode(&one, &mut scratch, &mut st, &mut NoProbe).unwrap();
        assert_eq!(st, out[k * stats..(k + 1) * stats]);
    }
    // One value short of two codes, of two images' outputs; a scratch one byte short.
    let short = unsafe {
        tinyvae_decode_two(
            &*m,
            codes.as_ptr(),
            codes.len() - 1,
            scratch.as_mut_ptr(),
            n,
            pixels.as_mut_ptr(),
            pixels.len(),
        )
    };
    assert_eq!(short, TINYVAE_ERR_INPUT_LENGTH);
    let short = unsafe {
        tinyvae_encode_two(
            &*m,
            pixels.as_ptr(),
            pixels.len(),
            scratch.as_mut_ptr(),
            n,
            out.as_mut_ptr(),
            out.len() - 1,
        )
    };
    assert_eq!(short, TINYVAE_ERR_OUTPUT_LENGTH);
    let small = unsafe {
        tinyvae_decode_two(
            &*m,
            codes.as_ptr(),
            codes.len(),
            scratch.as_mut_ptr(),
            n - 1,
            pixels.as_mut_ptr(),
            pixels.len(),
        )
    };
    assert_eq!(small, TINYVAE_ERR_SCRATCH_TOO_SMALL);
    let null = unsafe { tinyvae_decode_two(&*m, null(), 2 * dim, null_mut(), n, null_mut(), 0) };
    assert_eq!(null, TINYVAE_ERR_NULL);
}
