//! Data loading: the bundled subset, and a clear error naming the file for each bad input.

mod common;

use std::io::Write;
use std::path::Path;

use tinyvae_trainer::data::{bundled_dir, read_maybe_gz, Dataset, IdxLayout};

fn tempdir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("data-{name}"))
}

/// Copies the bundled subset's files (gunzipped, so they can be damaged byte-wise).
fn copy_raw(to: &Path) {
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let raw = read_maybe_gz(&bundled_dir().join(format!("{f}.gz"))).unwrap();
        std::fs::write(to.join(f), raw).unwrap();
    }
}

fn err(dir: &Path) -> String {
    format!("{:#}", Dataset::load(dir).expect_err("must fail"))
}

#[test]
fn bundled_subset_loads() {
    let d = Dataset::load(&bundled_dir()).unwrap();
    assert_eq!((d.width, d.height), (28, 28));
    assert_eq!((d.train.n, d.test.n), (5000, 1000));
    assert_eq!(d.train.labels.as_ref().unwrap().len(), 5000);
    // Raw (not gzipped) files load the same.
    let dir = tempdir("raw");
    copy_raw(&dir);
    assert_eq!(Dataset::load(&dir).unwrap().train, d.train);
}

#[test]
fn wrong_magic_names_the_file() {
    let dir = tempdir("magic");
    copy_raw(&dir);
    let f = dir.join("train-images-idx3-ubyte");
    let mut b = std::fs::read(&f).unwrap();
    b[3] = 0x01;
    std::fs::write(&f, b).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("magic"),
        "{e}"
    );
}

#[test]
fn truncated_file_names_the_file() {
    let dir = tempdir("trunc");
    copy_raw(&dir);
    let f = dir.join("t10k-images-idx3-ubyte");
    let b = std::fs::read(&f).unwrap();
    std::fs::write(&f, &b[..b.len() - 100]).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    // A truncated gzip stream too.
    let dir = tempdir("truncgz");
    copy_raw(&dir);
    let gz = std::fs::read(bundled_dir().join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::remove_file(dir.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), &gz[..gz.len() / 2]).unwrap();
    let e = err(&dir);
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
}

#[test]
fn mismatched_label_count_names_both_files() {
    let dir = tempdir("labels");
    copy_raw(&dir);
    let f = dir.join("train-labels-idx1-ubyte");
    let mut b = std::fs::read(&f).unwrap();
    b.truncate(b.len() - 10);
    b[4..8].copy_from_slice(&4990u32.to_be_bytes());
    std::fs::write(&f, b).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("train-labels-idx1-ubyte") && e.contains("train-images-idx3-ubyte"),
        "{e}"
    );
}

#[test]
fn empty_or_missing_folder_is_a_clear_error() {
    let dir = tempdir("empty");
    let e = err(&dir);
    assert!(
        e.contains("no data") && e.contains(&dir.display().to_string()),
        "{e}"
    );
    let e = err(&dir.join("missing"));
    assert!(e.contains("not a folder"), "{e}");
    // A folder with training files but no test files.
    copy_raw(&dir);
    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let e = err(&dir);
    assert!(e.contains("no test image file"), "{e}");
}

#[test]
fn png_folder_loads_and_rejects_mixed_sizes() {
    let dir = tempdir("png");
    let d = Dataset::load(&bundled_dir()).unwrap();
    for i in 0..20 {
        let img = d.train.image(i, 784);
        let refs = [img];
        tinyvae_trainer::images::grid(&refs, (28, 28, 1), 1, 1)
            .save(&dir.join(format!("{i:03}.png")))
            .unwrap();
    }
    let p = Dataset::load(&dir).unwrap();
    // The grid adds a 2-pixel border, blue-grey: 28 + 2 + 2, three channels.
    assert_eq!((p.width, p.height, p.channels), (32, 32, 3));
    assert_eq!((p.train.n, p.test.n), (18, 2));
    let mut f = std::fs::File::create(dir.join("999.png")).unwrap();
    f.write_all(b"not a png").unwrap();
    let e = err(&dir);
    assert!(e.contains("999.png"), "{e}");
}

#[test]
fn colour_png_folders_load_as_rgb() {
    let dir = tempdir("png-rgb");
    for i in 0..10u8 {
        // 6x5 images: red rises left to right, green top to bottom, blue with the index.
        let mut c = tinyvae_trainer::images::Canvas::new(6, 5, [0, 0, 0]);
        for y in 0..5 {
            for x in 0..6 {
                c.set(x, y, [x as u8 * 40, y as u8 * 50, i * 20]);
            }
        }
        c.save(&dir.join(format!("{i:02}.png"))).unwrap();
    }
    let d = Dataset::load(&dir).unwrap();
    assert_eq!((d.width, d.height, d.channels), (6, 5, 3));
    assert_eq!((d.train.n, d.test.n), (9, 1));
    // Pixel (x 2, y 3) of the first image, channels interleaved.
    let img = d.train.image(0, d.pixels());
    assert_eq!(&img[(3 * 6 + 2) * 3..][..3], &[80, 150, 0]);
    // The test image is the tenth.
    assert_eq!(d.test.image(0, d.pixels())[2], 180);
    // RGB files whose pixels are all grey load as one channel.
    let grey = tempdir("png-grey-rgb");
    for i in 0..10u8 {
        let mut c = tinyvae_trainer::images::Canvas::new(4, 4, [i, i, i]);
        c.set(1, 1, [200, 200, 200]);
        c.save(&grey.join(format!("{i:02}.png"))).unwrap();
    }
    let d = Dataset::load(&grey).unwrap();
    assert_eq!(
        (d.channels, d.train.image(0, 16)[5], d.train.image(3, 16)[0]),
        (1, 200, 3)
    );
}

/// PNG images in subfolders: one class per subfolder, in the subfolders' name order, the
/// labels split with the images; images both directly in the folder and in subfolders are
/// refused, naming the folder.
#[test]
fn png_subfolders_are_classes() {
    let dir = tempdir("png-classes");
    for (class, shade) in [("circle", 40u8), ("bar", 200)] {
        let sub = dir.join(class);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..10u8 {
            let mut c = tinyvae_trainer::images::Canvas::new(4, 4, [shade, shade, shade]);
            c.set(0, 0, [i, i, i]);
            c.save(&sub.join(format!("{i:02}.png"))).unwrap();
        }
    }
    // A subfolder without images is no class.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let d = Dataset::load(&dir).unwrap();
    assert_eq!((d.train.n, d.test.n), (18, 2));
    // "bar" sorts before "circle": label 0 is the bright one.
    let (train, test) = (d.train.labels.unwrap(), d.test.labels.unwrap());
    assert_eq!(train.len(), 18);
    for (i, &l) in train.iter().enumerate() {
        let want = if l == 0 { 200 } else { 40 };
        assert_eq!(d.train.images[i * 16 + 5], want, "image {i}, label {l}");
    }
    assert_eq!(test, vec![0, 1]);
    // Images directly in the folder as well: refused.
    let mut c = tinyvae_trainer::images::Canvas::new(4, 4, [0, 0, 0]);
    c.set(1, 1, [9, 9, 9]);
    c.save(&dir.join("loose.png")).unwrap();
    let e = err(&dir);
    assert!(e.contains("subfolder") && e.contains("png-classes"), "{e}");
}

#[test]
fn images_of_zero_rows_or_columns_name_the_file() {
    for (at, what) in [(8, "rows"), (12, "columns")] {
        let dir = tempdir(&format!("zero-{what}"));
        copy_raw(&dir);
        let f = dir.join("t10k-images-idx3-ubyte");
        let mut b = std::fs::read(&f).unwrap();
        b[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
        b.truncate(16);
        std::fs::write(&f, b).unwrap();
        let e = err(&dir);
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("no pixels"),
            "{e}"
        );
        // Also with the transposed (EMNIST) layout, which used to divide by the image size.
        let e = format!(
            "{:#}",
            Dataset::load_with(&dir, IdxLayout::Transposed).unwrap_err()
        );
        assert!(e.contains("no pixels"), "{e}");
    }
}

#[test]
fn the_layout_comes_from_the_caller_never_from_the_path() {
    // Plain MNIST in a folder whose name says "emnist": read as it is stored.
    let dir = tempdir("emnist-named");
    copy_raw(&dir);
    let plain = Dataset::load(&bundled_dir()).unwrap();
    assert_eq!(Dataset::load(&dir).unwrap().train, plain.train);
    // Asked for, the transposed layout transposes every image.
    let t = Dataset::load_with(&dir, IdxLayout::Transposed).unwrap();
    let (a, b) = (plain.train.image(3, 784), t.train.image(3, 784));
    for y in 0..28 {
        for x in 0..28 {
            assert_eq!(a[x * 28 + y], b[y * 28 + x]);
        }
    }
}
