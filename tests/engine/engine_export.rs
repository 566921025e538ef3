//! `bbed export` against independent executors: a float variant written as ONNX and run by
//! onnxruntime, and binarized variants written as QONNX and run by the `qonnx` package's
//! executor (`BipolarQuant` in qonnx's own Python, the rest node by node in onnxruntime), give
//! the logits of our float reference engine on the same unit-scale images.
//!
//! Tolerance: |ours - theirs| <= 1e-4 * max(1, max |logit|). The graphs compute the same
//! functions but onnxruntime orders sums differently, folds batch-norm its own way and (QONNX)
//! multiplies alpha into the weights before summing, where our engine sums +/-1 exactly and
//! scales afterwards; each of these is float rounding (~1e-7 relative per op), far below 1e-4
//! after a few layers. A structural error (wrong padding, order of bases, a shortcut channel
//! offset, normalisation) moves logits by 1e-2 or more.
//!
//! Needs python3 with onnx + onnxruntime (+ qonnx): skipped with a message when missing, a
//! failure under CI (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::onnx::export::{export, ExportFormat};
use breakingbed::onnx::proto::encode_model;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{Array2, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::bbed;

const RUNNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/onnx_run.py");

/// Runs the Python side; `None` (after saying why) when python3 or a package is missing and
/// `CI` is unset.
fn run_python(model: &Path, x: &Array4<f32>, mode: &str) -> Option<Array2<f32>> {
    let dir = model.parent().unwrap();
    let inputs = dir.join("inputs.json");
    let out = dir.join("out.json");
    let (n, c, h, w) = x.dim();
    let body = serde_json::json!({"shape": [n, c, h, w], "images": x.iter().collect::<Vec<_>>()});
    std::fs::write(&inputs, body.to_string()).unwrap();
    let res = Command::new("python3")
        .arg(RUNNER)
        .arg(model)
        .arg(&inputs)
        .arg(&out)
        .arg(mode)
        .output();
    let skip = |why: String| {
        assert!(
            std::env::var_os("CI").is_none(),
            "{why} (CI requires python3 with onnx, onnxruntime and qonnx)"
        );
        eprintln!("skipping the {mode} comparison: {why}");
        None
    };
    let res = match res {
        Ok(r) => r,
        Err(e) => return skip(format!("python3 not runnable: {e}")),
    };
    if res.status.code() == Some(3) {
        return skip(String::from_utf8_lossy(&res.stderr).trim().to_string());
    }
    assert!(
        res.status.success(),
        "{mode} runner failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    eprintln!("{mode} runner versions: {}", v["versions"]);
    let rows: Vec<Vec<f32>> = serde_json::from_value(v["logits"].clone()).unwrap();
    let k = rows[0].len();
    Some(Array2::from_shape_vec((rows.len(), k), rows.concat()).unwrap())
}

fn images(n: usize, shape: [usize; 3], seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = shape;
    Array4::from_shape_simple_fn((n, c, h, w), || rng.gen::<f32>())
}

/// Exports `net`, runs the file in Python and compares with the float engine's logits.
fn check(net: Net, format: ExportFormat, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{label}.onnx"));
    let (model, summary) = export(&net, format).unwrap();
    if net.schemes().iter().any(Option::is_some) {
        assert!(summary.bipolar_quant_nodes >= 2, "{label}: {summary:?}");
    } else {
        assert_eq!(summary.bipolar_quant_nodes, 0, "{label}");
    }
    std::fs::write(&path, encode_model(&model)).unwrap();
    let x = images(3, net.cn.network.input, 11);
    let mode = if format == ExportFormat::Onnx {
        "onnx"
    } else {
        "qonnx"
    };
    let ours = FloatEngine::new(net).unwrap().try_logits(&x).unwrap();
    let Some(theirs) = run_python(&path, &x, mode) else {
        return;
    };
    assert_eq!(ours.dim(), theirs.dim(), "{label}");
    let scale = ours.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(theirs.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{label}: max |logit diff| {diff:e} (logit scale {scale})");
    assert!(
        diff <= 1e-4 * scale,
        "{label}: max logit difference {diff} > 1e-4 * {scale}\nours {ours:?}\ntheirs {theirs:?}"
    );
}

fn net(model: &str, input: [usize; 3], spec: VariantSpec, seed: u64) -> Net {
    let network = model::builtin(model, Some(input), Some(10)).unwrap();
    let cn = apply(&network, &spec).unwrap();
    let p = params::init(&cn, seed);
    Net::new(cn, p).unwrap()
}

/// Random running statistics and BN affine parameters, so batch-norm is not the identity.
fn perturb_bn(net: &mut Net, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (name, t) in net.params.iter_mut() {
        if name.ends_with("running_var") {
            t.mapv_inplace(|_| rng.gen_range(0.5..2.0));
        } else if name.ends_with("running_mean") || name.contains("bn") && name.ends_with("bias") {
            t.mapv_inplace(|_| rng.gen_range(-0.3..0.3));
        } else if name.contains("bn") && name.ends_with("weight") {
            t.mapv_inplace(|_| rng.gen_range(0.5..1.5));
        }
    }
}

#[test]
fn float_variants_run_in_onnxruntime_with_our_logits() {
    // ResNet8 (option-A shortcuts: Slice + Pad), vanilla and physically filter-pruned.
    let mut n = net(
        "resnet8",
        [1, 28, 28],
        VariantSpec::new(VariantKind::Vanilla),
        3,
    );
    perturb_bn(&mut n, 4);
    check(n, ExportFormat::Onnx, "resnet8_vanilla");
    let mut spec = VariantSpec::new(VariantKind::Filter);
    spec.options.rate = 0.5;
    let mut n = net("resnet8", [1, 28, 28], spec, 5);
    perturb_bn(&mut n, 6);
    check(n, ExportFormat::Onnx, "resnet8_filter");
    // torchvision-style ResNet18 at 3x32x32 (max pool, 1x1 projection shortcuts).
    let mut n = net(
        "resnet18",
        [3, 32, 32],
        VariantSpec::new(VariantKind::Vanilla),
        7,
    );
    perturb_bn(&mut n, 8);
    check(n, ExportFormat::Onnx, "resnet18_vanilla");
}

/// A small net with a conv bias, max and average pooling (with padding) and a hidden linear
/// layer.
const POOLS: &str = r#"
name = "pools"
input = [2, 13, 13]
num_classes = 10
[[layers]]
name = "conv1"
op = "conv"
out_c = 4
kernel = 3
padding = 1
bias = true
[[layers]]
name = "bn1"
op = "batch_norm"
[[layers]]
name = "relu1"
op = "relu"
[[layers]]
name = "pool1"
op = "max_pool"
kernel = 3
stride = 2
padding = 1
[[layers]]
name = "conv2"
op = "conv"
out_c = 6
kernel = 3
stride = 2
[[layers]]
name = "pool2"
op = "avg_pool"
kernel = 2
stride = 2
padding = 1
[[layers]]
name = "fc1"
op = "linear"
out_f = 12
[[layers]]
name = "relu2"
op = "relu"
[[layers]]
name = "fc2"
op = "linear"
out_f = 10
"#;

fn pools_net(spec: VariantSpec, seed: u64) -> Net {
    let network = model::custom::from_toml_str(POOLS, "pools.toml").unwrap();
    let cn = apply(&network, &spec).unwrap();
    let p = params::init(&cn, seed);
    let mut n = Net::new(cn, p).unwrap();
    perturb_bn(&mut n, seed + 1);
    n
}

#[test]
fn pools_and_hidden_linear_layers_run_in_onnxruntime_with_our_logits() {
    let n = pools_net(VariantSpec::new(VariantKind::Vanilla), 9);
    check(n, ExportFormat::Onnx, "pools");
}

#[test]
fn binarized_variants_run_in_the_qonnx_executor_with_our_logits() {
    let mut n = net(
        "resnet8",
        [1, 28, 28],
        VariantSpec::new(VariantKind::Xnor),
        12,
    );
    perturb_bn(&mut n, 13);
    check(n, ExportFormat::Qonnx, "resnet8_xnor");
    let mut spec = VariantSpec::new(VariantKind::Abc);
    spec.options.m = 3;
    spec.options.n = 2;
    let mut n = net("resnet8", [1, 28, 28], spec, 14);
    perturb_bn(&mut n, 15);
    check(n, ExportFormat::Qonnx, "resnet8_abc3x2");
    // Every conv and the classifier binarized (binary linear layer with bias).
    let mut spec = VariantSpec::new(VariantKind::Xnor);
    spec.options.fp_first_last = false;
    let mut n = net("resnet8", [1, 28, 28], spec, 16);
    perturb_bn(&mut n, 17);
    check(n, ExportFormat::Qonnx, "resnet8_xnor_all");
    // ABC on every layer of the small net: multi-base conv with a bias, binarized linear
    // layers with biases, pools between them.
    let mut spec = VariantSpec::new(VariantKind::Abc);
    spec.options.m = 2;
    spec.options.n = 2;
    spec.options.fp_first_last = false;
    check(pools_net(spec, 18), ExportFormat::Qonnx, "pools_abc2x2_all");
}

#[test]
fn export_cli_writes_by_the_output_rules_and_refuses_binarized_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let out_s = out.to_str().unwrap();
    let base = [
        "export", "--model", "resnet8", "--input", "1,28,28", "--out", out_s,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let call = |a: &[String]| bbed(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, stdout, err) = call(&with(&["--format", "onnx", "--variant", "vanilla"]));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("opset 13"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    let m = breakingbed::onnx::proto::decode_model(&bytes, "m.onnx").unwrap();
    let g = m.graph.unwrap();
    assert_eq!(g.node[0].op_type.as_deref(), Some("Sub"));
    assert_eq!(g.node[1].op_type.as_deref(), Some("Div"));
    // Exists: refused without --force, replaced with it.
    let (code, _, err) = call(&with(&["--format", "onnx", "--variant", "vanilla"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let (code, _, err) = call(&with(&[
        "--format",
        "qonnx",
        "--variant",
        "xnor",
        "--force",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_ne!(std::fs::read(&out).unwrap(), bytes);
    // A binarized variant as plain ONNX is a clear error that names the way out.
    let (code, stdout, err) = call(&with(&["--format", "onnx", "--variant", "abc", "--force"]));
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty());
    assert!(
        err.contains("--format qonnx") && err.contains("binarized"),
        "{err}"
    );
}
