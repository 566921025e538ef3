//! CIFAR augmentation against a naive reference (explicit padded array, index arithmetic), plus
//! its algebraic properties.

use breakingbed::io::augment::{apply, augment, draw_params, hflip, pad_crop, AugmentParams};
use ndarray::{Array3, Array4};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Build the padded image explicitly, cut the window, then mirror by index.
fn naive(img: &Array3<i32>, pad: usize, oy: usize, ox: usize, flip: bool) -> Array3<i32> {
    let (c, h, w) = img.dim();
    let mut padded = Array3::<i32>::zeros((c, h + 2 * pad, w + 2 * pad));
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[[ch, y + pad, x + pad]] = img[[ch, y, x]];
            }
        }
    }
    let mut out = Array3::<i32>::zeros((c, h, w));
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                out[[ch, y, x]] = padded[[ch, y + oy, sx + ox]];
            }
        }
    }
    out
}

fn numbered(c: usize, h: usize, w: usize) -> Array3<i32> {
    Array3::from_shape_fn((c, h, w), |(a, b, d)| 1 + (a * h * w + b * w + d) as i32)
}

#[test]
fn hand_computed_crops() {
    // 1x3x3 image 1..9 padded by 1.
    let img = numbered(1, 3, 3);
    let top_left = pad_crop(img.view(), 1, 0, 0);
    assert_eq!(
        top_left.into_raw_vec_and_offset().0,
        vec![0, 0, 0, 0, 1, 2, 0, 4, 5]
    );
    let bottom_right = pad_crop(img.view(), 1, 2, 2);
    assert_eq!(
        bottom_right.into_raw_vec_and_offset().0,
        vec![5, 6, 0, 8, 9, 0, 0, 0, 0]
    );
    let flipped = hflip(img.view());
    assert_eq!(
        flipped.into_raw_vec_and_offset().0,
        vec![3, 2, 1, 6, 5, 4, 9, 8, 7]
    );
}

#[test]
fn augment_is_deterministic_and_keeps_shape() {
    let batch = Array4::from_shape_fn((16, 3, 32, 32), |(n, c, y, x)| {
        ((n * 7 + c * 3 + y * 5 + x) % 255) as f32 / 255.0
    });
    let a = augment(&batch, 4, 123);
    assert_eq!(a.shape(), batch.shape());
    assert_eq!(a, augment(&batch, 4, 123));
    assert_ne!(a, augment(&batch, 4, 124));
    // Each output image equals the reference applied with the drawn parameters.
    let params = draw_params(16, 4, &mut ChaCha8Rng::seed_from_u64(123));
    for (i, p) in params.iter().enumerate() {
        let src = batch
            .index_axis(ndarray::Axis(0), i)
            .mapv(|v| (v * 255.0).round() as i32);
        let want = naive(&src, 4, p.offset_y, p.offset_x, p.flip);
        let got = a
            .index_axis(ndarray::Axis(0), i)
            .mapv(|v| (v * 255.0).round() as i32);
        assert_eq!(got, want, "image {i}");
    }
}

#[test]
fn parameters_cover_the_range_evenly() {
    // 9 offsets per axis, each expected 20000/9 ~ 2222 times (sd ~ 44); flips expected 10000
    // (sd ~ 71).
    let p = draw_params(20_000, 4, &mut ChaCha8Rng::seed_from_u64(5));
    let mut oy = [0usize; 9];
    let mut ox = [0usize; 9];
    let mut flips = 0;
    for q in &p {
        oy[q.offset_y] += 1;
        ox[q.offset_x] += 1;
        flips += q.flip as usize;
    }
    for k in 0..9 {
        assert!((2000..2450).contains(&oy[k]), "offset_y {k}: {}", oy[k]);
        assert!((2000..2450).contains(&ox[k]), "offset_x {k}: {}", ox[k]);
    }
    assert!((9700..10300).contains(&flips), "{flips}");
}

#[test]
fn u8_batches_work_too() {
    let batch = Array4::<u8>::from_elem((2, 1, 4, 4), 9);
    let out = apply(
        &batch,
        2,
        &[
            AugmentParams {
                offset_y: 0,
                offset_x: 0,
                flip: false,
            },
            AugmentParams::identity(2),
        ],
    );
    assert_eq!(out[[0, 0, 0, 0]], 0, "zero padding");
    assert_eq!(out[[0, 0, 2, 2]], 9);
    assert_eq!(
        out.index_axis(ndarray::Axis(0), 1),
        batch.index_axis(ndarray::Axis(0), 1)
    );
}

proptest! {
    #[test]
    fn matches_naive_reference(c in 1usize..4, h in 1usize..10, w in 1usize..10, pad in 0usize..6,
                               oy in 0usize..12, ox in 0usize..12, flip: bool) {
        let (oy, ox) = (oy.min(2 * pad), ox.min(2 * pad));
        let img = numbered(c, h, w);
        let mut got = pad_crop(img.view(), pad, oy, ox);
        if flip { got = hflip(got.view()); }
        prop_assert_eq!(got, naive(&img, pad, oy, ox, flip));
    }

    #[test]
    fn flip_is_an_involution(c in 1usize..4, h in 1usize..10, w in 1usize..10) {
        let img = numbered(c, h, w);
        prop_assert_eq!(hflip(hflip(img.view()).view()), img);
    }

    #[test]
    fn centre_crop_of_padded_image_is_identity(c in 1usize..4, h in 1usize..10, w in 1usize..10, pad in 0usize..6) {
        let img = numbered(c, h, w);
        prop_assert_eq!(pad_crop(img.view(), pad, pad, pad), img);
    }
}

#[test]
fn outputs_are_contiguous() {
    let img = numbered(2, 3, 4);
    assert!(hflip(img.view()).is_standard_layout());
    let batch = Array4::from_elem((3, 2, 5, 5), 1.0f32);
    assert!(augment(&batch, 2, 0).as_slice().is_some());
}
