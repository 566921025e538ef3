//! Magnitude pruning masks against a hand example and a naive slicing reference.

use breakingbed::train::prune::{unit_scores, units_to_prune};
use breakingbed::train::{prune_masks, Params, PruneScheme, PruneSpec};
use ndarray::{s, Array4, ArrayD, IxDyn};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn spec(scheme: PruneScheme, rate: f64, layers: &[&str]) -> PruneSpec {
    PruneSpec {
        scheme,
        rate,
        overrides: BTreeMap::new(),
        layers: layers.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn filter_pruning_hand_example() {
    // 4 filters of 1x1x2 weights; l2 norms 5, 1, 13, 2 -> at rate 0.5 filters 1 and 3 go.
    let w = Array4::from_shape_vec((4, 1, 1, 2), vec![3.0, 4.0, 1.0, 0.0, 5.0, 12.0, 0.0, -2.0])
        .unwrap();
    let mut p = Params::new();
    p.insert("conv".into(), w.into_dyn());
    let r = prune_masks(&p, &spec(PruneScheme::Filter, 0.5, &["conv"])).unwrap();
    assert_eq!(r.pruned["conv"], vec![1, 3]);
    let m = &r.masks["conv"];
    assert_eq!(
        m.iter().copied().collect::<Vec<f32>>(),
        vec![1., 1., 0., 0., 1., 1., 0., 0.]
    );
}

#[test]
fn weight_pruning_of_a_linear_layer_and_ties() {
    // |w| = 0.1, 0.5, 0.1, 0.9: rate 0.5 prunes the two 0.1s; at rate 0.25 the tie between
    // elements 0 and 2 goes to the lower index.
    let mut p = Params::new();
    p.insert(
        "fc".into(),
        ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.1, -0.5, -0.1, 0.9]).unwrap(),
    );
    let r = prune_masks(&p, &spec(PruneScheme::Weight, 0.5, &["fc"])).unwrap();
    assert_eq!(r.pruned["fc"], vec![0, 2]);
    let r = prune_masks(&p, &spec(PruneScheme::Weight, 0.25, &["fc"])).unwrap();
    assert_eq!(r.pruned["fc"], vec![0]);
    assert_eq!(r.masks["fc"].shape(), &[2, 2]);
}

#[test]
fn unit_counts_round_and_never_empty_a_layer() {
    assert_eq!(units_to_prune(16, 0.5), 8);
    assert_eq!(units_to_prune(3, 0.5), 2); // 1.5 rounds away from zero
    assert_eq!(units_to_prune(10, 0.04), 0);
    assert_eq!(units_to_prune(2, 0.9), 1); // 1.8 -> 2 would remove the whole layer
    assert_eq!(units_to_prune(1, 0.99), 0);
}

/// Naive scores by slicing: the l2 norm of each unit's sub-array.
fn naive_scores(w: &Array4<f32>, scheme: PruneScheme) -> Vec<f64> {
    let l2 =
        |v: ndarray::ArrayViewD<f32>| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let (o, i, _, _) = w.dim();
    match scheme {
        PruneScheme::Weight => w.iter().map(|&x| (x as f64).abs()).collect(),
        PruneScheme::Kernel => (0..o)
            .flat_map(|a| (0..i).map(move |b| (a, b)))
            .map(|(a, b)| l2(w.slice(s![a, b, .., ..]).into_dyn()))
            .collect(),
        PruneScheme::Filter => (0..o)
            .map(|a| l2(w.slice(s![a, .., .., ..]).into_dyn()))
            .collect(),
        PruneScheme::Channel => (0..i)
            .map(|b| l2(w.slice(s![.., b, .., ..]).into_dyn()))
            .collect(),
    }
}

fn scheme() -> impl Strategy<Value = PruneScheme> {
    prop_oneof![
        Just(PruneScheme::Weight),
        Just(PruneScheme::Kernel),
        Just(PruneScheme::Filter),
        Just(PruneScheme::Channel)
    ]
}

proptest! {
    #[test]
    fn masks_prune_the_smallest_units_and_respect_structure(
        (dims, vals) in (1usize..6, 1usize..6, 1usize..4).prop_flat_map(|(o, i, k)| {
            (Just((o, i, k)), prop::collection::vec(-3.0f32..3.0, o * i * k * k))
        }),
        sch in scheme(),
        rate in 0.01f64..0.99,
    ) {
        let (o, i, k) = dims;
        let w = Array4::from_shape_vec((o, i, k, k), vals).unwrap();
        let mut p = Params::new();
        p.insert("c".into(), w.clone().into_dyn());
        let r = prune_masks(&p, &spec(sch, rate, &["c"])).unwrap();
        let scores = naive_scores(&w, sch);
        let lib = unit_scores("c", &w.clone().into_dyn(), sch).unwrap();
        for (a, b) in scores.iter().zip(&lib) {
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a));
        }
        let pruned = &r.pruned["c"];
        prop_assert_eq!(pruned.len(), units_to_prune(scores.len(), rate));
        let kept_min = (0..scores.len()).filter(|u| !pruned.contains(u)).map(|u| scores[u]).fold(f64::INFINITY, f64::min);
        for &u in pruned {
            prop_assert!(scores[u] <= kept_min);
        }
        // The mask zeroes exactly the pruned units' weights.
        let m = r.masks["c"].clone().into_dimensionality::<ndarray::Ix4>().unwrap();
        for ((a, b, y, x), &v) in m.indexed_iter() {
            let unit = match sch {
                PruneScheme::Weight => ((a * i + b) * k + y) * k + x,
                PruneScheme::Kernel => a * i + b,
                PruneScheme::Filter => a,
                PruneScheme::Channel => b,
            };
            prop_assert_eq!(v, if pruned.contains(&unit) { 0.0 } else { 1.0 });
        }
    }
}

#[test]
fn overrides_set_per_layer_rates() {
    let mut p = Params::new();
    p.insert("a".into(), ArrayD::from_elem(IxDyn(&[10, 4, 3, 3]), 1.0));
    p.insert("b".into(), ArrayD::from_elem(IxDyn(&[10, 4, 3, 3]), 1.0));
    let mut sp = spec(PruneScheme::Filter, 0.5, &["a", "b"]);
    sp.overrides.insert("b".into(), 0.2);
    let r = prune_masks(&p, &sp).unwrap();
    assert_eq!(r.pruned["a"].len(), 5);
    assert_eq!(r.pruned["b"].len(), 2);
    // Equal norms everywhere: the tie rule prunes the lowest indices.
    assert_eq!(r.pruned["b"], vec![0, 1]);
}

#[test]
fn bad_rates_and_layers_are_named_errors() {
    let mut p = Params::new();
    p.insert("a".into(), ArrayD::from_elem(IxDyn(&[4, 4, 3, 3]), 1.0));
    p.insert("bias".into(), ArrayD::from_elem(IxDyn(&[4]), 1.0));
    for rate in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        let e = prune_masks(&p, &spec(PruneScheme::Channel, rate, &["a"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rate:") && e.contains("(0, 1)"), "{e}");
    }
    let mut sp = spec(PruneScheme::Channel, 0.5, &["a"]);
    sp.overrides.insert("a".into(), 1.0);
    assert!(prune_masks(&p, &sp)
        .unwrap_err()
        .to_string()
        .starts_with("overrides.a"));
    let mut sp = spec(PruneScheme::Channel, 0.5, &["a"]);
    sp.overrides.insert("zzz".into(), 0.5);
    assert!(prune_masks(&p, &sp)
        .unwrap_err()
        .to_string()
        .contains("names no layer"));
    let e = prune_masks(&p, &spec(PruneScheme::Kernel, 0.5, &["missing"]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("layers.missing"), "{e}");
    let e = prune_masks(&p, &spec(PruneScheme::Kernel, 0.5, &["bias"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"bias\"") && e.contains("1-d"), "{e}");
    assert!("bogus"
        .parse::<PruneScheme>()
        .unwrap_err()
        .to_string()
        .starts_with("scheme"));
}

#[test]
fn spec_files_round_trip_and_bad_files_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rates.toml");
    let mut sp = spec(
        PruneScheme::Channel,
        0.5,
        &["layer1.conv1.weight", "fc.weight"],
    );
    sp.overrides.insert("fc.weight".into(), 0.25);
    sp.save(&path).unwrap();
    assert_eq!(PruneSpec::load(&path).unwrap(), sp);
    let text = "scheme = \"filter\"\nrate = 0.5\nlayers = [\"a\"]\n[overrides]\na = 1.2\n";
    std::fs::write(&path, text).unwrap();
    let e = PruneSpec::load(&path).unwrap_err().to_string();
    assert!(e.contains("rates.toml") && e.contains("overrides.a"), "{e}");
    std::fs::write(&path, "scheme = \"diagonal\"\nrate = 0.5\nlayers = []\n").unwrap();
    let e = PruneSpec::load(&path).unwrap_err().to_string();
    assert!(e.contains("rates.toml") && e.contains("diagonal"), "{e}");
    let e = PruneSpec::load(dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
}
