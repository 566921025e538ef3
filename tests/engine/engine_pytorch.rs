//! The binarized weight layout of docs/weights.md against an independent implementation: the
//! PyTorch reference module `examples/pytorch_binary.py` built ResNet-8 (1x28x28) as XNOR and
//! ABC(3x3), saved its state dict and recorded its logits on four images
//! (`tests/fixtures/pytorch_binary/`, regenerate with the script). Our engines load the
//! files and must give the recorded logits.
//!
//! Tolerance: |ours - torch| <= 1e-4 * max(1, max |logit|). Both sides compute the binary
//! sums exactly (integers below 2^24 in float32) and scale them the same way, but PyTorch
//! evaluates batch-norm as `(x - mean) / sqrt(var + eps) * gamma + beta` where we fold it to
//! `x * scale + shift`, and pools / sums in its own order: float rounding of ~1e-7 relative
//! per op. A layout error (a wrong alpha rule, base order, sign(0), shift sign, a missing
//! hardtanh) changes logits by far more than 1e-4.

use std::path::{Path, PathBuf};

use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::io::weights::{check_variant, WeightStore};
use breakingbed::model;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{Array2, Array4, Ix2, Ix4};
use serde_json::Value;

use crate::common::bbed;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch_binary")
        .join(name)
}

fn spec(kind: VariantKind, m: usize, n: usize) -> VariantSpec {
    let mut s = VariantSpec::new(kind);
    s.options.m = m;
    s.options.n = n;
    s
}

fn check_fixture(stem: &str, spec: VariantSpec) {
    let network = model::builtin("resnet8", Some([1, 28, 28]), Some(10)).unwrap();
    let cn = apply(&network, &spec).unwrap();
    let weights = fixture(&format!("{stem}.safetensors"));
    check_variant(&weights, &cn.spec).unwrap();
    let p = params::load(&cn, &weights).unwrap();
    let io = WeightStore::load(fixture(&format!("{stem}.io.safetensors"))).unwrap();
    let x: Array4<f32> = io.tensors["inputs"]
        .clone()
        .into_dimensionality::<Ix4>()
        .unwrap();
    let want: Array2<f32> = io.tensors["logits"]
        .clone()
        .into_dimensionality::<Ix2>()
        .unwrap();
    let fe = FloatEngine::new(Net::new(cn.clone(), p.clone()).unwrap()).unwrap();
    let be = BinaryEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let lf = fe.try_logits(&x).unwrap();
    let lb = be.try_logits(&x).unwrap();
    assert_eq!(lf, lb, "{stem}: the two engines must agree bit for bit");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = lf
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{stem}: max |ours - torch| = {diff:e}");
    assert!(
        diff <= 1e-4 * scale,
        "{stem}: max logit difference {diff} > 1e-4 * {scale}\nours {lf:?}\ntorch {want:?}"
    );
}

#[test]
fn pytorch_xnor_resnet8_loads_and_gives_the_recorded_logits() {
    check_fixture("resnet8_xnor", spec(VariantKind::Xnor, 1, 1));
}

#[test]
fn pytorch_abc_resnet8_loads_and_gives_the_recorded_logits() {
    check_fixture("resnet8_abc3x3", spec(VariantKind::Abc, 3, 3));
}

fn verify_args<'a>(weights: &'a str, variant: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "verify",
        "--model",
        "resnet8",
        "--input",
        "1,28,28",
        "--images",
        "2",
        "--weights",
        weights,
    ];
    a.extend_from_slice(variant);
    a
}

#[test]
fn a_weight_file_for_another_variant_is_refused_by_name() {
    let xnor = fixture("resnet8_xnor.safetensors");
    let abc = fixture("resnet8_abc3x3.safetensors");
    let (xs, abs) = (xnor.to_str().unwrap(), abc.to_str().unwrap());
    for (file, variant, stored, asked) in [
        (
            xs,
            &["--variant", "abc", "--m", "1", "--n", "1"][..],
            "xnor",
            "abc (m=1, n=1",
        ),
        (abs, &["--variant", "xnor"][..], "abc (m=3, n=3", "xnor"),
        (
            abs,
            &["--variant", "abc", "--m", "2", "--n", "3"][..],
            "abc (m=3, n=3",
            "abc (m=2, n=3",
        ),
        (
            xs,
            &["--variant", "xnor", "--fp-first-last", "false"][..],
            "xnor (fp_first_last=true",
            "xnor (fp_first_last=false",
        ),
    ] {
        let args = verify_args(file, variant);
        let (code, out, err) = bbed(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        let msg = format!("saved for variant {stored}");
        assert!(err.contains(file) && err.contains(&msg), "{args:?}: {err}");
        assert!(
            err.contains(&format!("asks for {asked}")),
            "{args:?}: {err}"
        );
    }
    // infer refuses before reading the data, attack likewise.
    let (code, _, err) = bbed(&[
        "infer",
        "--model",
        "resnet8",
        "--input",
        "1,28,28",
        "--variant",
        "vanilla",
        "--weights",
        xs,
        "--data",
        "no-such-dir",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("saved for variant xnor") && err.contains("asks for vanilla"),
        "{err}"
    );
}

#[test]
fn a_weight_file_without_variant_metadata_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = WeightStore::load(fixture("resnet8_xnor.safetensors")).unwrap();
    assert!(store.metadata.contains_key("variant"));
    store.metadata.clear();
    let plain = dir.path().join("plain.safetensors");
    store.save(&plain).unwrap();
    let asked = spec(VariantKind::Abc, 3, 3);
    check_variant(&plain, &asked).unwrap();
    // And the same file with its metadata is refused for that variant.
    assert!(check_variant(&fixture("resnet8_xnor.safetensors"), &asked).is_err());
}

#[test]
fn verify_per_layer_reports_every_binarized_layer() {
    let abc = fixture("resnet8_abc3x3.safetensors");
    let mut args = verify_args(
        abc.to_str().unwrap(),
        &["--variant", "abc", "--m", "3", "--n", "3"],
    );
    args.extend(["--per-layer", "--format", "json"]);
    let (code, out, err) = bbed(&args);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let layers = v["layers"].as_array().unwrap();
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "layer1.0.conv1",
            "layer1.0.conv2",
            "layer2.0.conv1",
            "layer2.0.conv2",
            "layer3.0.conv1",
            "layer3.0.conv2"
        ]
    );
    assert_eq!(
        v["binarized_layers"].as_u64().unwrap() as usize,
        layers.len()
    );
    // Per layer: 2 images x 9 base pairs x output positions x channels.
    let per_pair = |c: u64, h: u64| 2 * 9 * c * h * h;
    let want = [
        per_pair(16, 28),
        per_pair(16, 28),
        per_pair(32, 14),
        per_pair(32, 14),
        per_pair(64, 7),
        per_pair(64, 7),
    ];
    for (l, w) in layers.iter().zip(want) {
        assert_eq!(l["scheme"], "abc(3x3)");
        assert_eq!(l["accumulators_compared"].as_u64().unwrap(), w, "{l}");
        assert_eq!(l["accumulators_mismatched"], 0, "{l}");
        assert_eq!(l["max_abs_output_diff"].as_f64().unwrap(), 0.0, "{l}");
    }
    let total: u64 = want.iter().sum();
    assert_eq!(v["accumulators_compared"].as_u64().unwrap(), total);
    // Without the flag the JSON has no per-layer part.
    args.retain(|a| *a != "--per-layer");
    let (_, out, _) = bbed(&args);
    assert!(serde_json::from_str::<Value>(&out)
        .unwrap()
        .get("layers")
        .is_none());
}
