//! Flash and RAM figures from a firmware ELF's section headers (ELF32, little-endian).

use std::path::Path;

use anyhow::{bail, Context, Result};

const SHT_PROGBITS: u32 = 1;
const SHT_NOBITS: u32 = 8;
const SHF_ALLOC: u32 = 2;
/// Where RAM starts on every board here.
const RAM_START: u32 = 0x2000_0000;

/// What a firmware image occupies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes of flash: code, read-only data (the model among it) and .data's initial values.
    pub flash: u64,
    /// Bytes of statically allocated RAM (.data, .bss, .uninit); the stack comes on top.
    pub ram: u64,
}

fn u16_at(b: &[u8], o: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(
        b.get(o..o + 2).context("ELF truncated")?.try_into()?,
    ))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(
        b.get(o..o + 4).context("ELF truncated")?.try_into()?,
    ))
}

/// Reads the footprint of an ELF32 image.
pub fn footprint(path: &Path) -> Result<Footprint> {
    let b = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if b.get(0..4) != Some(b"\x7fELF".as_slice()) || b.get(4) != Some(&1) || b.get(5) != Some(&1) {
        bail!("{}: not a little-endian ELF32 file", path.display());
    }
    let shoff = u32_at(&b, 0x20)? as usize;
    let shentsize = usize::from(u16_at(&b, 0x2E)?);
    let shnum = usize::from(u16_at(&b, 0x30)?);
    let mut f = Footprint::default();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let (ty, flags, addr, size) = (
            u32_at(&b, h + 4)?,
            u32_at(&b, h + 8)?,
            u32_at(&b, h + 12)?,
            u32_at(&b, h + 20)?,
        );
        if flags & SHF_ALLOC == 0 || size == 0 {
            continue;
        }
        let size = u64::from(size);
        match (ty, addr >= RAM_START) {
            // Code and constants in flash.
            (SHT_PROGBITS, false) => f.flash += size,
            // .data: in RAM, its initial values stored in flash.
            (SHT_PROGBITS, true) => {
                f.ram += size;
                f.flash += size;
            }
            (SHT_NOBITS, true) => f.ram += size,
            _ => {}
        }
    }
    Ok(f)
}

/// The SHA-256 of `bytes` in hex: what `cargo xtask flash` prints of the image it builds,
/// so that an image can be told apart from another (`sha256sum` gives the same).
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const SHT_SYMTAB: u32 = 2;

/// Function and object symbols of an ELF32 image with their sizes in bytes, from its symbol
/// table (symbols without a size left out).
pub fn sized_symbols(path: &Path) -> Result<Vec<(String, u64)>> {
    Ok(symbols(path)?
        .into_iter()
        .filter(|s| s.size > 0)
        .map(|s| (s.name, u64::from(s.size)))
        .collect())
}

/// The address of the symbol called `name` (Thumb bit included), if the image defines it.
pub fn symbol_address(path: &Path, name: &str) -> Result<Option<u32>> {
    Ok(symbols(path)?
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.address))
}

/// One entry of an ELF's symbol table.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// Its name, as the linker wrote it (mangled).
    pub name: String,
    /// Its value (for a Thumb function, the address with bit 0 set).
    pub address: u32,
    /// Its size in bytes (0 when the symbol has none).
    pub size: u32,
}

/// Every symbol of an ELF32 image, from its symbol table.
pub fn symbols(path: &Path) -> Result<Vec<Symbol>> {
    let b = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let shoff = u32_at(&b, 0x20)? as usize;
    let shentsize = usize::from(u16_at(&b, 0x2E)?);
    let shnum = usize::from(u16_at(&b, 0x30)?);
    let mut all = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        if u32_at(&b, h + 4)? != SHT_SYMTAB {
            continue;
        }
        let (off, size, link) = (
            u32_at(&b, h + 16)? as usize,
            u32_at(&b, h + 20)? as usize,
            u32_at(&b, h + 24)? as usize,
        );
        let sh = shoff + link * shentsize;
        let (str_off, str_size) = (u32_at(&b, sh + 16)? as usize, u32_at(&b, sh + 20)? as usize);
        let strings = b
            .get(str_off..str_off + str_size)
            .context("ELF truncated")?;
        for s in (off..off + size).step_by(16) {
            let n = u32_at(&b, s)? as usize;
            let rest = strings.get(n..).context("ELF truncated")?;
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            all.push(Symbol {
                name: String::from_utf8_lossy(&rest[..end]).into_owned(),
                address: u32_at(&b, s + 4)?,
                size: u32_at(&b, s + 8)?,
            });
        }
    }
    Ok(all)
}

/// The address and size of the section called `name`, if the ELF32 image has one.
pub fn section(path: &Path, name: &str) -> Result<Option<(u32, u32)>> {
    let b = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let shoff = u32_at(&b, 0x20)? as usize;
    let shentsize = usize::from(u16_at(&b, 0x2E)?);
    let shnum = usize::from(u16_at(&b, 0x30)?);
    let shstrndx = usize::from(u16_at(&b, 0x32)?);
    let names_off = u32_at(&b, shoff + shstrndx * shentsize + 16)? as usize;
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let n = names_off + u32_at(&b, h)? as usize;
        let rest = b.get(n..).context("ELF truncated")?;
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return Ok(Some((u32_at(&b, h + 12)?, u32_at(&b, h + 20)?)));
        }
    }
    Ok(None)
}
