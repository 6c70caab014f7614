//! Shows tinyvae's generated images on a 128x64 SSD1306-class OLED over I2C.
//!
//! The engine produces 8-bit grey images; the panel has one bit per pixel. [`Frame::grid`]
//! lays several images out in a grid, scales each by an integer factor and turns grey into
//! on/off pixels with a 4x4 ordered (Bayer) dither, so strokes keep their shading. The frame is
//! kept in the controller's own memory order (8 pages of 8 rows, one byte per column and page,
//! least significant bit at the top), so [`show`] sends it as one burst: initialisation in
//! horizontal addressing mode, then the 1024 bytes. The I2C protocol is the `ssd1306` driver
//! crate's; the bus is any embedded-hal 1.0 [`I2c`].
//!
//! No allocation, no panics on any input: images that do not fit are clipped.
#![no_std]
#![deny(missing_docs)]

use embedded_hal::i2c::I2c;
use ssd1306::{
    command::AddrMode, prelude::DisplayRotation, size::DisplaySize128x64, I2CDisplayInterface,
    Ssd1306,
};

/// Panel width in pixels.
pub const WIDTH: usize = 128;
/// Panel height in pixels.
pub const HEIGHT: usize = 64;
/// Bytes in a frame: one bit per pixel.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT / 8;
/// The usual 7-bit I2C address of these modules (0x3D is the alternative).
pub const DEFAULT_ADDRESS: u8 = 0x3C;

/// The 4x4 Bayer matrix; a grey value `v` lights a pixel when `v > 16 * m + 7`.
const BAYER4: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

/// The threshold a grey value must exceed to light the pixel at panel position (x, y).
pub fn threshold(x: usize, y: usize) -> u8 {
    BAYER4[y & 3][x & 3] * 16 + 7
}

/// A 128x64 monochrome frame in SSD1306 memory order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    bytes: [u8; FRAME_BYTES],
}

impl Default for Frame {
    fn default() -> Self {
        Self::new()
    }
}

impl Frame {
    /// A dark frame.
    pub const fn new() -> Self {
        Frame {
            bytes: [0; FRAME_BYTES],
        }
    }

    /// The bytes the controller receives: page by page, column by column.
    pub fn as_bytes(&self) -> &[u8; FRAME_BYTES] {
        &self.bytes
    }

    /// Lights or darkens one pixel; positions outside the panel are ignored.
    pub fn set(&mut self, x: usize, y: usize, on: bool) {
        if x >= WIDTH || y >= HEIGHT {
            return;
        }
        let byte = &mut self.bytes[(y / 8) * WIDTH + x];
        let bit = 1u8 << (y % 8);
        if on {
            *byte |= bit;
        } else {
            *byte &= !bit;
        }
    }

    /// Whether the pixel at (x, y) is lit (false outside the panel).
    pub fn get(&self, x: usize, y: usize) -> bool {
        x < WIDTH && y < HEIGHT && self.bytes[(y / 8) * WIDTH + x] & (1 << (y % 8)) != 0
    }

    /// Draws a `width` x `height` grey image (row-major, 0 = dark) with its top-left corner
    /// at (x0, y0), each source pixel becoming a `scale` x `scale` block, dithered.
    /// A short image leaves its missing pixels dark; whatever falls off the panel is clipped.
    pub fn draw_grey(
        &mut self,
        image: &[u8],
        width: usize,
        height: usize,
        x0: usize,
        y0: usize,
        scale: usize,
    ) {
        let scale = scale.max(1);
        for sy in 0..height {
            for sx in 0..width {
                let v = image.get(sy * width + sx).copied().unwrap_or(0);
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (x, y) = (x0 + sx * scale + dx, y0 + sy * scale + dy);
                        self.set(x, y, v > threshold(x, y));
                    }
                }
            }
        }
    }

    /// Lays `images` (each `side` x `side`) out in a centred grid: the largest integer scale
    /// at which one row of images fits the panel's height, as many columns as fit its width,
    /// and as many rows as fit. Returns how many images were drawn.
    ///
    /// ```
    /// use tinyvae_display::Frame;
    ///
    /// // Two 28 x 28 grey images, as the engine decodes them (0 dark, 255 lit).
    /// let (a, b) = ([0u8; 28 * 28], [255u8; 28 * 28]);
    /// let mut frame = Frame::new();
    /// // Scale 2 (56 rows fit the panel's 64), two columns of 56 in 128.
    /// assert_eq!(frame.grid([&a[..], &b[..]], 28), 2);
    /// // The second image is lit; the frame is ready for `show`.
    /// assert!(frame.get(70, 30) && !frame.get(20, 30));
    /// ```
    pub fn grid<'a>(&mut self, images: impl IntoIterator<Item = &'a [u8]>, side: usize) -> usize {
        if side == 0 || side > HEIGHT {
            return 0;
        }
        let scale = HEIGHT / side;
        let cell = side * scale;
        let (cols, rows) = (WIDTH / cell, HEIGHT / cell);
        let (left, top) = ((WIDTH - cols * cell) / 2, (HEIGHT - rows * cell) / 2);
        let mut drawn = 0;
        for (k, image) in images.into_iter().take(cols * rows).enumerate() {
            let (c, r) = (k % cols, k / cols);
            self.draw_grey(image, side, side, left + c * cell, top + r * cell, scale);
            drawn += 1;
        }
        drawn
    }
}

/// Why the panel could not be driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The I2C transfer failed: no device acknowledged the address, or the bus errored.
    Bus,
    /// The driver rejected the request (a data format or size it does not support).
    Driver,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Bus => "I2C transfer failed (is an SSD1306 connected at that address?)",
            Error::Driver => "the SSD1306 driver rejected the request",
        })
    }
}

fn driver_error(e: display_interface::DisplayError) -> Error {
    match e {
        display_interface::DisplayError::BusWriteError => Error::Bus,
        _ => Error::Driver,
    }
}

/// Initialises the panel at `address` (horizontal addressing, the full 128x64 area) and sends
/// `frame` to it. Returns the bus, so that other devices can share it.
pub fn show<I: I2c>(i2c: I, address: u8, frame: &Frame) -> (I, Result<(), Error>) {
    let interface = I2CDisplayInterface::new_custom_address(i2c, address);
    let mut panel = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0);
    let result = panel
        .init_with_addr_mode(AddrMode::Horizontal)
        .and_then(|_| panel.set_draw_area((0, 0), (WIDTH as u8, HEIGHT as u8)))
        .and_then(|_| panel.draw(frame.as_bytes()))
        .map_err(driver_error);
    (panel.release().release(), result)
}
