//! Which kernels run a model, and why: what [`Engine::kernel`](crate::Engine::kernel) answers,
//! so that a firmware can say at boot whether it runs at full speed.

use tinyvae_format::{Model, WeightLayout};

/// The kernels that run a model's tiled layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Kernel {
    /// The DSP-extension kernels in assembly (`SXTB16`, `SMLAD`): Cortex-M4, M7, M33 and
    /// later cores with the extension, the model word-aligned and stored in 4 x 4 tiles.
    Dsp,
    /// The ARMv6-M kernel in assembly (a tile row per word load, `MULS`): Cortex-M0, M0+
    /// and ARMv8-M Baseline, the model word-aligned and stored in 4 x 4 tiles. Its int8
    /// layers run in it; the few-channel convolutions and int16 layers stay portable.
    ArmV6M,
    /// The portable Rust kernels, for the reason given: the same bits, more instructions.
    Portable(Fallback),
}

/// Why the portable kernels run a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Fallback {
    /// This build's target has no assembly kernel (Cortex-M3, or the host): the portable
    /// kernels are this target's fast path.
    NoDspExtension,
    /// The model stores no layer in 4 x 4 tiles (`--layout row-major` at export), the layout
    /// the assembly kernels read.
    RowMajorWeights,
    /// The model's bytes are not on a 4-byte boundary, accepted on purpose with
    /// [`Engine::new_unaligned`](crate::Engine::new_unaligned): 12 to 14 times the
    /// instructions of the DSP kernel (the demo's conv and dense decoders on the M4F).
    Misaligned {
        /// The model's address modulo 4.
        offset: u8,
    },
}

impl core::fmt::Display for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Kernel::Dsp => f.write_str("DSP-extension kernels (SMLAD)"),
            Kernel::ArmV6M => f.write_str("ARMv6-M assembly kernel (MULS)"),
            Kernel::Portable(Fallback::NoDspExtension) => {
                f.write_str("portable kernels: the target has no assembly kernel")
            }
            Kernel::Portable(Fallback::RowMajorWeights) => {
                f.write_str("portable kernels: the model stores no layer in 4x4 tiles")
            }
            Kernel::Portable(Fallback::Misaligned { offset }) => write!(
                f,
                "portable kernels: the model starts {offset} byte(s) past a 4-byte boundary"
            ),
        }
    }
}

/// The address modulo 4 of the model's tiled weights, when not 0 (the first tiled layer's:
/// validation holds every tiled layer to a multiple of 4 from the file's start, so all
/// share the file's misalignment).
pub(crate) fn misalignment(model: &Model<'_>) -> Option<u8> {
    for net in [&model.encoder, &model.decoder] {
        for l in net.layers.iter() {
            if l.matrix().layout == WeightLayout::Tiles4x4 {
                let offset = (l.packed_weights().as_ptr() as usize % 4) as u8;
                return (offset != 0).then_some(offset);
            }
        }
    }
    None
}

/// What a build's target has of the assembly kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Assembly {
    /// The DSP-extension kernels ([`Kernel::Dsp`]).
    Dsp,
    /// The ARMv6-M kernel ([`Kernel::ArmV6M`]).
    ArmV6M,
    /// None: the portable kernels.
    None,
}

impl Assembly {
    /// This build's.
    pub(crate) const THIS: Assembly = if crate::dense::SIMD {
        Assembly::Dsp
    } else if crate::dense::V6M {
        Assembly::ArmV6M
    } else {
        Assembly::None
    };
}

/// The kernels a build with the assembly kernels `asm` runs `model` with.
pub(crate) fn choose(model: &Model<'_>, asm: Assembly) -> Kernel {
    let tiled = [&model.encoder, &model.decoder].iter().any(|n| {
        n.layers
            .iter()
            .any(|l| l.matrix().layout == WeightLayout::Tiles4x4)
    });
    match (asm, tiled, misalignment(model)) {
        (Assembly::None, _, _) => Kernel::Portable(Fallback::NoDspExtension),
        (_, false, _) => Kernel::Portable(Fallback::RowMajorWeights),
        (_, true, Some(offset)) => Kernel::Portable(Fallback::Misaligned { offset }),
        (Assembly::Dsp, true, None) => Kernel::Dsp,
        (Assembly::ArmV6M, true, None) => Kernel::ArmV6M,
    }
}

#[cfg(test)]
mod tests {
    use tinyvae_format::owned::OwnedModel;
    use tinyvae_format::testkit::synthetic::SyntheticSpec;
    use tinyvae_format::{Model, WeightLayout};

    use super::{Assembly, Fallback, Kernel};
    use crate::{Engine, Error};

    /// A buffer holding `bytes` at `offset` bytes past a word boundary, and where they start.
    fn placed(bytes: &[u8], offset: usize) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; bytes.len() + 8];
        let at = buf.as_ptr().align_offset(4) + offset;
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        (buf, at)
    }

    fn model_bytes(layout: WeightLayout) -> Vec<u8> {
        OwnedModel::synthetic(&SyntheticSpec::default(), 3)
            .with_layout(layout)
            .to_bytes()
            .unwrap()
    }

    #[test]
    fn a_misaligned_model_is_refused_where_the_dsp_kernel_runs_and_named_by_the_fallback() {
        let bytes = model_bytes(WeightLayout::Tiles4x4);
        for offset in 0..4 {
            let (buf, at) = placed(&bytes, offset);
            let view = &buf[at..at + bytes.len()];
            let m = Model::from_bytes(view).unwrap();
            // Both assembly kernels load the tiles a word at a time.
            for (asm, fast) in [
                (Assembly::Dsp, Kernel::Dsp),
                (Assembly::ArmV6M, Kernel::ArmV6M),
            ] {
                let e = Engine::checked(&m, asm);
                if offset == 0 {
                    assert!(e.is_ok());
                    assert_eq!(super::choose(&m, asm), fast);
                } else {
                    let o = offset as u8;
                    assert_eq!(e.unwrap_err(), Error::Misaligned { offset: o });
                    let why = Fallback::Misaligned { offset: o };
                    assert_eq!(super::choose(&m, asm), Kernel::Portable(why));
                }
            }
            // Without an assembly kernel every placement is the target's fast path.
            assert!(Engine::checked(&m, Assembly::None).is_ok());
            assert_eq!(
                super::choose(&m, Assembly::None),
                Kernel::Portable(Fallback::NoDspExtension)
            );
            // The explicit fallback always takes it (this host has no DSP kernel).
            let e = Engine::new_unaligned(&m);
            assert_eq!(e.kernel(), Kernel::Portable(Fallback::NoDspExtension));
        }
        let rows = model_bytes(WeightLayout::RowMajor);
        let m = Model::from_bytes(&rows).unwrap();
        let why = Fallback::RowMajorWeights;
        assert_eq!(super::choose(&m, Assembly::Dsp), Kernel::Portable(why));
        assert_eq!(super::choose(&m, Assembly::ArmV6M), Kernel::Portable(why));
    }

    #[test]
    fn the_refusal_says_what_to_do() {
        let text = Error::Misaligned { offset: 2 }.to_string();
        for want in [
            "2 byte(s) past a 4-byte boundary",
            "include_model!",
            "new_unaligned",
        ] {
            assert!(text.contains(want), "{text}");
        }
    }
}
