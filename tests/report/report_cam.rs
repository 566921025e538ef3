//! CAM: hand-computed maps, the GAP identity of Zhou et al., known bilinear values, jet endpoints,
//! the third-quartile metric, overlay arithmetic and bad input.

use breakingbed::report::cam::*;
use ndarray::{array, Array2, Array3};
use proptest::prelude::*;

#[test]
fn cam_is_the_weighted_sum_of_feature_maps() {
    let f =
        Array3::from_shape_vec((2, 2, 2), vec![1.0, 2.0, 3.0, 4.0, 10.0, 0.0, 0.0, 10.0]).unwrap();
    let w = array![[1.0, 0.0], [0.5, -0.1]];
    assert_eq!(
        cam(f.view(), w.view(), 0).unwrap(),
        array![[1.0, 2.0], [3.0, 4.0]]
    );
    // class 1: 0.5 f0 - 0.1 f1 = [[0.5 - 1, 1], [1.5, 2 - 1]]
    let c = cam(f.view(), w.view(), 1).unwrap();
    let want = array![[-0.5, 1.0], [1.5, 1.0]];
    assert!(
        c.iter().zip(want.iter()).all(|(a, b)| (a - b).abs() < 1e-6),
        "{c}"
    );
    let e = cam(f.view(), w.view(), 2).unwrap_err().to_string();
    assert!(e.contains("class 2"), "{e}");
    let w3 = Array2::<f32>::zeros((2, 3));
    assert!(cam(f.view(), w3.view(), 0)
        .unwrap_err()
        .to_string()
        .contains("3 inputs"));
}

proptest! {
    /// Zhou et al. (2016), Sec. 2: with global average pooling, the class score (minus bias) is
    /// the spatial mean of CAM_c: sum_k w_ck mean(f_k) = mean(sum_k w_ck f_k).
    #[test]
    fn cam_mean_equals_gap_logit(
        f in proptest::collection::vec(-3.0f32..3.0, 3 * 4 * 5),
        w in proptest::collection::vec(-1.0f32..1.0, 2 * 3),
        class in 0usize..2,
    ) {
        let f = Array3::from_shape_vec((3, 4, 5), f).unwrap();
        let w = Array2::from_shape_vec((2, 3), w).unwrap();
        let c = cam(f.view(), w.view(), class).unwrap();
        let gap_logit: f32 = (0..3)
            .map(|k| w[[class, k]] * f.index_axis(ndarray::Axis(0), k).mean().unwrap())
            .sum();
        prop_assert!((c.mean().unwrap() - gap_logit).abs() < 1e-4);
    }

    /// Bilinear resizing reproduces an affine map exactly away from the clamped border.
    #[test]
    fn upsampling_is_exact_on_affine_maps(a in -2.0f32..2.0, b in -2.0f32..2.0, c in -2.0f32..2.0) {
        let m = Array2::from_shape_fn((4, 4), |(y, x)| a * y as f32 + b * x as f32 + c);
        let u = upsample_bilinear(m.view(), 16, 16);
        // Output pixel o maps to source (o + 0.5) / 4 - 0.5; interior for 2 <= o <= 13.
        for y in 2..14 {
            for x in 2..14 {
                let sy = (y as f32 + 0.5) / 4.0 - 0.5;
                let sx = (x as f32 + 0.5) / 4.0 - 0.5;
                prop_assert!((u[[y, x]] - (a * sy + b * sx + c)).abs() < 1e-4);
            }
        }
    }
}

#[test]
fn bilinear_half_pixel_known_values() {
    // PyTorch F.interpolate([0, 1], size=4, mode="linear", align_corners=False) = [0, .25, .75, 1].
    let m = array![[0.0f32, 1.0], [2.0, 3.0]];
    let u = upsample_bilinear(m.view(), 4, 4);
    assert_eq!(u.row(0).to_vec(), vec![0.0, 0.25, 0.75, 1.0]);
    assert_eq!(u.column(0).to_vec(), vec![0.0, 0.5, 1.5, 2.0]);
    assert_eq!(upsample_bilinear(m.view(), 2, 2), m);
    let one = array![[7.0f32]];
    assert!(upsample_bilinear(one.view(), 3, 5)
        .iter()
        .all(|&v| v == 7.0));
}

#[test]
fn normalization_and_jet() {
    let n = normalize_255(array![[-1.0f32, 0.0], [1.0, 3.0]].view());
    // (v + 1) / 4 * 255: 0, 63.75 -> 64, 127.5 -> 128, 255.
    assert_eq!(n, array![[0u8, 64], [128, 255]]);
    assert!(normalize_255(Array2::from_elem((3, 3), 5.0f32).view())
        .iter()
        .all(|&v| v == 0));
    // MATLAB jet: dark blue (0, 0, 0.5) at 0, dark red (0.5, 0, 0) at 1, green peak in the middle.
    assert_eq!(jet(0), [0, 0, 128]);
    assert_eq!(jet(255), [128, 0, 0]);
    assert_eq!(jet(128)[1], 255);
    // Hue moves blue -> green -> red: the dominant channel in the low, middle and high bands.
    let dominant = |v: u8| {
        let c = jet(v);
        (0..3).max_by_key(|&i| c[i]).unwrap()
    };
    assert!((0..=80).all(|v| dominant(v) == 2));
    assert!((112..=144).all(|v| dominant(v) == 1));
    assert!((176..=255).all(|v| dominant(v) == 0));
}

#[test]
fn third_quartile_metric() {
    // Type 7: sorted [0, 100, 200, 255], h = 2.25: 200 + 0.25 * 55 = 213.75.
    assert_eq!(
        third_quartile_intensity(array![[255u8, 0], [100, 200]].view()),
        213.75
    );
    assert_eq!(
        third_quartile_intensity(Array2::<u8>::zeros((0, 0)).view()),
        0.0
    );
}

#[test]
fn overlay_blends_half_and_half() {
    let black = Array3::<f32>::zeros((3, 1, 1));
    let white = Array3::<f32>::ones((1, 1, 1));
    // 0.5 * jet(255) = 0.5 * (128, 0, 0) = (64, 0, 0).
    let o = overlay(black.view(), array![[255u8]].view()).unwrap();
    assert_eq!(o.iter().copied().collect::<Vec<_>>(), vec![64, 0, 0]);
    // Grayscale white with jet(0): 0.5 * (0, 0, 128) + 0.5 * 255 = (127.5, 127.5, 191.5) -> rounded.
    let o = overlay(white.view(), array![[0u8]].view()).unwrap();
    assert_eq!(o.iter().copied().collect::<Vec<_>>(), vec![128, 128, 192]);
    assert!(overlay(black.view(), Array2::<u8>::zeros((2, 2)).view()).is_err());
    assert!(overlay(Array3::<f32>::zeros((2, 1, 1)).view(), array![[0u8]].view()).is_err());
}

#[test]
fn render_panel_end_to_end() {
    // One feature channel that is hot in the top-left corner of a 2x2 grid.
    let input = CamInput {
        label: "clean".into(),
        image: Array3::from_elem((3, 8, 8), 0.5),
        features: Array3::from_shape_vec((1, 2, 2), vec![4.0, 0.0, 0.0, 0.0]).unwrap(),
        weights: array![[1.0f32], [-1.0]],
        class: 0,
        class_name: Some("automobile".into()),
    };
    let p = render_panel(&input).unwrap();
    assert_eq!((p.width, p.height, p.rgb.len()), (8, 8, 8 * 8 * 3));
    // The hot corner is the reddest pixel, the opposite corner the bluest.
    let px = |y: usize, x: usize| &p.rgb[(y * 8 + x) * 3..(y * 8 + x) * 3 + 3];
    assert!(px(0, 0)[0] > px(7, 7)[0] && px(0, 0)[2] < px(7, 7)[2]);
    // 3/4 of the upsampled map lies in the cold three quadrants, so Q3 is low but not zero.
    assert!(p.q3 > 0.0 && p.q3 < 128.0, "{}", p.q3);
    let bad = CamInput {
        class: 5,
        ..input.clone()
    };
    let e = render_panel(&bad).unwrap_err().to_string();
    assert!(e.contains("clean") && e.contains("class 5"), "{e}");
    let nan = CamInput {
        features: Array3::from_elem((1, 2, 2), f32::NAN),
        ..input
    };
    assert!(render_panel(&nan)
        .unwrap_err()
        .to_string()
        .contains("non-finite"));
}
