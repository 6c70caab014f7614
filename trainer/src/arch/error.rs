//! What is wrong with an architecture, named by the option that asked for it.

/// A shape that cannot be trained, with what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchError {
    /// The latent size is 0.
    ZeroLatent,
    /// A conditional model (`--conditional`) that is not a VAE, or with fewer than two
    /// classes.
    Conditional {
        /// What was asked.
        kind: super::Kind,
        /// The classes.
        classes: usize,
    },
    /// The images have no pixels or no channels.
    EmptyImages {
        /// Width, height, channels.
        shape: (usize, usize, usize),
    },
    /// A hidden dense layer of width 0.
    ZeroHidden {
        /// 1-based position in `--hidden`.
        layer: usize,
    },
    /// A convolution stage with 0 channels, kernel or stride.
    ZeroConv {
        /// 1-based position in `--conv`.
        layer: usize,
        /// "channels", "kernel" or "stride".
        what: &'static str,
    },
    /// Padding of at least the kernel size: some outputs would see only padding.
    PaddingTooLarge {
        /// 1-based position in `--conv`.
        layer: usize,
        /// Its padding.
        padding: usize,
        /// Its kernel.
        kernel: usize,
    },
    /// A stride longer than the kernel: the decoder's transposed convolution would leave
    /// pixels that no input reaches.
    StrideAboveKernel {
        /// 1-based position in `--conv`.
        layer: usize,
        /// Its stride.
        stride: usize,
        /// Its kernel.
        kernel: usize,
    },
    /// A stride the model format does not take for the decoder's transposed convolution
    /// (at most `tinyvae_format::MAX_TRANSPOSED_STRIDE`).
    StrideTooLong {
        /// 1-based position in `--conv`.
        layer: usize,
        /// Its stride.
        stride: usize,
    },
    /// A kernel larger than the (padded) input it slides over.
    KernelLargerThanInput {
        /// 1-based position in `--conv`.
        layer: usize,
        /// Its kernel.
        kernel: usize,
        /// Its padding.
        padding: usize,
        /// The input it gets, width x height.
        input: (usize, usize),
        /// The image size, width x height.
        image: (usize, usize),
    },
    /// A size the model format (and so the exporter and the chip) does not take.
    FormatLimit {
        /// What, with the option, its value and the limit.
        what: String,
    },
    /// More values in one layer than anything here can index.
    TooLarge {
        /// What overflows.
        what: String,
    },
}

impl std::fmt::Display for ArchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchError::ZeroLatent => write!(f, "--latent must be at least 1"),
            ArchError::Conditional { kind, classes } => write!(
                f,
                "--conditional: a VAE with at least two classes (asked: {kind:?} with \
                 {classes} classes)"
            ),
            ArchError::EmptyImages { shape: (w, h, c) } => {
                write!(
                    f,
                    "the images are {w}x{h} with {c} channels: nothing to train on"
                )
            }
            ArchError::ZeroHidden { layer } => {
                write!(f, "--hidden: layer {layer} has width 0")
            }
            ArchError::ZeroConv { layer, what } => {
                write!(f, "--conv: layer {layer} has {what} 0")
            }
            ArchError::PaddingTooLarge {
                layer,
                padding,
                kernel,
            } => write!(
                f,
                "--conv: layer {layer} has padding {padding}, not smaller than its kernel {kernel}"
            ),
            ArchError::StrideAboveKernel {
                layer,
                stride,
                kernel,
            } => write!(
                f,
                "--conv: layer {layer} has stride {stride}, longer than its kernel {kernel}: the \
                 decoder's transposed convolution would leave pixels no input reaches"
            ),
            ArchError::StrideTooLong { layer, stride } => write!(
                f,
                "--conv: layer {layer} has stride {stride}; the model format takes transposed \
                 convolutions (the decoder's mirror of it) of stride at most {} (FORMAT.md)",
                tinyvae_format::MAX_TRANSPOSED_STRIDE
            ),
            ArchError::KernelLargerThanInput {
                layer,
                kernel,
                padding,
                input: (w, h),
                image: (iw, ih),
            } => {
                if *layer == 1 {
                    write!(
                        f,
                        "--conv: layer 1's kernel {kernel} (padding {padding}) is larger than \
                         the {iw}x{ih} images"
                    )
                } else {
                    write!(
                        f,
                        "--conv: layer {layer} gets a {w}x{h} input, smaller than its kernel \
                         {kernel} (padding {padding}): the {iw}x{ih} images are too small for \
                         the strides before it"
                    )
                }
            }
            ArchError::TooLarge { what } => write!(f, "{what}: too large"),
            ArchError::FormatLimit { what } => write!(
                f,
                "{what} (the model format's limit, FORMAT.md: checked before training so that \
                 the export cannot fail)"
            ),
        }
    }
}

impl std::error::Error for ArchError {}
