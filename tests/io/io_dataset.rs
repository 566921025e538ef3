//! Dataset: unit scaling, subsets, seeded sampling, normalisation, validation.

use breakingbed::io::{normalize, Dataset};
use breakingbed::model::Normalization;
use breakingbed::Error;
use ndarray::Array4;
use proptest::prelude::*;

fn input_message(e: Error) -> String {
    match e {
        Error::Input { .. } => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// Image i has every pixel equal to i; label i % 3.
fn ramp(n: usize) -> Dataset {
    let mut a = Array4::<u8>::zeros((n, 2, 3, 3));
    for (i, mut img) in a.outer_iter_mut().enumerate() {
        img.fill(i as u8);
    }
    Dataset::new(a, (0..n).map(|i| (i % 3) as u16).collect(), 3, "ramp").unwrap()
}

#[test]
fn to_unit_divides_by_255() {
    let mut a = Array4::<u8>::zeros((1, 1, 1, 4));
    a.as_slice_mut()
        .unwrap()
        .copy_from_slice(&[0, 51, 255, 128]);
    let d = Dataset::new(a, vec![0], 10, "t").unwrap();
    let u = d.to_unit(0..1).unwrap();
    assert_eq!(u.as_slice().unwrap(), &[0.0, 0.2, 1.0, 128.0 / 255.0]);
    let msg = input_message(d.to_unit(0..2).unwrap_err());
    assert!(
        msg.contains("image range 0..2 is outside the 1 images"),
        "{msg}"
    );
}

#[test]
fn subset_keeps_order_and_checks_indices() {
    let d = ramp(10);
    let s = d.subset(&[7, 2, 7]).unwrap();
    assert_eq!(s.labels, vec![1, 2, 1]);
    assert_eq!(s.images[[0, 1, 2, 2]], 7);
    assert_eq!(s.images[[1, 0, 0, 0]], 2);
    let msg = input_message(d.subset(&[3, 10]).unwrap_err());
    assert!(msg.contains("index 10 is outside the 10 images"), "{msg}");
}

#[test]
fn sample_is_seeded_distinct_and_sorted() {
    let d = ramp(200);
    let a = d.sample_indices(50, 7).unwrap();
    assert_eq!(a, d.sample_indices(50, 7).unwrap());
    assert_ne!(a, d.sample_indices(50, 8).unwrap());
    assert!(a.windows(2).all(|w| w[0] < w[1]), "ascending and distinct");
    let s = d.sample(50, 7).unwrap();
    let firsts: Vec<usize> = s
        .images
        .outer_iter()
        .map(|im| im[[0, 0, 0]] as usize)
        .collect();
    assert_eq!(firsts, a);
    assert_eq!(
        d.sample_indices(200, 1).unwrap(),
        (0..200).collect::<Vec<_>>()
    );
    assert!(d.sample(201, 1).is_err());
}

#[test]
fn sample_is_roughly_uniform() {
    // Over many seeds each of 20 images is chosen with probability 5/20 = 1/4; 4000 draws give a
    // standard deviation of sqrt(4000 * 0.25 * 0.75) ~ 27 around the mean 1000.
    let d = ramp(20);
    let mut hits = [0usize; 20];
    for seed in 0..4000 {
        for i in d.sample_indices(5, seed).unwrap() {
            hits[i] += 1;
        }
    }
    for (i, h) in hits.iter().enumerate() {
        assert!((850..1150).contains(h), "image {i} chosen {h} times");
    }
}

#[test]
fn class_counts_and_validation() {
    assert_eq!(ramp(10).class_counts(), vec![4, 3, 3]);
    let msg =
        input_message(Dataset::new(Array4::zeros((2, 1, 2, 2)), vec![0], 10, "src").unwrap_err());
    assert!(msg.contains("src: 2 images but 1 labels"), "{msg}");
    let msg =
        input_message(Dataset::new(Array4::zeros((2, 1, 2, 2)), vec![0, 3], 3, "src").unwrap_err());
    assert!(msg.contains("image 1: label 3 is outside 0..2"), "{msg}");
}

#[test]
fn normalize_known_values() {
    let n = Normalization::cifar10();
    let mut x = Array4::<f32>::zeros((1, 3, 1, 2));
    for c in 0..3 {
        x[[0, c, 0, 0]] = n.mean[c];
        x[[0, c, 0, 1]] = n.mean[c] + n.std[c];
    }
    let y = normalize(&x, &n).unwrap();
    for c in 0..3 {
        assert_eq!(y[[0, c, 0, 0]], 0.0);
        assert!((y[[0, c, 0, 1]] - 1.0).abs() < 1e-6);
    }
    let msg = input_message(normalize(&x, &Normalization::identity(1)).unwrap_err());
    assert!(msg.contains("the images have 3 channels"), "{msg}");
    let bad = Normalization {
        mean: vec![0.0; 3],
        std: vec![1.0, 0.0, 1.0],
    };
    assert!(normalize(&x, &bad).is_err());
}

proptest! {
    #[test]
    fn normalize_inverts(px in prop::collection::vec(0u8..=255, 12)) {
        let n = Normalization::cifar10();
        let d = Dataset::new(Array4::from_shape_vec((1, 3, 2, 2), px.clone()).unwrap(), vec![0], 10, "p").unwrap();
        let y = normalize(&d.to_unit(0..1).unwrap(), &n).unwrap();
        for (i, v) in y.iter().enumerate() {
            let c = i / 4;
            let back = v * n.std[c] + n.mean[c];
            prop_assert!((back * 255.0 - px[i] as f32).abs() < 1e-3);
        }
    }
}

#[test]
fn shuffles_are_seeded_permutations() {
    let d = ramp(100);
    let a = d.shuffled_indices(3);
    assert_eq!(a, d.shuffled_indices(3));
    assert_ne!(a, d.shuffled_indices(4));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
}

#[test]
fn batch_ranges_cover_everything_once() {
    let d = ramp(10);
    assert_eq!(d.batch_ranges(4).unwrap(), vec![0..4, 4..8, 8..10]);
    assert_eq!(d.batch_ranges(10).unwrap(), vec![0..10]);
    assert_eq!(d.batch_ranges(64).unwrap(), vec![0..10]);
    assert!(d.batch_ranges(0).is_err());
}
