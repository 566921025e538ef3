//! Cross-entropy and KD-KL (paper Eq. 1, batch mean, T^2 scaling) against closed forms and
//! central finite differences in f64.

use breakingbed::train::kd::{cross_entropy_f64, kd_kl_f64, kd_loss_f64};
use breakingbed::train::{kd_loss, KdConfig};
use ndarray::{array, Array2};
use proptest::prelude::*;

#[test]
fn cross_entropy_closed_forms() {
    // Uniform logits over 3 classes: loss ln 3, gradient (1/3 - onehot) / N.
    let (l, g) = cross_entropy_f64(&Array2::zeros((2, 3)), &[0, 2]).unwrap();
    assert!((l - 3f64.ln()).abs() < 1e-15);
    let third = 1.0 / 3.0;
    let want = array![[third - 1.0, third, third], [third, third, third - 1.0]] / 2.0;
    assert!((g - want).iter().all(|d| d.abs() < 1e-15));
    // Huge logits do not overflow (log-sum-exp).
    let (l, _) = cross_entropy_f64(&array![[1000.0, 0.0]], &[1]).unwrap();
    assert!((l - 1000.0).abs() < 1e-9);
}

#[test]
fn kd_kl_two_class_closed_form() {
    // Teacher logits (0, T ln 3) give p = (1/4, 3/4) at temperature T; student (0, 0) gives
    // q = (1/2, 1/2). KL = 1/4 ln(1/2) + 3/4 ln(3/2); the loss is T^2 KL.
    for t in [1.0, 2.0, 30.0] {
        let teacher = array![[0.0, t * 3f64.ln()]];
        let (l, g) = kd_kl_f64(&Array2::zeros((1, 2)), &teacher, t).unwrap();
        let kl = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
        assert!((l - t * t * kl).abs() < 1e-12 * t * t, "T = {t}");
        // dL/ds = T (q - p) = T (1/4, -1/4).
        assert!((g[[0, 0]] - t * 0.25).abs() < 1e-12 * t);
        assert!((g[[0, 1]] + t * 0.25).abs() < 1e-12 * t);
    }
}

#[test]
fn kd_kl_is_zero_when_student_equals_teacher() {
    let z = array![[1.0, -2.0, 0.5], [3.0, 3.0, -1.0]];
    let (l, g) = kd_kl_f64(&z, &z, 30.0).unwrap();
    assert!(l.abs() < 1e-12);
    assert!(g.iter().all(|v| v.abs() < 1e-12));
    // Shifting a row by a constant changes nothing (softmax invariance).
    let (l2, _) = kd_kl_f64(&(&z + 7.0), &z, 30.0).unwrap();
    assert!(l2.abs() < 1e-12);
}

#[test]
fn high_temperature_gradient_matches_logits() {
    // Hinton et al. 2015, Sec. 2.1: for T >> |logits| and zero-mean logits per row, the
    // gradient of the (unscaled) soft loss is (z - v) / (K T^2); with the T^2 factor and the batch
    // mean it becomes (z - v) / (K N).
    let s = array![[1.0, -0.5, -0.5], [0.2, 0.3, -0.5]];
    let t = array![[-1.0, 0.0, 1.0], [0.5, -0.25, -0.25]];
    let (_, g) = kd_kl_f64(&s, &t, 1e4).unwrap();
    let want = (&s - &t) / (3.0 * 2.0);
    assert!((g - want).iter().all(|d| d.abs() < 1e-4));
}

fn logits(n: usize, k: usize) -> impl Strategy<Value = Array2<f64>> {
    prop::collection::vec(-8.0f64..8.0, n * k)
        .prop_map(move |v| Array2::from_shape_vec((n, k), v).unwrap())
}

proptest! {
    #[test]
    fn kd_loss_gradient_matches_central_differences(
        (s, t, labels) in (1usize..4, 2usize..6).prop_flat_map(|(n, k)| {
            (logits(n, k), logits(n, k), prop::collection::vec(0..k, n))
        }),
        temperature in 0.5f32..40.0,
        weight in 0.0f32..=1.0,
    ) {
        let cfg = KdConfig { temperature, weight };
        let (_, g) = kd_loss_f64(&s, &t, &labels, &cfg).unwrap();
        let h = 1e-5;
        for idx in ndarray::indices(s.dim()) {
            let (mut sp, mut sm) = (s.clone(), s.clone());
            sp[idx] += h;
            sm[idx] -= h;
            let fd = (kd_loss_f64(&sp, &t, &labels, &cfg).unwrap().0
                - kd_loss_f64(&sm, &t, &labels, &cfg).unwrap().0)
                / (2.0 * h);
            prop_assert!((fd - g[idx]).abs() < 1e-6 * (1.0 + fd.abs()), "{idx:?}: fd {fd} vs {}", g[idx]);
        }
    }
}

#[test]
fn weight_one_is_pure_kd_and_zero_pure_ce() {
    let s = array![[0.3, -1.0, 2.0]];
    let t = array![[1.0, 0.0, -1.0]];
    let (kd, _) = kd_kl_f64(&s, &t, 4.0).unwrap();
    let (ce, _) = cross_entropy_f64(&s, &[2]).unwrap();
    let l = |w| {
        kd_loss_f64(
            &s,
            &t,
            &[2],
            &KdConfig {
                temperature: 4.0,
                weight: w,
            },
        )
        .unwrap()
        .0
    };
    assert!((l(1.0) - kd).abs() < 1e-15);
    assert!((l(0.0) - ce).abs() < 1e-15);
    assert!((l(0.25) - (0.25 * kd + 0.75 * ce)).abs() < 1e-15);
}

#[test]
fn mismatched_teacher_and_bad_settings_are_errors() {
    let s = Array2::<f32>::zeros((2, 10));
    let cfg = KdConfig {
        temperature: 30.0,
        weight: 0.5,
    };
    // A teacher trained for another number of classes.
    let e = kd_loss(&s, &Array2::zeros((2, 100)), &[0, 1], &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("teacher logits") && e.contains("(2, 100)"),
        "{e}"
    );
    let e = kd_loss(
        &s,
        &s,
        &[0, 1],
        &KdConfig {
            temperature: 0.0,
            weight: 0.5,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("kd.temperature"), "{e}");
    let e = kd_loss(
        &s,
        &s,
        &[0, 1],
        &KdConfig {
            temperature: 3.0,
            weight: 1.5,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("kd.weight"), "{e}");
    let e = kd_loss(&s, &s, &[0, 10], &cfg).unwrap_err().to_string();
    assert!(e.starts_with("labels"), "{e}");
}
