//! The encoding of versions 1 and 2: networks of dense layers without layer tags.

use serde::{Deserialize, Serialize};

use crate::*;

/// A network as versions 1 and 2 encode it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NetworkV2<'a> {
    /// Dense layers, first to last.
    #[serde(borrow)]
    pub layers: heapless::Vec<Dense<'a>, MAX_LAYERS>,
}

/// A model as versions 1 and 2 encode it: [`Model`] with [`NetworkV2`] networks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct ModelV2<'a> {
    pub kind: ModelKind,
    pub data: DataShape,
    #[serde(borrow)]
    pub latent: Latent<'a>,
    #[serde(borrow)]
    pub encoder: NetworkV2<'a>,
    #[serde(borrow)]
    pub decoder: NetworkV2<'a>,
    #[serde(borrow)]
    pub pixel_table: U8s<'a>,
    #[serde(borrow)]
    pub prior: Prior<'a>,
    #[serde(borrow)]
    pub provenance: Provenance<'a>,
    #[serde(borrow)]
    pub golden: Option<Golden<'a>>,
}

impl<'a> From<NetworkV2<'a>> for Network<'a> {
    fn from(n: NetworkV2<'a>) -> Self {
        // Pushes rather than collect(): both hold MAX_LAYERS, and heapless's collect
        // would bring a panic message into a firmware's flash.
        let mut layers = heapless::Vec::new();
        for d in n.layers {
            let _ = layers.push(Layer::Dense(d));
        }
        Network { layers }
    }
}

impl<'a> NetworkV2<'a> {
    /// The network, if every layer is dense.
    pub fn of(n: &Network<'a>) -> Option<Self> {
        let mut layers = heapless::Vec::new();
        for l in &n.layers {
            match l {
                Layer::Dense(d) => layers.push(*d).ok()?,
                _ => return None,
            }
        }
        Some(NetworkV2 { layers })
    }
}

impl<'a> From<ModelV2<'a>> for Model<'a> {
    fn from(m: ModelV2<'a>) -> Self {
        Model {
            kind: m.kind,
            data: m.data,
            latent: m.latent,
            encoder: m.encoder.into(),
            decoder: m.decoder.into(),
            pixel_table: m.pixel_table,
            prior: m.prior,
            provenance: m.provenance,
            golden: m.golden,
        }
    }
}

impl<'a> ModelV2<'a> {
    /// The model in the version-2 encoding, if it has dense layers only.
    pub fn of(m: &Model<'a>) -> Option<Self> {
        Some(ModelV2 {
            kind: m.kind,
            data: m.data,
            latent: m.latent,
            encoder: NetworkV2::of(&m.encoder)?,
            decoder: NetworkV2::of(&m.decoder)?,
            pixel_table: m.pixel_table,
            prior: m.prior.clone(),
            provenance: m.provenance,
            golden: m.golden.clone(),
        })
    }
}
