//! Learning-rate schedules against their closed forms.

use breakingbed::train::Schedule;
use proptest::prelude::*;
use std::f64::consts::PI;

#[test]
fn constant_is_constant() {
    let s = Schedule::Constant { lr: 0.05 };
    s.validate().unwrap();
    for step in [0, 1, 99, 1_000_000] {
        assert_eq!(s.lr_at(step, 10), 0.05);
    }
}

#[test]
fn step_drops_at_epoch_milestones() {
    // MultiStepLR(milestones=[2, 4], gamma=0.1) with 3 updates per epoch: epochs 0-1 at lr,
    // 2-3 at lr/10, 4+ at lr/100.
    let s = Schedule::Step {
        lr: 0.1,
        milestones: vec![2, 4],
        gamma: 0.1,
    };
    s.validate().unwrap();
    for step in 0..20u64 {
        let epoch = step / 3;
        let want = if epoch < 2 {
            0.1
        } else if epoch < 4 {
            0.1 * 0.1
        } else {
            0.1 * 0.1 * 0.1
        };
        let got = s.lr_at(step, 3) as f64;
        assert!(
            (got - want).abs() <= 1e-6 * want,
            "step {step}: {got} vs {want}"
        );
    }
}

#[test]
fn cosine_hits_its_closed_form_points() {
    // 10 epochs of 4 updates, 2 warmup epochs: W = 8, total 40.
    let s = Schedule::Cosine {
        lr: 0.4,
        min_lr: 0.0,
        total_epochs: 10,
        warmup_epochs: 2,
    };
    s.validate().unwrap();
    // Warmup: lr * (step+1)/8.
    for step in 0..8u64 {
        let want = 0.4 * (step + 1) as f64 / 8.0;
        assert!((s.lr_at(step, 4) as f64 - want).abs() < 1e-7);
    }
    // p = 0 -> lr, p = 1/2 -> lr/2, p = 1 -> min, p = 1/3 -> lr (1 + cos(pi/3))/2 = 0.75 lr.
    assert!((s.lr_at(8, 4) - 0.4).abs() < 1e-7);
    assert!((s.lr_at(24, 4) - 0.2).abs() < 1e-7);
    assert!(s.lr_at(40, 4).abs() < 1e-7);
    assert!(s.lr_at(1000, 4).abs() < 1e-7, "clamped after the end");
    let third = 8 + 32 / 3; // not an integer third: use the exact formula
    let p = (third - 8) as f64 / 32.0;
    let want = 0.4 * 0.5 * (1.0 + (PI * p).cos());
    assert!((s.lr_at(third as u64, 4) as f64 - want).abs() < 1e-7);
}

#[test]
fn cosine_without_warmup_with_floor() {
    let s = Schedule::Cosine {
        lr: 1.0,
        min_lr: 0.1,
        total_epochs: 1,
        warmup_epochs: 0,
    };
    assert!((s.lr_at(0, 100) - 1.0).abs() < 1e-7);
    assert!((s.lr_at(50, 100) - 0.55).abs() < 1e-6);
    assert!((s.lr_at(100, 100) - 0.1).abs() < 1e-7);
}

proptest! {
    #[test]
    fn cosine_decreases_within_bounds_after_warmup(
        lr in 1e-4f32..1.0, frac in 0.0f32..1.0, total in 1usize..30, spe in 1u64..50,
    ) {
        let min_lr = lr * frac;
        let s = Schedule::Cosine { lr, min_lr, total_epochs: total, warmup_epochs: 0 };
        s.validate().unwrap();
        let mut prev = f32::INFINITY;
        for step in 0..(total as u64 * spe + 3) {
            let v = s.lr_at(step, spe);
            prop_assert!(v <= prev && v >= min_lr * (1.0 - 1e-6) && v <= lr * (1.0 + 1e-6));
            prev = v;
        }
    }
}

#[test]
fn invalid_schedules_name_the_field() {
    let cases = [
        (Schedule::Constant { lr: 0.0 }, "schedule.lr"),
        (Schedule::Constant { lr: f32::NAN }, "schedule.lr"),
        (
            Schedule::Step {
                lr: 0.1,
                milestones: vec![5, 3],
                gamma: 0.1,
            },
            "schedule.milestones",
        ),
        (
            Schedule::Step {
                lr: 0.1,
                milestones: vec![],
                gamma: 1.5,
            },
            "schedule.gamma",
        ),
        (
            Schedule::Cosine {
                lr: 0.1,
                min_lr: 0.2,
                total_epochs: 5,
                warmup_epochs: 0,
            },
            "schedule.min_lr",
        ),
        (
            Schedule::Cosine {
                lr: 0.1,
                min_lr: 0.0,
                total_epochs: 5,
                warmup_epochs: 5,
            },
            "schedule.total_epochs",
        ),
    ];
    for (s, field) in cases {
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with(field), "{e}");
    }
}

#[test]
fn schedules_round_trip_through_json() {
    let s = Schedule::Cosine {
        lr: 0.1,
        min_lr: 0.0,
        total_epochs: 200,
        warmup_epochs: 5,
    };
    let j = serde_json::to_string(&s).unwrap();
    assert!(j.contains("\"kind\":\"cosine\""));
    assert_eq!(serde_json::from_str::<Schedule>(&j).unwrap(), s);
}
