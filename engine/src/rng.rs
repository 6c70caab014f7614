//! The sampler's pseudo-random generator: xoshiro128++ (Blackman and Vigna), 32-bit state
//! words only, so it is as cheap on a Cortex-M0+ as on a Cortex-M4 and gives the same stream
//! everywhere. Seeded from a u64 through SplitMix64.

/// xoshiro128++: 128 bits of state, period 2^128 - 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u32; 4],
}

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let (a, b) = (splitmix64(&mut x), splitmix64(&mut x));
        Rng {
            s: [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32],
        }
    }

    /// The generator with this state (from [`Rng::state`]; all zeros is the one state
    /// xoshiro never leaves, and is replaced by the state of seed 0).
    pub fn from_state(s: [u32; 4]) -> Self {
        if s == [0; 4] {
            Rng::new(0)
        } else {
            Rng { s }
        }
    }

    /// The state: saving it and [`Rng::from_state`] continue the same stream.
    pub fn state(&self) -> [u32; 4] {
        self.s
    }

    /// The next 32 uniformly distributed bits.
    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(7).wrapping_add(s[0]);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        result
    }
}

/// One step of SplitMix64 (Steele, Lea and Flood): advances `state` and returns 64 well-mixed
/// bits. Seeds generators: it never yields an all-zero state from any seed sequence.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
