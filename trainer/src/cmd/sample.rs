//! `trainer sample`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use tinyvae_format::Model;
use tinyvae_trainer::images::grid;
use tinyvae_trainer::train::{load_checkpoint, net_from_checkpoint};
use tinyvae_trainer::{atomic_write, eval};

/// The most bytes of samples `trainer sample` makes at once.
pub(crate) const MAX_SAMPLE_BYTES: usize = 1 << 30;

/// An error unless `count` images of `pixels` values fit [`MAX_SAMPLE_BYTES`], naming the
/// value and the memory it would take.
pub(crate) fn check_sample_count(option: &str, count: usize, pixels: usize) -> Result<()> {
    match count.checked_mul(pixels) {
        Some(b) if b <= MAX_SAMPLE_BYTES && count > 0 => Ok(()),
        _ if count == 0 => bail!("{option} 0: no samples to make"),
        bytes => bail!(
            "{option} {count}: {count} images of {pixels} values would take {} of memory; at \
             most {} images of this model ({} MiB) at once",
            bytes.map_or(
                "more bytes than this machine can count".into(),
                |b| format!("{} MiB", b >> 20)
            ),
            MAX_SAMPLE_BYTES / pixels.max(1),
            MAX_SAMPLE_BYTES >> 20
        ),
    }
}

/// An error unless `t` is a temperature draws can be scaled by: finite and above 0.
pub(crate) fn check_temperature(t: f32) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        bail!("--temperature {t}: a finite number above 0 (1: the prior itself)");
    }
    Ok(())
}

pub(crate) fn cmd_sample(
    input: &Path,
    int8: bool,
    (count, seed, temperature): (usize, u64, f32),
    columns: Option<usize>,
    out: &Path,
    raw: bool,
) -> Result<()> {
    check_temperature(temperature)?;
    if int8 && temperature != 1.0 {
        bail!(
            "--temperature {temperature}: the int8 engine draws from its file's prior (export \
             with --prior-temperature)"
        );
    }
    if columns == Some(0) {
        bail!("--columns 0: at least one image a row");
    }
    let (shape, images) = if int8 {
        let blob =
            std::fs::read(input).with_context(|| format!("{}: cannot read", input.display()))?;
        let m = Model::from_bytes(&blob).with_context(|| format!("{}", input.display()))?;
        let d = &m.data;
        let shape = (
            usize::from(d.width),
            usize::from(d.height),
            usize::from(d.channels),
        );
        check_sample_count("-n", count, m.data.len())?;
        (shape, eval::int8_prior_samples(&blob, count, seed)?)
    } else {
        let ck = load_checkpoint(input, &Device::Cpu)?;
        let net = net_from_checkpoint(&ck, &Device::Cpu)?;
        let a = &net.arch;
        let shape = (a.width, a.height, a.channels);
        check_sample_count("-n", count, a.width * a.height * a.channels)?;
        (
            shape,
            eval::float_prior_samples(&net, count, seed, temperature)?,
        )
    };
    if raw {
        atomic_write(out, |mut f| {
            for img in &images {
                std::io::Write::write_all(&mut f, img)?;
            }
            Ok(())
        })?;
    } else {
        let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
        let cols = columns.unwrap_or((count as f64).sqrt().ceil() as usize);
        grid(&refs, shape, cols, 2).save(out)?;
    }
    println!(
        "wrote {} ({count} samples of {}x{}x{}{}{})",
        out.display(),
        shape.0,
        shape.1,
        shape.2,
        if int8 { ", int8 engine" } else { "" },
        if raw { ", raw bytes" } else { "" }
    );
    Ok(())
}
