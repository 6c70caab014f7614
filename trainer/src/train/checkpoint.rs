//! The run folder's checkpoint: written atomically and read back before it replaces the last one; a network rebuilt from it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use crate::model::Net;
use crate::rng::Rng;

use super::{Adam, Config, Progress};

/// Writes `path` through a temporary file and a rename, so that an interrupted write never
/// leaves a half-written file in its place.
pub fn atomic_write(path: &Path, write: impl FnOnce(std::fs::File) -> Result<()>) -> Result<()> {
    let mut name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?
        .to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let done = write(f).and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    Ok(())
}

/// The checkpoint file of a run folder.
pub fn checkpoint_path(run: &Path) -> PathBuf {
    run.join("checkpoint.safetensors")
}

/// Saves weights, Adam moments, the config and the progress in one safetensors file.
pub fn save_checkpoint(
    run: &Path,
    cfg: &Config,
    net: &Net,
    adam: &Adam,
    p: &Progress,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, v) in net.named_vars() {
        tensors.push((name, v.as_tensor().clone()));
    }
    for (i, (name, _)) in adam.vars.iter().enumerate() {
        let (m, v) = adam.moment_tensors(i)?;
        tensors.push((format!("adam.m.{name}"), m));
        tensors.push((format!("adam.v.{name}"), v));
    }
    let mut meta = HashMap::new();
    meta.insert("config".to_string(), serde_json::to_string(cfg)?);
    meta.insert("progress".to_string(), serde_json::to_string(p)?);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))?;
    // Never write a checkpoint that would not load (a NaN in the history is JSON null).
    let path = checkpoint_path(run);
    parse_checkpoint(&bytes, &path, &Device::Cpu)
        .context("the checkpoint about to be written does not read back; nothing was written")?;
    atomic_write(&path, |mut f| {
        f.write_all(&bytes)?;
        f.sync_all()?;
        Ok(())
    })
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The run's configuration.
    pub config: Config,
    /// Where the run stopped.
    pub progress: Progress,
    /// Every tensor by name.
    pub tensors: HashMap<String, Tensor>,
}

/// Loads a checkpoint file (or the checkpoint of a run folder).
pub fn load_checkpoint(path: &Path, dev: &Device) -> Result<Checkpoint> {
    let file = if path.is_dir() {
        checkpoint_path(path)
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
    parse_checkpoint(&bytes, &file, dev)
}

/// A checkpoint from its bytes; errors name `file`.
pub(crate) fn parse_checkpoint(bytes: &[u8], file: &Path, dev: &Device) -> Result<Checkpoint> {
    let f = file.display();
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .with_context(|| format!("{f}: not a safetensors checkpoint"))?;
    let meta = meta
        .metadata()
        .clone()
        .with_context(|| format!("{f}: checkpoint without metadata"))?;
    let field = |name: &str| {
        meta.get(name)
            .with_context(|| format!("{f}: no {name} in the checkpoint"))
    };
    let config: Config = serde_json::from_str(field("config")?)
        .with_context(|| format!("{f}: corrupt run configuration in the checkpoint"))?;
    // The stored options, named as the file's (not the command line's).
    config.validate().with_context(|| {
        format!(
            "{f}: the run configuration stored in the checkpoint is not valid (damaged, or \
                 written by another version)"
        )
    })?;
    let progress: Progress = serde_json::from_str(field("progress")?)
        .with_context(|| format!("{f}: corrupt progress record in the checkpoint"))?;
    let tensors = candle_core::safetensors::load_buffer(bytes, dev)
        .with_context(|| format!("{f}: corrupt tensors"))?;
    Ok(Checkpoint {
        config,
        progress,
        tensors,
    })
}

/// Rebuilds the model of a checkpoint: every tensor of the shape its layer needs (so the
/// layers chain), every weight finite.
pub fn net_from_checkpoint(ck: &Checkpoint, dev: &Device) -> Result<Net> {
    let net = Net::new(ck.config.arch.clone(), &mut Rng::new(0), dev)?;
    for (name, var) in net.named_vars() {
        let t = ck
            .tensors
            .get(&name)
            .with_context(|| format!("checkpoint lacks {name}"))?;
        if t.dims() != var.dims() {
            bail!(
                "checkpoint: {name} is {:?}, but its layer in {} needs {:?}",
                t.dims(),
                ck.config.arch.name(),
                var.dims()
            );
        }
        let values = crate::model::to_vec_f32(t)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "checkpoint: {name} holds a non-finite value ({}) at index {i}: the run diverged \
                 before this checkpoint was written",
                values[i]
            );
        }
        var.set(t)?;
    }
    Ok(net)
}
