//! The version-4 payload checksum against FORMAT.md section 1: its formula written out here
//! from the spec, its algebra (a polynomial hash modulo the prime `a * 2^32 - 1`), its check
//! values, and the errors it must catch.

use tinyvae_format::{checksum, CHECKSUM_MULTIPLIER};

const A: u64 = CHECKSUM_MULTIPLIER as u64;
/// The prime the checksum's state is a polynomial hash modulo.
const P: u128 = (A as u128) * (1 << 32) - 1;

/// FORMAT.md's steps, word by word; returns the final `(x, c)` and `V` computed apart as
/// `a * (V + w) mod p`.
fn spec(bytes: &[u8]) -> (u32, u32, u128) {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4) * 4, 0);
    let mut words: Vec<u32> = padded
        .chunks(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    words.extend([0, 0]);
    let (mut x, mut c) = (bytes.len() as u32, 0u32);
    let mut v = u128::from(A) * u128::from(x) % P;
    for w in words {
        let t = A * u64::from(x) + u64::from(c) + u64::from(w);
        (x, c) = (t as u32, (t >> 32) as u32);
        v = u128::from(A) * ((v + u128::from(w)) % P) % P;
    }
    (x, c, v)
}

/// A deterministic byte stream (splitmix64).
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

#[test]
fn check_values() {
    assert_eq!(checksum(b"123456789"), 0xFB76_1EE4);
    assert_eq!(checksum(b"TVAE"), 0xD262_6FA9);
    assert_eq!(checksum(b""), 0);
}

#[test]
fn the_multiplier_makes_a_safe_prime() {
    // p and (p - 1) / 2 prime (Miller-Rabin with the first 13 primes as bases: exact below
    // 3.3 * 10^24), so every two-bit error changes V: 2 has order (p - 1) / 2.
    fn mul(a: u128, b: u128, m: u128) -> u128 {
        // a, b < 2^64: the product fits u128.
        a * b % m
    }
    fn pow(mut b: u128, mut e: u128, m: u128) -> u128 {
        let mut r = 1;
        b %= m;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, b, m);
            }
            b = mul(b, b, m);
            e >>= 1;
        }
        r
    }
    fn prime(n: u128) -> bool {
        let (mut d, mut s) = (n - 1, 0);
        while d % 2 == 0 {
            d /= 2;
            s += 1;
        }
        [2u128, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41]
            .iter()
            .all(|&a| {
                let mut x = pow(a, d, n);
                if x == 1 || x == n - 1 {
                    return true;
                }
                for _ in 1..s {
                    x = mul(x, x, n);
                    if x == n - 1 {
                        return true;
                    }
                }
                false
            })
    }
    assert!(prime(P) && prime((P - 1) / 2));
    assert_eq!(
        pow(2, (P - 1) / 2, P),
        1,
        "2 is a square: order (p - 1) / 2"
    );
}

#[test]
fn code_equals_the_spec_and_its_algebra() {
    for n in (0..70).chain([255, 256, 257, 1000, 4099]) {
        let b = bytes(n, n as u64);
        let (x, c, v) = spec(&b);
        assert_eq!(checksum(&b), x, "{n} bytes");
        assert_eq!(
            (u128::from(A) * u128::from(x) + u128::from(c)) % P,
            v,
            "{n} bytes"
        );
    }
}

#[test]
fn every_one_and_two_bit_error_is_caught() {
    let b = bytes(200, 7);
    let sum = checksum(&b);
    let bits = 8 * b.len();
    let flip = |v: &mut [u8], i: usize| v[i / 8] ^= 1 << (i % 8);
    let mut e = b.clone();
    for i in 0..bits {
        flip(&mut e, i);
        assert_ne!(checksum(&e), sum, "bit {i}");
        for j in i + 1..bits {
            flip(&mut e, j);
            assert_ne!(checksum(&e), sum, "bits {i} and {j}");
            flip(&mut e, j);
        }
        flip(&mut e, i);
    }
}

#[test]
fn bursts_truncations_and_swaps_are_caught() {
    let b = bytes(4096, 11);
    let sum = checksum(&b);
    let r = bytes(3 * 20_000, 12);
    for k in 0..20_000 {
        let (at, len, fill) = (
            usize::from(u16::from_le_bytes([r[3 * k], r[3 * k + 1]])) % (b.len() - 8),
            1 + usize::from(r[3 * k + 2] % 8),
            r[3 * k + 2],
        );
        let mut e = b.clone();
        e[at..at + len].iter_mut().for_each(|x| *x ^= fill | 1);
        assert_ne!(checksum(&e), sum, "burst of {len} bytes at {at}");
        // Two words exchanged.
        let mut s = b.clone();
        let (i, j) = (
            at / 4 * 4,
            (at / 4 * 4 + 4 * (1 + len)) % (b.len() - 4) / 4 * 4,
        );
        if s[i..i + 4] != s[j..j + 4] {
            for t in 0..4 {
                s.swap(i + t, j + t);
            }
            assert_ne!(checksum(&s), sum, "words at {i} and {j} swapped");
        }
    }
    // Cut or zero-extended: the length starts the state.
    for n in [1, 2, 3, 4, 5, 100] {
        assert_ne!(checksum(&b[..b.len() - n]), sum);
        let mut z = b.clone();
        z.resize(b.len() + n, 0);
        assert_ne!(checksum(&z), sum);
    }
}
