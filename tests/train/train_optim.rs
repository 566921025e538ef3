//! Optimizers against hand-computed steps, closed forms and a naive scalar f64 reference.

use breakingbed::train::{apply_masks, Optimizer, OptimizerConfig, Params};
use ndarray::{arr1, ArrayD, IxDyn};
use proptest::prelude::*;

fn one(name: &str, v: &[f32]) -> Params {
    let mut p = Params::new();
    p.insert(name.into(), arr1(v).into_dyn());
    p
}

fn close(a: &ArrayD<f32>, b: &[f32], tol: f32) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_momentum_weight_decay_two_hand_steps() {
    // lr 0.1, mu 0.9, wd 0.01, p = [1, -2].
    // step 1: d = g + wd p = [0.51, 0.23]; v = d; p = [0.949, -2.023]
    // step 2: d = [0.1 + 0.00949, -0.3 - 0.02023] = [0.10949, -0.32023];
    //         v = 0.9 [0.51, 0.23] + d = [0.56849, -0.11323]; p = [0.892151, -2.0116770]
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.9, 0.01)).unwrap();
    let mut p = one("w", &[1.0, -2.0]);
    opt.step(&mut p, &one("w", &[0.5, 0.25]), 0.1).unwrap();
    close(&p["w"], &[0.949, -2.023], 1e-6);
    opt.step(&mut p, &one("w", &[0.1, -0.3]), 0.1).unwrap();
    close(&p["w"], &[0.892151, -2.011677], 1e-6);
    close(
        &opt.state().buffers["momentum/w"],
        &[0.56849, -0.11323],
        1e-6,
    );
    assert_eq!(opt.state().steps, 2);
}

#[test]
fn sgd_nesterov_first_step() {
    // d = [0.51, 0.23], v = d, update = d + mu v = 1.9 d = [0.969, 0.437]; p -= 0.1 * update.
    let cfg = OptimizerConfig::Sgd {
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: true,
    };
    let mut opt = Optimizer::new(cfg).unwrap();
    let mut p = one("w", &[1.0, -2.0]);
    opt.step(&mut p, &one("w", &[0.5, 0.25]), 0.1).unwrap();
    close(&p["w"], &[0.9031, -2.0437], 1e-6);
}

#[test]
fn plain_sgd_keeps_no_state() {
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.0, 0.0)).unwrap();
    let mut p = one("w", &[1.0]);
    opt.step(&mut p, &one("w", &[2.0]), 0.25).unwrap();
    close(&p["w"], &[0.5], 0.0);
    assert!(opt.state().buffers.is_empty());
}

#[test]
fn adam_constant_gradient_moves_lr_per_step() {
    // With bias correction, a constant gradient g gives m_hat = g and v_hat = g^2 at every step,
    // so each step is lr * g / (|g| + eps) (Kingma & Ba, Sec. 2.1: the step is bounded by lr).
    let mut opt = Optimizer::new(OptimizerConfig::adam()).unwrap();
    let mut p = one("w", &[1.0, -1.0, 0.0]);
    let g = [0.5f32, -2.0, 1e-3];
    for _ in 0..5 {
        opt.step(&mut p, &one("w", &g), 1e-3).unwrap();
    }
    let expect: Vec<f32> = [1.0f64, -1.0, 0.0]
        .iter()
        .zip(g)
        .map(|(p, g)| (p - 5.0 * 1e-3 * g as f64 / (g.abs() as f64 + 1e-8)) as f32)
        .collect();
    close(&p["w"], &expect, 2e-6);
}

#[test]
fn adamw_decoupled_decay_with_zero_gradient_is_geometric() {
    // g = 0: moments stay 0, the Adam step is 0, and p_t = p_0 (1 - lr wd)^t.
    let cfg = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        decoupled: true,
    };
    let mut opt = Optimizer::new(cfg).unwrap();
    let mut p = one("w", &[3.0, -0.5]);
    for _ in 0..10 {
        opt.step(&mut p, &one("w", &[0.0, 0.0]), 0.01).unwrap();
    }
    let f = (1.0f64 - 0.01 * 0.1).powi(10);
    close(&p["w"], &[(3.0 * f) as f32, (-0.5 * f) as f32], 1e-6);
}

#[test]
fn adam_coupled_decay_first_step_is_lr_sign_p() {
    // g = 0 but wd p enters the gradient: first step is lr * sign(p).
    let cfg = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        decoupled: false,
    };
    let mut opt = Optimizer::new(cfg).unwrap();
    let mut p = one("w", &[3.0, -0.5]);
    opt.step(&mut p, &one("w", &[0.0, 0.0]), 0.01).unwrap();
    close(&p["w"], &[2.99, -0.49], 1e-6);
}

/// Naive scalar f64 Adam / SGD, written from the update equations (module docs of optim).
fn reference(cfg: &OptimizerConfig, p0: f64, grads: &[f64], lr: f64) -> f64 {
    let (mut p, mut a, mut b) = (p0, 0.0f64, 0.0f64);
    for (t, &g) in grads.iter().enumerate() {
        match *cfg {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                let (mu, wd) = (momentum as f64, weight_decay as f64);
                let d = g + wd * p;
                a = mu * a + d;
                p -= lr * if nesterov { d + mu * a } else { a };
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            } => {
                let (b1, b2, wd) = (beta1 as f64, beta2 as f64, weight_decay as f64);
                let mut g = g;
                if decoupled {
                    p *= 1.0 - lr * wd;
                } else {
                    g += wd * p;
                }
                a = b1 * a + (1.0 - b1) * g;
                b = b2 * b + (1.0 - b2) * g * g;
                let t = (t + 1) as i32;
                let mh = a / (1.0 - b1.powi(t));
                let vh = b / (1.0 - b2.powi(t));
                p -= lr * mh / (vh.sqrt() + eps as f64);
            }
        }
    }
    p
}

fn configs() -> impl Strategy<Value = OptimizerConfig> {
    prop_oneof![
        (0.0f32..0.95, 0.0f32..0.01, any::<bool>()).prop_map(|(m, wd, n)| OptimizerConfig::Sgd {
            momentum: m,
            weight_decay: wd,
            nesterov: n && m > 0.0,
        }),
        (0.5f32..0.95, 0.9f32..0.9999, 0.0f32..0.1, any::<bool>()).prop_map(|(b1, b2, wd, d)| {
            OptimizerConfig::Adam {
                beta1: b1,
                beta2: b2,
                eps: 1e-6,
                weight_decay: wd,
                decoupled: d,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn matches_scalar_f64_reference(
        cfg in configs(),
        p0 in -2.0f32..2.0,
        grads in prop::collection::vec(-1.0f32..1.0, 1..20),
    ) {
        let mut opt = Optimizer::new(cfg.clone()).unwrap();
        let mut p = one("w", &[p0]);
        for &g in &grads {
            opt.step(&mut p, &one("w", &[g]), 0.01).unwrap();
        }
        let g64: Vec<f64> = grads.iter().map(|&g| g as f64).collect();
        let want = reference(&cfg, p0 as f64, &g64, 0.01f32 as f64);
        let got = p["w"][[0]] as f64;
        prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{got} vs {want}");
    }

    #[test]
    fn masked_weights_stay_zero_and_others_update_as_unmasked(
        cfg in configs(),
        p0 in prop::collection::vec(-2.0f32..2.0, 6),
        mask in prop::collection::vec(any::<bool>(), 6),
        grads in prop::collection::vec(prop::collection::vec(-1.0f32..1.0, 6), 1..8),
    ) {
        let m: Vec<f32> = mask.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
        let mut masks = Params::new();
        masks.insert("w".into(), arr1(&m).into_dyn());
        let mut masked = Optimizer::new(cfg.clone()).unwrap();
        masked.set_masks(masks.clone()).unwrap();
        let mut free = Optimizer::new(cfg).unwrap();
        let mut pm = one("w", &p0);
        apply_masks(&mut pm, &masks).unwrap();
        let mut pf = one("w", &p0);
        for g in &grads {
            masked.step(&mut pm, &one("w", g), 0.05).unwrap();
            free.step(&mut pf, &one("w", g), 0.05).unwrap();
        }
        for i in 0..6 {
            if mask[i] {
                // Updates are element-wise, so an unpruned weight evolves exactly as without masks.
                prop_assert_eq!(pm["w"][[i]].to_bits(), pf["w"][[i]].to_bits());
            } else {
                prop_assert_eq!(pm["w"][[i]], 0.0);
            }
        }
    }
}

#[test]
fn bad_inputs_are_named_errors() {
    let err = |r: breakingbed::Result<()>| r.unwrap_err().to_string();
    assert!(Optimizer::new(OptimizerConfig::sgd(1.5, 0.0))
        .unwrap_err()
        .to_string()
        .contains("optimizer.momentum"));
    assert!(Optimizer::new(OptimizerConfig::sgd(0.9, -1.0))
        .unwrap_err()
        .to_string()
        .contains("optimizer.weight_decay"));
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.9, 0.0)).unwrap();
    let mut p = one("w", &[1.0, 2.0]);
    assert!(err(opt.step(&mut p, &one("v", &[1.0, 2.0]), 0.1))
        .contains("no gradient for parameter \"w\""));
    assert!(err(opt.step(&mut p, &one("w", &[1.0]), 0.1)).contains("gradient \"w\""));
    assert!(err(opt.step(&mut p, &one("w", &[f32::NAN, 0.0]), 0.1)).contains("non-finite"));
    assert!(err(opt.step(&mut p, &one("w", &[1.0, 0.0]), f32::INFINITY)).contains("learning rate"));
    assert_eq!(
        p["w"],
        arr1(&[1.0f32, 2.0]).into_dyn(),
        "failed steps change nothing"
    );
    assert!(opt
        .set_masks(one("w", &[0.5, 1.0]))
        .unwrap_err()
        .to_string()
        .contains("mask \"w\""));
    opt.set_masks(one("w", &[0.0, 1.0, 1.0])).unwrap();
    assert!(err(opt.step(&mut p, &one("w", &[1.0, 0.0]), 0.1)).contains("mask \"w\""));
    let mut bad = Params::new();
    bad.insert("x".into(), ArrayD::zeros(IxDyn(&[2])));
    assert!(apply_masks(&mut p, &bad)
        .unwrap_err()
        .to_string()
        .contains("mask \"x\""));
}
