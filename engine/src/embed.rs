//! Embedding a model in flash at an address the DSP kernel can use.
//!
//! The format places every tiled layer's weights at an offset from the start of the file that
//! is a multiple of 4 (FORMAT.md, section 3), so a model whose first byte is word-aligned has
//! word-aligned weights, which the DSP kernel loads four at a time. `include_bytes!` alone
//! promises an alignment of 1: whether a plain `static M: &[u8] = include_bytes!(..)` lands
//! on a word boundary is up to the linker. [`include_model!`] and [`Aligned`] make it so.

/// Places its contents on a 4-byte boundary: `Aligned(*include_bytes!("model.tvae"))`.
/// [`include_model!`](crate::include_model) is the one-line form.
#[repr(C, align(4))]
pub struct Aligned<T: ?Sized>(pub T);

impl<const N: usize> Aligned<[u8; N]> {
    /// The bytes, as a slice that starts on a 4-byte boundary.
    pub const fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// Embeds a model file in flash, word-aligned, as a `&'static [u8]`:
///
/// ```
/// static MODEL: &[u8] = tinyvae_engine::include_model!("../tests/data/tiny.tvae");
/// assert_eq!(MODEL.as_ptr() as usize % 4, 0);
/// # let model = tinyvae_engine::format::Model::from_bytes(MODEL).unwrap();
/// # tinyvae_engine::Engine::new(&model).unwrap();
/// ```
///
/// The path is relative to the file that calls the macro, as for `include_bytes!`.
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        static ALIGNED: &$crate::Aligned<[u8]> = &$crate::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}
