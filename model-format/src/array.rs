//! Borrowed, unaligned little-endian arrays.
//!
//! postcard stores a byte string as a varint length and the bytes, at whatever offset the
//! encoding reaches, so wider elements cannot be borrowed as `&[i32]` (they may be unaligned).
//! They are kept as bytes and decoded element by element through accessors: nothing is copied
//! into RAM.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// An element type stored little-endian in a [`LeArray`].
pub trait LeElem: Copy + 'static {
    /// Bytes per element.
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! le_elem {
    ($($t:ty),*) => {$(
        impl LeElem for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            #[inline(always)]
            fn from_le(bytes: &[u8]) -> Self {
                // A fixed-size first chunk: one (unaligned) load, no length panic (its
                // message formatting would cost the firmware a kilobyte) and no call to
                // memcpy, which a copy of min(SIZE, len) bytes becomes. Callers pass exactly
                // SIZE bytes; fewer would read as 0.
                match bytes.first_chunk() {
                    Some(a) => <$t>::from_le_bytes(*a),
                    None => 0 as $t,
                }
            }
        }
    )*};
}
le_elem!(u8, i8, i16, u16, i32, u32, f32);

/// A borrowed array of `T`, stored as little-endian bytes of any alignment.
pub struct LeArray<'a, T: LeElem> {
    bytes: &'a [u8],
    _t: PhantomData<T>,
}

impl<T: LeElem> Clone for LeArray<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: LeElem> Copy for LeArray<'_, T> {}

impl<T: LeElem + PartialEq> PartialEq for LeArray<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T: LeElem + fmt::Debug> fmt::Debug for LeArray<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for v in self.iter().take(8) {
            l.entry(&v);
        }
        if self.len() > 8 {
            l.entry(&format_args!("... ({} in all)", self.len()));
        }
        l.finish()
    }
}

impl<'a, T: LeElem> LeArray<'a, T> {
    /// Views `bytes` as an array of `T`. Returns `None` when the length is not a whole
    /// number of elements.
    pub fn from_bytes(bytes: &'a [u8]) -> Option<Self> {
        bytes.len().is_multiple_of(T::SIZE).then_some(Self {
            bytes,
            _t: PhantomData,
        })
    }

    /// An empty array.
    pub const fn empty() -> Self {
        Self {
            bytes: &[],
            _t: PhantomData,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len() / T::SIZE
    }

    /// True when the array holds no element.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The element at `i`, or `None` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        let start = i.checked_mul(T::SIZE)?;
        self.bytes
            .get(start..start.checked_add(T::SIZE)?)
            .map(T::from_le)
    }

    /// The elements in order.
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = T> + Clone + 'a {
        self.bytes.chunks_exact(T::SIZE).map(T::from_le)
    }

    /// Elements `start..start + len`, or `None` past the end.
    pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
        let a = start.checked_mul(T::SIZE)?;
        let b = a.checked_add(len.checked_mul(T::SIZE)?)?;
        Some(Self {
            bytes: self.bytes.get(a..b)?,
            _t: PhantomData,
        })
    }

    /// The raw little-endian bytes.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a> LeArray<'a, u8> {
    /// The bytes as a slice (u8 needs no decoding).
    #[inline]
    pub fn as_slice(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<T: LeElem> Serialize for LeArray<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.bytes)
    }
}

impl<'de: 'a, 'a, T: LeElem> Deserialize<'de> for LeArray<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: LeElem> Visitor<'de> for V<'a, T> {
            type Value = LeArray<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("borrowed little-endian bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                LeArray::from_bytes(v).ok_or_else(|| E::custom("array length"))
            }
        }
        d.deserialize_bytes(V::<'a, T>(PhantomData))
    }
}

/// Borrowed bytes that are int8 values (weights, latent codes).
pub type I8s<'a> = LeArray<'a, i8>;
/// Borrowed bytes that are u8 values (pixels, tables).
pub type U8s<'a> = LeArray<'a, u8>;
/// Borrowed little-endian int16 values.
pub type I16s<'a> = LeArray<'a, i16>;
/// Little-endian u16 array.
pub type U16s<'a> = LeArray<'a, u16>;
/// Borrowed little-endian int32 values.
pub type I32s<'a> = LeArray<'a, i32>;
/// Borrowed little-endian uint32 values.
pub type U32s<'a> = LeArray<'a, u32>;
/// Borrowed little-endian f32 values (host-side metadata only).
pub type F32s<'a> = LeArray<'a, f32>;

impl<'a> I8s<'a> {
    /// The int8 values, borrowed in place: `i8` and `u8` have the same size and alignment,
    /// so this is a reinterpretation with no copy.
    #[inline]
    pub fn as_i8_slice(&self) -> &'a [i8] {
        bytes_as_i8(self.bytes)
    }
}

/// Reinterprets bytes as int8 values without copying.
#[inline]
pub fn bytes_as_i8(b: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have identical size (1) and alignment (1), and every bit pattern is a
    // valid i8; the returned slice covers exactly the same memory with the same lifetime.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}

/// Reinterprets bytes as int8 values to write, without copying.
#[inline]
pub fn bytes_as_i8_mut(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: as for `bytes_as_i8`; the one mutable borrow moves into the returned slice.
    unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i8>(), b.len()) }
}
