//! The writer (std only): validates, serializes, frames with the header and CRC.

use crate::{Error, Model, CRC, FORMAT_VERSION, HEADER_LEN, MAGIC};

impl Model<'_> {
    /// Validates the model and writes the complete blob: header, CRC and payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let payload = postcard::to_allocvec(self).map_err(|_| Error::Serialize)?;
        let len = u32::try_from(payload.len()).map_err(|_| Error::Serialize)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&CRC.checksum(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }
}
