//! The writer (std only): validates, serializes, frames with the header and checksum.

use crate::{payload_check, Error, Model, FORMAT_VERSION, HEADER_LEN, MAGIC};

impl Model<'_> {
    /// Validates the model and writes the complete blob: header, checksum and payload, as format
    /// version [`FORMAT_VERSION`]. Fails with [`Error::MisalignedWeights`] when a tiled
    /// layer's lead bytes do not align its tiles (`owned::OwnedModel::to_bytes`
    /// chooses them).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let out = frame(FORMAT_VERSION, &self.payload()?);
        Model::from_bytes(&out)?;
        Ok(out)
    }

    /// The payload: the version-3 (and 4) encoding of the model.
    pub(crate) fn payload(&self) -> Result<Vec<u8>, Error> {
        postcard::to_allocvec(self).map_err(|_| Error::Serialize)
    }
}

/// The header (magic, `version`, no flags, length, checksum of `version`) followed by `payload`.
pub(crate) fn frame(version: u16, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload_check(version, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}
