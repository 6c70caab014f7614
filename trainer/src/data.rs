//! Data sets: IDX files (MNIST, Fashion-MNIST and EMNIST layouts, gzip or raw) from a folder,
//! or a folder of PNG images (grey, or RGB when any image has colour). Every error names the
//! file and what is wrong with it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// One split of a data set: `n` images of `width * height * channels` u8 values, row-major,
/// channels interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Pixels, `n * pixels` of them.
    pub images: Vec<u8>,
    /// One label per image, when the data set has labels.
    pub labels: Option<Vec<u8>>,
    /// Number of images.
    pub n: usize,
}

impl Split {
    fn empty() -> Split {
        Split {
            images: Vec::new(),
            labels: None,
            n: 0,
        }
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize, pixels: usize) -> &[u8] {
        &self.images[i * pixels..(i + 1) * pixels]
    }
}

/// How an IDX file orders the pixels of an image. Nothing in the file says it, so it is the
/// user's word (`--emnist`), never guessed from a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxLayout {
    /// Row after row (MNIST, Fashion-MNIST).
    RowMajor,
    /// Column after column (EMNIST): transposed on loading.
    Transposed,
}

/// A data set with its train and test splits.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// A short name for logs and provenance.
    pub name: String,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Values per pixel: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
}

impl Dataset {
    /// Values per image: width x height x channels.
    pub fn pixels(&self) -> usize {
        self.width * self.height * self.channels
    }

    /// Loads a data set from a folder: IDX files if it has them, else PNG images. IDX
    /// images are read row-major, as MNIST and Fashion-MNIST store them.
    pub fn load(dir: &Path) -> Result<Dataset> {
        Dataset::load_with(dir, IdxLayout::RowMajor)
    }

    /// Loads a data set from a folder, IDX images in the given layout.
    pub fn load_with(dir: &Path, layout: IdxLayout) -> Result<Dataset> {
        if !dir.is_dir() {
            bail!("{}: not a folder", dir.display());
        }
        if find_idx(dir, "train", "images-idx3-ubyte")?.is_some() {
            load_idx(dir, layout)
        } else {
            load_png_folder(dir)
        }
    }

    /// Keeps the first `train` and `test` images of each split.
    pub fn truncate(&mut self, train: usize, test: usize) {
        let p = self.pixels();
        for (s, n) in [(&mut self.train, train), (&mut self.test, test)] {
            if n < s.n {
                s.n = n;
                s.images.truncate(n * p);
                if let Some(l) = &mut s.labels {
                    l.truncate(n);
                }
            }
        }
    }
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    gunzip_if_gz(raw, path)
}

/// `raw` gunzipped when it starts with the gzip magic (`path` names it in errors).
fn gunzip_if_gz(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt or truncated gzip data", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Finds `<prefix>...<stem>[.gz]` in `dir`, where prefix is "train" or "t10k"/"test".
fn find_idx(dir: &Path, split: &str, stem: &str) -> Result<Option<PathBuf>> {
    let prefixes: &[&str] = if split == "train" {
        &["train-"]
    } else {
        &["t10k-", "test-"]
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let base = name.strip_suffix(".gz").unwrap_or(name);
            base.ends_with(stem) && prefixes.iter().any(|pre| base.contains(pre))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX image file: magic 0x00000803, count, rows, cols, then the pixels.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    if bytes.len() < 16 {
        bail!(
            "{}: truncated IDX image file ({} bytes, the header alone is 16)",
            path.display(),
            bytes.len()
        );
    }
    let magic = be_u32(bytes, 0);
    if magic != 0x0000_0803 {
        bail!(
            "{}: not an IDX image file (magic {magic:#010x}, expected 0x00000803: unsigned bytes, 3 dimensions)",
            path.display()
        );
    }
    let (n, rows, cols) = (
        be_u32(bytes, 4) as usize,
        be_u32(bytes, 8) as usize,
        be_u32(bytes, 12) as usize,
    );
    if rows == 0 || cols == 0 {
        bail!(
            "{}: the header announces images of {rows}x{cols} pixels: no pixels to learn",
            path.display()
        );
    }
    let need = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .with_context(|| {
            format!(
                "{}: the header announces {n} images of {rows}x{cols}: more bytes than \
                 this machine can address",
                path.display()
            )
        })?;
    let body = &bytes[16..];
    if body.len() < need {
        bail!(
            "{}: truncated: the header announces {n} images of {rows}x{cols} ({need} bytes), the file holds {}",
            path.display(),
            body.len()
        );
    }
    if body.len() > need {
        bail!(
            "{}: {} bytes after the last image",
            path.display(),
            body.len() - need
        );
    }
    Ok((n, rows, cols, body.to_vec()))
}

/// Parses an IDX label file: magic 0x00000801, count, then the labels.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    if bytes.len() < 8 {
        bail!("{}: truncated IDX label file", path.display());
    }
    let magic = be_u32(bytes, 0);
    if magic != 0x0000_0801 {
        bail!(
            "{}: not an IDX label file (magic {magic:#010x}, expected 0x00000801)",
            path.display()
        );
    }
    let n = be_u32(bytes, 4) as usize;
    let body = &bytes[8..];
    if body.len() != n {
        bail!(
            "{}: the header announces {n} labels, the file holds {}",
            path.display(),
            body.len()
        );
    }
    Ok(body.to_vec())
}

fn load_split(dir: &Path, split: &str, layout: IdxLayout) -> Result<(usize, usize, Split)> {
    let img = find_idx(dir, split, "images-idx3-ubyte")?.with_context(|| {
        format!(
            "{}: no {split} image file (*{}images-idx3-ubyte[.gz])",
            dir.display(),
            if split == "train" { "train-" } else { "t10k-" }
        )
    })?;
    let labels = match find_idx(dir, split, "labels-idx1-ubyte")? {
        Some(lp) => Some((read_maybe_gz(&lp)?, lp)),
        None => None,
    };
    idx_split((read_maybe_gz(&img)?, img), labels, layout)
}

/// One split from its IDX files' bytes (gunzipped), each with the path that names it.
fn idx_split(
    (image_bytes, img): (Vec<u8>, PathBuf),
    labels: Option<(Vec<u8>, PathBuf)>,
    layout: IdxLayout,
) -> Result<(usize, usize, Split)> {
    let (n, rows, cols, mut images) = parse_idx_images(&image_bytes, &img)?;
    if n == 0 {
        bail!("{}: holds no image", img.display());
    }
    if layout == IdxLayout::Transposed {
        for im in images.chunks_exact_mut(rows * cols) {
            let t: Vec<u8> = (0..rows * cols)
                .map(|k| im[(k % cols) * rows + k / cols])
                .collect();
            im.copy_from_slice(&t);
        }
    }
    let labels = match labels {
        Some((bytes, lp)) => {
            let l = parse_idx_labels(&bytes, &lp)?;
            if l.len() != n {
                bail!(
                    "{} holds {} labels but {} holds {n} images",
                    lp.display(),
                    l.len(),
                    img.display()
                );
            }
            Some(l)
        }
        None => None,
    };
    Ok((cols, rows, Split { images, labels, n }))
}

fn load_idx(dir: &Path, layout: IdxLayout) -> Result<Dataset> {
    let (w, h, train) = load_split(dir, "train", layout)?;
    let (tw, th, test) = load_split(dir, "test", layout)?;
    if (w, h) != (tw, th) {
        bail!(
            "{}: train images are {w}x{h} but test images are {tw}x{th}",
            dir.display()
        );
    }
    Ok(Dataset {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "idx".into()),
        width: w,
        height: h,
        channels: 1,
        train,
        test,
    })
}

/// The PNG files directly in `dir`, in name order.
fn png_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    Ok(files)
}

/// The PNG files of `dir` with their labels: the images directly in it (no labels), or, when
/// it holds none and has subfolders of PNG images, each subfolder a class (labels 0, 1, ... in
/// the subfolders' name order), the files in (class, name) order.
fn labelled_png_files(dir: &Path) -> Result<(Vec<PathBuf>, Option<Vec<u8>>)> {
    let direct = png_files(dir)?;
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut classes = Vec::new();
    for d in subdirs {
        let files = png_files(&d)?;
        if !files.is_empty() {
            classes.push((d, files));
        }
    }
    match (direct.is_empty(), classes.is_empty()) {
        (_, true) => Ok((direct, None)),
        (true, false) => {
            if classes.len() > 256 {
                bail!(
                    "{}: {} subfolders of PNG images, one class each: at most 256",
                    dir.display(),
                    classes.len()
                );
            }
            let mut files = Vec::new();
            let mut labels = Vec::new();
            for (label, (_, f)) in classes.into_iter().enumerate() {
                labels.extend(std::iter::repeat_n(label as u8, f.len()));
                files.extend(f);
            }
            Ok((files, Some(labels)))
        }
        (false, false) => bail!(
            "{}: PNG images both directly in it and in subfolders ({}, ...): put every image \
             in a subfolder named for its class (labels), or all directly in the folder (none)",
            dir.display(),
            classes[0].0.display()
        ),
    }
}

/// A folder of 8-bit PNG images, all of one size: grey, or RGB when any pixel of any of them
/// has colour (grey images then repeat their value in the three channels; RGB images whose
/// pixels are all grey load as grey); every tenth image in name order is held out as the
/// test split. Images in subfolders instead are labelled by subfolder, one class each in the
/// subfolders' name order (what `trainer export --prior mixture --per-class` uses).
fn load_png_folder(dir: &Path) -> Result<Dataset> {
    let (files, labels) = labelled_png_files(dir)?;
    if files.is_empty() {
        bail!(
            "{}: no data: neither IDX files (train-images-idx3-ubyte[.gz], ...) nor PNG images",
            dir.display()
        );
    }
    if files.len() < 10 {
        bail!(
            "{}: needs at least 10 PNG images (one in ten is the test split), holds {}",
            dir.display(),
            files.len()
        );
    }
    let images = files
        .iter()
        .map(|f| crate::images::read_png(f))
        .collect::<Result<Vec<_>>>()?;
    let first = &images[0];
    for (img, f) in images.iter().zip(&files) {
        if (img.width, img.height) != (first.width, first.height) {
            bail!(
                "{}: {}x{}, but the folder's first image is {}x{}",
                f.display(),
                img.width,
                img.height,
                first.width,
                first.height
            );
        }
    }
    // RGB only when some pixel has colour: grey images saved as RGB stay one channel.
    let coloured = |i: &crate::images::Image| {
        i.channels == 3
            && i.pixels
                .chunks_exact(3)
                .any(|p| p[0] != p[1] || p[1] != p[2])
    };
    let channels = if images.iter().any(coloured) { 3 } else { 1 };
    let (mut train, mut test) = (Split::empty(), Split::empty());
    if labels.is_some() {
        train.labels = Some(Vec::new());
        test.labels = Some(Vec::new());
    }
    for (i, img) in images.iter().enumerate() {
        let split = if i % 10 == 9 { &mut test } else { &mut train };
        if let (Some(all), Some(l)) = (&labels, &mut split.labels) {
            l.push(all[i]);
        }
        match (channels, img.channels) {
            (3, 1) => split.images.extend(img.to_rgb().pixels),
            (1, 3) => split.images.extend(img.pixels.iter().step_by(3)),
            _ => split.images.extend_from_slice(&img.pixels),
        }
        split.n += 1;
    }
    Ok(Dataset {
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "png".into()),
        width: first.width,
        height: first.height,
        channels,
        train,
        test,
    })
}

/// The data set shipped with the repository: a small real MNIST subset (for the tests,
/// which run in the repository; the trainer itself reads the copy built into it,
/// [`Dataset::bundled`]).
pub fn bundled_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("data").join("mnist-subset"))
        .unwrap_or_default()
}

/// The bundled subset's files, built into the trainer: an installed trainer, or one in a
/// copied tree, needs no repository to find its default data.
const BUNDLED: [(&str, &[u8]); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        include_bytes!("../../data/mnist-subset/train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels-idx1-ubyte.gz",
        include_bytes!("../../data/mnist-subset/train-labels-idx1-ubyte.gz"),
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        include_bytes!("../../data/mnist-subset/t10k-images-idx3-ubyte.gz"),
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        include_bytes!("../../data/mnist-subset/t10k-labels-idx1-ubyte.gz"),
    ),
];

/// The name of the bundled data set (provenance, and runs' configurations before they
/// recorded a [`Source`]).
pub const BUNDLED_NAME: &str = "mnist-subset";

impl Dataset {
    /// The bundled MNIST subset (5,000 training and 1,000 test images), from the copy built
    /// into the trainer.
    pub fn bundled() -> Result<Dataset> {
        let file = |i: usize| -> Result<(Vec<u8>, PathBuf)> {
            let (name, bytes) = BUNDLED[i];
            let path = PathBuf::from(format!("(built in) {name}"));
            Ok((gunzip_if_gz(bytes.to_vec(), &path)?, path))
        };
        let (w, h, train) = idx_split(file(0)?, Some(file(1)?), IdxLayout::RowMajor)?;
        let (_, _, test) = idx_split(file(2)?, Some(file(3)?), IdxLayout::RowMajor)?;
        Ok(Dataset {
            name: BUNDLED_NAME.into(),
            width: w,
            height: h,
            channels: 1,
            train,
            test,
        })
    }
}

/// Where a run's data comes from, recorded in its `config.json` so that `export`, `eval`
/// and `pictures` calibrate and evaluate on the data it was trained on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The MNIST subset built into the trainer.
    Bundled,
    /// A folder of IDX files or PNG images, by its absolute path.
    Folder {
        /// The folder.
        path: PathBuf,
        /// IDX images stored column-major (`--emnist`).
        #[serde(default)]
        emnist: bool,
    },
}

impl Source {
    /// The source of `--data DIR` (made absolute), or the bundled subset without one.
    pub fn of(dir: Option<&Path>, layout: IdxLayout) -> Result<Source> {
        Ok(match dir {
            None => Source::Bundled,
            Some(d) => Source::Folder {
                path: std::path::absolute(d)
                    .with_context(|| format!("{}: cannot resolve", d.display()))?,
                emnist: layout == IdxLayout::Transposed,
            },
        })
    }

    /// Loads the data set.
    pub fn load(&self) -> Result<Dataset> {
        match self {
            Source::Bundled => Dataset::bundled(),
            Source::Folder { path, emnist } => {
                let layout = if *emnist {
                    IdxLayout::Transposed
                } else {
                    IdxLayout::RowMajor
                };
                Dataset::load_with(path, layout)
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bundled => write!(f, "the bundled {BUNDLED_NAME}"),
            Source::Folder { path, .. } => write!(f, "{}", path.display()),
        }
    }
}
