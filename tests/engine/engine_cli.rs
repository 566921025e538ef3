//! `bbed infer` and `bbed verify` through the real binary: the JSON agrees with the library
//! engines run directly (pixel scaling, batching, ordering), predictions and accuracy follow from
//! the printed logits, the printed normalisation is the published CIFAR-10 statistics, and bad
//! input (wrong weight shapes, missing tensors, NaN weights, truncated data, wrong image size,
//! binary engine on a float variant) is `error: ...` with exit 2, never a panic.

use std::path::{Path, PathBuf};

use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::io::cifar::write_cifar_file;
use breakingbed::io::dataset::Dataset;
use breakingbed::io::weights::WeightStore;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::{Array4, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::common;
use common::bbed;

fn json(args: &[&str]) -> Value {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

fn assert_user_error(args: &[&str], needles: &[&str]) {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 2, "{args:?}: stderr {err}");
    assert!(out.is_empty(), "{args:?}: stdout {out}");
    assert!(err.starts_with("error:"), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
}

/// Six random CIFAR-format images with random labels, written as `test_batch.bin`.
fn cifar_file(dir: &Path) -> (PathBuf, Dataset) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let images = Array4::from_shape_simple_fn((6, 3, 32, 32), || rng.gen::<u8>());
    let labels = (0..6).map(|_| rng.gen_range(0..10u16)).collect();
    let ds = Dataset::new(images, labels, 10, "synthetic").unwrap();
    let path = dir.join("test_batch.bin");
    write_cifar_file(&path, &ds).unwrap();
    (path, ds)
}

fn resnet8(kind: VariantKind) -> variant::CompressedNetwork {
    let net = model::builtin("resnet8", None, None).unwrap();
    variant::apply(&net, &VariantSpec::new(kind)).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn infer_json_matches_library_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ds) = cifar_file(dir.path());
    let data = data.to_str().unwrap();
    // Batch 4 over 6 images exercises a short tail batch.
    let v = json(&[
        "infer",
        "--model",
        "resnet8",
        "--data",
        data,
        "--init-seed",
        "5",
        "--batch",
        "4",
        "--format",
        "json",
    ]);
    let cn = resnet8(VariantKind::Vanilla);
    let engine = FloatEngine::new(Net::new(cn.clone(), params::init(&cn, 5)).unwrap()).unwrap();
    // Unit scale is x / 255 (crate convention), computed here independently of Dataset::to_unit.
    let x = ds.images.mapv(|p| f32::from(p) / 255.0);
    let want = engine.try_logits(&x).unwrap();

    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 6);
    let mut correct = 0;
    for (i, im) in images.iter().enumerate() {
        assert_eq!(im["index"], i);
        assert_eq!(im["label"], ds.labels[i] as u64);
        let logits = f32s(&im["logits"]);
        assert_eq!(logits.len(), 10);
        for (a, b) in logits.iter().zip(want.row(i)) {
            // Different batch splits may reorder GEMM partial sums: f32 rounding only.
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "image {i}: {a} vs {b}"
            );
        }
        let argmax = (0..10)
            .max_by(|&p, &q| logits[p].total_cmp(&logits[q]))
            .unwrap();
        assert_eq!(im["pred"], argmax);
        correct += usize::from(argmax == ds.labels[i] as usize);
    }
    let acc = v["accuracy"].as_f64().unwrap();
    assert!((acc - correct as f64 / 6.0).abs() < 1e-12);
    // Published CIFAR-10 channel statistics (as used by the common PyTorch CIFAR ResNet
    // training scripts): mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
    assert_eq!(f32s(&v["normalization"]["mean"]), [0.4914, 0.4822, 0.4465]);
    assert_eq!(f32s(&v["normalization"]["std"]), [0.2470, 0.2435, 0.2616]);
    assert!(v["weights"].is_null());
}

#[test]
fn infer_same_seed_same_output_other_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar_file(dir.path());
    let data = data.to_str().unwrap();
    let run = |seed: &str| {
        json(&[
            "infer",
            "--model",
            "resnet8",
            "--data",
            data,
            "--limit",
            "2",
            "--init-seed",
            seed,
            "--format",
            "json",
        ])["images"]
            .clone()
    };
    assert_eq!(run("1"), run("1"));
    assert_ne!(run("1"), run("2"));
}

#[test]
fn infer_binary_engine_equals_float_engine_on_xnor() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar_file(dir.path());
    let data = data.to_str().unwrap();
    let run = |engine: &str| {
        json(&[
            "infer",
            "--model",
            "resnet8",
            "--variant",
            "xnor",
            "--data",
            data,
            "--engine",
            engine,
            "--format",
            "json",
        ])
    };
    let (f, b) = (run("float"), run("binary"));
    assert_eq!(f["images"], b["images"]);
    assert_eq!(b["engine"], "binary");
}

#[test]
fn infer_loads_saved_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar_file(dir.path());
    let cn = resnet8(VariantKind::Vanilla);
    let w = dir.path().join("w.safetensors");
    params::save(&cn, &params::init(&cn, 9), &w).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "infer",
            "--model",
            "resnet8",
            "--data",
            data.to_str().unwrap(),
            "--format",
            "json",
        ];
        a.extend_from_slice(extra);
        json(&a)["images"].clone()
    };
    // The saved seed-9 parameters give exactly the seed-9 initialisation's outputs.
    assert_eq!(
        args(&["--weights", w.to_str().unwrap()]),
        args(&["--init-seed", "9"])
    );
}

#[test]
fn verify_reports_exact_agreement() {
    for variant in [
        &["--variant", "xnor"][..],
        &["--variant", "abc", "--m", "2", "--n", "3"][..],
    ] {
        let mut a = vec![
            "verify", "--model", "resnet8", "--images", "3", "--format", "json",
        ];
        a.extend_from_slice(variant);
        let v = json(&a);
        assert_eq!(v["images"], 3);
        assert_eq!(v["accumulators_identical"], true);
        assert_eq!(v["accumulators_mismatched"], 0);
        // resnet8 with fp first/last: 6 binarized 3x3 convs (2 per stage), 3x32x32 input;
        // XNOR: one base pair per layer; ABC 2x3: six pairs. Per image, the accumulator count is
        // sum over layers of out_c * out_h * out_w = 2*16*32*32 + 2*32*16*16 + 2*64*8*8.
        let per_pair = 2 * 16 * 32 * 32 + 2 * 32 * 16 * 16 + 2 * 64 * 8 * 8;
        let pairs = if variant[1] == "xnor" { 1 } else { 6 };
        assert_eq!(v["accumulators_compared"], 3 * per_pair * pairs);
        assert_eq!(v["prediction_agreement"], 1.0);
        assert_eq!(v["max_abs_logit_diff"], 0.0);
        assert_eq!(v["tolerance"], 0.0);
        assert!(v["tolerance_reason"]
            .as_str()
            .unwrap()
            .contains("same order"));
        assert_eq!(v["passed"], true);
    }
}

#[test]
fn verify_on_dataset_images() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar_file(dir.path());
    let v = json(&[
        "verify",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--data",
        data.to_str().unwrap(),
        "--images",
        "4",
        "--format",
        "json",
    ]);
    assert_eq!(v["images"], 4);
    assert_eq!(v["passed"], true);
}

#[test]
fn bad_weights_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar_file(dir.path());
    let data = data.to_str().unwrap();
    let cn = resnet8(VariantKind::Vanilla);
    let good = params::init(&cn, 0);
    let save = |name: &str, edit: &dyn Fn(&mut params::Params)| {
        let mut p = good.clone();
        edit(&mut p);
        let mut s = WeightStore::new();
        for (k, v) in p {
            s.insert(k, v);
        }
        let path = dir.path().join(name);
        s.save(&path).unwrap();
        path.display().to_string()
    };
    fn infer<'a>(data: &'a str, w: &'a str) -> Vec<&'a str> {
        vec![
            "infer",
            "--model",
            "resnet8",
            "--data",
            data,
            "--weights",
            w,
        ]
    }

    let wrong = save("wrong.safetensors", &|p| {
        p.insert("conv1.weight".into(), ArrayD::zeros(IxDyn(&[16, 3, 5, 5])));
    });
    assert_user_error(
        &infer(data, &wrong),
        &[
            "wrong.safetensors",
            "conv1.weight",
            "[16, 3, 3, 3]",
            "[16, 3, 5, 5]",
        ],
    );

    let missing = save("missing.safetensors", &|p| {
        p.remove("linear.bias");
        p.remove("bn1.running_var");
    });
    assert_user_error(
        &infer(data, &missing),
        &["missing 2 tensor(s)", "linear.bias", "bn1.running_var"],
    );

    let nan = save("nan.safetensors", &|p| {
        p.get_mut("linear.weight").unwrap()[[0, 0]] = f32::NAN;
    });
    assert_user_error(&infer(data, &nan), &["linear.weight"]);

    assert_user_error(
        &infer(
            data,
            dir.path().join("absent.safetensors").to_str().unwrap(),
        ),
        &["absent.safetensors"],
    );
}

#[test]
fn bad_data_and_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar_file(dir.path());
    let bytes = std::fs::read(&data).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let cut = cut.to_str().unwrap();
    assert_user_error(
        &["infer", "--model", "resnet8", "--data", cut],
        &["cut.bin"],
    );

    let data = data.to_str().unwrap();
    // A 1x28x28 network on 3x32x32 images.
    assert_user_error(
        &[
            "infer", "--model", "resnet8", "--input", "1,28,28", "--data", data,
        ],
        &["--data", "[3, 32, 32]", "[1, 28, 28]"],
    );
    assert_user_error(
        &[
            "infer", "--model", "resnet8", "--data", data, "--engine", "binary",
        ],
        &["--engine", "vanilla", "binarized"],
    );
    assert_user_error(
        &[
            "infer", "--model", "resnet8", "--data", data, "--batch", "0",
        ],
        &["--batch"],
    );
    assert_user_error(
        &[
            "infer",
            "--model",
            "resnet8",
            "--data",
            data,
            "--classes",
            "5",
        ],
        &["--data", "10 classes", "--classes"],
    );
    assert_user_error(
        &["verify", "--model", "resnet8", "--variant", "vanilla"],
        &["--variant", "nothing to verify"],
    );
    assert_user_error(
        &[
            "verify",
            "--model",
            "resnet8",
            "--variant",
            "xnor",
            "--images",
            "0",
        ],
        &["--images"],
    );
    assert_user_error(
        &[
            "verify",
            "--model",
            "resnet8",
            "--variant",
            "xnor",
            "--data",
            data,
            "--images",
            "7",
        ],
        &["cannot sample 7"],
    );
}

/// A NaN that first appears inside the network, in a block's output (from a BN shift that is
/// NaN for one channel), reaches the next binary conv of the bit-exact engine as an error
/// naming it, not as a +1 sign bit: the inference plan's sign-bit frames drop a map with a
/// NaN in it. The float engine propagates it (sign(NaN) is NaN there) to NaN logits.
#[test]
fn nan_inside_the_network_is_an_error_not_a_sign() {
    use breakingbed::engine::classifier::BinaryEngine;
    // ResNet20: layer1.0's output goes to layer1.1.conv1, a reader the plan frames signs for.
    let net = model::builtin("resnet20", None, None).unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Xnor)).unwrap();
    let mut p = params::init(&cn, 0);
    p.get_mut("layer1.0.bn2.bias").expect("block BN")[3] = f32::NAN;
    let f = FloatEngine::new(Net::new(cn.clone(), p.clone()).unwrap()).unwrap();
    let b = BinaryEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let x = Array4::<f32>::from_elem((2, 3, 32, 32), 0.5);
    let e = b.try_logits(&x).unwrap_err().to_string();
    assert!(e.contains("NaN at [0, 3, 0, 0]"), "{e}");
    assert!(f.try_logits(&x).unwrap().iter().all(|v| v.is_nan()));
}

#[test]
fn nan_input_is_an_error_in_both_engines() {
    use breakingbed::engine::classifier::BinaryEngine;
    let cn = resnet8(VariantKind::Xnor);
    let p = params::init(&cn, 0);
    let f = FloatEngine::new(Net::new(cn.clone(), p.clone()).unwrap()).unwrap();
    let b = BinaryEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let mut x = Array4::<f32>::from_elem((2, 3, 32, 32), 0.5);
    x[[1, 2, 5, 7]] = f32::NAN;
    for e in [f.try_logits(&x).unwrap_err(), b.try_logits(&x).unwrap_err()] {
        assert!(e.to_string().contains("NaN"), "{e}");
    }
    let dl = ndarray::Array2::<f32>::ones((2, 10));
    assert!(f.try_input_vjp(&x, &dl).is_err());
    // Wrong spatial size is an error too, not a panic.
    let small = Array4::<f32>::zeros((1, 3, 28, 28));
    let e = f.try_logits(&small).unwrap_err().to_string();
    assert!(e.contains("[N, 3, 32, 32]"), "{e}");
}
