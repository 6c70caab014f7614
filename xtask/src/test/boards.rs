//! The real boards: the firmware with the trained model builds with each board's HAL and fits.

use anyhow::bail;

use crate::{elf, firmware, pipeline};

use super::Ctx;

/// The real boards' images, built with the trained model.
pub(super) fn boards(c: &mut Ctx) {
    // Real boards: the firmware with the trained model builds with each board's HAL and
    // defmt-rtt, and fits its flash and RAM; the RP2040 image starts with its bootloader.
    let trained = c.trained();
    let t = &mut c.t;
    if let Some(model_file) = &trained {
        for board in firmware::real_boards() {
            t.record(
                &format!(
                    "vae builds for {} ({}) and fits",
                    board.name, board.cpu
                ),
                pipeline::build_for_board(board, model_file).and_then(|(elf, f)| {
                    println!(
                        "  {}: flash {} of {} bytes, static RAM {} of {}",
                        board.name, f.flash, board.flash, f.ram, board.ram
                    );
                    if board.image_def {
                        // The boot ROM reads only the first 4 KiB of flash for it.
                        let block = elf::section(&elf, ".start_block")?;
                        let start = board.flash_origin;
                        match block {
                            Some((addr, len))
                                if u64::from(addr) >= start
                                    && u64::from(addr) + u64::from(len) <= start + 4096
                                    && len > 0 => {}
                            other => bail!(
                                "the {} image has no image definition in its first 4 KiB: {other:?}",
                                board.name
                            ),
                        }
                    }
                    if let Some((origin, len)) = board.boot2 {
                        let boot2 = elf::section(&elf, ".boot2")?;
                        if boot2.map(|(a, l)| (u64::from(a), u64::from(l))) != Some((origin, len)) {
                            bail!(
                                "the {} image has no {len}-byte .boot2 at {origin:#x}: {boot2:?}",
                                board.name
                            );
                        }
                    }
                    Ok(())
                }),
            );
        }
    }
}
