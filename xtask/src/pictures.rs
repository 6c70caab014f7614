//! PNG pictures of what a board printed: sample grids, grey or RGB.

use std::path::Path;

use anyhow::{bail, Result};
use tinyvae_format::Model;
use tinyvae_protocol::log::DeviceRun;

/// Writes the `sample` images of a run, four to a row, as a PNG (each `w` x `h`).
pub fn write_samples_png(path: &Path, dev: &DeviceRun, shape: Shape) -> Result<()> {
    let samples = dev.images.get("sample").cloned().unwrap_or_default();
    let rows: Vec<Vec<&[u8]>> = samples
        .chunks(4)
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    write_png(path, &rows, shape)
}

/// The class draws of a prior grouped by class (`class K`), one column per class and
/// [`CLASS_SAMPLES`](tinyvae_protocol::CLASS_SAMPLES) rows; `false` (nothing written) when
/// the device printed none.
pub fn write_classes_png(path: &Path, dev: &DeviceRun, shape: Shape) -> Result<bool> {
    let drawn = dev.images.get("class").cloned().unwrap_or_default();
    let per = tinyvae_protocol::CLASS_SAMPLES;
    if drawn.is_empty() {
        return Ok(false);
    }
    let classes = drawn.len() / per;
    let rows: Vec<Vec<&[u8]>> = (0..per)
        .map(|j| {
            (0..classes)
                .filter_map(|c| drawn.get(c * per + j).map(Vec::as_slice))
                .collect()
        })
        .collect();
    write_png(path, &rows, shape)?;
    Ok(true)
}

/// An image's shape: width, height, values per pixel (1 grey, 3 RGB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// Values per pixel: 1 (grey) or 3 (RGB, interleaved).
    pub c: usize,
}

impl Shape {
    /// The shape of a model's data items.
    pub fn of(m: &Model<'_>) -> Shape {
        Shape {
            w: usize::from(m.data.width),
            h: usize::from(m.data.height),
            c: usize::from(m.data.channels),
        }
    }
}

/// Writes rows of images (grey, or RGB when `shape.c` is 3) as one PNG: each row a list of
/// images, zoomed 3x on a dark grey ground.
pub fn write_png(path: &Path, rows: &[Vec<&[u8]>], shape: Shape) -> Result<()> {
    const ZOOM: usize = 3;
    const GAP: usize = 2;
    let Shape { w, h, c } = shape;
    if c != 1 && c != 3 {
        bail!(
            "{}: images of {c} channels; PNG pictures take 1 or 3",
            path.display()
        );
    }
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (pw, ph) = (
        cols * (w * ZOOM + GAP) + GAP,
        rows.len() * (h * ZOOM + GAP) + GAP,
    );
    let mut px = vec![48u8; pw * ph * c];
    for (r, row) in rows.iter().enumerate() {
        for (k, img) in row.iter().enumerate() {
            if img.len() != w * h * c {
                bail!(
                    "{}: an image of {} values, not {w}x{h}x{c}",
                    path.display(),
                    img.len()
                );
            }
            let (x0, y0) = (GAP + k * (w * ZOOM + GAP), GAP + r * (h * ZOOM + GAP));
            for y in 0..h * ZOOM {
                for x in 0..w * ZOOM {
                    let to = ((y0 + y) * pw + x0 + x) * c;
                    let from = ((y / ZOOM) * w + x / ZOOM) * c;
                    px[to..to + c].copy_from_slice(&img[from..from + c]);
                }
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("png.tmp");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut enc = png::Encoder::new(f, pw as u32, ph as u32);
        enc.set_color(if c == 3 {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(&px)?;
        wr.finish()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}
