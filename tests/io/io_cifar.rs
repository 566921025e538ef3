//! CIFAR-10 binary format: a record built byte by byte, writer/loader round trips, directory
//! layouts, and malformed files.

use breakingbed::io::cifar::{self, load_cifar_dir, read_cifar_file, write_cifar_file, RECORD};
use breakingbed::io::{load_dataset, Dataset};
use breakingbed::Error;
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn input_message(e: Error) -> String {
    match e {
        Error::Input { .. } => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

fn random_cifar(n: usize, seed: u64, source: &str) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let px: Vec<u8> = (0..n * 3072).map(|_| rng.gen()).collect();
    let labels: Vec<u16> = (0..n).map(|_| rng.gen_range(0..10)).collect();
    Dataset::new(
        Array4::from_shape_vec((n, 3, 32, 32), px).unwrap(),
        labels,
        10,
        source,
    )
    .unwrap()
}

/// Two records written out by hand following the format description (1 label byte, then the R, G
/// and B planes, each 32 rows of 32 bytes).
fn hand_made_bytes() -> Vec<u8> {
    let mut b = Vec::new();
    // Record 0: label 7; R(y, x) = y, G(y, x) = x, B(y, x) = 200 except B(31, 31) = 1.
    b.push(7u8);
    for y in 0..32u8 {
        b.extend(std::iter::repeat_n(y, 32));
    }
    for _ in 0..32 {
        b.extend(0..32u8);
    }
    b.extend(std::iter::repeat_n(200u8, 1023));
    b.push(1);
    // Record 1: label 0, all pixels 255.
    b.push(0);
    b.extend(std::iter::repeat_n(255u8, 3072));
    b
}

#[test]
fn hand_made_records_decode_to_known_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test_batch.bin");
    std::fs::write(&path, hand_made_bytes()).unwrap();
    let d = read_cifar_file(&path).unwrap();
    assert_eq!(d.images.shape(), &[2, 3, 32, 32]);
    assert_eq!(d.labels, vec![7, 0]);
    assert_eq!(d.classes, 10);
    assert_eq!(d.images[[0, 0, 5, 9]], 5, "R plane holds the row index");
    assert_eq!(d.images[[0, 0, 31, 0]], 31);
    assert_eq!(d.images[[0, 1, 5, 9]], 9, "G plane holds the column index");
    assert_eq!(d.images[[0, 1, 0, 31]], 31);
    assert_eq!(d.images[[0, 2, 0, 0]], 200);
    assert_eq!(d.images[[0, 2, 31, 30]], 200);
    assert_eq!(
        d.images[[0, 2, 31, 31]],
        1,
        "last byte of the record is B(31, 31)"
    );
    assert!(d
        .images
        .slice(ndarray::s![1, .., .., ..])
        .iter()
        .all(|&p| p == 255));
    // Unit scale: 255 -> 1.0, 5 -> 5/255.
    let u = d.to_unit(0..2).unwrap();
    assert_eq!(u[[1, 2, 10, 10]], 1.0);
    assert_eq!(u[[0, 0, 5, 0]], 5.0 / 255.0);
    // The writer reproduces the hand-made bytes exactly.
    let out = dir.path().join("again.bin");
    write_cifar_file(&out, &d).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), hand_made_bytes());
}

#[test]
fn writer_loader_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = random_cifar(37, 1, "synthetic");
    let path = dir.path().join("x.bin");
    write_cifar_file(&path, &d).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        37 * RECORD
    );
    let back = read_cifar_file(&path).unwrap();
    assert_eq!(back.images, d.images);
    assert_eq!(back.labels, d.labels);
}

#[test]
fn truncated_file_names_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    let mut b = hand_made_bytes();
    b.extend_from_slice(&[3; 100]);
    std::fs::write(&path, &b).unwrap();
    let msg = input_message(read_cifar_file(&path).unwrap_err());
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
    assert!(
        msg.contains("record 2 (0-based) has only 100 of 3073 bytes"),
        "{msg}"
    );

    std::fs::write(&path, []).unwrap();
    let msg = input_message(read_cifar_file(&path).unwrap_err());
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn label_out_of_range_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test_batch.bin");
    let mut b = hand_made_bytes();
    b[RECORD] = 10; // label of record 1
    std::fs::write(&path, &b).unwrap();
    let msg = input_message(read_cifar_file(&path).unwrap_err());
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(
        msg.contains("record 1 (byte offset 3073): label 10"),
        "{msg}"
    );
}

fn write_dir(dir: &Path, train: bool) -> (Vec<Dataset>, Dataset) {
    let parts: Vec<Dataset> = if train {
        (0..5)
            .map(|i| {
                let d = random_cifar(3 + i, 10 + i as u64, "part");
                write_cifar_file(dir.join(cifar::TRAIN_FILES[i]), &d).unwrap();
                d
            })
            .collect()
    } else {
        Vec::new()
    };
    let test = random_cifar(4, 99, "test");
    write_cifar_file(dir.join(cifar::TEST_FILE), &test).unwrap();
    (parts, test)
}

#[test]
fn directory_loads_train_in_batch_order_and_test() {
    let tmp = tempfile::tempdir().unwrap();
    let (parts, test) = write_dir(tmp.path(), true);
    let (train, t) = load_cifar_dir(tmp.path()).unwrap();
    let train = train.expect("all five batches present");
    assert_eq!(train.len(), 3 + 4 + 5 + 6 + 7);
    assert_eq!(t.images, test.images);
    // Image 3 of the train split is image 0 of data_batch_2.
    assert_eq!(
        train.images.slice(ndarray::s![3, .., .., ..]),
        parts[1].images.slice(ndarray::s![0, .., .., ..])
    );
    let all_labels: Vec<u16> = parts.iter().flat_map(|p| p.labels.clone()).collect();
    assert_eq!(train.labels, all_labels);

    // The auto-detecting loader agrees.
    let (train2, t2) = load_dataset(tmp.path()).unwrap();
    assert_eq!(train2.unwrap().labels, all_labels);
    assert_eq!(t2.labels, test.labels);
}

#[test]
fn official_subdirectory_name_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let sub = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    let (_, test) = write_dir(&sub, true);
    let (train, t) = load_dataset(tmp.path()).unwrap();
    assert_eq!(train.unwrap().len(), 25);
    assert_eq!(t.labels, test.labels);
}

#[test]
fn test_only_directory_and_single_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, test) = write_dir(tmp.path(), false);
    let (train, t) = load_dataset(tmp.path()).unwrap();
    assert!(train.is_none());
    assert_eq!(t.labels, test.labels);
    let (train, t) = load_dataset(tmp.path().join("test_batch.bin")).unwrap();
    assert!(train.is_none());
    assert_eq!(t.images, test.images);
}

#[test]
fn missing_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_dir(tmp.path(), true);
    std::fs::remove_file(tmp.path().join("data_batch_3.bin")).unwrap();
    let msg = input_message(load_cifar_dir(tmp.path()).unwrap_err());
    assert!(msg.contains("missing data_batch_3.bin"), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let msg = input_message(load_cifar_dir(empty.path()).unwrap_err());
    assert!(msg.contains("missing test_batch.bin"), "{msg}");
    let msg = input_message(load_dataset(empty.path()).unwrap_err());
    assert!(msg.contains("no dataset recognised"), "{msg}");

    match load_dataset(tmp.path().join("nothing_here")).unwrap_err() {
        e @ Error::Io { .. } => assert!(e.to_string().contains("nothing_here")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn writer_refuses_non_cifar_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dataset::new(Array4::zeros((2, 1, 28, 28)), vec![0, 1], 10, "mnist-like").unwrap();
    let msg = input_message(write_cifar_file(tmp.path().join("x.bin"), &d).unwrap_err());
    assert!(msg.contains("3x32x32"), "{msg}");
    assert!(!tmp.path().join("x.bin").exists());
}

#[test]
fn writer_refuses_an_empty_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Dataset::new(Array4::zeros((0, 3, 32, 32)), vec![], 10, "empty").unwrap();
    let msg = input_message(write_cifar_file(tmp.path().join("x.bin"), &d).unwrap_err());
    assert!(msg.contains("no images"), "{msg}");
}
