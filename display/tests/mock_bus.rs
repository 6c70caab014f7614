//! The bytes the OLED receives for known images, recorded on a mock I2C bus.

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use tinyvae_display::{show, Error, Frame, DEFAULT_ADDRESS, FRAME_BYTES, WIDTH};

/// An I2C bus that records every write, or refuses every transfer like a bus with no device.
#[derive(Default)]
struct MockBus {
    writes: Vec<(u8, Vec<u8>)>,
    absent: bool,
}

impl ErrorType for MockBus {
    type Error = ErrorKind;
}

impl I2c for MockBus {
    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        if self.absent {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        for op in ops {
            match op {
                Operation::Write(bytes) => self.writes.push((address, bytes.to_vec())),
                Operation::Read(_) => panic!("the SSD1306 driver never reads"),
            }
        }
        Ok(())
    }
}

/// Splits a recording into the command bytes and the display data, in order, checking the
/// SSD1306 control bytes: 0x00 before commands, 0x40 before data, and that no command follows
/// the data.
fn split(writes: &[(u8, Vec<u8>)]) -> (Vec<u8>, Vec<u8>) {
    let (mut commands, mut data) = (Vec::new(), Vec::new());
    for (address, bytes) in writes {
        assert_eq!(*address, DEFAULT_ADDRESS);
        match bytes.split_first() {
            Some((0x00, rest)) => {
                assert!(data.is_empty(), "a command was sent after the image data");
                commands.extend_from_slice(rest);
            }
            Some((0x40, rest)) => data.extend_from_slice(rest),
            other => panic!("unexpected control byte: {other:?}"),
        }
    }
    (commands, data)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn send(frame: &Frame) -> Vec<(u8, Vec<u8>)> {
    let (bus, r) = show(MockBus::default(), DEFAULT_ADDRESS, frame);
    r.unwrap();
    bus.writes
}

#[test]
fn a_white_digit_cell_lights_exactly_its_56x56_square() {
    // One all-white 28x28 image: scale 2 (56x56), centred in the first of two cells, so the
    // lit square is columns 8..64, rows 4..60.
    let white = [255u8; 28 * 28];
    let mut frame = Frame::new();
    assert_eq!(frame.grid([&white[..]], 28), 1);
    let (commands, data) = split(&send(&frame));
    assert_eq!(data.len(), FRAME_BYTES);
    for page in 0..8 {
        for x in 0..WIDTH {
            // Rows 4..60 by page: the low nibble of page 0 is rows 0..3 (dark), the high
            // nibble of page 7 is rows 60..63 (dark).
            let want = match (page, (8..64).contains(&x)) {
                (_, false) => 0x00,
                (0, true) => 0xF0,
                (7, true) => 0x0F,
                (_, true) => 0xFF,
            };
            assert_eq!(data[page * WIDTH + x], want, "page {page} column {x}");
        }
    }
    // Horizontal addressing over the whole panel, charge pump on, display on.
    assert!(contains(&commands, &[0x20, 0x00]), "{commands:02x?}");
    assert!(contains(&commands, &[0x21, 0, 127]), "{commands:02x?}");
    assert!(contains(&commands, &[0x22, 0, 7]), "{commands:02x?}");
    assert!(contains(&commands, &[0x8D, 0x14]), "{commands:02x?}");
    assert!(contains(&commands, &[0xA8, 63]), "{commands:02x?}");
    let on = commands
        .iter()
        .rposition(|&c| c == 0xAF)
        .expect("display on");
    let off = commands
        .iter()
        .position(|&c| c == 0xAE)
        .expect("display off");
    assert!(off < on);
}

#[test]
fn a_known_sample_reaches_the_bus_bit_for_bit() {
    // A 28x28 "digit": a vertical bar (columns 12..16, full grey) and a half-grey top bar.
    // The bar is drawn last: it crosses the grey rows.
    let mut img = [0u8; 28 * 28];
    for x in 4..24 {
        img[2 * 28 + x] = 128;
        img[3 * 28 + x] = 128;
    }
    for y in 0..28 {
        for x in 12..16 {
            img[y * 28 + x] = 255;
        }
    }
    let mut frame = Frame::new();
    frame.grid([&img[..], &img[..]], 28);
    let (_, data) = split(&send(&frame));
    assert_eq!(data, frame.as_bytes());
    let lit = |x: usize, y: usize| data[(y / 8) * WIDTH + x] & (1 << (y % 8)) != 0;
    for cell_left in [8, 64] {
        for y in 0..64usize {
            for x in 0..WIDTH {
                let inside = (cell_left..cell_left + 56).contains(&x) && (4..60).contains(&y);
                let (sx, sy) = ((x.wrapping_sub(cell_left)) / 2, (y.wrapping_sub(4)) / 2);
                if !inside {
                    if !(8..120).contains(&x) || !(4..60).contains(&y) {
                        assert!(!lit(x, y), "border pixel ({x},{y}) lit");
                    }
                    continue;
                }
                let bar = (12..16).contains(&sx);
                let grey = (2..4).contains(&sy) && (4..24).contains(&sx);
                if bar {
                    assert!(lit(x, y), "bar pixel ({x},{y}) dark");
                } else if !grey {
                    assert!(!lit(x, y), "background pixel ({x},{y}) lit");
                }
            }
        }
        // Grey 128 lights half of every 4x4 dither block: the bar's grey rows are 4 rows of
        // panel pixels (source rows 2..4 at scale 2), beside the vertical bar.
        let (y0, x0) = (4 + 2 * 2, cell_left + 4 * 2);
        let lit_in_block = (0..4)
            .flat_map(|dy| (0..4).map(move |dx| (x0 + dx, y0 + dy)))
            .filter(|&(x, y)| lit(x, y))
            .count();
        assert_eq!(lit_in_block, 8);
    }
}

#[test]
fn grey_levels_light_a_proportional_share_of_pixels() {
    for (level, want) in [(0u8, 0), (8, 1), (128, 8), (200, 13), (248, 16), (255, 16)] {
        let img = [level; 16 * 16];
        let mut frame = Frame::new();
        frame.draw_grey(&img, 16, 16, 0, 0, 1);
        let lit = (0..4)
            .flat_map(|y| (0..4).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.get(x, y))
            .count();
        assert_eq!(lit, want, "grey {level}");
    }
}

#[test]
fn images_that_do_not_fit_are_clipped_not_panicking() {
    let mut frame = Frame::new();
    let big = [255u8; 100 * 100];
    frame.draw_grey(&big, 100, 100, 100, 50, 3);
    frame.draw_grey(&[], 28, 28, 0, 0, 2);
    assert_eq!(frame.grid([&big[..]], 100), 0);
    assert_eq!(frame.grid([&big[..]], 0), 0);
    // Eight 28x28 samples: only the two that fit one row at scale 2 are drawn.
    let imgs = [[255u8; 28 * 28]; 8];
    assert_eq!(Frame::new().grid(imgs.iter().map(|i| &i[..]), 28), 2);
    // 16x16 images: scale 4, two cells of 64x64.
    assert_eq!(Frame::new().grid(imgs.iter().map(|i| &i[..256]), 16), 2);
    // 8x8 images: scale 8, two cells.
    assert_eq!(Frame::new().grid(imgs.iter().map(|i| &i[..64]), 8), 2);
    // 7x7 images: scale 9 (63), two cells.
    assert_eq!(Frame::new().grid(imgs.iter().map(|i| &i[..49]), 7), 2);
}

#[test]
fn a_missing_panel_is_a_bus_error_and_the_bus_comes_back() {
    let bus = MockBus {
        absent: true,
        ..MockBus::default()
    };
    let (bus, r) = show(bus, DEFAULT_ADDRESS, &Frame::new());
    assert_eq!(r, Err(Error::Bus));
    assert!(bus.absent && bus.writes.is_empty());
}
