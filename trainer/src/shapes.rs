//! A data set that is not MNIST, made on the spot (`trainer shapes`): PNG images of any size,
//! grey or RGB, each a filled disc or square of random size, place and shade on a dark
//! ground. For trying the whole path (training, export, the chip) on other image sizes and
//! on colour, and for the tests that do.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::images::Canvas;
use crate::rng::Rng;

/// Writes `count` images of `width` x `height` (`rgb`: colour, else grey) into `dir`, as
/// `shape-NNNNN.png` (with `classes`, into the subfolders `disc/` and `square/`: a labelled
/// data set, one class per subfolder); deterministic in `seed`.
pub fn write(
    dir: &Path,
    width: usize,
    height: usize,
    rgb: bool,
    count: usize,
    seed: u64,
    classes: bool,
) -> Result<()> {
    if width < 4 || height < 4 || width > 256 || height > 256 {
        bail!("shapes: images of 4x4 to 256x256 pixels, not {width}x{height}");
    }
    if !(10..=100_000).contains(&count) {
        bail!("shapes: 10 to 100000 images (one in ten is the test split), not {count}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if classes {
        for sub in ["disc", "square"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    let mut rng = Rng::new(seed);
    let mut draw = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
    for i in 0..count {
        let mut c = Canvas::new(width, height, [0, 0, 0]);
        let side = width.min(height) as f64;
        let r = draw(0.2, 0.42) * side;
        let (cx, cy) = (draw(r, width as f64 - r), draw(r, height as f64 - r));
        let colour = if rgb {
            [
                draw(60.0, 255.0) as u8,
                draw(60.0, 255.0) as u8,
                draw(60.0, 255.0) as u8,
            ]
        } else {
            [draw(120.0, 255.0) as u8; 3]
        };
        let disc = i % 2 == 0;
        for y in 0..height {
            for x in 0..width {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let inside = if disc {
                    dx * dx + dy * dy <= r * r
                } else {
                    dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85
                };
                if inside {
                    c.set(x as i64, y as i64, colour);
                }
            }
        }
        let folder = match (classes, disc) {
            (false, _) => dir.to_path_buf(),
            (true, true) => dir.join("disc"),
            (true, false) => dir.join("square"),
        };
        c.save(&folder.join(format!("shape-{i:05}.png")))?;
    }
    Ok(())
}
