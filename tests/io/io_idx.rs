//! IDX (MNIST family): hand-built files, round trips plain and gzipped, malformed files, and the
//! real Fashion-MNIST files from the Debian package `dataset-fashion-mnist`.

use breakingbed::io::idx::{
    idx_bytes, load_idx_pair, load_mnist_dir, parse_idx, read_idx, write_idx, FASHION_MNIST_DIR,
};
use breakingbed::io::{detect_and_load, load_dataset, DatasetFormat};
use breakingbed::Error;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::Path;

fn input_message(e: Error) -> String {
    match e {
        Error::Input { .. } => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// Two 2x3 images with pixels 1..=12, written byte by byte from the IDX description.
const IMAGES: [u8; 28] = [
    0x00, 0x00, 0x08, 0x03, // magic: ubyte, 3 dims
    0x00, 0x00, 0x00, 0x02, // N = 2
    0x00, 0x00, 0x00, 0x02, // H = 2
    0x00, 0x00, 0x00, 0x03, // W = 3
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
];
const LABELS: [u8; 10] = [0x00, 0x00, 0x08, 0x01, 0x00, 0x00, 0x00, 0x02, 3, 9];

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn hand_made_files_decode_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
        let enc = |b: &[u8]| if gzip { gz(b) } else { b.to_vec() };
        std::fs::write(&ip, enc(&IMAGES)).unwrap();
        std::fs::write(&lp, enc(&LABELS)).unwrap();
        let raw = read_idx(&ip).unwrap();
        assert_eq!(raw.dims, vec![2, 2, 3]);
        let d = load_idx_pair(&ip, &lp, 10).unwrap();
        assert_eq!(d.images.shape(), &[2, 1, 2, 3]);
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.images[[0, 0, 0, 0]], 1);
        assert_eq!(
            d.images[[0, 0, 1, 2]],
            6,
            "row-major: row 1, col 2 of image 0"
        );
        assert_eq!(d.images[[1, 0, 0, 1]], 8);
        assert_eq!(d.images[[1, 0, 1, 2]], 12);
        // Writing the same data reproduces the hand-made header and body.
        assert_eq!(idx_bytes(&[2, 2, 3], &raw.data).unwrap(), IMAGES.to_vec());
    }
}

#[test]
fn writer_reader_round_trip_plain_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..5 * 7 * 4).map(|i| (i * 37 % 256) as u8).collect();
    for gzip in [false, true] {
        let p = dir.path().join(format!("x{gzip}"));
        write_idx(&p, &[5, 7, 4], &data, gzip).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.starts_with(&[0x1f, 0x8b]), gzip);
        let back = read_idx(&p).unwrap();
        assert_eq!(back.dims, vec![5, 7, 4]);
        assert_eq!(back.data, data);
    }
    assert!(write_idx(dir.path().join("bad"), &[2, 2], &[1, 2, 3], false).is_err());
}

#[test]
fn malformed_headers_and_bodies() {
    let p = Path::new("fake/train-images-idx3-ubyte");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong magic",
            [&[0x01u8, 0x00, 0x08, 0x03][..], &IMAGES[4..]].concat(),
            "bad magic number 01 00 08 03",
        ),
        (
            "float dtype",
            [&[0u8, 0, 0x0D, 3][..], &IMAGES[4..]].concat(),
            "element type 0x0d (float (32-bit)) is not supported",
        ),
        (
            "int dtype",
            [&[0u8, 0, 0x0C, 3][..], &IMAGES[4..]].concat(),
            "0x0c (int (32-bit))",
        ),
        ("three bytes", IMAGES[..3].to_vec(), "truncated: 3 bytes"),
        (
            "truncated header",
            IMAGES[..10].to_vec(),
            "truncated header: 3 dimensions need 16 bytes",
        ),
        (
            "truncated body",
            IMAGES[..20].to_vec(),
            "need 12 data bytes, file has 4",
        ),
        (
            "trailing bytes",
            [&IMAGES[..], &[0u8, 0][..]].concat(),
            "2 extra",
        ),
        ("zero dims", vec![0, 0, 8, 0], "0 dimensions"),
    ];
    for (what, bytes, needle) in cases {
        let msg = input_message(parse_idx(&bytes, p).unwrap_err());
        assert!(
            msg.starts_with("fake/train-images-idx3-ubyte: "),
            "{what}: {msg}"
        );
        assert!(msg.contains(needle), "{what}: {msg}");
    }
}

#[test]
fn truncated_gzip_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t10k-images-idx3-ubyte.gz");
    let z = gz(&IMAGES);
    std::fs::write(&p, &z[..z.len() / 2]).unwrap();
    let msg = input_message(read_idx(&p).unwrap_err());
    assert!(msg.contains(p.to_str().unwrap()), "{msg}");
    assert!(msg.contains("gzip"), "{msg}");
}

#[test]
fn pair_mismatches_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
    std::fs::write(&ip, IMAGES).unwrap();
    // Three labels for two images.
    write_idx(&lp, &[3], &[1, 2, 3], false).unwrap();
    let msg = input_message(load_idx_pair(&ip, &lp, 10).unwrap_err());
    assert!(msg.contains("3 labels but"), "{msg}");
    // Label 10 with 10 classes.
    write_idx(&lp, &[2], &[1, 10], false).unwrap();
    let msg = input_message(load_idx_pair(&ip, &lp, 10).unwrap_err());
    assert!(msg.contains("label 1: 10 is outside 0..9"), "{msg}");
    // Labels passed as images.
    let msg = input_message(load_idx_pair(&lp, &lp, 10).unwrap_err());
    assert!(msg.contains("3 dimensions"), "{msg}");
}

fn write_mnist_dir(dir: &Path, train: bool) {
    let img = |n: usize| -> Vec<u8> { (0..n * 28 * 28).map(|i| (i % 251) as u8).collect() };
    write_idx(
        dir.join("t10k-images-idx3-ubyte.gz"),
        &[4, 28, 28],
        &img(4),
        true,
    )
    .unwrap();
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &[4],
        &[0, 1, 2, 9],
        false,
    )
    .unwrap();
    if train {
        write_idx(
            dir.join("train-images-idx3-ubyte"),
            &[6, 28, 28],
            &img(6),
            false,
        )
        .unwrap();
        write_idx(
            dir.join("train-labels-idx1-ubyte.gz"),
            &[6],
            &[5, 5, 5, 0, 1, 2],
            true,
        )
        .unwrap();
    }
}

#[test]
fn mnist_directory_with_mixed_compression() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist_dir(dir.path(), true);
    let (fmt, train, test) = detect_and_load(dir.path()).unwrap();
    assert_eq!(fmt, DatasetFormat::MnistIdx);
    let train = train.unwrap();
    assert_eq!(train.images.shape(), &[6, 1, 28, 28]);
    assert_eq!(train.labels, vec![5, 5, 5, 0, 1, 2]);
    assert_eq!(test.labels, vec![0, 1, 2, 9]);
    assert_eq!(test.images[[0, 0, 9, 0]], (9 * 28 % 251) as u8);

    let only_test = tempfile::tempdir().unwrap();
    write_mnist_dir(only_test.path(), false);
    let (train, test) = load_dataset(only_test.path()).unwrap();
    assert!(train.is_none());
    assert_eq!(test.len(), 4);

    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
    let msg = input_message(load_mnist_dir(dir.path()).unwrap_err());
    assert!(
        msg.contains("missing train-labels-idx1-ubyte (or train-labels-idx1-ubyte.gz)"),
        "{msg}"
    );
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let msg = input_message(load_mnist_dir(dir.path()).unwrap_err());
    assert!(msg.contains("missing t10k-labels-idx1-ubyte"), "{msg}");
}

/// Published facts about Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747, and the
/// zalandoresearch/fashion-mnist README): 60,000 training and 10,000 test images, 28x28 grey,
/// 10 classes with 6,000 training and 1,000 test images each. The first test image is an ankle
/// boot (label 9), as the TensorFlow "basic classification" tutorial prints.
#[test]
fn real_fashion_mnist() {
    let dir = Path::new(FASHION_MNIST_DIR);
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED real_fashion_mnist: {FASHION_MNIST_DIR} is missing \
             (apt-get install -y dataset-fashion-mnist)"
        );
        return;
    }
    let (train, test) = load_dataset(dir).unwrap();
    let train = train.expect("the package ships the training split");
    assert_eq!(train.images.shape(), &[60_000, 1, 28, 28]);
    assert_eq!(test.images.shape(), &[10_000, 1, 28, 28]);
    assert_eq!(train.classes, 10);
    assert_eq!(train.class_counts(), vec![6_000; 10]);
    assert_eq!(test.class_counts(), vec![1_000; 10]);
    assert_eq!(test.labels[0], 9);
    assert_eq!(train.labels[0], 9);
    // Real photographs use the whole grey range.
    assert_eq!(*train.images.iter().max().unwrap(), 255);
    assert_eq!(*train.images.iter().min().unwrap(), 0);
}

#[test]
fn concatenated_gzip_members_are_read_whole() {
    // `cat a.gz b.gz` is a valid gzip file whose content is a followed by b (RFC 1952, 2.2).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two_members.gz");
    std::fs::write(&p, [gz(&IMAGES[..11]), gz(&IMAGES[11..])].concat()).unwrap();
    assert_eq!(read_idx(&p).unwrap().data, IMAGES[16..].to_vec());
}
