//! Attack configuration: parsing, validation errors, and the paper's Table 2 grid.

use breakingbed::attack::spec::{AttackSpec, Grid, Target};
use breakingbed::attack::threat::{Ball, Budget, Norm, Scale};
use breakingbed::attack::Normalization;
use breakingbed::Error;

fn input_err(r: Result<AttackSpec, Error>) -> String {
    match r {
        Err(e @ Error::Input { .. }) => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn parses_pgd_with_explicit_scales_and_defaults() {
    let s = AttackSpec::from_toml(
        r#"attack = "pgd"
           eps = { value = 0.5, scale = "normalized" }
           step = { value = 0.5, scale = "normalized" }
           iterations = 10
           restarts = 5"#,
        "cli",
    )
    .unwrap();
    let AttackSpec::Pgd(p) = s else {
        panic!("not pgd")
    };
    assert_eq!(p.eps, Budget::new(0.5, Scale::Normalized));
    assert_eq!(p.norm, Norm::Linf);
    assert_eq!(p.restarts, 5);
    assert!(p.random_start.get());
    // the paper tracks every 5th iteration
    assert_eq!(p.trace_every, 5);
}

#[test]
fn reference_defaults_are_filled_in() {
    // Carlini's l2_attack.py: 9 search steps, 10000 iterations, lr 0.01, c 1e-3, kappa 0.
    let AttackSpec::Cw(c) = AttackSpec::from_toml(r#"attack = "cw""#, "f").unwrap() else {
        panic!()
    };
    assert_eq!(
        (
            c.binary_search_steps,
            c.max_iterations,
            c.learning_rate,
            c.c,
            c.confidence
        ),
        (9, 10_000, 0.01, 1e-3, 0.0)
    );
    // DeepFool reference: overshoot 0.02, 50 iterations.
    let AttackSpec::DeepFool(d) = AttackSpec::from_toml(r#"attack = "deepfool""#, "f").unwrap()
    else {
        panic!()
    };
    assert_eq!((d.overshoot, d.max_iterations), (0.02, 50));
}

#[test]
fn epsilon_without_scale_is_rejected() {
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\neps = { value = 8 }",
        "run.toml",
    ));
    assert!(
        m.starts_with("run.toml: fgsm.eps:") && m.contains("no scale"),
        "{m}"
    );
}

#[test]
fn negative_and_non_finite_budgets_are_rejected() {
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\neps = { value = -2, scale = \"pixel\" }",
        "run.toml",
    ));
    assert!(
        m.starts_with("run.toml: fgsm.eps:") && m.contains(">= 0"),
        "{m}"
    );
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\neps = { value = nan, scale = \"pixel\" }",
        "run.toml",
    ));
    assert!(m.contains("finite"), "{m}");
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\neps = { value = inf, scale = \"pixel\" }",
        "run.toml",
    ));
    assert!(m.contains("finite"), "{m}");
    // Budgets built in code are checked at use.
    assert!(Budget::new(-1.0, Scale::Unit).validate("eps").is_err());
}

#[test]
fn targeted_without_target_is_rejected() {
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\ntargeted = true\neps = { value = 8, scale = \"pixel\" }",
        "run.toml",
    ));
    assert!(m.contains("target"), "{m}");
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\ntarget = 3\neps = { value = 8, scale = \"pixel\" }",
        "run.toml",
    ));
    assert!(m.contains("targeted"), "{m}");
    let s = AttackSpec::from_toml(
        "attack = \"cw\"\ntargeted = true\ntarget = \"random\"",
        "run.toml",
    )
    .unwrap();
    assert_eq!(s.target(), Some(Target::Random));
    let m = input_err(AttackSpec::from_toml(
        "attack = \"cw\"\ntargeted = true\ntarget = \"sideways\"",
        "run.toml",
    ));
    assert!(m.contains("sideways"), "{m}");
}

#[test]
fn unknown_attack_and_unknown_field_are_rejected() {
    let m = input_err(AttackSpec::from_toml("attack = \"bim\"", "run.toml"));
    assert!(m.contains("bim") && m.contains("fgsm"), "{m}");
    let m = input_err(AttackSpec::from_toml(
        "attack = \"deepfool\"\novershot = 0.02",
        "run.toml",
    ));
    assert!(m.contains("overshot"), "{m}");
}

#[test]
fn spec_round_trips_through_toml() {
    let s = AttackSpec::from_toml(
        "attack = \"genattack\"\neps = { value = 12, scale = \"pixel\" }\ngenerations = 200\n\
         targeted = true\ntarget = 7",
        "f",
    )
    .unwrap();
    let text = toml::to_string(&s).unwrap();
    assert_eq!(AttackSpec::from_toml(&text, "f").unwrap(), s);
}

#[test]
fn table2_grid_expands_to_the_papers_combinations() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/table2.toml"))
        .unwrap();
    let points = Grid::from_toml(&text, "configs/table2.toml")
        .unwrap()
        .expand("configs/table2.toml")
        .unwrap();
    let count = |n: &str| points.iter().filter(|p| p.name == n).count();
    // Table 2: FGSM 4 strengths; PGD 4x4; CW 5x4; DeepFool 4; LocalSearch 3x4; GenAttack 2x4x2.
    assert_eq!(count("fgsm"), 4);
    assert_eq!(count("pgd"), 16);
    assert_eq!(count("cw"), 20);
    assert_eq!(count("deepfool"), 4);
    assert_eq!(count("localsearch"), 12);
    assert_eq!(count("genattack"), 16);
    let fgsm_eps: Vec<f32> = points
        .iter()
        .filter_map(|p| match &p.spec {
            AttackSpec::Fgsm(f) => Some(f.eps.value),
            _ => None,
        })
        .collect();
    assert_eq!(fgsm_eps, vec![2.0, 4.0, 8.0, 16.0]);
    assert!(points.iter().any(|p| matches!(&p.spec,
        AttackSpec::Pgd(s) if s.eps == Budget::new(2.0, Scale::Normalized)
            && s.step == Budget::new(0.5, Scale::Normalized) && s.iterations == 5)));
    assert!(points.iter().any(|p| matches!(&p.spec,
        AttackSpec::Cw(s) if s.c == 10.0 && s.max_iterations == 50 && s.binary_search_steps == 1)));
}

#[test]
fn grid_errors_name_the_entry() {
    let text = r#"
        [[grid]]
        name = "bad"
        spec = { attack = "fgsm", eps = { value = 2, scale = "pixel" } }
        sweep = { "eps.value" = [2, -4] }
    "#;
    let e = Grid::from_toml(text, "g.toml")
        .unwrap()
        .expand("g.toml")
        .unwrap_err();
    assert!(
        e.to_string().contains("bad") && e.to_string().contains(">= 0"),
        "{e}"
    );
}

#[test]
fn budgets_convert_per_channel() {
    let n = Normalization::cifar10();
    // 8 pixel = 8/255 in every channel; 0.5 normalized = 0.5 * std[c].
    let p = Budget::new(8.0, Scale::Pixel)
        .unit_per_channel(&n, "eps")
        .unwrap();
    assert!(p.iter().all(|v| (v - 8.0 / 255.0).abs() < 1e-7));
    let q = Budget::new(0.5, Scale::Normalized)
        .unit_per_channel(&n, "eps")
        .unwrap();
    for (v, s) in q.iter().zip(&n.std) {
        assert!((v - 0.5 * s).abs() < 1e-7);
    }
}

#[test]
fn normalized_scale_with_a_degenerate_std_is_rejected() {
    let bad = Normalization {
        mean: vec![0.5],
        std: vec![0.0],
    };
    let e = Ball::new(
        Norm::L2,
        Budget::new(1.0, Scale::Normalized),
        &bad,
        1,
        "pgd.eps",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("pgd.eps") && e.to_string().contains("std"),
        "{e}"
    );
    let e = Ball::new(
        Norm::Linf,
        Budget::new(1.0, Scale::Pixel),
        &Normalization::cifar10(),
        1,
        "pgd.eps",
    )
    .unwrap_err();
    assert!(e.to_string().contains("channels"), "{e}");
}

fn result(
    label: usize,
    clean: usize,
    adv: usize,
    target: Option<usize>,
    loss: f32,
) -> breakingbed::attack::ImageResult {
    breakingbed::attack::ImageResult {
        index: 0,
        label,
        target,
        clean_pred: clean,
        adv_pred: adv,
        success: match target {
            Some(t) => adv == t,
            None => adv != label,
        },
        scale: Scale::Pixel,
        l0: 0,
        l2: 0.0,
        linf: 0.0,
        iterations: Some(1),
        queries: None,
        loss: Some(loss),
        trace: vec![breakingbed::attack::TracePoint {
            iteration: 0,
            pred: clean,
            loss: Some(loss),
        }],
        warning: None,
    }
}

#[test]
fn summary_and_curve_by_hand() {
    use breakingbed::attack::{curve, summarize};
    // 4 targeted images: clean 3/4 right; after attack 1 keeps its label, 2 hit the target.
    let rs = vec![
        result(0, 0, 0, Some(1), 1.0),
        result(1, 1, 2, Some(2), 2.0),
        result(2, 2, 3, Some(3), 3.0),
        result(3, 0, 1, Some(0), 6.0),
    ];
    let s = summarize(&rs);
    assert_eq!(
        (s.images, s.accuracy_clean, s.accuracy_adv),
        (4, 0.75, 0.25)
    );
    assert_eq!(s.mean_loss, Some(3.0));
    assert_eq!(
        (s.success_rate_all, s.oa, s.ta),
        (0.5, Some(0.25), Some(0.5))
    );
    // Images 0-2 were initially correct; 1 and 2 reached their targets.
    assert_eq!(
        (s.initially_correct, s.success_rate_on_correct),
        (3, Some(2.0 / 3.0))
    );
    // Untargeted: an image already misclassified is a "success" over all images, but not one
    // the attack achieved.
    let u = summarize(&[result(0, 1, 1, None, 1.0), result(1, 1, 1, None, 1.0)]);
    assert_eq!(
        (
            u.success_rate_all,
            u.initially_correct,
            u.success_rate_on_correct
        ),
        (0.5, 1, Some(0.0))
    );
    assert_eq!(
        summarize(&[result(0, 1, 1, None, 1.0)]).success_rate_on_correct,
        None
    );
    let c = curve(&[rs.clone(), rs]);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].accuracy, c[0].samples, c[0].mean_loss),
        (0.75, 8, Some(3.0))
    );
}

#[test]
fn bare_number_epsilon_is_a_missing_scale_error() {
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\neps = 8",
        "run.toml",
    ));
    assert!(m.contains("no scale"), "{m}");
    let m = input_err(AttackSpec::from_toml(
        "attack = \"fgsm\"\neps = { value = 8, scale = \"pixels\" }",
        "run.toml",
    ));
    assert!(m.contains("pixels"), "{m}");
}

/// configs/fashion_claims.toml (the Fashion-MNIST re-measurement) is Table 2 reduced: every point
/// is one of configs/table2.toml's, except the two its comments name as additions (C&W at 5
/// steps, one long traced PGD run); 39 cells per zoo entry with 5 PGD reruns.
#[test]
fn fashion_claims_grid_is_table2_reduced() {
    use breakingbed::attack::driver::setting_of;
    use breakingbed::sweep::plan::plan_attacks;
    let expand = |file: &str| {
        let path = format!("{}/configs/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        Grid::from_toml(&text, &path)
            .unwrap()
            .expand(&path)
            .unwrap()
    };
    let table2 = expand("table2.toml");
    let claims = expand("fashion_claims.toml");
    let key =
        |p: &breakingbed::attack::spec::GridPoint| (p.name.clone(), setting_of(&p.spec).label());
    let in_table2: std::collections::BTreeSet<_> = table2.iter().map(key).collect();
    let mut extra: Vec<String> = claims
        .iter()
        .map(key)
        .filter(|k| !in_table2.contains(k))
        .map(|(n, l)| format!("{n} {l}"))
        .collect();
    extra.sort();
    assert_eq!(
        extra,
        vec!["cw i=5, c=1", "pgd eps=0.1 (normalized), i=20"],
        "additions beyond Table 2"
    );
    // The six attacks are all there.
    for a in ["fgsm", "pgd", "cw", "deepfool", "localsearch", "genattack"] {
        assert!(claims.iter().any(|p| p.name == a), "{a} missing");
    }
    let planned = plan_attacks(&claims, None, 5, "fashion_claims.toml").unwrap();
    let cells: usize = planned.iter().map(|p| p.reruns).sum();
    assert_eq!(cells, 4 + 5 * 5 + 4 + 4 + 1 + 1);
}
