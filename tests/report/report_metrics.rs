//! Metric functions on hand-made result sets whose answers are worked out by hand in comments.

use crate::report_support;

use breakingbed::report::metrics::*;
use breakingbed::report::record::load_records;
use breakingbed::report::{Setting, SweepRecord};
use proptest::prelude::*;
use report_support::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/report");

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn strain_is_relative_accuracy_loss() {
    // (A - A*)/A from the paper's Sec. 4.2.
    assert_eq!(strain(0.8, 0.2), Some(0.75));
    assert_eq!(strain(0.5, 0.5), Some(0.0));
    assert_eq!(strain(0.5, 0.0), Some(1.0));
    // An attack that "helps" gives negative strain rather than being clamped away.
    assert_eq!(strain(0.5, 0.75), Some(-0.5));
    assert_eq!(strain(0.0, 0.0), None);
}

#[test]
fn cell_metrics_of_the_small_fixture() {
    let recs = load_records(format!("{DATA}/small.jsonl"), false).unwrap();
    let cells = cell_metrics(&recs);
    assert_eq!(cells.len(), 4);
    let get = |v: &str, e: f32| {
        cells
            .iter()
            .find(|c| c.variant == v && c.setting.eps == Some(e))
            .unwrap()
    };
    // vanilla eps=2: both clean-correct, one of two survives; losses 0.5, 1.5.
    let c = get("resnet20-vanilla", 2.0);
    assert_eq!((c.attack.as_str(), c.results, c.reruns), ("fgsm", 2, 1));
    assert_eq!(
        (c.clean_accuracy, c.accuracy, c.mean_loss, c.strain),
        (1.0, 0.5, Some(1.0), Some(0.5))
    );
    // vanilla eps=8: none survives; losses 2, 3.
    let c = get("resnet20-vanilla", 8.0);
    assert_eq!(
        (c.accuracy, c.mean_loss, c.strain),
        (0.0, Some(2.5), Some(1.0))
    );
    // xnor: image 1 is misclassified before and after (A = A* = 0.5).
    let c = get("resnet20-xnor", 8.0);
    assert_eq!(
        (c.clean_accuracy, c.accuracy, c.strain),
        (0.5, 0.5, Some(0.0))
    );
}

#[test]
fn paper_stress_axes_pick_the_fixed_settings() {
    let mut recs = Vec::new();
    // PGD at i = 2 and i = 3: only i = 3 is on the Fig. 3 curve (stress = eps).
    for (e, i, adv) in [(0.5, 3, 3), (2.0, 3, 9), (0.5, 2, 9)] {
        recs.push(record(
            "resnet20-vanilla",
            "vanilla",
            "PGD",
            eps_iter(e, i),
            0,
            result(0, 3, 3, adv, None),
        ));
    }
    // GenAttack N = 6 is not on the curve (fixed N = 16, eps = 8); stress = generations.
    for (n, g) in [(16, 50), (16, 100), (6, 100)] {
        let s = Setting {
            population: Some(n),
            ..eps_iter(8.0, g)
        };
        recs.push(record(
            "resnet20-xnor",
            "xnor",
            "GenAttack",
            s,
            0,
            result(0, 3, 3, 3, None),
        ));
    }
    let specs = paper_stress_specs();
    let spec = |a: &str| specs.iter().find(|s| s.attack == a).unwrap();
    let pgd = strain_curves(&recs, spec("pgd"));
    assert_eq!(pgd.len(), 1);
    let pts: Vec<(f32, f32)> = pgd[0].points.iter().map(|p| (p.stress, p.strain)).collect();
    assert_eq!(pts, vec![(0.5, 0.0), (2.0, 1.0)]);
    let ga = strain_curves(&recs, spec("genattack"));
    let pts: Vec<f32> = ga[0].points.iter().map(|p| p.stress).collect();
    assert_eq!(pts, vec![50.0, 100.0]);
    // Attack names are matched canonically: "Local_Search" is "localsearch".
    assert_eq!(
        breakingbed::report::canonical_attack("Local_Search"),
        "localsearch"
    );
    assert_eq!(breakingbed::report::canonical_attack("C&W"), "cw");
}

fn curve(points: &[(f32, f32)]) -> StrainCurve {
    StrainCurve {
        variant: "v".into(),
        variant_kind: "k".into(),
        model: "m".into(),
        attack: "a".into(),
        points: points
            .iter()
            .map(|&(stress, strain)| StrainPoint {
                stress,
                strain,
                accuracy: 0.0,
            })
            .collect(),
    }
}

fn class_of(points: &[(f32, f32)], max: f32) -> Classification {
    classify(&curve(points), max).unwrap()
}

#[test]
fn classification_rule_at_its_boundaries() {
    // Stress grid 1..4, so normalized stress is 0.25, 0.5, 0.75, 1.
    // Strain 0.9 reached exactly at s = 0.5: brittle (the bound is inclusive).
    let c = class_of(&[(1.0, 0.5), (2.0, 0.9), (3.0, 1.0), (4.0, 1.0)], 4.0);
    assert_eq!((c.behaviour, c.s_break), (Behaviour::Brittle, Some(0.5)));
    // Reached at s = 0.75: ductile.
    let c = class_of(&[(1.0, 0.5), (2.0, 0.8), (3.0, 0.9), (4.0, 1.0)], 4.0);
    assert_eq!((c.behaviour, c.s_break), (Behaviour::Ductile, Some(0.75)));
    // Interpolated: strain 0.5 at s = 0.5 and 1.0 at s = 1 cross 0.9 at s = 0.5 + 0.4/0.5 * 0.5 = 0.9.
    let c = class_of(&[(2.0, 0.5), (4.0, 1.0)], 4.0);
    assert_eq!(c.behaviour, Behaviour::Ductile);
    assert!(close(c.s_break.unwrap(), 0.9));
    // Interpolated from the origin: strain 1.0 at s = 0.25 crosses 0.9 at s = 0.225: brittle.
    let c = class_of(&[(1.0, 1.0), (4.0, 1.0)], 4.0);
    assert_eq!(c.behaviour, Behaviour::Brittle);
    assert!(close(c.s_break.unwrap(), 0.225));
    // Never breaks, final strain exactly 0.5: strong; just above: ductile.
    let c = class_of(&[(1.0, 0.25), (4.0, 0.5)], 4.0);
    assert_eq!(
        (c.behaviour, c.s_break, c.final_strain),
        (Behaviour::Strong, None, 0.5)
    );
    let c = class_of(&[(1.0, 0.25), (4.0, 0.51)], 4.0);
    assert_eq!(c.behaviour, Behaviour::Ductile);
    // The first crossing counts even if strain later falls back.
    let c = class_of(&[(1.0, 0.95), (4.0, 0.3)], 4.0);
    assert_eq!(c.behaviour, Behaviour::Brittle);
    // A variant measured only at low stress is normalized by the attack's overall maximum:
    // its curve ends at s = 0.5 with strain 0.4: never broke, final strain 0.4: strong.
    let curves = vec![curve(&[(1.0, 0.2), (2.0, 0.4)]), curve(&[(4.0, 0.95)])];
    let all = classify_all(&curves);
    assert_eq!(all[0].behaviour, Behaviour::Strong);
    // The second breaks at 0.9/0.95 of the way from the origin: s = 0.947..., ductile.
    assert_eq!(all[1].behaviour, Behaviour::Ductile);
    assert!(classify(&curve(&[]), 4.0).is_none());
    assert!(classify(&curve(&[(1.0, 0.1)]), 0.0).is_none());
}

#[test]
fn small_fixture_classification() {
    // vanilla: strain 0.5 at eps 2 (s = 0.25) and 1.0 at eps 8 (s = 1):
    // crossing at 0.25 + 0.4/0.5 * 0.75 = 0.85 -> ductile. xnor: strain 0 throughout -> strong.
    let recs = load_records(format!("{DATA}/small.jsonl"), false).unwrap();
    let spec = &paper_stress_specs()[0];
    let cls = classify_all(&strain_curves(&recs, spec));
    assert_eq!(cls[0].variant, "resnet20-vanilla");
    assert_eq!(cls[0].behaviour, Behaviour::Ductile);
    assert!(close(cls[0].s_break.unwrap(), 0.85));
    assert_eq!(cls[1].behaviour, Behaviour::Strong);
}

#[test]
fn box_stats_match_hand_worked_quartiles() {
    // numpy.percentile([1..9, 100], [25, 50, 75]) = [3.25, 5.5, 7.75] (linear, type 7).
    // IQR 4.5, fences -3.5 and 14.5: 100 is an outlier, the upper whisker stops at 9.
    let v = [9.0, 1.0, 2.0, 100.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let s = box_stats(&v, "t").unwrap();
    assert_eq!((s.q1, s.median, s.q3), (3.25, 5.5, 7.75));
    assert_eq!(
        (s.lower_whisker, s.upper_whisker, s.min, s.max),
        (1.0, 9.0, 1.0, 100.0)
    );
    assert_eq!(s.outliers, vec![100.0]);
    assert!(close(s.mean, 14.5));
    // Ties: [5, 5, 5, 5, 20] has Q1 = median = Q3 = 5, IQR 0, so 20 is an outlier.
    let s = box_stats(&[5.0, 20.0, 5.0, 5.0, 5.0], "t").unwrap();
    assert_eq!((s.q1, s.median, s.q3), (5.0, 5.0, 5.0));
    assert_eq!((s.lower_whisker, s.upper_whisker), (5.0, 5.0));
    assert_eq!(s.outliers, vec![20.0]);
    // Ties with outliers on both sides: [0, 10 x5, 12]: quartiles 10, outliers 0 and 12.
    let s = box_stats(&[10.0, 0.0, 10.0, 10.0, 12.0, 10.0, 10.0], "t").unwrap();
    assert_eq!((s.q1, s.median, s.q3), (10.0, 10.0, 10.0));
    assert_eq!(s.outliers, vec![0.0, 12.0]);
    // A point exactly on the fence is inside: [0, 2, 4, 6, 12] has Q1 2, Q3 6, upper fence 12.
    let s = box_stats(&[0.0, 2.0, 4.0, 6.0, 12.0], "t").unwrap();
    assert_eq!((s.upper_whisker, s.outliers.len()), (12.0, 0));
    let s = box_stats(&[0.0, 2.0, 4.0, 6.0, 12.5], "t").unwrap();
    assert_eq!((s.upper_whisker, s.outliers.clone()), (6.0, vec![12.5]));
    // Two values: Q1 = 2 + 0.25 * 2 = 2.5, Q3 = 3.5.
    let s = box_stats(&[4.0, 2.0], "t").unwrap();
    assert_eq!((s.q1, s.median, s.q3), (2.5, 3.0, 3.5));
    let s = box_stats(&[7.0], "t").unwrap();
    assert_eq!(
        (s.q1, s.q3, s.lower_whisker, s.upper_whisker),
        (7.0, 7.0, 7.0, 7.0)
    );
    // Bad input names its context.
    let e = box_stats(&[], "box fgsm/xnor").unwrap_err().to_string();
    assert!(e.contains("box fgsm/xnor"), "{e}");
    assert!(box_stats(&[1.0, f32::NAN], "t").is_err());
}

/// Naive reference for type-7 quantiles: the piecewise-linear interpolant through the points
/// (k / (n - 1), x_k), evaluated by scanning segments.
fn naive_quantile(x: &[f32], p: f32) -> f32 {
    let mut s: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    s.sort_by(f64::total_cmp);
    if s.len() == 1 {
        return s[0] as f32;
    }
    let n1 = (s.len() - 1) as f64;
    let p = f64::from(p);
    for k in 0..s.len() - 1 {
        let (a, b) = (k as f64 / n1, (k + 1) as f64 / n1);
        if p >= a && p <= b {
            return (s[k] + (p - a) / (b - a) * (s[k + 1] - s[k])) as f32;
        }
    }
    s[s.len() - 1] as f32
}

proptest! {
    #[test]
    fn box_stats_invariants(v in proptest::collection::vec(0.0f32..100.0, 1..40)) {
        let s = box_stats(&v, "p").unwrap();
        prop_assert!(s.min <= s.lower_whisker && s.lower_whisker <= s.q1 + 1e-4);
        prop_assert!(s.q1 <= s.median + 1e-4 && s.median <= s.q3 + 1e-4);
        prop_assert!(s.q3 <= s.upper_whisker + 1e-4 && s.upper_whisker <= s.max);
        let iqr = s.q3 - s.q1;
        let inside = v.iter().filter(|&&x| x >= s.q1 - 1.5 * iqr && x <= s.q3 + 1.5 * iqr).count();
        prop_assert_eq!(inside + s.outliers.len(), v.len());
        for p in [0.25f32, 0.5, 0.75] {
            let want = naive_quantile(&v, p);
            let got = [s.q1, s.median, s.q3][((p * 4.0) as usize) - 1];
            prop_assert!((want - got).abs() < 1e-3, "p={} want {} got {}", p, want, got);
        }
    }
}

/// 10 images (labels 0..9) of one PGD rerun whose number of still-correct images at iterations
/// 0, 5, 10, 15, 20 is `correct` (non-increasing): image k stays correct while k < correct[t].
fn pgd_rerun(
    variant: &str,
    rerun: usize,
    correct: [usize; 5],
    loss_scale: f32,
) -> Vec<SweepRecord> {
    (0..10)
        .map(|k| {
            let mut r = result(k, k, k, k, None);
            let pts: Vec<(usize, usize, Option<f32>)> = (1..5)
                .map(|t| {
                    let pred = if k < correct[t] { k } else { (k + 1) % 10 };
                    (5 * t, pred, Some(loss_scale * t as f32))
                })
                .collect();
            r.trace = trace(&pts);
            r.adv_pred = r.trace.last().unwrap().pred;
            record(variant, "vanilla", "pgd", eps_iter(2.0, 20), rerun, r)
        })
        .collect()
}

#[test]
fn pgd_breaking_iteration_per_rerun_and_of_the_mean() {
    let mut recs = pgd_rerun("resnet20-vanilla", 0, [10, 8, 5, 1, 0], 1.0);
    recs.extend(pgd_rerun("resnet20-vanilla", 1, [10, 9, 7, 4, 2], 2.0));
    let c = &pgd_curves(&recs, "PGD", 10).unwrap()[0];
    assert_eq!(c.iterations, vec![0, 5, 10, 15, 20]);
    // Rerun 0 reaches 10% (exactly the line, inclusive) at i = 15; rerun 1 never reaches it.
    assert_eq!(c.per_rerun_breaking, vec![Some(15), None]);
    assert_eq!((c.mean_breaking, c.unbroken), (Some(15.0), 1));
    // Mean curve: (1, .85, .6, .25, .1): it reaches the line at i = 20.
    let want = [1.0, 0.85, 0.6, 0.25, 0.1];
    assert!(
        c.accuracy.iter().zip(want).all(|(&a, b)| close(a, b)),
        "{:?}",
        c.accuracy
    );
    assert_eq!(c.breaking_of_mean, Some(20));
    // Loss: rerun 0 has t, rerun 1 has 2t at iteration 5t: mean 1.5 t; none at iteration 0.
    assert_eq!(c.loss[0], None);
    assert!(close(c.loss[2].unwrap(), 3.0));

    // Three reruns breaking at 5, 10, 15 average to 10 (the paper averages five reruns).
    let mut recs = pgd_rerun("a-x", 0, [10, 1, 0, 0, 0], 1.0);
    recs.extend(pgd_rerun("a-x", 1, [10, 5, 1, 0, 0], 1.0));
    recs.extend(pgd_rerun("a-x", 2, [10, 6, 3, 1, 0], 1.0));
    let c = &pgd_curves(&recs, "pgd", 10).unwrap()[0];
    assert_eq!(c.per_rerun_breaking, vec![Some(5), Some(10), Some(15)]);
    assert_eq!((c.mean_breaking, c.unbroken), (Some(10.0), 0));
    // A never-breaking model: no breaking iteration anywhere.
    let recs = pgd_rerun("a-y", 0, [10, 9, 9, 9, 9], 1.0);
    let c = &pgd_curves(&recs, "pgd", 10).unwrap()[0];
    assert_eq!(
        (c.mean_breaking, c.breaking_of_mean, c.unbroken),
        (None, None, 1)
    );
    assert!(pgd_curves(&recs, "pgd", 1).is_err());
}

#[test]
fn early_stopped_trace_keeps_its_last_prediction() {
    // Image stops at iteration 5 already fooled: it counts as fooled at 10 and 15 as well.
    let mut r = result(0, 1, 1, 2, None);
    r.trace = trace(&[(5, 2, None)]);
    let mut r2 = result(1, 1, 1, 1, None);
    r2.trace = trace(&[(5, 1, None), (10, 1, None), (15, 2, None)]);
    let recs = vec![
        record("m-v", "v", "pgd", eps_iter(1.0, 15), 0, r),
        record("m-v", "v", "pgd", eps_iter(1.0, 15), 0, r2),
    ];
    let c = &pgd_curves(&recs, "pgd", 4).unwrap()[0];
    assert_eq!(c.accuracy, vec![1.0, 0.5, 0.5, 0.0]);
    // 1/4 classes: breaking line 0.25, reached at 15.
    assert_eq!(c.breaking_of_mean, Some(15));
}

#[test]
fn genattack_oa_ta_per_generation() {
    // Targeted GenAttack on 4 images, label 0, target 1. Elite predictions by generation:
    // img0: 0 until g=100 then 1 (target) ; img1: 2 from g=50 ; img2: 0 throughout ;
    // img3: stopped at g=50 on the target.
    let s = Setting {
        population: Some(16),
        ..eps_iter(8.0, 200)
    };
    let mk = |i: usize, pts: &[(usize, usize, Option<f32>)]| {
        let mut r = result(i, 0, 0, pts.last().unwrap().1, None);
        r.target = Some(1);
        r.trace = trace(pts);
        record("r20-xnor", "xnor", "GenAttack", s.clone(), 0, r)
    };
    let recs = vec![
        mk(0, &[(50, 0, None), (100, 1, None)]),
        mk(1, &[(50, 2, None), (200, 2, None)]),
        mk(2, &[(50, 0, None), (200, 0, None)]),
        mk(3, &[(50, 1, None)]),
    ];
    let rows = genattack_rows(&recs, &[50, 100, 200]);
    let g = &rows[0].rows;
    // img1's elite (class 2) is never adversarial: a failed targeted run reports the clean
    // image, so it counts with its clean prediction 0 (docs/attacks.md, GenAttack failure).
    // g=50: OA = {0, 1, 2} = 0.75, TA = {3} = 0.25; g=100: OA = {1, 2}, TA = {0, 3}; g=200 same.
    assert_eq!((g[0].oa, g[0].ta), (0.75, Some(0.25)));
    assert_eq!((g[1].oa, g[1].ta), (0.5, Some(0.5)));
    assert_eq!((g[2].oa, g[2].ta), (0.5, Some(0.5)));
    // Without requested generations: five evenly spaced up to the setting's 200.
    let rows = genattack_rows(&recs, &[]);
    let gens: Vec<usize> = rows[0].rows.iter().map(|r| r.generation).collect();
    assert_eq!(gens, vec![40, 80, 120, 160, 200]);
    assert_eq!(default_generations(1000), vec![200, 400, 600, 800, 1000]);
}

#[test]
fn attack_boxes_pool_models_per_kind() {
    // Fig. 4 pools ResNet20 and ResNet56 per compression kind: two cells per kind here.
    let mut recs = Vec::new();
    for (v, adv) in [("resnet20-xnor", 3), ("resnet56-xnor", 9)] {
        recs.push(record(
            v,
            "xnor",
            "fgsm",
            eps(2.0),
            0,
            result(0, 3, 3, adv, None),
        ));
    }
    let boxes = attack_boxes(&cell_metrics(&recs)).unwrap();
    assert_eq!(boxes.len(), 1);
    assert_eq!(boxes[0].stats.n, 2);
    // Values 0 and 100 percent: Q1 25, median 50, Q3 75.
    assert_eq!(
        (boxes[0].stats.q1, boxes[0].stats.median, boxes[0].stats.q3),
        (25.0, 50.0, 75.0)
    );
}

#[test]
fn loader_reports_the_corrupt_line_or_skips_it() {
    let e = load_records(format!("{DATA}/corrupt.jsonl"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupt.jsonl:3"), "{e}");
    let recs = load_records(format!("{DATA}/corrupt.jsonl"), true).unwrap();
    assert_eq!(recs.len(), 4);
    // Valid JSON but not a record (rerun is a string): named by line too.
    let e = load_records(format!("{DATA}/bad_record.jsonl"), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad_record.jsonl:2") && e.contains("rerun"),
        "{e}"
    );
    assert_eq!(
        load_records(format!("{DATA}/bad_record.jsonl"), true)
            .unwrap()
            .len(),
        2
    );
    let e = load_records(format!("{DATA}/missing.jsonl"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.jsonl"), "{e}");
}

#[test]
fn loader_rejects_semantically_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("neg.jsonl");
    let mut r = record("r20-v", "v", "fgsm", eps(-1.0), 0, result(0, 1, 1, 1, None));
    let mut line = serde_json::to_string(&r).unwrap();
    r.setting = eps(2.0);
    r.attack = "  ".into();
    line = format!("{line}\n{}\n", serde_json::to_string(&r).unwrap());
    std::fs::write(&p, line).unwrap();
    let e = load_records(&p, false).unwrap_err().to_string();
    assert!(
        e.contains("neg.jsonl:1") && e.contains("setting.eps"),
        "{e}"
    );
    // With skipping both lines go (line 2 has an empty attack name).
    assert!(load_records(&p, true).unwrap().is_empty());
    // Round trip of a valid record.
    let good = record(
        "r20-v",
        "v",
        "fgsm",
        eps(2.0),
        3,
        result(0, 1, 1, 2, Some(0.5)),
    );
    std::fs::write(&p, serde_json::to_string(&good).unwrap() + "\n").unwrap();
    assert_eq!(load_records(&p, false).unwrap(), vec![good]);
}

#[test]
fn classification_of_paper_table6_genattack() {
    // Paper Table 6 (ImageNet GenAttack, eps = 8, OA at i = 200..1000, clean accuracy in
    // brackets). Strain = (A - OA) / A on the normalized stress axis i / 1000.
    let rows = [
        ("ResNet50", 75.43, [21.29, 11.64, 6.87, 4.67, 3.06]),
        ("ResNet18", 69.00, [16.41, 8.11, 4.35, 2.36, 1.34]),
        ("ResNet18-XNOR", 49.10, [13.06, 12.86, 12.64, 12.68, 12.68]),
    ];
    let cls: Vec<Classification> = rows
        .iter()
        .map(|(name, clean, oa)| {
            let pts: Vec<(f32, f32)> = oa
                .iter()
                .enumerate()
                .map(|(k, &a)| (200.0 * (k + 1) as f32, strain(*clean, a).unwrap()))
                .collect();
            let mut c = curve(&pts);
            c.variant = name.to_string();
            classify(&c, 1000.0).unwrap()
        })
        .collect();
    // ResNet50: strain 63.79/75.43 = 0.845685 at s = 0.4 and 68.56/75.43 = 0.908922 at 0.6:
    // s_break = 0.4 + 0.054315 / 0.063237 * 0.2 = 0.57178 -> ductile.
    assert_eq!(cls[0].behaviour, Behaviour::Ductile);
    assert!(
        (cls[0].s_break.unwrap() - 0.57178).abs() < 1e-4,
        "{:?}",
        cls[0]
    );
    // ResNet18: 0.882464 at 0.4, 0.936957 at 0.6: s_break = 0.4 + 0.017536/0.054493*0.2 = 0.46436
    // -> brittle (the smaller model breaks earlier, as the paper observes for ResNet20 vs 56).
    assert_eq!(cls[1].behaviour, Behaviour::Brittle);
    assert!(
        (cls[1].s_break.unwrap() - 0.46436).abs() < 1e-4,
        "{:?}",
        cls[1]
    );
    // XNOR plateaus at OA ~12.7% and never reaches strain 0.9 (final 36.42/49.10 = 0.74175), but
    // loses over half its accuracy: ductile by our rule, not strong.
    assert_eq!(
        (cls[2].behaviour, cls[2].s_break),
        (Behaviour::Ductile, None)
    );
    assert!((cls[2].final_strain - 0.74175).abs() < 1e-4);
}

#[test]
fn setting_labels_and_matching() {
    let s = Setting {
        population: Some(16),
        ..eps_iter(8.0, 200)
    };
    assert_eq!(s.label(), "eps=8 (0-255), i=200, N=16");
    assert_eq!(Setting::default().label(), "default");
    assert!(s.matches(&Setting {
        population: Some(16),
        ..Setting::default()
    }));
    assert!(!s.matches(&Setting {
        population: Some(6),
        ..Setting::default()
    }));
    assert!(s.matches(&Setting::default()));
    assert_ne!(eps(0.1).label(), eps(0.10000001).label());
}

#[test]
fn results_files_expand_directories() {
    use breakingbed::report::results_files;
    let dir = tempfile::tempdir().unwrap();
    for n in ["b.jsonl", "a.jsonl", "notes.txt"] {
        std::fs::write(dir.path().join(n), "").unwrap();
    }
    let files = results_files(&[dir.path()]).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a.jsonl", "b.jsonl"]);
    let empty = tempfile::tempdir().unwrap();
    let e = results_files(&[empty.path()]).unwrap_err().to_string();
    assert!(e.contains("no *.jsonl"), "{e}");
    assert!(results_files(&[dir.path().join("nope")]).is_err());
}

#[test]
fn genattack_table_uses_the_longest_run_per_setting() {
    // Cells i = 50 and i = 100 of the same (eps, N): one row, from the i = 100 run, whose trace
    // covers generation 50 too. Image fooled (pred 2) from generation 60 on.
    let mk = |gens: usize, n: usize| {
        let s = Setting {
            population: Some(n),
            ..eps_iter(8.0, gens)
        };
        let pts: Vec<(usize, usize, Option<f32>)> = (1..=gens / 10)
            .map(|t| (10 * t, if 10 * t >= 60 { 2 } else { 0 }, None))
            .collect();
        let mut r = result(0, 0, 0, pts.last().unwrap().1, None);
        r.trace = trace(&pts);
        record("r56-xnor", "xnor", "genattack", s, 0, r)
    };
    let recs = vec![mk(50, 16), mk(100, 16), mk(50, 6)];
    let rows = genattack_rows(&recs, &[]);
    // Default columns: five up to the longest run (100); the N = 6 row (run of 50) gets 20, 40.
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].setting.population, Some(6));
    let g6: Vec<(usize, f32)> = rows[0].rows.iter().map(|g| (g.generation, g.oa)).collect();
    assert_eq!(g6, vec![(20, 1.0), (40, 1.0)]);
    assert_eq!(rows[1].setting.iterations, Some(100));
    let g16: Vec<(usize, f32)> = rows[1].rows.iter().map(|g| (g.generation, g.oa)).collect();
    assert_eq!(
        g16,
        vec![(20, 1.0), (40, 1.0), (60, 0.0), (80, 0.0), (100, 0.0)]
    );
    // Untargeted: no TA.
    assert!(rows[1].rows.iter().all(|g| g.ta.is_none()));
}

/// LocalSearch (eps 16), 4 images of label 0, all clean-correct (A = 1). One traced cell of
/// 50 rounds; image k is fooled at round 7, 23, never, 50. Points at 5, 10, ..., 50
/// (ceil(50 k / 10)). Prediction at i = last trace point at or before i:
///   i = 5: none fooled -> strain 0; i = 15, 20: one -> 0.25; i = 25..45: two -> 0.5;
///   i = 50: the cell's own (measured) point, three fooled -> 0.75.
/// A separate cell at i = 10 (two of four fooled, strain 0.5) keeps its measured point
/// instead of the traced 0.25, and appears once.
fn traced_local_search() -> Vec<SweepRecord> {
    let s16 = |i| eps_iter(16.0, i);
    let mut recs = Vec::new();
    for (k, tr) in [
        vec![(0, 0, None), (7, 1, None)],
        vec![(0, 0, None), (23, 2, None)],
        vec![(0, 0, None), (50, 0, None)],
        vec![(0, 0, None), (50, 3, None)],
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = result(k, 0, 0, tr.last().unwrap().1, None);
        r.trace = trace(&tr);
        recs.push(record(
            "resnet20-vanilla",
            "vanilla",
            "LocalSearch",
            s16(50),
            0,
            r,
        ));
        let adv10 = if k < 2 { 1 } else { 0 };
        recs.push(record(
            "resnet20-vanilla",
            "vanilla",
            "LocalSearch",
            s16(10),
            0,
            result(k, 0, 0, adv10, None),
        ));
    }
    recs
}

#[test]
fn long_traced_cell_adds_curve_points_and_explicit_cells_keep_theirs() {
    let mut recs = traced_local_search();
    let specs = paper_stress_specs();
    let spec = specs.iter().find(|s| s.attack == "localsearch").unwrap();
    let curves = strain_curves(&recs, spec);
    assert_eq!(curves.len(), 1);
    let pts: Vec<(f32, f32)> = curves[0]
        .points
        .iter()
        .map(|p| (p.stress, p.strain))
        .collect();
    let want = vec![
        (5.0, 0.0),
        (10.0, 0.5),
        (15.0, 0.25),
        (20.0, 0.25),
        (25.0, 0.5),
        (30.0, 0.5),
        (35.0, 0.5),
        (40.0, 0.5),
        (45.0, 0.5),
        (50.0, 0.75),
    ];
    assert_eq!(pts, want);
    let data = curve_data(&recs, spec);
    let traced: Vec<f32> = data[0]
        .points
        .iter()
        .filter(|p| p.from_trace)
        .map(|p| p.stress)
        .collect();
    assert_eq!(traced, vec![5.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]);
    // Without traces only the two measured cells remain.
    for r in &mut recs {
        r.result.trace.clear();
    }
    let pts: Vec<f32> = strain_curves(&recs, spec)[0]
        .points
        .iter()
        .map(|p| p.stress)
        .collect();
    assert_eq!(pts, vec![10.0, 50.0]);
}

#[test]
fn traced_cell_adds_its_curve_counts_to_the_box_plot() {
    // The fixture above: measured cells i = 10 (A* 50%) and i = 50 (25%); read off the trace
    // i = 5 (100%), 15 and 20 (75%), 25..45 (five at 50%); i = 10 is measured, not repeated.
    let recs = traced_local_search();
    let traced = trace_cells(&recs);
    let got: Vec<(Option<usize>, f32)> = traced
        .iter()
        .map(|c| (c.setting.iterations, 100.0 * c.accuracy))
        .collect();
    let want: Vec<(Option<usize>, f32)> = [(5, 100.0), (15, 75.0), (20, 75.0)]
        .into_iter()
        .chain((25..=45).step_by(5).map(|i| (i, 50.0)))
        .map(|(i, a)| (Some(i), a))
        .collect();
    assert_eq!(got, want);
    assert!(traced
        .iter()
        .all(|c| c.setting.eps == Some(16.0) && c.clean_accuracy == 1.0));
    let boxes = attack_boxes(&[cell_metrics(&recs), traced].concat()).unwrap();
    assert_eq!(boxes.len(), 1);
    // Sorted: 25, 50 x6, 75, 75, 100 (n = 10). Type 7: Q1 at h = 2.25 -> 50; median at
    // h = 4.5 -> 50; Q3 at h = 6.75 -> 50 + 0.75 (75 - 50) = 68.75.
    let b = &boxes[0].stats;
    assert_eq!((b.n, b.q1, b.median, b.q3), (10, 50.0, 50.0, 68.75));
    // No trace, no extra cells.
    let mut plain = recs.clone();
    for r in &mut plain {
        r.result.trace.clear();
    }
    assert!(trace_cells(&plain).is_empty());
}

#[test]
fn genattack_traced_points_follow_its_generation_table() {
    // Targeted GenAttack (eps 8, N = 16, 20 generations, traced every generation it ran),
    // label 0, target 5. Image 0: elite predicts 2 from generation 3 (not the target, so by the
    // failure rule still the clean prediction 0) and the target from 8. Image 1: target from 1.
    // Image 2: clean-wrong (clean 4), never adversarial. Image 3: never adversarial.
    let s = Setting {
        population: Some(16),
        ..eps_iter(8.0, 20)
    };
    let mut recs = Vec::new();
    for (k, clean, tr) in [
        (0, 0, vec![(1, 0, None), (3, 2, None), (8, 5, None)]),
        (1, 0, vec![(1, 5, None)]),
        (2, 4, vec![(1, 4, None), (20, 4, None)]),
        (3, 0, vec![(1, 0, None), (20, 0, None)]),
    ] {
        let mut r = result(k, 0, clean, 0, None);
        r.target = Some(5);
        r.trace = trace(&tr);
        r.adv_pred = breakingbed::attack::genattack::pred_at_generation(&r, 20);
        recs.push(record(
            "resnet20-xnor",
            "xnor",
            "GenAttack",
            s.clone(),
            0,
            r,
        ));
    }
    let specs = paper_stress_specs();
    let spec = specs.iter().find(|s| s.attack == "genattack").unwrap();
    let curve = &strain_curves(&recs, spec)[0];
    // A = 3/4. A*: gen 2, 4, 6: image 0 counts as clean (0) -> 2/4 correct; gen >= 8: 1/4.
    let want: Vec<(f32, f32)> = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
        .iter()
        .map(|&g| (g as f32, if g < 8 { 0.5 } else { 0.25 }))
        .collect();
    let got: Vec<(f32, f32)> = curve
        .points
        .iter()
        .map(|p| (p.stress, p.accuracy))
        .collect();
    assert_eq!(got, want);
    // The same numbers as the OA column of the generation table.
    let results: Vec<_> = recs.iter().map(|r| r.result.clone()).collect();
    let gens: Vec<usize> = want.iter().map(|w| w.0 as usize).collect();
    let oa: Vec<f32> = breakingbed::attack::genattack::accuracy_at_generations(&results, &gens)
        .iter()
        .map(|g| g.oa)
        .collect();
    assert_eq!(oa, got.iter().map(|g| g.1).collect::<Vec<_>>());
}
