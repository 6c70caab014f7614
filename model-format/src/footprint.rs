//! Where a model file's bytes go, by what they hold: what `trainer inspect` prints and a
//! host tool can ask of a model without reading its header by hand.

use crate::{header, Error, Model};

/// A model file's bytes by what they hold ([`Model::footprint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The file's format version (from its header).
    pub version: u16,
    /// The whole file.
    pub total: usize,
    /// Parameters: every layer's int8 weights and int32 biases (a transposed convolution's
    /// biases once per phase).
    pub parameters: usize,
    /// Bytes of int8 weights.
    pub weights: usize,
    /// Bytes of per-channel arrays: biases, multipliers, shifts, weight scales.
    pub per_channel: usize,
    /// Bytes of tables: the latent's sigma table and the pixel table.
    pub tables: usize,
    /// Bytes of golden vectors (a sampler vector's seed included).
    pub golden: usize,
    /// The rest: the header, the encoding's framing, the prior, the provenance.
    pub other: usize,
}

impl Model<'_> {
    /// Where the bytes of `blob`, the file this model was read from, go. An error when
    /// `blob`'s header does not check (not this model's file).
    pub fn footprint(&self, blob: &[u8]) -> Result<Footprint, Error> {
        let (version, _) = header(blob)?;
        let (mut parameters, mut weights, mut per_channel) = (0, 0, 0);
        for layer in self.encoder.layers.iter().chain(self.decoder.layers.iter()) {
            let l = layer.matrix();
            parameters += usize::from(l.in_dim) * usize::from(l.out_dim) + l.bias.len();
            weights += l.weights.as_bytes().len();
            per_channel += l.bias.as_bytes().len()
                + l.multiplier.as_bytes().len()
                + l.shift.as_bytes().len()
                + l.weight_scale.as_bytes().len();
        }
        let golden = self.golden.as_ref().map_or(0, |g| {
            let encoder = g.encoder.iter();
            let decoder = g.decoder.iter();
            encoder
                .map(|v| v.input.as_bytes().len() + v.expected.as_bytes().len())
                .sum::<usize>()
                + decoder
                    .map(|v| v.code.as_bytes().len() + v.expected.as_bytes().len())
                    .sum::<usize>()
                + g.sampler
                    .iter()
                    .map(|v| {
                        8 + v.eps.as_bytes().len()
                            + v.prior_code.as_bytes().len()
                            + v.prior_pixels.as_bytes().len()
                    })
                    .sum::<usize>()
        });
        let tables = self.latent.sigma.values.as_bytes().len() + self.pixel_table.as_bytes().len();
        let total = blob.len();
        Ok(Footprint {
            version,
            total,
            parameters,
            weights,
            per_channel,
            tables,
            golden,
            other: total.saturating_sub(weights + per_channel + tables + golden),
        })
    }
}
