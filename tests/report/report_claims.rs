//! The paper-claims analysis: the paired bootstrap against normal theory, verdicts on records
//! built to have a known answer, determinism across seeds and thread counts, and "not measured"
//! rows for what a sweep lacks.

use crate::report_support;

use breakingbed::report::claims::*;
use breakingbed::report::metrics::{paper_stress_specs, Behaviour};
use breakingbed::report::{Setting, SweepRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use report_support::*;

#[test]
fn percentile_ci_of_paired_mean_difference_matches_normal_theory() {
    // Paired differences d_k ~ N(0.1, 0.5^2), n = 2000. Normal theory: mean(d) +- 1.96 * 0.5 /
    // sqrt(n), half-width 0.0219. The bootstrap endpoints differ from it by (a) Monte Carlo
    // error of a 2.5% quantile from B = 2000 resamples: sqrt(p (1 - p) / B) / phi(1.96) = 0.06
    // standard errors = 0.0007; (b) the sample sd in place of the known 0.5 (relative sd
    // 1/sqrt(2n) = 1.6% of the half-width, 0.0004). Together sd ~ 0.0008; tolerance 0.0035 is
    // over four of those, and 16% of the half-width, so a CI of the wrong width (e.g. 90%
    // quantiles, 0.0184 half-width) fails.
    let n = 2000;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let normal = Normal::new(0.1f64, 0.5).unwrap();
    // Each image has a reference and a candidate value; only their difference matters.
    let x: Vec<f64> = (0..n).map(|_| rng.gen::<f64>()).collect();
    let y: Vec<f64> = x.iter().map(|&x| x - normal.sample(&mut rng)).collect();
    let effects = bootstrap(n, 2000, 0, |w| {
        let total: f64 = w.iter().map(|&w| f64::from(w)).sum();
        let mean = |v: &[f64]| v.iter().zip(w).map(|(v, &w)| v * f64::from(w)).sum::<f64>() / total;
        (mean(&x) - mean(&y)) as f32
    });
    let (lo, hi) = percentile_ci(&effects).unwrap();
    let mean = x.iter().zip(&y).map(|(x, y)| x - y).sum::<f64>() / n as f64;
    let half = 1.96 * 0.5 / (n as f64).sqrt();
    eprintln!(
        "bootstrap CI [{lo:.4}, {hi:.4}], normal theory [{:.4}, {:.4}]",
        mean - half,
        mean + half
    );
    assert!((f64::from(lo) - (mean - half)).abs() < 0.0035, "low {lo}");
    assert!((f64::from(hi) - (mean + half)).abs() < 0.0035, "high {hi}");
}

#[test]
fn verdict_rules_at_their_boundaries() {
    use Verdict::*;
    assert_eq!(directional_verdict(0.01, 0.2), Confirmed);
    assert_eq!(directional_verdict(0.0, 0.2), Inconclusive);
    assert_eq!(directional_verdict(-0.2, -0.01), Refuted);
    assert_eq!(directional_verdict(-0.2, 0.0), Inconclusive);
    // Significant but below the margin: practically no more robust.
    assert_eq!(null_verdict(0.01, 0.02, 0.05), Confirmed);
    assert_eq!(null_verdict(0.051, 0.2, 0.05), Refuted);
    assert_eq!(null_verdict(0.05, 0.2, 0.05), Inconclusive);
    assert_eq!(null_verdict(-0.1, 0.049, 0.05), Confirmed);
    assert_eq!(null_verdict(-0.1, 0.05, 0.05), Inconclusive);
    assert_eq!(class_verdict(0.95), Confirmed);
    assert_eq!(class_verdict(0.5), Inconclusive);
    assert_eq!(class_verdict(0.05), Refuted);
}

/// One model's entries attacked on the same 200 images. At each stress point image `k` is
/// fooled when `u[k] < rate` (u shared by every entry: paired). `rates` per entry kind.
fn constructed(rates: &[(&str, f32)]) -> Vec<SweepRecord> {
    let n = 200;
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut out = Vec::new();
    // Per stress point a fresh shared draw, so points are not copies of each other.
    let points: Vec<(&str, Setting, Vec<f32>)> = [("FGSM", eps(2.0)), ("FGSM", eps(8.0))]
        .into_iter()
        .chain([1usize, 10].map(|i| {
            (
                "CW",
                Setting {
                    c: Some(1.0),
                    iterations: Some(i),
                    ..Setting::default()
                },
            )
        }))
        .chain([50usize, 100].map(|i| ("LocalSearch", eps_iter(16.0, i))))
        .map(|(a, s)| (a, s, (0..n).map(|_| rng.gen::<f32>()).collect()))
        .collect();
    for &(kind, rate) in rates {
        let variant = format!("resnet20-{kind}");
        for (attack, s, u) in &points {
            // C&W breaks everything (the paper's "all brittle").
            let rate = if *attack == "CW" { 1.0 } else { rate };
            for (k, &u) in u.iter().enumerate() {
                let adv = if u < rate { 1 } else { 0 };
                out.push(record(
                    &variant,
                    kind,
                    attack,
                    s.clone(),
                    0,
                    result(k, 0, 0, adv, None),
                ));
            }
        }
    }
    out
}

fn row<'a>(r: &'a ClaimsReport, claim: &str, attack: &str, who: &str) -> &'a ClaimRow {
    r.claims
        .iter()
        .find(|c| {
            c.claim == claim && c.attack == attack && (c.candidate == who || c.reference == who)
        })
        .unwrap_or_else(|| panic!("no row {claim} {attack} {who}: {:#?}", r.claims))
}

#[test]
fn constructed_records_give_the_expected_verdicts() {
    // Strain = rate (A = 1). xnor and ch-prune far more robust than vanilla, filter-prune and
    // abc3 identical to it, kd less robust.
    let recs = constructed(&[
        ("vanilla", 0.8),
        ("xnor", 0.2),
        ("abc3", 0.8),
        ("kd-kl", 0.95),
        ("filter-prune", 0.8),
        ("ch-prune", 0.3),
    ]);
    let r = paper_claims(&recs, &paper_stress_specs(), BootstrapConfig::default()).unwrap();
    let v = |claim, attack, who| row(&r, claim, attack, who).verdict;
    use Verdict::*;
    // Directional: clearly more robust -> confirmed; identical -> inconclusive.
    let x = row(&r, "1", "localsearch", "resnet20-xnor");
    assert_eq!(x.verdict, Confirmed, "{x:?}");
    assert!(x.effect.unwrap() > 0.5 && x.ci_low.unwrap() > 0.4, "{x:?}");
    assert_eq!(x.images, 200);
    let a = row(&r, "1", "localsearch", "resnet20-abc3");
    assert_eq!(a.verdict, Inconclusive);
    assert_eq!(
        (a.effect, a.ci_low, a.ci_high),
        (Some(0.0), Some(0.0), Some(0.0))
    );
    // Reversed (kd less robust) -> refuted.
    assert_eq!(v("2a", "fgsm", "resnet20-kd-kl"), Refuted);
    // Null: identical -> confirmed; significantly more robust -> refuted.
    assert_eq!(v("3a", "fgsm", "resnet20-filter-prune"), Confirmed);
    assert_eq!(v("3a", "fgsm", "resnet20-ch-prune"), Refuted);
    assert_eq!(v("2b", "cw", "resnet20-kd-kl"), Confirmed);
    // Pooled binarized family: mean of xnor (0.2) and abc3 (0.8) against 0.8: confirmed.
    let p = row(&r, "1", "localsearch", "binarized (pooled)");
    assert_eq!(p.verdict, Confirmed);
    assert!((p.effect.unwrap() - 0.3).abs() < 0.05, "{p:?}");
    assert!(p.note.contains("missing: abc1x1, abc5x5"), "{p:?}");
    // Swapped PGD claim: vanilla is the candidate; there is no PGD in this sweep.
    let s = row(&r, "3b", "pgd", "resnet20-ch-prune");
    assert_eq!(
        (s.verdict, s.candidate.as_str()),
        (NotMeasured, "resnet20-vanilla")
    );
    // Classes: C&W breaks all at the first point -> brittle, confirmed in every resample.
    let c = r
        .classes
        .iter()
        .find(|c| c.attack == "cw" && c.variant == "resnet20-xnor")
        .unwrap();
    assert_eq!(
        (c.class, c.stability, c.paper_class, c.verdict),
        (
            Some(Behaviour::Brittle),
            Some(1.0),
            Some(Behaviour::Brittle),
            Some(Confirmed)
        )
    );
    // FGSM: the paper states no class.
    assert!(r
        .classes
        .iter()
        .any(|c| c.attack == "fgsm" && c.paper_class.is_none() && c.verdict.is_none()));
}

#[test]
fn missing_entries_and_attacks_are_listed_as_not_measured() {
    let recs = constructed(&[("vanilla", 0.8), ("xnor", 0.2)]);
    let r = paper_claims(&recs, &paper_stress_specs(), BootstrapConfig::default()).unwrap();
    let nm = |claim: &str, attack: &str, who: &str, why: &str| {
        let x = row(&r, claim, attack, who);
        assert_eq!(x.verdict, Verdict::NotMeasured, "{x:?}");
        assert!(x.note.contains(why), "{x:?} lacks {why}");
    };
    nm("1", "localsearch", "abc5x5", "no abc5x5 entry for resnet20");
    nm(
        "1",
        "genattack",
        "resnet20-xnor",
        "no genattack stress-strain curve",
    );
    nm("2a", "fgsm", "kd", "no kd entry");
    nm(
        "3a",
        "deepfool",
        "pruned (pooled)",
        "no deepfool stress-strain curve",
    );
    // Every (claim, attack) of the paper appears, none dropped: 1 (2 attacks x 5 rows), 2a (2),
    // 2b (1), 3a (4 attacks x 5 rows), 3b (5 rows).
    assert_eq!(r.claims.len(), 10 + 2 + 1 + 20 + 5);
    // Classes the paper states but the sweep lacks (GenAttack, DeepFool) are listed too.
    for attack in ["genattack", "deepfool"] {
        assert!(r.classes.iter().any(|c| c.attack == attack
            && c.variant == "resnet20-xnor"
            && c.verdict == Some(Verdict::NotMeasured)));
    }
    // No vanilla at all: still rows, not an error.
    let no_ref: Vec<SweepRecord> = recs
        .into_iter()
        .filter(|r| r.variant_kind != "vanilla")
        .collect();
    let r = paper_claims(&no_ref, &paper_stress_specs(), BootstrapConfig::default()).unwrap();
    let x = row(&r, "1", "localsearch", "resnet20-xnor");
    assert_eq!(x.verdict, Verdict::NotMeasured);
    assert!(x.note.contains("no vanilla entry for resnet20"), "{x:?}");
}

#[test]
fn same_seed_same_json_across_thread_counts() {
    let recs = synthetic_sweep(5, 30);
    let specs = paper_stress_specs();
    let run = |threads: usize, seed: u64| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let cfg = BootstrapConfig {
            resamples: 500,
            seed,
        };
        let r = pool.install(|| paper_claims(&recs, &specs, cfg).unwrap());
        serde_json::to_string(&r).unwrap()
    };
    // Compared without printing: the JSON is long.
    let one = run(1, 9);
    assert!(one == run(1, 9), "same seed, same pool: JSON differs");
    assert!(one == run(2, 9), "1 vs 2 threads: JSON differs");
    // The seed matters (so the equalities above are not vacuous).
    assert!(one != run(2, 10), "seed has no effect");
    assert!(paper_claims(
        &recs,
        &specs,
        BootstrapConfig {
            resamples: 0,
            seed: 0
        }
    )
    .unwrap_err()
    .to_string()
    .contains("--bootstrap"));
}

#[test]
fn image_indices_beyond_the_lookup_table_give_the_same_claims() {
    // Resampling is over the sorted distinct indices, so shifting every index keeps each
    // resample's images; a shift past the dense lookup table exercises the binary search.
    let recs = constructed(&[("vanilla", 0.8), ("xnor", 0.2), ("kd-kl", 0.9)]);
    let shifted: Vec<SweepRecord> = recs
        .iter()
        .cloned()
        .map(|mut r| {
            r.result.index += 5_000_000;
            r
        })
        .collect();
    let cfg = BootstrapConfig {
        resamples: 300,
        seed: 2,
    };
    let a = paper_claims(&recs, &paper_stress_specs(), cfg).unwrap();
    let b = paper_claims(&shifted, &paper_stress_specs(), cfg).unwrap();
    assert!(a.claims.iter().any(|c| c.ci_low.is_some()));
    assert_eq!(a.claims, b.claims);
    assert_eq!(a.classes, b.classes);
}
