//! Folder-of-images datasets (`io::folder`): layouts, class order, preprocessing checked against
//! hand computations (constant colours, a black/white edge through the triangle filter and the
//! torchvision centre crop), a reference for the size arithmetic, errors, and `bbed infer` on a
//! folder end to end.

use breakingbed::io::folder::{crop_offset, load_image_folder, resized_size, FolderOptions};
use breakingbed::io::{detect_and_load, DatasetFormat};
use breakingbed::Error;
use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

use crate::common;
use common::bbed;

const SMALL: FolderOptions = FolderOptions {
    resize: 32,
    crop: 28,
    limit_per_class: None,
};

fn solid(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
    ImageBuffer::from_pixel(w, h, Rgb(c))
}

fn save(img: &RgbImage, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

fn message(e: Error) -> String {
    e.to_string()
}

/// Class `k` of `classes` gets two images of colour (k*50+10, 100 + i, 200 - k): one larger than
/// the resize (300x260: downscaled) and one smaller, portrait (64x90: upscaled).
fn colour_tree(split: &Path, classes: &[&str]) {
    for (k, c) in classes.iter().enumerate() {
        let k = k as u8;
        for (i, (w, h)) in [(300, 260), (64, 90)].into_iter().enumerate() {
            let col = [k * 50 + 10, 100 + i as u8, 200 - k];
            save(
                &solid(w, h, col),
                &split.join(c).join(format!("img{i}.png")),
            );
        }
    }
}

#[test]
fn constant_colours_survive_resize_and_crop_exactly() {
    // A normalised filter of a constant signal is that constant, so every pixel of every crop
    // must be exactly the source colour, whatever the scale factor.
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), &["a", "b", "c"]);
    let (train, test) = load_image_folder(dir.path(), &SMALL).unwrap();
    assert!(train.is_none());
    assert_eq!(test.images.shape(), &[6, 3, 28, 28]);
    assert_eq!(test.classes, 3);
    assert_eq!(test.labels, vec![0, 0, 1, 1, 2, 2]);
    for n in 0..6 {
        let (k, i) = ((n / 2) as u8, (n % 2) as u8);
        let want = [k * 50 + 10, 100 + i, 200 - k];
        for (c, &v) in want.iter().enumerate() {
            let plane = test.images.slice(ndarray::s![n, c, .., ..]);
            assert!(plane.iter().all(|&p| p == v), "image {n} channel {c}");
        }
    }
}

#[test]
fn classes_follow_sorted_names_and_files_sorted_names() {
    let dir = tempfile::tempdir().unwrap();
    // Created out of order; Unicode code point order puts "Zebra" before "ant" (as Python sorts).
    for (class, files) in [
        ("ant", vec!["b.png", "a.PNG", "c.jpeg"]),
        ("Zebra", vec!["x.jpg"]),
        // Sub-folders come after the class folder's own files (ImageFolder walks "bee" before
        // "bee/sub"), although "00" sorts before "01".
        ("bee", vec!["02.png", "sub/00.png", "10.png", "01.png"]),
    ] {
        for f in files {
            // Colour encodes (class, file) so the order can be read back from the pixels.
            let tag = format!("{class}/{f}");
            let col = [tag.len() as u8 * 7, f.as_bytes()[0], class.as_bytes()[0]];
            save(&solid(40, 40, col), &dir.path().join(class).join(f));
        }
    }
    // Not images / hidden: skipped.
    std::fs::write(dir.path().join("ant").join("notes.txt"), "x").unwrap();
    std::fs::create_dir_all(dir.path().join(".cache").join("junk")).unwrap();
    save(
        &solid(8, 8, [1, 2, 3]),
        &dir.path().join("ant").join(".hidden.png"),
    );
    let opts = FolderOptions {
        resize: 16,
        crop: 16,
        limit_per_class: None,
    };
    let (_, d) = load_image_folder(dir.path(), &opts).unwrap();
    assert_eq!(d.classes, 3);
    let order = [
        ("Zebra", "x.jpg", 0u16),
        ("ant", "a.PNG", 1),
        ("ant", "b.png", 1),
        ("ant", "c.jpeg", 1),
        ("bee", "01.png", 2),
        ("bee", "02.png", 2),
        ("bee", "10.png", 2),
        ("bee", "sub/00.png", 2),
    ];
    assert_eq!(d.labels, order.iter().map(|o| o.2).collect::<Vec<_>>());
    for (n, (class, f, _)) in order.iter().enumerate() {
        let tag = format!("{class}/{f}");
        let want = [tag.len() as u8 * 7, f.as_bytes()[0], class.as_bytes()[0]];
        for (c, &v) in want.iter().enumerate() {
            let p = d.images[[n, c, 8, 8]];
            // JPEG is lossy: allow a few levels there, PNG must be exact.
            let tol = if f.ends_with(".jpg") || f.ends_with(".jpeg") {
                4
            } else {
                0
            };
            assert!(p.abs_diff(v) <= tol, "{tag} channel {c}: {p} vs {v}");
        }
    }

    let limited = FolderOptions {
        limit_per_class: Some(2),
        ..opts
    };
    let (_, d) = load_image_folder(dir.path(), &limited).unwrap();
    assert_eq!(d.labels, vec![0, 1, 1, 2, 2]);
    // bee's first two by name are 01 and 02: the last image is 02.png (colour byte '0' = 48).
    assert_eq!(d.images[[4, 1, 0, 0]], b'0');
    assert_eq!(d.images[[4, 0, 0, 0]], ("bee/02.png".len() * 7) as u8);
}

#[test]
fn edge_lands_where_the_triangle_filter_and_centre_crop_put_it() {
    // 122x64, black for x < 60, white for x >= 60. Resize 32: the short side 64 -> 32, the long
    // side floor(32 * 122 / 64) = 61, so both axes scale by exactly 2 and the triangle filter
    // spans 4 source pixels. Output column j is centred at source x = 2j + 1 with weights
    // (0.25, 0.75, 0.75, 0.25) on pixels 2j-1 .. 2j+2:
    //   j = 28: pixels 55..58 all black -> 0
    //   j = 29: pixels 57..60, only 60 white (0.25 of 2)   -> 255 / 8     = 31.9 -> 32
    //   j = 30: pixels 59..62, only 59 black (0.25 of 2)   -> 255 * 7 / 8 = 223.1 -> 223
    //   j = 31: pixels 61..64 all white -> 255
    // Centre crop 28 of 61: round(33 / 2) = round(16.5) = 16 with Python's ties-to-even
    // (torchvision), so crop column c is resized column c + 16; rows: round(4 / 2) = 2.
    let dir = tempfile::tempdir().unwrap();
    let img = RgbImage::from_fn(122, 64, |x, _| {
        if x < 60 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        }
    });
    save(&img, &dir.path().join("edge").join("e.png"));
    let (_, d) = load_image_folder(dir.path(), &SMALL).unwrap();
    for c in 0..3 {
        for y in 0..28 {
            let row: Vec<u8> = (0..28).map(|x| d.images[[0, c, y, x]]).collect();
            assert!(row[..13].iter().all(|&p| p == 0), "row {y}: {row:?}");
            assert!(row[13].abs_diff(32) <= 1, "row {y}: {row:?}");
            assert!(row[14].abs_diff(223) <= 1, "row {y}: {row:?}");
            assert!(row[15..].iter().all(|&p| p == 255), "row {y}: {row:?}");
        }
    }
}

#[test]
fn grey_is_copied_to_three_channels_and_alpha_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let grey = GrayImage::from_fn(40, 50, |x, y| Luma([(x * 5 + y) as u8]));
    let p = dir.path().join("g").join("grey.png");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    grey.save(&p).unwrap();
    // Fully transparent pixels keep their colour: alpha is dropped, not composited.
    let rgba = RgbaImage::from_pixel(30, 30, Rgba([10, 20, 30, 0]));
    let p = dir.path().join("h").join("rgba.png");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    rgba.save(&p).unwrap();
    let (_, d) = load_image_folder(dir.path(), &SMALL).unwrap();
    let g = d.images.slice(ndarray::s![0, .., .., ..]);
    assert_eq!(
        g.slice(ndarray::s![0, .., ..]),
        g.slice(ndarray::s![1, .., ..])
    );
    assert_eq!(
        g.slice(ndarray::s![0, .., ..]),
        g.slice(ndarray::s![2, .., ..])
    );
    let (lo, hi) = g.iter().fold((255, 0), |(l, h), &p| (p.min(l), p.max(h)));
    assert!(hi - lo > 100, "the gradient should survive: {lo}..{hi}");
    for (c, v) in [10u8, 20, 30].into_iter().enumerate() {
        assert!(d
            .images
            .slice(ndarray::s![1, c, .., ..])
            .iter()
            .all(|&p| p == v));
    }
}

fn encoded(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

#[test]
fn truncated_or_garbage_images_are_errors_naming_the_file() {
    let img = RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 7]));
    for (name, bytes) in [
        ("half.png", {
            let b = encoded(&img, image::ImageFormat::Png);
            b[..b.len() / 2].to_vec()
        }),
        ("half.jpg", {
            let b = encoded(&img, image::ImageFormat::Jpeg);
            b[..b.len() / 2].to_vec()
        }),
        ("header.jpg", {
            let b = encoded(&img, image::ImageFormat::Jpeg);
            b[..40].to_vec()
        }),
        ("text.png", b"not an image at all".to_vec()),
        ("empty.jpeg", Vec::new()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        save(&img, &dir.path().join("ok").join("fine.png"));
        let bad = dir.path().join("ok").join(name);
        std::fs::write(&bad, bytes).unwrap();
        let e = load_image_folder(dir.path(), &SMALL).unwrap_err();
        assert!(matches!(e, Error::Input { .. }), "{name}: {e}");
        let m = message(e);
        assert!(m.contains(&bad.display().to_string()), "{name}: {m}");
    }
}

#[test]
fn train_and_val_classes_must_match() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(&dir.path().join("train"), &["cat", "dog"]);
    colour_tree(&dir.path().join("val"), &["cat", "emu"]);
    let m = message(load_image_folder(dir.path(), &SMALL).unwrap_err());
    assert!(m.contains("different class folders"), "{m}");
    for needle in ["train", "val", "dog", "emu"] {
        assert!(m.contains(needle), "{needle}: {m}");
    }
}

#[test]
fn train_and_val_layout_is_detected_and_loaded_with_the_default_sizes() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(&dir.path().join("train"), &["cat", "dog"]);
    colour_tree(&dir.path().join("val"), &["cat", "dog"]);
    let (format, train, test) = detect_and_load(dir.path()).unwrap();
    assert_eq!(format, DatasetFormat::ImageFolder);
    let train = train.expect("train split");
    // torchvision's eval transform: Resize(256), CenterCrop(224).
    assert_eq!(train.images.shape(), &[4, 3, 224, 224]);
    assert_eq!(test.images.shape(), &[4, 3, 224, 224]);
    assert_eq!(test.labels, vec![0, 0, 1, 1]);
    assert!(test.source.ends_with("val"), "{}", test.source);
    // val/ alone: test split only.
    std::fs::remove_dir_all(dir.path().join("train")).unwrap();
    let (format, train, _) = detect_and_load(dir.path()).unwrap();
    assert_eq!(format, DatasetFormat::ImageFolder);
    assert!(train.is_none());
}

#[test]
fn bad_layouts_and_options_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    colour_tree(dir.path(), &["a", "b"]);
    // Crop larger than the resized short side.
    let opts = FolderOptions {
        resize: 20,
        crop: 28,
        limit_per_class: None,
    };
    let m = message(load_image_folder(dir.path(), &opts).unwrap_err());
    assert!(m.starts_with("crop:") && m.contains("<= resize"), "{m}");
    let opts = FolderOptions {
        limit_per_class: Some(0),
        ..SMALL
    };
    let m = message(load_image_folder(dir.path(), &opts).unwrap_err());
    assert!(m.starts_with("limit_per_class:"), "{m}");

    // An empty class folder would shift every later class index: error naming it.
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    let m = message(detect_and_load(dir.path()).unwrap_err());
    let empty = dir.path().join("c").display().to_string();
    assert!(
        m.contains(&empty) && m.contains("no image"),
        "{m} / {empty}"
    );

    // train/ without val/.
    let dir = tempfile::tempdir().unwrap();
    colour_tree(&dir.path().join("train"), &["a"]);
    let m = message(load_image_folder(dir.path(), &SMALL).unwrap_err());
    assert!(m.contains("no val/"), "{m}");

    // No class folders at all.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("loose.png"), b"x").unwrap();
    let m = message(load_image_folder(dir.path(), &SMALL).unwrap_err());
    assert!(m.contains("no class folders"), "{m}");
    let m = message(detect_and_load(dir.path()).unwrap_err());
    assert!(
        m.contains("no dataset recognised") && m.contains("image folder"),
        "{m}"
    );
}

proptest! {
    /// Size arithmetic against torchvision's float formulas: the long side is
    /// `int(size * long / short)` and the crop corner `int(round((len - crop) / 2.0))`.
    #[test]
    fn sizes_match_torchvision_formulas(
        w in 1u32..5000, h in 1u32..5000, short in 1u32..600, crop_frac in 0.0f64..=1.0
    ) {
        let (nw, nh) = resized_size(w, h, short);
        let (s, l) = (w.min(h) as f64, w.max(h) as f64);
        let long = (short as f64 * l / s).trunc() as u32;
        if w <= h {
            prop_assert_eq!((nw, nh), (short, long));
        } else {
            prop_assert_eq!((nw, nh), (long, short));
        }
        let len = nw.min(nh);
        let crop = ((len as f64 * crop_frac) as u32).max(1);
        let want = ((len - crop) as f64 / 2.0).round_ties_even() as u32;
        prop_assert_eq!(crop_offset(len, crop), want);
    }
}

#[test]
fn infer_classifies_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("imgs");
    for (k, class) in ["n01", "n02"].iter().enumerate() {
        for i in 0..3u32 {
            let img = RgbImage::from_fn(32, 32, |x, y| {
                Rgb([
                    (x * 8) as u8,
                    (y * 8) as u8,
                    (k as u32 * 100 + i * 20) as u8,
                ])
            });
            save(&img, &root.join(class).join(format!("{i}.png")));
        }
    }
    let data = root.display().to_string();
    // The folder loader's default crop is 224, so the built-in takes a 3x224x224 input.
    let (code, out, err) = bbed(&[
        "infer",
        "--model",
        "resnet8",
        "--input",
        "3,224,224",
        "--data",
        &data,
        "--limit",
        "4",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 4);
    let labels: Vec<u64> = images
        .iter()
        .map(|im| im["label"].as_u64().unwrap())
        .collect();
    assert_eq!(labels, vec![0, 0, 0, 1]);
    // Without --input the shape mismatch is a clear error naming the folder's shape.
    let (code, _, err) = bbed(&["infer", "--model", "resnet8", "--data", &data]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("[3, 224, 224]"), "{err}");

    // The folder flags: 2 of the 3 images per class, resized to 40 and cropped to 32 (so the
    // 3x32x32 built-in takes them without --input).
    let (code, out, err) = bbed(&[
        "infer",
        "--model",
        "resnet8",
        "--input",
        "3,32,32",
        "--data",
        &data,
        "--limit-per-class",
        "2",
        "--resize",
        "40",
        "--crop",
        "32",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let labels: Vec<u64> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|im| im["label"].as_u64().unwrap())
        .collect();
    assert_eq!(labels, vec![0, 0, 1, 1]);
    // Bad values are errors naming the option; so are folder flags on other data formats.
    let (code, _, err) = bbed(&[
        "infer", "--model", "resnet8", "--data", &data, "--crop", "300",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("crop"), "{err}");
    let bin = dir.path().join("test_batch.bin");
    std::fs::write(&bin, vec![0u8; 3073]).unwrap();
    let bin = bin.display().to_string();
    let (code, _, err) = bbed(&[
        "infer", "--model", "resnet8", "--data", &bin, "--resize", "40",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("image folders only"), "{err}");
}
