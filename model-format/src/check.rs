//! The payload checksums: the multiply-with-carry checksum of format version 4, and the
//! CRC-32 of versions 1 to 3 (still read, and the float decoder's).

/// The multiplier `a` of the version-4 checksum. `p = a * 2^32 - 1` is a safe prime
/// (`(p - 1) / 2` is prime too) in which 2 has order `(p - 1) / 2`.
pub const CHECKSUM_MULTIPLIER: u32 = 0xF135_78E7;

/// The version-4 checksum of `bytes`: a multiply-with-carry hash over the little-endian u32
/// words of `bytes` (the last one zero-padded), started from the length.
///
/// ```text
/// x = len(bytes) as u32, c = 0
/// for each word w:  t = a * x + c + w  (exact in 64 bits);  x = t mod 2^32;  c = t >> 32
/// twice more with w = 0;  the checksum is x
/// ```
///
/// With `V = a * x + c`, each step is `V <- a * (V + w) mod p` for the prime
/// `p = a * 2^32 - 1`: a polynomial hash modulo a 64-bit prime. Changing any one word, or
/// any two bits anywhere in a payload shorter than 2^62 bits, changes `V`; the 32 bits kept
/// then miss a change with probability about 2^-32. One `UMAAL` per word on a Cortex-M4,
/// where the CRC-32 takes about 9 instructions per byte.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut s = Mwc::new(bytes.len() as u32);
    // What the assembly leaves (all of it on the Cortex-M0 and the host), word by word,
    // the last word zero-padded, then the two closing steps.
    let rest = s.blocks(bytes);
    let mut words = rest.chunks_exact(4);
    for w in &mut words {
        s.step(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let w = tail
            .iter()
            .rev()
            .fold(0u32, |w, &b| (w << 8) | u32::from(b));
        s.step(w);
    }
    s.step(0);
    s.step(0);
    s.x
}

/// The checksum's state.
struct Mwc {
    x: u32,
    c: u32,
}

impl Mwc {
    fn new(len: u32) -> Self {
        Mwc { x: len, c: 0 }
    }

    /// Steps through the leading 32-byte blocks of `bytes` in assembly, eight words per pair
    /// of `LDM`s, where the target has a widening multiply and `bytes` is word-aligned;
    /// returns what is left for [`Mwc::step`]. With the DSP extension (Cortex-M4, M7, M33)
    /// one `UMAAL` per word, 0.375 instructions per byte; with `UMLAL` only (Cortex-M3) four
    /// instructions per word, 1.125 per byte.
    #[cfg(any(tinyvae_dsp, tinyvae_umull))]
    fn blocks<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let whole = bytes.len() / 32 * 32;
        if whole == 0 || !(bytes.as_ptr() as usize).is_multiple_of(4) {
            return bytes;
        }
        let (head, rest) = bytes.split_at(whole);
        let range = head.as_ptr_range();
        // One word: `(c, w) = a * x + c + w`, the new x left in w's register.
        #[cfg(tinyvae_dsp)]
        macro_rules! word {
            ($w:literal, $x:literal) => {
                concat!("umaal ", $w, ", {c}, ", $x, ", {a}\n")
            };
        }
        // Without UMAAL: w + c first (its carry kept in the flags), then a * x on top.
        #[cfg(not(tinyvae_dsp))]
        macro_rules! word {
            ($w:literal, $x:literal) => {
                concat!(
                    "adds ",
                    $w,
                    ", ",
                    $w,
                    ", {c}\n",
                    "mov.w {c}, #0\n",
                    "umlal ",
                    $w,
                    ", {c}, ",
                    $x,
                    ", {a}\n",
                    "adc {c}, {c}, #0\n"
                )
            };
        }
        // SAFETY: reads the `whole` bytes of `head` (a multiple of 32, at least 32) as
        // aligned words, from its start to its end, and writes only registers it declares.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldm {p}!, {{r0, r1, r2, r3}}",
                word!("r0", "r10"),
                word!("r1", "r0"),
                word!("r2", "r1"),
                word!("r3", "r2"),
                "ldm {p}!, {{r4, r5, r8, r10}}",
                word!("r4", "r3"),
                word!("r5", "r4"),
                word!("r8", "r5"),
                word!("r10", "r8"),
                "cmp {p}, {end}",
                "bne 2b",
                p = inout(reg) range.start => _,
                end = in(reg) range.end,
                a = in(reg) CHECKSUM_MULTIPLIER,
                c = inout(reg) self.c,
                inout("r10") self.x,
                out("r0") _, out("r1") _, out("r2") _, out("r3") _,
                out("r4") _, out("r5") _, out("r8") _,
                options(nostack, readonly),
            );
        }
        rest
    }

    /// Targets without a widening multiply (Cortex-M0) and the host: all of `bytes` goes
    /// through [`Mwc::step`].
    #[cfg(not(any(tinyvae_dsp, tinyvae_umull)))]
    fn blocks<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        bytes
    }

    /// `(c, x) = a * x + c + w`: never overflows 64 bits
    /// (`(2^32 - 1)^2 + 2 * (2^32 - 1) = 2^64 - 1`).
    #[inline(always)]
    fn step(&mut self, w: u32) {
        let t = mul_wide(CHECKSUM_MULTIPLIER, self.x) + u64::from(self.c) + u64::from(w);
        self.x = t as u32;
        self.c = (t >> 32) as u32;
    }
}

/// `a * x` in 64 bits. ARMv6-M has no 32 x 32 -> 64 multiply, and LLVM calls the 64 x 64
/// `__aeabi_lmul` for it (about 60 instructions): four 16 x 16 products instead.
#[inline(always)]
fn mul_wide(a: u32, x: u32) -> u64 {
    if cfg!(tinyvae_no_umull) {
        mul_wide_halves(a, x)
    } else {
        u64::from(a) * u64::from(x)
    }
}

/// `a * x` in 64 bits from four 16 x 16 -> 32 products.
#[inline(always)]
pub(crate) fn mul_wide_halves(a: u32, x: u32) -> u64 {
    let (a0, a1, x0, x1) = (a & 0xFFFF, a >> 16, x & 0xFFFF, x >> 16);
    let (mid, mid_carry) = (a0 * x1).overflowing_add(a1 * x0);
    let (lo, lo_carry) = (a0 * x0).overflowing_add(mid << 16);
    let hi = a1 * x1 + (mid >> 16) + (u32::from(mid_carry) << 16) + u32::from(lo_carry);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The CRC-32/ISO-HDLC (the zlib, PNG and Ethernet CRC) of `bytes`, the checksum of format
/// versions 1 to 3: reflected polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF.
///
/// Four bits at a time from a 16-entry table (64 bytes of flash, where a byte-wise table
/// takes 1 KiB of a firmware's 32 KiB budget).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        crc = (crc >> 4) ^ CRC_NIBBLES[(crc & 15) as usize];
        crc = (crc >> 4) ^ CRC_NIBBLES[(crc & 15) as usize];
    }
    !crc
}

/// `CRC_NIBBLES[n]`: the CRC-32 register after shifting the nibble `n` out, four steps.
const CRC_NIBBLES: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut n = 0;
    while n < 16 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        t[n] = c;
        n += 1;
    }
    t
};

/// The checksum a blob of format `version` stores for `payload`: [`checksum`] from version
/// 4, [`crc32`] before.
pub fn payload_check(version: u16, payload: &[u8]) -> u32 {
    if version >= 4 {
        checksum(payload)
    } else {
        crc32(payload)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mul_wide_halves_is_the_product() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let edges = [0, 1, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, u32::MAX];
        for &a in &edges {
            for &x in &edges {
                assert_eq!(super::mul_wide_halves(a, x), u64::from(a) * u64::from(x));
            }
        }
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (a, x) = (s as u32, (s >> 32) as u32);
            assert_eq!(super::mul_wide_halves(a, x), u64::from(a) * u64::from(x));
        }
    }
}
