//! The shape of a model, checked before anything is trained: dense layers, or convolution
//! stages then dense layers, mirrored by the decoder. [`Arch::encoder_layers`] and
//! [`Arch::decoder_layers`] describe each network layer by layer, as the exporter walks it.

use serde::{Deserialize, Serialize};

use crate::ops::conv::ConvGeometry;

mod error;
mod presets;
pub use error::ArchError;
pub use presets::{preset, ArchFamily, Preset, PRESETS};

/// What is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Autoencoder: z = E(x), loss = reconstruction.
    Ae,
    /// Denoising autoencoder: z = E(x + noise), loss = reconstruction of the clean x.
    Dae,
    /// Variational autoencoder: q(z|x) = N(mu, sigma^2), loss = -ELBO (with beta on the KL).
    Vae,
}

impl Kind {
    /// The model-format kind.
    pub fn format(self) -> tinyvae_format::ModelKind {
        match self {
            Kind::Ae => tinyvae_format::ModelKind::Autoencoder,
            Kind::Dae => tinyvae_format::ModelKind::DenoisingAutoencoder,
            Kind::Vae => tinyvae_format::ModelKind::Vae,
        }
    }
}

/// The reconstruction term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Recon {
    /// Binary cross-entropy summed over pixels, computed from logits (a Bernoulli decoder).
    Bce,
    /// Squared error summed over pixels, of sigmoid(logits).
    Mse,
    /// Absolute error summed over pixels, of sigmoid(logits).
    L1,
}

/// One encoder stage: a Conv2d with `channels` outputs followed by ReLU. The decoder mirrors
/// it with a ConvTranspose2d of the same kernel, stride and padding back to the stage's
/// input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvStage {
    /// Output channels.
    pub channels: usize,
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl std::str::FromStr for ConvStage {
    type Err = String;

    /// `CHANNELS:KERNEL:STRIDE:PADDING`, e.g. `32:4:2:1`.
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<usize> = s
            .split(':')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!("{s:?}: expected CHANNELS:KERNEL:STRIDE:PADDING, e.g. 32:4:2:1")
            })?;
        match v[..] {
            [channels, kernel, stride, padding] => Ok(ConvStage {
                channels,
                kernel,
                stride,
                padding,
            }),
            _ => Err(format!(
                "{s:?}: expected four numbers CHANNELS:KERNEL:STRIDE:PADDING, e.g. 32:4:2:1"
            )),
        }
    }
}

/// The shape of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// What is trained.
    pub kind: Kind,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Values per pixel (1 grey, 3 RGB), interleaved.
    #[serde(default = "one")]
    pub channels: usize,
    /// Convolution stages of the encoder, before its dense layers (empty: a dense model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvStage>,
    /// Hidden widths of the encoder's dense layers; the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Latent dimensions.
    pub latent: usize,
    /// A conditional VAE's classes (0: none): the class, as one-hot values, is appended to
    /// the decoder's input (z) and to the encoder's first dense layer's (the image, or the
    /// last convolution's features), so that z need only hold what the class does not say
    /// (the style). Trained and scored on the host only: the model format has no class
    /// input (`trainer export` refuses such a model).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub classes: usize,
}

fn one() -> usize {
    1
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// What one layer computes (each layer but a network's last is followed by ReLU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `y = x W^T + b`, `x` flattened (height, width, channels) when it is an image.
    Dense {
        /// Inputs.
        inputs: usize,
        /// Outputs.
        outputs: usize,
    },
    /// A convolution with this geometry.
    Conv2d(ConvGeometry),
    /// The transposed convolution mirroring this geometry: from its output back to its
    /// input size.
    ConvTranspose2d(ConvGeometry),
}

/// One layer of a network, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// What it computes.
    pub kind: LayerKind,
    /// Followed by ReLU.
    pub relu: bool,
}

impl LayerKind {
    /// Input values per example.
    pub fn inputs(&self) -> usize {
        match self {
            LayerKind::Dense { inputs, .. } => *inputs,
            LayerKind::Conv2d(g) => g.in_len(),
            LayerKind::ConvTranspose2d(g) => g.out_len(),
        }
    }

    /// Output values per example.
    pub fn outputs(&self) -> usize {
        match self {
            LayerKind::Dense { outputs, .. } => *outputs,
            LayerKind::Conv2d(g) => g.out_len(),
            LayerKind::ConvTranspose2d(g) => g.in_len(),
        }
    }

    /// Output channels: one bias (and one requantization) each.
    pub fn output_channels(&self) -> usize {
        match self {
            LayerKind::Dense { outputs, .. } => *outputs,
            LayerKind::Conv2d(g) => g.out_c,
            LayerKind::ConvTranspose2d(g) => g.in_c,
        }
    }

    /// Weights and biases.
    pub fn parameters(&self) -> usize {
        match self {
            LayerKind::Dense { inputs, outputs } => (inputs + 1) * outputs,
            LayerKind::Conv2d(g) => (g.patch() + 1) * g.out_c,
            LayerKind::ConvTranspose2d(g) => g.patch() * g.out_c + g.in_c,
        }
    }
}

impl Arch {
    /// A dense model of grey images.
    pub fn dense(
        kind: Kind,
        width: usize,
        height: usize,
        hidden: Vec<usize>,
        latent: usize,
    ) -> Self {
        Arch {
            kind,
            width,
            height,
            channels: 1,
            conv: Vec::new(),
            hidden,
            latent,
            classes: 0,
        }
    }

    /// Values per image: width x height x channels.
    pub fn pixels(&self) -> usize {
        self.width * self.height * self.channels
    }

    /// Encoder outputs: mu and log-variance for a VAE, z otherwise.
    pub fn encoder_out(&self) -> usize {
        match self.kind {
            Kind::Vae => 2 * self.latent,
            _ => self.latent,
        }
    }

    /// Checks every size, before anything is allocated or trained.
    pub fn validate(&self) -> Result<(), ArchError> {
        if self.width == 0 || self.height == 0 || self.channels == 0 {
            return Err(ArchError::EmptyImages {
                shape: (self.width, self.height, self.channels),
            });
        }
        if self.latent == 0 {
            return Err(ArchError::ZeroLatent);
        }
        if self.classes > 0 && (self.kind != Kind::Vae || self.classes < 2) {
            return Err(ArchError::Conditional {
                kind: self.kind,
                classes: self.classes,
            });
        }
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(ArchError::ZeroHidden { layer: i + 1 });
        }
        self.conv_geometries()?;
        // Every layer's values, and its weight count, must be countable.
        let big = |what: String| ArchError::TooLarge { what };
        let pixels = self
            .width
            .checked_mul(self.height)
            .and_then(|v| v.checked_mul(self.channels))
            .ok_or_else(|| {
                big(format!(
                    "{}x{}x{} images",
                    self.width, self.height, self.channels
                ))
            })?;
        let mut widths = vec![pixels, self.encoder_out()];
        widths.extend(&self.hidden);
        for (i, w) in widths.windows(2).enumerate() {
            w[0].checked_mul(w[1])
                .ok_or_else(|| big(format!("dense layer {}", i + 1)))?;
        }
        self.check_format_limits(pixels)
    }

    /// What the exporter and the chip need, checked before anything trains (FORMAT.md,
    /// section 4): each the option that breaks it, its value and the limit.
    fn check_format_limits(&self, pixels: usize) -> Result<(), ArchError> {
        use tinyvae_format::{MAX_LATENT, MAX_LAYERS, MAX_WIDTH};
        let limit = |what: String| Err(ArchError::FormatLimit { what });
        let max = usize::from(MAX_WIDTH);
        if pixels > max {
            return limit(format!(
                "the {}x{}x{} images have {pixels} values; a model file takes at most {max} \
                 per image",
                self.width, self.height, self.channels
            ));
        }
        if self.latent > usize::from(MAX_LATENT) {
            return limit(format!("--latent {}: at most {MAX_LATENT}", self.latent));
        }
        if let Some((i, h)) = self.hidden.iter().enumerate().find(|(_, &h)| h > max) {
            return limit(format!(
                "--hidden: layer {} has width {h}; at most {max}",
                i + 1
            ));
        }
        for s in &self.conv {
            if s.channels > max || s.kernel > 255 || s.stride > 255 || s.padding > 255 {
                return limit(format!(
                    "--conv {}:{}:{}:{}: channels at most {max}, kernel, stride and padding at \
                     most 255",
                    s.channels, s.kernel, s.stride, s.padding
                ));
            }
        }
        let (enc, dec) = (self.encoder_layers(), self.decoder_layers());
        if enc.len().max(dec.len()) > MAX_LAYERS {
            return limit(format!(
                "{} convolution stages and {} hidden layers make {} encoder and {} decoder \
                 layers; a network has at most {MAX_LAYERS}",
                self.conv.len(),
                self.hidden.len(),
                enc.len(),
                dec.len()
            ));
        }
        for (net, layers) in [("encoder", &enc), ("decoder", &dec)] {
            for (i, l) in layers.iter().enumerate() {
                let k = &l.kind;
                let patch = match k {
                    LayerKind::Conv2d(g) | LayerKind::ConvTranspose2d(g) => g.patch(),
                    LayerKind::Dense { .. } => 0,
                };
                let worst = k.inputs().max(k.outputs()).max(patch);
                if worst > max {
                    return limit(format!(
                        "{net} layer {i} ({}) reads or writes {} values (a patch of {patch}); \
                         a layer takes at most {max}: fewer channels, a smaller kernel or a \
                         larger stride (--conv), or a narrower --hidden",
                        self.describe_layer(k),
                        k.inputs().max(k.outputs())
                    ));
                }
            }
        }
        Ok(())
    }

    /// A layer in words, for errors.
    fn describe_layer(&self, k: &LayerKind) -> String {
        match k {
            LayerKind::Dense { inputs, outputs } => format!("dense {inputs}->{outputs}"),
            LayerKind::Conv2d(g) => format!("conv, {} channels in, {} out", g.in_c, g.out_c),
            LayerKind::ConvTranspose2d(g) => {
                format!("transposed conv, {} channels in, {} out", g.out_c, g.in_c)
            }
        }
    }

    /// The geometry of each convolution stage, input first, checked.
    pub fn conv_geometries(&self) -> Result<Vec<ConvGeometry>, ArchError> {
        let (mut h, mut w, mut c) = (self.height, self.width, self.channels);
        let mut out = Vec::with_capacity(self.conv.len());
        for (i, s) in self.conv.iter().enumerate() {
            let layer = i + 1;
            for (what, v) in [
                ("channels", s.channels),
                ("kernel", s.kernel),
                ("stride", s.stride),
            ] {
                if v == 0 {
                    return Err(ArchError::ZeroConv { layer, what });
                }
            }
            if s.stride > s.kernel {
                return Err(ArchError::StrideAboveKernel {
                    layer,
                    stride: s.stride,
                    kernel: s.kernel,
                });
            }
            if s.stride > usize::from(tinyvae_format::MAX_TRANSPOSED_STRIDE) {
                return Err(ArchError::StrideTooLong {
                    layer,
                    stride: s.stride,
                });
            }
            if s.padding >= s.kernel {
                return Err(ArchError::PaddingTooLarge {
                    layer,
                    padding: s.padding,
                    kernel: s.kernel,
                });
            }
            let span = |v: usize| v.checked_add(2 * s.padding);
            if span(h).is_none_or(|v| v < s.kernel) || span(w).is_none_or(|v| v < s.kernel) {
                return Err(ArchError::KernelLargerThanInput {
                    layer,
                    kernel: s.kernel,
                    padding: s.padding,
                    input: (w, h),
                    image: (self.width, self.height),
                });
            }
            let g = ConvGeometry {
                in_h: h,
                in_w: w,
                in_c: c,
                out_c: s.channels,
                kernel: s.kernel,
                stride: s.stride,
                padding: s.padding,
            };
            let len = g
                .out_h()
                .checked_mul(g.out_w())
                .and_then(|v| v.checked_mul(g.out_c))
                .and_then(|v| v.checked_mul(g.patch().max(1)));
            if len.is_none() {
                return Err(ArchError::TooLarge {
                    what: format!("--conv layer {layer}"),
                });
            }
            (h, w, c) = (g.out_h(), g.out_w(), g.out_c);
            out.push(g);
        }
        Ok(out)
    }

    /// Values the encoder's dense part gets: the last stage's output, or the image.
    pub fn flat_features(&self) -> usize {
        match self.conv_geometries().ok().and_then(|g| g.last().copied()) {
            Some(g) => g.out_len(),
            None => self.pixels(),
        }
    }

    /// Layer widths of the encoder's dense part, input first (the features, and a
    /// conditional model's class one-hot after them).
    pub fn encoder_widths(&self) -> Vec<usize> {
        let mut v = vec![self.flat_features() + self.classes];
        v.extend(&self.hidden);
        v.push(self.encoder_out());
        v
    }

    /// Layer widths of the decoder's dense part, input first (z, and a conditional
    /// model's class one-hot after it).
    pub fn decoder_widths(&self) -> Vec<usize> {
        let mut v = vec![self.latent + self.classes];
        v.extend(self.hidden.iter().rev());
        v.push(self.flat_features());
        v
    }

    /// The encoder, layer by layer (call [`Arch::validate`] first).
    pub fn encoder_layers(&self) -> Vec<LayerSpec> {
        let mut kinds: Vec<LayerKind> = self
            .conv_geometries()
            .unwrap_or_default()
            .into_iter()
            .map(LayerKind::Conv2d)
            .collect();
        kinds.extend(self.encoder_widths().windows(2).map(|w| LayerKind::Dense {
            inputs: w[0],
            outputs: w[1],
        }));
        with_relu(kinds)
    }

    /// The decoder, layer by layer: dense layers, then the transposed convolutions
    /// mirroring the encoder's stages in reverse order (call [`Arch::validate`] first).
    pub fn decoder_layers(&self) -> Vec<LayerSpec> {
        let mut kinds: Vec<LayerKind> = self
            .decoder_widths()
            .windows(2)
            .map(|w| LayerKind::Dense {
                inputs: w[0],
                outputs: w[1],
            })
            .collect();
        kinds.extend(
            self.conv_geometries()
                .unwrap_or_default()
                .into_iter()
                .rev()
                .map(LayerKind::ConvTranspose2d),
        );
        with_relu(kinds)
    }

    /// "784-400-20" for a dense model; "28x28x1-c32k4s2p1-c64k4s2p1-20" for a conv one.
    pub fn name(&self) -> String {
        let mut parts = vec![if self.conv.is_empty() && self.channels == 1 {
            self.pixels().to_string()
        } else {
            format!("{}x{}x{}", self.width, self.height, self.channels)
        }];
        parts.extend(
            self.conv
                .iter()
                .map(|s| format!("c{}k{}s{}p{}", s.channels, s.kernel, s.stride, s.padding)),
        );
        parts.extend(self.hidden.iter().map(usize::to_string));
        parts.push(self.latent.to_string());
        if self.classes > 0 {
            parts.push(format!("given{}", self.classes));
        }
        parts.join("-")
    }

    /// Parameters of the decoder (the part a generating firmware carries).
    pub fn decoder_parameters(&self) -> usize {
        self.decoder_layers()
            .iter()
            .map(|l| l.kind.parameters())
            .sum()
    }

    /// Parameters of the whole model.
    pub fn parameters(&self) -> usize {
        self.encoder_layers()
            .iter()
            .chain(&self.decoder_layers())
            .map(|l| l.kind.parameters())
            .sum()
    }

    /// The largest sum of one decoder layer's input and output values: the activation
    /// memory an int8 decoder needs at once, in bytes at one byte per value.
    pub fn decoder_peak_activations(&self) -> usize {
        self.decoder_layers()
            .iter()
            .map(|l| l.kind.inputs() + l.kind.outputs())
            .max()
            .unwrap_or(0)
    }
}

fn with_relu(kinds: Vec<LayerKind>) -> Vec<LayerSpec> {
    let last = kinds.len().saturating_sub(1);
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| LayerSpec {
            kind,
            relu: i < last,
        })
        .collect()
}

#[cfg(test)]
mod tests;
