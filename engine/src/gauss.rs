//! N(0, 1) draws in Q3.12 fixed point, from one 32-bit uniform each, with integer operations
//! only.
//!
//! Method: inversion. The top bit of the uniform is the sign; the other 31 bits give a tail
//! probability `t = (2u + 1) / 2^33` in (0, 1/2). `|z| = Phi^-1(1 - t)` is read from a table
//! indexed the way a float is: the octave of `t` (its leading zeros) picks a row, the next five
//! bits a segment, and the following sixteen bits interpolate linearly inside it. Indexing by
//! octave keeps the relative resolution constant down to the smallest `t`, so the tails are
//! exact out to |z| = 6.34 (t = 2^-33), where a uniform-in-`t` table would stop near 3.
//!
//! Precision: the output is rounded to 2^-12 (Q12 in an `i16`); the interpolation error is
//! below 2^-13 everywhere (checked against an f64 inverse in the tests).

include!(concat!(env!("OUT_DIR"), "/gauss_table.rs"));

use crate::rng::Rng;

/// Fractional bits of every draw.
pub const FRAC_BITS: u32 = tinyvae_format::EPS_FRAC_BITS as u32;
const SEG_BITS: u32 = 5;
const INTERP_BITS: u32 = 16;

/// Maps 32 uniform bits to one N(0, 1) draw in Q12.
#[inline]
pub fn normal_from_bits(r: u32) -> i16 {
    let negative = r >> 31 != 0;
    let t = (r << 1) | 1; // odd, in [1, 2^32): t / 2^33 is the tail probability
    let octave = t.leading_zeros() & 31;
    let m = t << octave; // top bit set
    let seg = ((m >> (31 - SEG_BITS)) & ((1 << SEG_BITS) - 1)) as usize;
    let frac = ((m >> (31 - SEG_BITS - INTERP_BITS)) & ((1 << INTERP_BITS) - 1)) as i32;
    let row = &GAUSS_TABLE[octave as usize];
    let z0 = i32::from(row[seg]);
    let z1 = i32::from(row[seg + 1]);
    let z = z0 + (((z1 - z0) * frac + (1 << (INTERP_BITS - 1))) >> INTERP_BITS);
    (if negative { -z } else { z }) as i16
}

/// A seeded stream of N(0, 1) draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sampler {
    rng: Rng,
}

impl Sampler {
    /// A sampler whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Sampler {
            rng: Rng::new(seed),
        }
    }

    /// The sampler with this generator state ([`Sampler::state`]), continuing its stream:
    /// for a caller that keeps the state itself (the C API, a checkpoint in flash).
    pub fn from_state(state: [u32; 4]) -> Self {
        Sampler {
            rng: Rng::from_state(state),
        }
    }

    /// The generator's state.
    pub fn state(&self) -> [u32; 4] {
        self.rng.state()
    }

    /// One N(0, 1) draw in Q12.
    #[inline]
    pub fn normal(&mut self) -> i16 {
        normal_from_bits(self.rng.next_u32())
    }

    /// Fills `out` with N(0, 1) draws in Q12.
    pub fn fill_normal(&mut self, out: &mut [i16]) {
        for v in out {
            *v = self.normal();
        }
    }

    /// 32 uniform bits (used to pick a mixture component).
    #[inline]
    pub fn uniform(&mut self) -> u32 {
        self.rng.next_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper_tail(z: f64) -> f64 {
        0.5 * erfc(z / std::f64::consts::SQRT_2)
    }

    use libm::erfc;

    #[test]
    fn table_is_monotone_and_matches_the_inverse() {
        for (k, row) in GAUSS_TABLE.iter().enumerate() {
            for s in 0..32 {
                assert!(row[s] >= row[s + 1], "row {k} seg {s}");
            }
            for (s, &z) in row.iter().enumerate() {
                let t = 2f64.powi(-2 - k as i32) * (1.0 + s as f64 / 32.0);
                let back = upper_tail(f64::from(z) / 4096.0);
                // z is rounded to 2^-12: its tail probability moves by at most density * 2^-13.
                let slack =
                    1.3e-7 * t + (-(f64::from(z) / 4096.0).powi(2) / 2.0).exp() * 0.4 / 8192.0;
                assert!((back - t).abs() <= slack, "row {k} seg {s}: {back} vs {t}");
            }
        }
    }

    #[test]
    fn fixed_seed_gives_the_committed_stream() {
        use crate::known_answers as ka;
        let mut s = Sampler::new(ka::SEED);
        let first: [i16; 32] = core::array::from_fn(|_| s.normal());
        assert_eq!(first, ka::EPS);
        assert_eq!(ka::stream_hash(ka::SEED, ka::STREAM_LEN), ka::STREAM_HASH);
    }

    #[test]
    fn extremes_and_symmetry() {
        // Smallest tail probability: t = 1 / 2^33 -> z = 6.34.
        let top = normal_from_bits(0x7FFF_FFFF);
        let bottom = normal_from_bits(0xFFFF_FFFF);
        assert!((f64::from(top) / 4096.0 - 0.0).abs() < 0.01, "{top}");
        assert_eq!(bottom, -top);
        let deep = normal_from_bits(0);
        assert!((f64::from(deep) / 4096.0 - 6.3379).abs() < 0.001, "{deep}");
        assert_eq!(normal_from_bits(0x8000_0000), -deep);
        for r in [1u32, 7, 12345, 0x4000_0000, 0x1234_5678] {
            assert_eq!(normal_from_bits(r), -normal_from_bits(r | 0x8000_0000));
        }
    }

    #[test]
    fn interpolation_error_is_below_half_a_step() {
        // Walk t across all octaves, compare with the f64 inverse.
        let mut worst = 0f64;
        let mut u: u32 = 1;
        while u < 0x7FFF_FFFF {
            let t = (2.0 * f64::from(u) + 1.0) / 2f64.powi(33);
            let exact = {
                let (mut lo, mut hi) = (0.0f64, 12.0f64);
                for _ in 0..80 {
                    let mid = 0.5 * (lo + hi);
                    if upper_tail(mid) > t {
                        lo = mid
                    } else {
                        hi = mid
                    }
                }
                lo
            };
            let got = f64::from(normal_from_bits(u)) / 4096.0;
            worst = worst.max((got - exact).abs());
            u = u + u / 97 + 1;
        }
        assert!(worst < 1.5 / 4096.0, "worst error {worst}");
    }
}
