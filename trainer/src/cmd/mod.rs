//! The commands, one module each, and what they share: where the data is.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use tinyvae_trainer::data::{Dataset, IdxLayout, Source, BUNDLED_NAME};
use tinyvae_trainer::model::Net;
use tinyvae_trainer::train::{check_data_shape, load_checkpoint, net_from_checkpoint, Checkpoint};

pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod sample;
pub(crate) mod train;

/// `--emnist`, for every command that reads data.
pub(crate) static IDX_LAYOUT: std::sync::OnceLock<IdxLayout> = std::sync::OnceLock::new();

/// The source `--data DIR` names (with `--emnist`), or the bundled subset.
pub(crate) fn data_source(dir: Option<&Path>) -> Result<Source> {
    Source::of(dir, *IDX_LAYOUT.get_or_init(|| IdxLayout::RowMajor))
}

pub(crate) fn load_data(dir: Option<&Path>) -> Result<Dataset> {
    data_source(dir)?.load()
}

/// A checkpoint, its network, and the data it is evaluated on: `data`, or the data it was
/// trained on (its configuration says where), checked to have the network's image shape.
pub(crate) fn load_run(
    checkpoint: &Path,
    data: Option<&Path>,
) -> Result<(Checkpoint, Net, Dataset)> {
    let ck = load_checkpoint(checkpoint, &Device::Cpu)?;
    let net = net_from_checkpoint(&ck, &Device::Cpu)?;
    let source = match (data, &ck.config.data) {
        (Some(dir), _) => data_source(Some(dir))?,
        (None, Some(Source::Folder { path, .. })) if !path.is_dir() => bail!(
            "{} was trained on {}, which is not there any more: pass --data DIR (that data \
             set, or one with its {}x{}x{} images)",
            checkpoint.display(),
            path.display(),
            net.arch.width,
            net.arch.height,
            net.arch.channels
        ),
        (None, Some(s)) => s.clone(),
        // A run of an earlier version, which recorded only the data set's name.
        (None, None) if ck.config.dataset == BUNDLED_NAME => Source::Bundled,
        (None, None) => bail!(
            "{}'s configuration does not say where its data set ({}) is (a run of an \
             earlier version): pass --data DIR",
            checkpoint.display(),
            ck.config.dataset
        ),
    };
    let data = source.load()?;
    check_data_shape(&data, &net.arch)
        .with_context(|| format!("the data for {}", checkpoint.display()))?;
    Ok((ck, net, data))
}
