//! PNG pictures: grids of images, scatter plots and line charts, written atomically.

use std::io::BufWriter;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::atomic_write;

/// An 8-bit RGB canvas.
#[derive(Clone, Debug)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// RGB triples, row-major.
    pub rgb: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with one colour.
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Self {
        Canvas {
            width,
            height,
            rgb: fill.repeat(width * height),
        }
    }

    /// Sets a pixel; coordinates outside the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = 3 * (y as usize * self.width + x as usize);
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Draws an image of `w x h` pixels of `channels` interleaved values (1: grey, 3: RGB)
    /// with its top-left corner at (x, y), each pixel `zoom` times.
    pub fn blit(
        &mut self,
        (x, y): (usize, usize),
        (w, h, channels): (usize, usize, usize),
        px: &[u8],
        zoom: usize,
    ) {
        for r in 0..h * zoom {
            for c in 0..w * zoom {
                let i = ((r / zoom) * w + c / zoom) * channels;
                let rgb = if channels >= 3 {
                    [px[i], px[i + 1], px[i + 2]]
                } else {
                    [px[i]; 3]
                };
                self.set((x + c) as i64, (y + r) as i64, rgb);
            }
        }
    }

    /// Draws a line with Bresenham's algorithm.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Writes the canvas as an RGB PNG, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        atomic_write(path, |f| {
            let mut enc =
                png::Encoder::new(BufWriter::new(f), self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header()?;
            w.write_image_data(&self.rgb)?;
            w.finish()?;
            Ok(())
        })
    }
}

/// A grid of images of `w x h` pixels of `channels` values (1: grey, 3: RGB), `cols` wide,
/// with a two-pixel gap, zoomed `zoom` times.
pub fn grid(
    images: &[&[u8]],
    (w, h, channels): (usize, usize, usize),
    cols: usize,
    zoom: usize,
) -> Canvas {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let (cw, ch) = (w * zoom + 2, h * zoom + 2);
    let mut c = Canvas::new(cols * cw + 2, rows * ch + 2, [40, 40, 48]);
    for (i, im) in images.iter().enumerate() {
        c.blit(
            (2 + (i % cols) * cw, 2 + (i / cols) * ch),
            (w, h, channels),
            im,
            zoom,
        );
    }
    c
}

/// Ten distinct colours for labels 0-9.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The largest PNG side the loaders decode: the size is read from the header first, so a
/// huge image is an error before anything is allocated for it.
pub const MAX_PNG_SIDE: u32 = 4096;

/// An 8-bit image read from a PNG: grey (1 channel) or RGB (3 channels, interleaved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Row-major pixels, channels interleaved.
    pub pixels: Vec<u8>,
}

impl Image {
    /// The same image with three channels (grey repeated).
    pub fn to_rgb(&self) -> Image {
        if self.channels == 3 {
            return self.clone();
        }
        Image {
            channels: 3,
            pixels: self.pixels.iter().flat_map(|&v| [v; 3]).collect(),
            ..*self
        }
    }
}

/// Reads a PNG: grey (with or without alpha) as 1 channel, colour as 3 (alpha dropped,
/// palettes expanded, 16-bit samples cut to 8).
pub fn read_png(path: &Path) -> Result<Image> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec
        .read_info()
        .with_context(|| format!("{}: not a PNG image", path.display()))?;
    let (hw, hh) = (reader.info().width, reader.info().height);
    if hw > MAX_PNG_SIDE || hh > MAX_PNG_SIDE {
        bail!(
            "{}: {hw}x{hh} pixels; images larger than {MAX_PNG_SIDE} on a side are not read",
            path.display()
        );
    }
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: corrupt PNG image", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (stride, channels) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        other => bail!("{}: unsupported PNG colour type {other:?}", path.display()),
    };
    let pixels = buf[..w * h * stride]
        .chunks_exact(stride)
        .flat_map(|p| p[..channels].iter().copied())
        .collect();
    Ok(Image {
        width: w,
        height: h,
        channels,
        pixels,
    })
}

/// A line chart of one or more series (e.g. loss curves), each in its own colour.
pub fn line_chart(series: &[(&str, Vec<f64>)], width: usize, height: usize) -> Canvas {
    let mut c = Canvas::new(width, height, [255, 255, 255]);
    let (m, w, h) = (30i64, width as i64, height as i64);
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    if all.is_empty() {
        return c;
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    c.line((m, h - m), (w - m, h - m), [0, 0, 0]);
    c.line((m, m), (m, h - m), [0, 0, 0]);
    for (k, (_, s)) in series.iter().enumerate() {
        let n = s.len().max(2) - 1;
        let pt = |i: usize, v: f64| {
            (
                m + (i as i64) * (w - 2 * m) / n as i64,
                h - m - ((v - lo) / span * (h - 2 * m) as f64) as i64,
            )
        };
        for i in 1..s.len() {
            c.line(pt(i - 1, s[i - 1]), pt(i, s[i]), PALETTE[k % 10]);
        }
    }
    c
}
