//! FORMAT.md's computations written again from its text alone, and held against the reference
//! reader, engine and f32 decoder: if code and spec drift apart, a test here fails. Nothing in
//! this file calls the engine to compute an expected value; every expectation comes from the
//! formulas below, each quoting the section it implements.

use tinyvae_engine::{Engine, NoProbe, Sampler};
use tinyvae_format::owned::OwnedModel;
use tinyvae_format::testkit::synthetic::{SyntheticConv, SyntheticSpec};
use tinyvae_format::{
    Activation, ClassMixture, ConvShape, Dense, Layer, Mixture, Model, ModelKind, OutputType,
    Prior, WeightLayout,
};

// ---------------------------------------------------------------------------------------
// Section 3, the sampler: SplitMix64 seeding, xoshiro128++, the table and the draw.

struct SpecRng([u32; 4]);

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SpecRng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let (a, b) = (splitmix64(&mut x), splitmix64(&mut x));
        SpecRng([a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32])
    }
    fn next(&mut self) -> u32 {
        let [s0, s1, s2, s3] = &mut self.0;
        let result = s0.wrapping_add(*s3).rotate_left(7).wrapping_add(*s0);
        let t = *s1 << 9;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(11);
        result
    }
}

/// `Phi^-1(1 - t)` for a tail probability `t` in (0, 1/2], by bisection of the upper tail.
fn inverse_tail(t: f64) -> f64 {
    let tail = |z: f64| 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (0.0f64, 12.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if tail(mid) > t {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `T[k][s] = round(4096 Phi^-1(1 - 2^(-2-k) (1 + s/32)))`, with each entry's distance to
/// the nearest rounding tie (in steps of 2^-12).
fn spec_table() -> ([[i16; 33]; 32], f64) {
    let mut t = [[0i16; 33]; 32];
    let mut closest = f64::MAX;
    for (k, row) in t.iter_mut().enumerate() {
        for (s, v) in row.iter_mut().enumerate() {
            let z = 4096.0 * inverse_tail(2f64.powi(-2 - k as i32) * (1.0 + s as f64 / 32.0));
            closest = closest.min(((z - z.floor()) - 0.5).abs());
            *v = z.round() as i16;
        }
    }
    (t, closest)
}

fn spec_normal(t: &[[i16; 33]; 32], r: u32) -> i16 {
    let negative = r >> 31 == 1;
    let tt = (r << 1) | 1;
    let octave = tt.leading_zeros();
    let m = tt << octave;
    let seg = ((m >> 26) & 31) as usize;
    let frac = ((m >> 10) & 0xFFFF) as i32;
    let (z0, z1) = (
        i32::from(t[octave as usize][seg]),
        i32::from(t[octave as usize][seg + 1]),
    );
    let z = z0 + (((z1 - z0) * frac + (1 << 15)) >> 16);
    (if negative { -z } else { z }) as i16
}

#[test]
fn sampler_table_has_no_entry_near_a_tie_and_the_shape_the_spec_states() {
    let (t, closest) = spec_table();
    // "the entry nearest a rounding tie is 1.8 x 10^-7 from it": `closest` is in steps of
    // 2^-12, so an evaluation of Phi^-1 accurate to 10^-8 rounds every entry the same way.
    assert!(
        closest > 1.8e-7 * 4096.0 && closest < 1.9e-7 * 4096.0,
        "closest {closest}"
    );
    assert_eq!(t[0][32], 0);
    for k in 0..32 {
        assert!(t[k].windows(2).all(|w| w[0] >= w[1]), "row {k}");
        if k > 0 {
            assert_eq!(t[k][32], t[k - 1][0], "row {k}");
        }
    }
}

#[test]
fn sampler_draws_are_the_specs() {
    let (t, _) = spec_table();
    for seed in [0u64, 1, 2026, u64::MAX] {
        let (mut spec, mut engine) = (SpecRng::new(seed), Sampler::new(seed));
        for i in 0..100_000 {
            let want = spec_normal(&t, spec.next());
            assert_eq!(engine.normal(), want, "seed {seed}, draw {i}");
        }
        // The raw u32 a mixture prior takes is the generator's output itself.
        assert_eq!(engine.uniform(), spec.next(), "seed {seed}: uniform");
    }
    // Every octave and both signs, directly.
    for octave in 0..32u32 {
        for low in [0u32, 1, 0x1234_5678, u32::MAX] {
            // t = 2r + 1 has `octave` leading zeros: r's top bit is bit 30 - octave.
            let r = match octave {
                31 => 0,
                _ => (1u32 << (30 - octave)) | (low & ((1u32 << (30 - octave)) - 1)),
            };
            for r in [r, r | 0x8000_0000] {
                assert_eq!(
                    tinyvae_engine::gauss::normal_from_bits(r),
                    spec_normal(&t, r),
                    "r = {r:#x}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Section 3, requantization: TFLite's MultiplyByQuantizedMultiplier with a saturating left
// shift, and the 64-bit division form of the high multiply.

fn spec_requantize(acc: i32, multiplier: i32, shift: i8) -> i32 {
    let (left, right) = (i32::from(shift).max(0), (-i32::from(shift)).max(0));
    let x = (i64::from(acc) * (1i64 << left)).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    let h = if x == i64::from(i32::MIN) && multiplier == i32::MIN {
        i64::from(i32::MAX)
    } else {
        let p = x * i64::from(multiplier);
        let nudge = if p >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
        (p + nudge) / (1i64 << 31) // truncating toward zero
    };
    let h = h as i32;
    let mask = ((1i64 << right) - 1) as i32;
    let (r, t) = (h & mask, (mask >> 1) + i32::from(h < 0));
    (h >> right) + i32::from(r > t)
}

#[test]
fn requantization_is_the_specs() {
    let mut rng = SpecRng::new(7);
    let extremes = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];
    for shift in -31i8..=30 {
        for &m in &[0, 1 << 30, i32::MAX, i32::MIN, 1_518_500_250] {
            for &acc in &extremes {
                let want = spec_requantize(acc, m, shift);
                let got = tinyvae_engine::requant::requantize(acc, m, shift);
                assert_eq!(got, want, "acc {acc} m {m} shift {shift}");
            }
        }
        for _ in 0..2000 {
            let acc = rng.next() as i32 >> (rng.next() % 31);
            let m = (1 << 30) + (rng.next() >> 2) as i32;
            let got = tinyvae_engine::requant::requantize(acc, m, shift);
            assert_eq!(
                got,
                spec_requantize(acc, m, shift),
                "acc {acc} m {m} shift {shift}"
            );
        }
    }
    // Saturation, where CMSIS-NN's int32 shift would wrap: 2^30 * 2^2 saturates to
    // i32::MAX, times a multiplier of one half (2^30) is 2^30 - 1/2, rounded to 2^30.
    assert_eq!(spec_requantize(1 << 30, 1 << 30, 2), 1 << 30);
    assert_eq!(spec_requantize(-(1 << 30), 1 << 30, 2), -(1 << 30));
}

// ---------------------------------------------------------------------------------------
// Section 3, layers: weights by layout, dense products, Conv2d patches, ConvTranspose2d
// phases, the output rules; section 3, DataShape: the encoder's input.

/// The packed length of an `R x K` matrix in `layout`.
fn packed(layout: WeightLayout, k: usize, r: usize) -> usize {
    match layout {
        WeightLayout::RowMajor => r * k,
        WeightLayout::Tiles4x4 => 16 * r.div_ceil(4) * k.div_ceil(4),
    }
}

/// `w(o, i)` of an `R x K` matrix whose packed weights start at `at` of `raw`.
fn weight(raw: &[i8], at: usize, layout: WeightLayout, k: usize, o: usize, i: usize) -> i32 {
    let idx = match layout {
        WeightLayout::RowMajor => o * k + i,
        WeightLayout::Tiles4x4 => {
            let g = k.div_ceil(4);
            ((o / 4) * g + i / 4) * 16 + (o % 4) * 4 + i % 4
        }
    };
    i32::from(raw[at + idx])
}

/// One output of a dense product: `bias + sum w x`, requantized, by output type and
/// activation (the pixel table is applied by the caller).
fn spec_output(d: &Dense<'_>, o: usize, acc: i64) -> i32 {
    let acc = i32::try_from(acc).expect("section 4: a validated model's sums fit an int32");
    let v = spec_requantize(acc, d.multiplier.get(o).unwrap(), d.shift.get(o).unwrap());
    match d.output_type {
        OutputType::I16 => v.clamp(-32768, 32767),
        OutputType::I8 => {
            let zp = i32::from(d.output_zero_point);
            let lo = if d.activation == Activation::Relu {
                zp
            } else {
                -128
            };
            v.saturating_add(zp).clamp(lo, 127)
        }
    }
}

/// One dense product over `x` (K values): weights at `at` of the raw array, biases from
/// `bias_at`.
fn spec_product(d: &Dense<'_>, x: &[i32], at: usize, bias_at: usize, out: &mut Vec<i32>) {
    let (k, r) = (x.len(), usize::from(d.out_dim));
    let raw = d.weights.as_i8_slice();
    for o in 0..r {
        let mut acc = i64::from(d.bias.get(bias_at + o).unwrap());
        for (i, &xi) in x.iter().enumerate() {
            acc += i64::from(weight(raw, at, d.layout, k, o, i)) * i64::from(xi);
        }
        out.push(spec_output(d, o, acc));
    }
}

/// The input at (row, col, c) of an `H x W x C` tensor, or the zero-point outside it.
fn at(x: &[i32], s: &ConvShape, row: i64, col: i64, c: usize, zp: i32) -> i32 {
    let (h, w, ch) = (
        i64::from(s.in_height),
        i64::from(s.in_width),
        usize::from(s.in_channels),
    );
    if row < 0 || col < 0 || row >= h || col >= w {
        zp
    } else {
        x[(row * w + col) as usize * ch + c]
    }
}

fn spec_layer(l: &Layer<'_>, x: &[i32]) -> Vec<i32> {
    let mut y = Vec::new();
    match l {
        Layer::Dense(d) => {
            let lead = d.weights.len() - packed(d.layout, x.len(), usize::from(d.out_dim));
            spec_product(d, x, lead, 0, &mut y);
        }
        Layer::Conv2d(c) => {
            let (s, d) = (&c.shape, &c.matrix);
            let (k, st, p) = (
                i64::from(s.kernel),
                i64::from(s.stride),
                i64::from(s.padding),
            );
            let ch = usize::from(s.in_channels);
            let lead =
                d.weights.len() - packed(d.layout, (k * k) as usize * ch, usize::from(d.out_dim));
            let zp = i32::from(d.input_zero_point);
            for oy in 0..i64::from(s.out_height) {
                for ox in 0..i64::from(s.out_width) {
                    let mut patch = Vec::new();
                    for ky in 0..k {
                        for kx in 0..k {
                            for c in 0..ch {
                                patch.push(at(x, s, oy * st + ky - p, ox * st + kx - p, c, zp));
                            }
                        }
                    }
                    spec_product(d, &patch, lead, 0, &mut y);
                }
            }
        }
        Layer::ConvTranspose2d(c) => {
            let (s, d) = (&c.shape, &c.matrix);
            let (k, st, p) = (
                i64::from(s.kernel),
                i64::from(s.stride),
                i64::from(s.padding),
            );
            let (ch, r) = (usize::from(s.in_channels), usize::from(d.out_dim));
            let taps = |q: i64| (k - q + st - 1) / st; // ceil((k - r) / s)
                                                       // The phases' matrices one after the other, lead bytes once before the first.
            let mut starts = Vec::new();
            let mut total = 0;
            for ry in 0..st {
                for rx in 0..st {
                    starts.push(total);
                    total += packed(d.layout, (taps(ry) * taps(rx)) as usize * ch, r);
                }
            }
            let lead = d.weights.len() - total;
            let zp = i32::from(d.input_zero_point);
            for oy in 0..i64::from(s.out_height) {
                for ox in 0..i64::from(s.out_width) {
                    let (ry, rx) = ((oy + p) % st, (ox + p) % st);
                    let mut patch = Vec::new();
                    for jy in 0..taps(ry) {
                        for jx in 0..taps(rx) {
                            for c in 0..ch {
                                let row = (oy + p - ry) / st - jy;
                                let col = (ox + p - rx) / st - jx;
                                patch.push(at(x, s, row, col, c, zp));
                            }
                        }
                    }
                    let phase = (ry * st + rx) as usize;
                    spec_product(d, &patch, lead + starts[phase], phase * r, &mut y);
                }
            }
        }
    }
    y
}

fn spec_encode(m: &Model<'_>, pixels: &[u8]) -> Vec<i16> {
    let mut x: Vec<i32> = pixels.iter().map(|&p| i32::from(p) - 128).collect();
    for l in m.encoder.layers.iter() {
        x = spec_layer(l, &x);
    }
    x.iter().map(|&v| v as i16).collect()
}

fn spec_decode(m: &Model<'_>, code: &[i8]) -> Vec<u8> {
    let mut x: Vec<i32> = code.iter().map(|&v| i32::from(v)).collect();
    for l in m.decoder.layers.iter() {
        x = spec_layer(l, &x);
    }
    let table = m.pixel_table.as_slice();
    x.iter().map(|&v| table[(v + 128) as usize]).collect()
}

// ---------------------------------------------------------------------------------------
// Section 3, the latent space: the code, the sigma table, sampling, mean and interpolation.

fn spec_code(m: &Model<'_>, z: i32) -> i8 {
    let l = &m.latent;
    spec_requantize(z, l.to_code_multiplier, l.to_code_shift)
        .saturating_add(i32::from(l.zero_point))
        .clamp(-128, 127) as i8
}

fn spec_sigma(m: &Model<'_>, lv: i16) -> u32 {
    let t = &m.latent.sigma;
    let step = u32::from(t.step_log2);
    let len = t.values.len();
    let d = (i32::from(lv) - i32::from(t.logvar_min)).max(0) as u32;
    let (mut k, mut f) = ((d >> step) as usize, d & ((1 << step) - 1));
    if k + 1 >= len {
        (k, f) = (len - 2, 1 << step);
    }
    let (v0, v1) = (
        i64::from(t.values.get(k).unwrap()),
        i64::from(t.values.get(k + 1).unwrap()),
    );
    (v0 + (((v1 - v0) * i64::from(f)) >> step)) as u32
}

/// One dimension of reparameterized sampling: the code of `mu + sigma eps`.
fn spec_draw(m: &Model<'_>, mu: i32, sigma: u32, eps: i16) -> i8 {
    let s = 16 + 12 - u32::from(m.latent.frac_bits);
    let noise = (i64::from(sigma) * i64::from(eps) + (1i64 << (s - 1))) >> s;
    let noise = noise.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    spec_code(m, mu.saturating_add(noise))
}

struct SpecSampler {
    rng: SpecRng,
    table: [[i16; 33]; 32],
}

impl SpecSampler {
    fn new(seed: u64, table: &[[i16; 33]; 32]) -> Self {
        SpecSampler {
            rng: SpecRng::new(seed),
            table: *table,
        }
    }
    fn normal(&mut self) -> i16 {
        spec_normal(&self.table, self.rng.next())
    }
}

fn spec_prior(m: &Model<'_>, s: &mut SpecSampler) -> Vec<i8> {
    let dim = usize::from(m.latent.dim);
    match &m.prior {
        Prior::StandardNormal => (0..dim)
            .map(|_| spec_draw(m, 0, 65536, s.normal()))
            .collect(),
        Prior::Mixture(mix) | Prior::ClassMixture(ClassMixture { mixture: mix, .. }) => {
            let u = s.rng.next();
            let k = (0..usize::from(mix.components))
                .find(|&k| u < mix.cumulative.get(k).unwrap())
                .unwrap_or(usize::from(mix.components) - 1);
            spec_component(m, mix, k, s)
        }
        // Version 6: the draws through the second stage's layers; its z as any z.
        Prior::SecondStage(st) => {
            let mut x: Vec<i32> = (0..st.draws())
                .map(|_| {
                    spec_requantize(i32::from(s.normal()), st.input_multiplier, st.input_shift)
                        .saturating_add(i32::from(st.input_zero_point))
                        .clamp(-128, 127)
                })
                .collect();
            for l in st.layers.iter() {
                x = spec_layer(l, &x);
            }
            x.iter().map(|&z| spec_code(m, z)).collect()
        }
    }
}

fn spec_component(m: &Model<'_>, mix: &Mixture<'_>, k: usize, s: &mut SpecSampler) -> Vec<i8> {
    let dim = usize::from(m.latent.dim);
    (0..dim)
        .map(|i| {
            let mu = i32::from(mix.means.get(k * dim + i).unwrap());
            spec_draw(m, mu, mix.sigmas.get(k * dim + i).unwrap(), s.normal())
        })
        .collect()
}

/// FORMAT.md, section 3, Prior: a draw of class `c` of a `ClassMixture`.
fn spec_class(m: &Model<'_>, c: usize, s: &mut SpecSampler) -> Vec<i8> {
    let Prior::ClassMixture(cm) = &m.prior else {
        panic!("not a class mixture")
    };
    let mix = &cm.mixture;
    let k_all = usize::from(mix.components);
    let b = usize::from(cm.class_ends.get(c).unwrap());
    let a = if c == 0 {
        0
    } else {
        usize::from(cm.class_ends.get(c - 1).unwrap())
    };
    let cum = |k: usize| u64::from(mix.cumulative.get(k).unwrap());
    let lo = if a == 0 { 0 } else { cum(a - 1) };
    let hi = if b == k_all { 1u64 << 32 } else { cum(b - 1) };
    let u = u64::from(s.rng.next());
    let v = lo + ((u * (hi - lo)) >> 32);
    let k = (a..b).find(|&k| v < cum(k)).unwrap_or(b - 1);
    spec_component(m, mix, k, s)
}

fn spec_resample(m: &Model<'_>, stats: &[i16], s: &mut SpecSampler) -> Vec<i8> {
    let dim = usize::from(m.latent.dim);
    (0..dim)
        .map(|i| {
            let sigma = spec_sigma(m, stats[dim + i]);
            spec_draw(m, i32::from(stats[i]), sigma, s.normal())
        })
        .collect()
}

fn spec_interpolate(m: &Model<'_>, a: &[i16], b: &[i16], num: u16, den: u16) -> Vec<i8> {
    let den = u32::from(den.max(1));
    let num = u32::from(num).min(den);
    (0..usize::from(m.latent.dim))
        .map(|i| {
            let d = i32::from(b[i]) - i32::from(a[i]);
            let q = (d.unsigned_abs() * num / den) as i32;
            spec_code(m, i32::from(a[i]) + d.signum() * q)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The models: synthetic dense and convolutional ones in both layouts, and the committed
// version-1 and version-2 files with their golden vectors.

fn synthetic_models() -> Vec<(String, Vec<u8>)> {
    let conv = |channels, kernel, stride, padding| SyntheticConv {
        channels,
        kernel,
        stride,
        padding,
    };
    let specs = [
        ("dense vae", SyntheticSpec::default()),
        (
            "dense ae, mixture prior",
            SyntheticSpec {
                kind: ModelKind::Autoencoder,
                hidden: vec![24, 12],
                mixture: 3,
                ..Default::default()
            },
        ),
        (
            "conv vae k4 s2 p1 then k3 s1 p1, RGB",
            SyntheticSpec {
                width: 12,
                height: 10,
                channels: 3,
                conv: vec![conv(6, 4, 2, 1), conv(5, 3, 1, 1)],
                hidden: vec![20],
                latent: 5,
                mixture: 2,
                ..Default::default()
            },
        ),
        (
            "conv vae k3 s3 p0, k5 s2 p2",
            SyntheticSpec {
                width: 15,
                height: 15,
                conv: vec![conv(4, 3, 3, 0), conv(7, 5, 2, 2)],
                hidden: vec![],
                latent: 3,
                ..Default::default()
            },
        ),
        (
            "conv decoder-only",
            SyntheticSpec {
                width: 9,
                height: 7,
                conv: vec![conv(3, 2, 2, 0)],
                decoder_only: true,
                ..Default::default()
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, spec) in specs {
        for (seed, layout) in [(1u64, WeightLayout::RowMajor), (2, WeightLayout::Tiles4x4)] {
            let m = OwnedModel::synthetic(&spec, seed).with_layout(layout);
            let blob = m.to_bytes().expect("a synthetic model is valid");
            out.push((format!("{name}, {layout:?}"), blob));
        }
    }
    // A prior grouped by class (version 5): 7 components of uneven weights in 3 classes.
    let classes = OwnedModel::synthetic(
        &SyntheticSpec {
            mixture: 7,
            ..Default::default()
        },
        3,
    )
    .with_classes(3, 11);
    out.push((
        "dense vae, mixture per class".into(),
        classes.to_bytes().expect("a synthetic model is valid"),
    ));
    // A second-stage prior (version 6): 5 draws, hidden layers of 9 and 6, in both layouts
    // (tiled: the prior's layers aligned too), and one draw straight to z.
    for (seed, layout) in [(4u64, WeightLayout::RowMajor), (5, WeightLayout::Tiles4x4)] {
        let m = OwnedModel::synthetic(&SyntheticSpec::default(), seed)
            .with_second_stage(5, &[9, 6], seed + 10)
            .with_layout(layout);
        out.push((
            format!("dense vae, second stage, {layout:?}"),
            m.to_bytes().expect("a synthetic model is valid"),
        ));
    }
    let direct = OwnedModel::synthetic(&SyntheticSpec::default(), 6).with_second_stage(3, &[], 16);
    out.push((
        "dense vae, second stage of one layer".into(),
        direct.to_bytes().expect("a synthetic model is valid"),
    ));
    out
}

/// Random u8 images that exercise the whole input range.
fn images(n: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut r = SpecRng::new(seed);
    (0..n)
        .map(|_| (0..len).map(|_| r.next() as u8).collect())
        .collect()
}

#[test]
fn layers_encoder_and_decoder_are_the_specs() {
    let (table, _) = spec_table();
    for (name, blob) in synthetic_models() {
        let m = Model::from_bytes(&blob).unwrap();
        let engine = Engine::new(&m).unwrap();
        let mut scratch = vec![0i8; engine.scratch_len()];
        let dim = usize::from(m.latent.dim);
        let mut px = vec![0u8; m.data.len()];
        // Prior draws and their decodings, from one stream (as the firmware draws them).
        let (mut spec_s, mut eng_s) = (SpecSampler::new(9, &table), Sampler::new(9));
        let mut code = vec![0i8; dim];
        for k in 0..8 {
            let want = spec_prior(&m, &mut spec_s);
            engine.sample_prior(&mut eng_s, &mut code).unwrap();
            assert_eq!(code, want, "{name}: prior draw {k}");
            engine
                .decode(&code, &mut scratch, &mut px, &mut NoProbe)
                .unwrap();
            assert_eq!(px, spec_decode(&m, &code), "{name}: decode {k}");
        }
        // Class draws, each class in turn, the stream going on (the firmware's order).
        assert_eq!(
            engine.classes(),
            if name.contains("per class") { 3 } else { 0 }
        );
        for c in 0..engine.classes() {
            for j in 0..50 {
                let want = spec_class(&m, c, &mut spec_s);
                engine.sample_class(&mut eng_s, c, &mut code).unwrap();
                assert_eq!(code, want, "{name}: class {c} draw {j}");
            }
        }
        if !m.has_encoder() {
            continue;
        }
        let mut stats = vec![0i16; m.encoder_out_dim()];
        let inputs = images(4, m.data.len(), 3);
        let mut encoded = Vec::new();
        for (k, img) in inputs.iter().enumerate() {
            engine
                .encode(img, &mut scratch, &mut stats, &mut NoProbe)
                .unwrap();
            assert_eq!(stats, spec_encode(&m, img), "{name}: encode {k}");
            encoded.push(stats.clone());
        }
        let (a, b) = (&encoded[0], &encoded[1]);
        engine.mean_code(a, &mut code).unwrap();
        let mean: Vec<i8> = (0..dim).map(|i| spec_code(&m, i32::from(a[i]))).collect();
        assert_eq!(code, mean, "{name}: mean code");
        for (num, den) in [(0u16, 7u16), (3, 7), (7, 7), (9, 7), (1, 0), (65535, 65535)] {
            engine.interpolate(a, b, num, den, &mut code).unwrap();
            let want = spec_interpolate(&m, a, b, num, den);
            assert_eq!(code, want, "{name}: interpolation {num}/{den}");
        }
        if m.kind == ModelKind::Vae {
            for k in 0..4 {
                engine.reparameterize(a, &mut eng_s, &mut code).unwrap();
                assert_eq!(
                    code,
                    spec_resample(&m, a, &mut spec_s),
                    "{name}: resample {k}"
                );
            }
        }
    }
}

#[test]
fn sigma_table_and_code_conversion_are_the_specs_for_every_input() {
    for (name, blob) in synthetic_models() {
        let m = Model::from_bytes(&blob).unwrap();
        let engine = Engine::new(&m).unwrap();
        for lv in i16::MIN..=i16::MAX {
            assert_eq!(engine.sigma_q16(lv), spec_sigma(&m, lv), "{name}: lv {lv}");
        }
        for z in (i32::MIN..=i32::MAX)
            .step_by(65_521)
            .chain([i32::MAX, -1, 0, 1])
        {
            assert_eq!(engine.code_from_fixed(z), spec_code(&m, z), "{name}: z {z}");
        }
    }
}

/// A session the chip really ran (protocol/tests/logs/: the model, and the log the `vae`
/// firmware printed under QEMU), reproduced from the spec alone: the model's golden
/// vectors, then section 7's 16 samples, reconstruction, resamples and interpolation.
#[test]
fn the_chips_session_follows_from_the_spec() {
    let (table, _) = spec_table();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/tests/logs");
    let blob = std::fs::read(dir.join("synthetic-8x8.tvae")).unwrap();
    let m = Model::from_bytes(&blob).unwrap();
    let g = m.golden.as_ref().expect("the model carries golden vectors");
    assert!(g.encoder.len() >= 2 && !g.decoder.is_empty() && !g.sampler.is_empty());
    for (i, v) in g.encoder.iter().enumerate() {
        let want: Vec<i16> = v.expected.iter().collect();
        assert_eq!(
            spec_encode(&m, v.input.as_slice()),
            want,
            "encoder vector {i}"
        );
    }
    for (i, v) in g.decoder.iter().enumerate() {
        let want: Vec<u8> = v.expected.iter().collect();
        assert_eq!(
            spec_decode(&m, v.code.as_i8_slice()),
            want,
            "decoder vector {i}"
        );
    }
    for (i, v) in g.sampler.iter().enumerate() {
        let mut s = SpecSampler::new(v.seed, &table);
        let eps: Vec<i16> = (0..v.eps.len()).map(|_| s.normal()).collect();
        assert_eq!(
            eps,
            v.eps.iter().collect::<Vec<_>>(),
            "sampler vector {i}: eps"
        );
        let code = spec_prior(&m, &mut SpecSampler::new(v.seed, &table));
        assert_eq!(code, v.prior_code.as_i8_slice(), "sampler vector {i}: code");
        let px: Vec<u8> = v.prior_pixels.iter().collect();
        assert_eq!(spec_decode(&m, &code), px, "sampler vector {i}: pixels");
    }

    let log = std::fs::read_to_string(dir.join("vae-mps2-an386.log")).unwrap();
    let chip = tinyvae_protocol::log::parse(&log);
    chip.check_complete().unwrap();
    let (n, seed) = chip.announced.unwrap();
    // Section 7, step by step, from one sampler.
    let mut s = SpecSampler::new(seed, &table);
    let samples: Vec<Vec<u8>> = (0..n)
        .map(|_| spec_decode(&m, &spec_prior(&m, &mut s)))
        .collect();
    assert_eq!(chip.images["sample"], samples, "samples");
    let (a, b) = (
        spec_encode(&m, g.encoder[0].input.as_slice()),
        spec_encode(&m, g.encoder[1].input.as_slice()),
    );
    assert_eq!(
        chip.images["input"],
        [g.encoder[0].input.as_slice().to_vec()]
    );
    let dim = usize::from(m.latent.dim);
    let mean: Vec<i8> = (0..dim).map(|i| spec_code(&m, i32::from(a[i]))).collect();
    assert_eq!(
        chip.images["recon"],
        [spec_decode(&m, &mean)],
        "reconstruction"
    );
    let resamples: Vec<Vec<u8>> = (0..4)
        .map(|_| spec_decode(&m, &spec_resample(&m, &a, &mut s)))
        .collect();
    assert_eq!(chip.images["resample"], resamples, "resamples");
    let interp: Vec<Vec<u8>> = (0..=7)
        .map(|k| spec_decode(&m, &spec_interpolate(&m, &a, &b, k, 7)))
        .collect();
    assert_eq!(chip.images["interp"], interp, "interpolation");
}

// ---------------------------------------------------------------------------------------
// Section 6, the float decoder: its container, its sums, micromath's exp and the pixel.

fn spec_exp(x: f32) -> f32 {
    if x == 0.0 {
        return 1.0;
    }
    if (x - 1.0).abs() < f32::EPSILON {
        return std::f32::consts::E;
    }
    if (x + 1.0).abs() < f32::EPSILON {
        return 1.0 / std::f32::consts::E;
    }
    let y = x * std::f32::consts::LOG2_E;
    let n = y.trunc();
    let g = (y - n) * std::f32::consts::LN_2;
    let mut p = 1.0f32;
    for i in (1..=4).rev() {
        p = 1.0 + (g / i as f32) * p;
    }
    let e = ((p.to_bits() >> 23) & 0xFF) as i32 - 127;
    let e = e.saturating_add(n as i32);
    if e < -127 {
        0.0
    } else if e > 128 {
        f32::INFINITY
    } else {
        f32::from_bits((p.to_bits() & !0x7F80_0000) | (((e + 127) as u32) << 23))
    }
}

#[test]
fn micromath_exp_is_the_specs() {
    use micromath::F32Ext;
    let mut checked = 0u32;
    // Every 4099th bit pattern of the finite floats, and the edges, where micromath's debug
    // build accepts them: its `set_exponent` asserts an exponent of at most 127, so x from
    // about 88.03 (E = 128, the exponent field 255) up is left out here.
    let specials = [
        0.0f32, -0.0, 1.0, -1.0, 88.0, -87.0, -104.0, -200.0, 1e-30, -1e-30,
    ];
    let sweep = (0..u32::MAX).step_by(4099).map(f32::from_bits);
    for x in specials.into_iter().chain(sweep) {
        if !x.is_finite() || x > 88.0 {
            continue;
        }
        let (got, want) = (F32Ext::exp(x), spec_exp(x));
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "exp({x:e}): micromath {got:e}, spec {want:e}"
        );
        checked += 1;
    }
    assert!(checked > 500_000);
}

#[test]
fn float_decoder_is_the_specs() {
    // A TVF1 file written from section 6's table: 3 -> 9 -> 6 (in mod 4 = 3 and 1).
    let shapes = [(3u16, 9u16), (9, 6)];
    let mut r = SpecRng::new(11);
    let mut f = || (r.next() as i32 as f32) / 2f32.powi(30);
    let layers: Vec<(Vec<f32>, Vec<f32>)> = shapes
        .iter()
        .map(|&(i, o)| {
            let w = (0..usize::from(i) * usize::from(o)).map(|_| f()).collect();
            (w, (0..o).map(|_| f()).collect())
        })
        .collect();
    let mut payload = Vec::new();
    payload.extend((shapes.len() as u16).to_le_bytes());
    payload.extend(0u16.to_le_bytes());
    for &(i, o) in &shapes {
        payload.extend(i.to_le_bytes());
        payload.extend(o.to_le_bytes());
    }
    for (w, b) in &layers {
        for v in w.iter().chain(b) {
            payload.extend(v.to_le_bytes());
        }
    }
    let mut file = b"TVF1".to_vec();
    file.extend(1u16.to_le_bytes());
    file.extend(0u16.to_le_bytes());
    file.extend((payload.len() as u32).to_le_bytes());
    file.extend(tinyvae_format::crc32(&payload).to_le_bytes());
    file.extend(&payload);
    // 4-aligned, as the container requires.
    let words: Vec<u32> = file
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        })
        .collect();
    let aligned: &[u8] = bytemuck::cast_slice(&words);
    let dec = tinyvae_f32::FloatDecoder::from_bytes(&aligned[..file.len()]).unwrap();

    let spec_forward = |z: &[f32]| -> Vec<u8> {
        let mut h = z.to_vec();
        for (n, ((w, b), &(i, o))) in layers.iter().zip(&shapes).enumerate() {
            let (i, o) = (usize::from(i), usize::from(o));
            let last = n + 1 == layers.len();
            h = (0..o)
                .map(|row| {
                    let mut acc = [0f32; 4];
                    for q in 0..i / 4 {
                        for j in 0..4 {
                            acc[j] += w[row * i + 4 * q + j] * h[4 * q + j];
                        }
                    }
                    let mut tail = 0f32;
                    for c in 4 * (i / 4)..i {
                        tail += w[row * i + c] * h[c];
                    }
                    let v = (b[row] + ((acc[0] + acc[1]) + (acc[2] + acc[3]))) + tail;
                    if last || v > 0.0 {
                        v
                    } else {
                        0.0
                    }
                })
                .collect();
        }
        h.iter()
            .map(|&logit| (255.0 * (1.0 / (1.0 + spec_exp(-logit))) + 0.5) as u8)
            .collect()
    };
    let mut scratch = vec![0f32; 64];
    let mut px = vec![0u8; 6];
    for k in 0..200 {
        let z: Vec<f32> = (0..3).map(|_| 4.0 * f()).collect();
        dec.decode(&z, &mut scratch, &mut px).unwrap();
        assert_eq!(px, spec_forward(&z), "z {k}: {z:?}");
    }
    for logit in [-100.0f32, -5.0, -0.1, 0.0, 0.3, 7.0, 80.0] {
        let want = (255.0 * (1.0 / (1.0 + spec_exp(-logit))) + 0.5) as u8;
        assert_eq!(tinyvae_f32::pixel(logit), want, "pixel({logit})");
    }
}

/// The quoted field names of a text: what sits between backticks (FORMAT.md) or quotes (the
/// reader's source).
fn quoted(text: &str, mark: char) -> std::collections::BTreeSet<String> {
    text.split(mark)
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// FORMAT.md's table of error kinds names every field the reader's validation reports, so
/// that a field added to the reader without the spec fails here. (The kinds themselves are
/// held by the format crate's tests, which build hostile models.)
#[test]
fn the_specs_error_fields_are_the_readers() {
    let spec = include_str!("../../model-format/FORMAT.md");
    let table = spec
        .split("### Error kinds")
        .nth(1)
        .and_then(|t| t.split("## 5.").next())
        .expect("FORMAT.md has its table of error kinds");
    let validate = include_str!("../../model-format/src/validate.rs");
    // The field strings validate.rs passes to range, section and mismatch.
    let reported: std::collections::BTreeSet<String> = quoted(validate, '"')
        .into_iter()
        .filter(|f| {
            f.chars()
                .all(|c| c.is_ascii_lowercase() || " ._0-9'".contains(c))
        })
        .filter(|f| f.contains(' ') || f.contains('.') || f.contains('_'))
        .collect();
    let documented = quoted(table, '`');
    let missing: Vec<_> = reported.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "fields FORMAT.md's table does not name: {missing:?}"
    );
    for f in [
        "conv matrix shape",
        "no layers",
        "tiled weights padding",
        "prior.sigmas",
    ] {
        assert!(reported.contains(f) && documented.contains(f), "{f}");
    }
}
