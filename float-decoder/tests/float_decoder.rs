//! The float decoder against a plain f64 evaluation of the same weights, and its blob checks.

use proptest::prelude::*;
use tinyvae_f32::{to_bytes, Error, FloatDecoder, HEADER_LEN};

/// Largest difference, in pixel steps, between the f32 path (micromath's exp, f32 sums) and
/// an f64 evaluation rounded the same way: one step, where a value lies within the f32
/// path's error of a rounding boundary.
const PIXEL_TOLERANCE: i32 = 1;

struct Net {
    layers: Vec<(Vec<f32>, Vec<f32>, usize, usize)>,
}

impl Net {
    fn random(widths: &[usize], seed: u64) -> Net {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        };
        let layers = widths
            .windows(2)
            .map(|w| {
                let scale = 2.0 / (w[0] as f32).sqrt();
                let wt: Vec<f32> = (0..w[0] * w[1]).map(|_| next() * scale).collect();
                let b: Vec<f32> = (0..w[1]).map(|_| next() * 0.5).collect();
                (wt, b, w[0], w[1])
            })
            .collect();
        Net { layers }
    }

    fn blob(&self) -> Vec<u8> {
        let refs: Vec<_> = self
            .layers
            .iter()
            .map(|(w, b, i, o)| (w.as_slice(), b.as_slice(), *i, *o))
            .collect();
        to_bytes(&refs)
    }

    fn reference(&self, z: &[f32]) -> Vec<f64> {
        let mut x: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        for (k, (w, b, i, o)) in self.layers.iter().enumerate() {
            x = (0..*o)
                .map(|r| {
                    let v = f64::from(b[r])
                        + (0..*i).map(|c| f64::from(w[r * i + c]) * x[c]).sum::<f64>();
                    if k + 1 < self.layers.len() {
                        v.max(0.0)
                    } else {
                        255.0 / (1.0 + (-v).exp())
                    }
                })
                .collect();
        }
        x
    }
}

/// The decoder's own definition in f32, one row at a time: column `i` into partial sum
/// `i % 4` over the full groups of four, the rest in order, then
/// `bias + ((s0 + s1) + (s2 + s3)) + rest`. Every kernel path must give exactly these bits.
fn lane_order(net: &Net, z: &[f32]) -> Vec<u8> {
    let mut x = z.to_vec();
    for (k, (w, b, i, o)) in net.layers.iter().enumerate() {
        x = (0..*o)
            .map(|r| {
                let row = &w[r * i..(r + 1) * i];
                let body = i & !3;
                let mut s = [0f32; 4];
                for c in 0..body {
                    s[c % 4] += row[c] * x[c];
                }
                let mut t = 0f32;
                for c in body..*i {
                    t += row[c] * x[c];
                }
                let v = b[r] + ((s[0] + s[1]) + (s[2] + s[3])) + t;
                if k + 1 < net.layers.len() && v <= 0.0 {
                    0.0
                } else {
                    v
                }
            })
            .collect();
    }
    x.iter().map(|&l| tinyvae_f32::pixel(l)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn decodes_as_an_f64_evaluation(
        widths in prop::collection::vec(1usize..40, 2..5),
        seed in any::<u64>(),
        z in prop::collection::vec(-3.0f32..3.0, 40),
    ) {
        let net = Net::random(&widths, seed);
        let blob = net.blob();
        let dec = FloatDecoder::from_bytes(&blob).unwrap();
        prop_assert_eq!(dec.latent_dim(), widths[0]);
        prop_assert_eq!(dec.pixels(), *widths.last().unwrap());
        let z = &z[..widths[0]];
        let mut scratch = vec![0f32; dec.scratch_len()];
        let mut px = vec![0u8; dec.pixels()];
        dec.decode(z, &mut scratch, &mut px).unwrap();
        prop_assert_eq!(&px, &lane_order(&net, z));
        for (k, (&got, want)) in px.iter().zip(net.reference(z)).enumerate() {
            let want = (want + 0.5).floor() as i32;
            prop_assert!((i32::from(got) - want).abs() <= PIXEL_TOLERANCE,
                "pixel {k}: {got} vs {want}");
        }
    }
}

#[test]
fn every_truncation_and_bit_flip_is_rejected() {
    let blob = Net::random(&[3, 5, 4], 7).blob();
    assert!(FloatDecoder::from_bytes(&blob).is_ok());
    for n in 0..blob.len() {
        assert!(
            FloatDecoder::from_bytes(&blob[..n]).is_err(),
            "truncated at {n}"
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(FloatDecoder::from_bytes(&longer).is_err());
    for bit in 0..blob.len() * 8 {
        let mut b = blob.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(FloatDecoder::from_bytes(&b).is_err(), "bit {bit} flipped");
    }
}

#[test]
fn named_errors() {
    let net = Net::random(&[3, 5, 4], 9);
    let mut blob = net.blob();
    blob[0] = b'X';
    assert_eq!(
        FloatDecoder::from_bytes(&blob).unwrap_err(),
        Error::BadMagic
    );
    let mut bad = Net::random(&[3, 5, 4], 9);
    bad.layers[1].0[3] = f32::NAN;
    assert_eq!(
        FloatDecoder::from_bytes(&bad.blob()).unwrap_err(),
        Error::NotFinite { layer: 1 }
    );
    // Layer 1 does not take layer 0's output.
    let mut chain = Net::random(&[3, 5, 4], 9);
    chain.layers[1].2 = 6;
    chain.layers[1].0.extend([0.0; 4]);
    assert_eq!(
        FloatDecoder::from_bytes(&chain.blob()).unwrap_err(),
        Error::BadShape { layer: 1 }
    );
    let blob = net.blob();
    let dec = FloatDecoder::from_bytes(&blob).unwrap();
    let mut px = [0u8; 4];
    assert_eq!(
        dec.decode(&[0.0; 3], &mut [0.0; 3], &mut px),
        Err(Error::ScratchTooSmall { need: 10 })
    );
    assert!(matches!(
        dec.decode(&[0.0; 2], &mut [0.0; 10], &mut px),
        Err(Error::WrongLength { .. })
    ));
    assert_eq!(HEADER_LEN, 16);
    // Widths whose weights would need more bytes than a 32-bit usize holds: a length error.
    let huge = to_bytes(&[(&[], &[], 65535, 65535)]);
    assert!(matches!(
        FloatDecoder::from_bytes(&huge),
        Err(Error::LengthMismatch { .. })
    ));
}
