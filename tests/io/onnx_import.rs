//! ONNX / QONNX import against independent truth: fixtures exported by `torch.onnx.export`
//! (TorchScript exporter, opset 17, and the dynamo exporter, opset 18) and a QONNX graph built
//! with `onnx.helper` (tests/fixtures/onnx/make_fixtures.py). Each fixture has the logits the
//! reference runtime computed (onnxruntime; the qonnx executor for QONNX) and the PyTorch
//! weights in our built-in's names, so the import is checked against (1) the runtime, (2) our
//! built-in network on the same weights, (3) the built-in's MAC count / XNOR cost.
//! ResNet18 is committed as a graph without weights: they come from a generator this file and
//! the script implement identically (`synth`), so no test needs Python.

use std::path::{Path, PathBuf};

use breakingbed::cost::cost;
use breakingbed::cost::NccParams;
use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params::Params;
use breakingbed::io::weights::WeightStore;
use breakingbed::model::{self, Normalization};
use breakingbed::onnx::import::{import_model, NormSource, Options};
use breakingbed::onnx::proto::{self, NodeProto, TensorProto};
use breakingbed::sweep::plan::{fnv1a, splitmix, FNV_OFFSET};
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{Array2, Array4, ArrayD, Ix2, Ix4, IxDyn};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

/// The reference file beside a fixture: input images, runtime logits, PyTorch weights.
struct Reference {
    input: Array4<f32>,
    logits: Array2<f32>,
    weights: Params,
}

fn reference(path: &Path) -> Reference {
    let mut s = WeightStore::load(path).unwrap();
    let input = s
        .tensors
        .remove("input")
        .unwrap()
        .into_dimensionality::<Ix4>()
        .unwrap();
    let logits = s
        .tensors
        .remove("logits")
        .unwrap()
        .into_dimensionality::<Ix2>()
        .unwrap();
    let weights = s
        .tensors
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("weight.").map(|n| (n.to_string(), v)))
        .collect();
    Reference {
        input,
        logits,
        weights,
    }
}

/// Largest |a - b| relative to the largest |b|.
fn rel_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn vanilla() -> VariantSpec {
    VariantSpec::new(VariantKind::Vanilla)
}

fn float_logits(
    net: &model::Network,
    spec: &VariantSpec,
    p: Params,
    x: &Array4<f32>,
) -> Array2<f32> {
    let cn = apply(net, spec).unwrap();
    FloatEngine::new(Net::new(cn, p).unwrap())
        .unwrap()
        .try_logits(x)
        .unwrap()
}

/// Imports `onnx`, checks MACs and normalisation, and compares the logits with the runtime's
/// and with the built-in `builtin` run on the same PyTorch weights.
fn check_float_fixture(
    onnx: &Path,
    refp: &Path,
    builtin: &model::Network,
    norm: Option<Normalization>,
    want_norm: &Normalization,
) {
    check_float_model(onnx, reference(refp), builtin, norm, want_norm);
}

fn check_float_model(
    onnx: &Path,
    r: Reference,
    builtin: &model::Network,
    norm: Option<Normalization>,
    want_norm: &Normalization,
) {
    let m = model::open(onnx.to_str().unwrap(), None, None, norm).unwrap();
    let net = &m.network;
    assert!(m.binarized.is_empty());
    assert_eq!(net.macs(), builtin.macs(), "MACs differ from the built-in");
    for (a, b) in net
        .normalization
        .mean
        .iter()
        .zip(&want_norm.mean)
        .chain(net.normalization.std.iter().zip(&want_norm.std))
    {
        assert!(
            (a - b).abs() < 1e-6,
            "normalisation {:?} != {want_norm:?}",
            net.normalization
        );
    }
    let ours = float_logits(net, &vanilla(), m.weights.clone().unwrap(), &r.input);
    let d_rt = rel_diff(&ours, &r.logits);
    assert!(
        d_rt <= 1e-4,
        "imported logits differ from onnxruntime by {d_rt} (relative)"
    );
    let theirs = float_logits(builtin, &vanilla(), r.weights, &r.input);
    let d_bi = rel_diff(&ours, &theirs);
    assert!(
        d_bi <= 1e-4,
        "imported logits differ from the built-in on the same weights by {d_bi}"
    );
}

#[test]
fn resnet20_torchscript_export_costs_and_infers_like_the_builtin() {
    let builtin = model::builtin("resnet20", None, None).unwrap();
    assert_eq!(builtin.macs(), 40_551_040);
    check_float_fixture(
        &fixture("resnet20_cifar.onnx"),
        &fixture("resnet20_cifar.ref.safetensors"),
        &builtin,
        None,
        &Normalization::cifar10(),
    );
    // The cost command's number, through the CLI.
    let m = model::open(
        fixture("resnet20_cifar.onnx").to_str().unwrap(),
        None,
        None,
        None,
    )
    .unwrap();
    let c = cost(
        &apply(&m.network, &vanilla()).unwrap(),
        &NccParams::reference(),
    );
    assert_eq!(c.total.fp_macs, 40_551_040);
}

#[test]
fn resnet8_dynamo_export_at_28x28_matches_the_builtin() {
    let fashion = Normalization {
        mean: vec![0.2860],
        std: vec![0.3530],
    };
    // The built-in has no statistics for one-channel inputs; the fixture normalises with
    // Fashion-MNIST's inside its graph, so give the built-in the same.
    let mut builtin = model::builtin("resnet8", Some([1, 28, 28]), None).unwrap();
    builtin.normalization = fashion.clone();
    check_float_fixture(
        &fixture("resnet8_28.onnx"),
        &fixture("resnet8_28.ref.safetensors"),
        &builtin,
        None,
        &fashion,
    );
}

/// The weight generator of make_fixtures.py (`synth`), bit for bit: element `i` of tensor `name`
/// comes from `splitmix(fnv1a(name) ^ i * golden)`; every value is exact in f32.
fn synth(name: &str, shape: &[usize]) -> ArrayD<f32> {
    let h = fnv1a(FNV_OFFSET, name.as_bytes());
    let n: usize = shape.iter().product();
    let v = (0..n as u64).map(|i| {
        let r = splitmix(h ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let k = r >> 11;
        if name == "input" {
            (k % 256) as f32 / 256.0
        } else if shape.len() >= 2 {
            let fan_in: usize = shape[1..].iter().product();
            let e = (usize::BITS - fan_in.leading_zeros()) / 2;
            let sign = if r & 1 == 1 { -1.0 } else { 1.0 };
            sign * (-(e as f32)).exp2()
        } else if name.ends_with("running_var") {
            0.5 + (k % 96) as f32 / 64.0
        } else if name.ends_with(".weight") {
            0.5 + (k % 64) as f32 / 64.0
        } else {
            ((k % 33) as f32 - 16.0) / 128.0
        }
    });
    ArrayD::from_shape_vec(IxDyn(shape), v.collect()).unwrap()
}

/// torchvision ResNet18 at 64x64, committed without its weights: the graph's initializers
/// (BN unfolded, named as the state dict) are filled from `synth`, and the full model is
/// checked against onnxruntime's logits stored at fixture time and against the built-in on
/// the same generated state dict. Its graph takes ImageNet-normalised input, so the
/// normalisation comes from `--mean/--std` (here: the options).
#[test]
fn torchvision_resnet18_with_mean_std_matches_onnxruntime_and_the_builtin() {
    let mut m = decoded("resnet18.graph.onnx");
    let mut weights = Params::new();
    for t in &mut m.graph.as_mut().unwrap().initializer {
        let name = t.name.clone().unwrap();
        assert_eq!(
            t.data_type,
            Some(proto::tensor_proto::DataType::Float as i32)
        );
        assert!(
            t.raw_data.is_none() && t.float_data.is_empty(),
            "{name} has data"
        );
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let w = synth(&name, &dims);
        t.raw_data = Some(w.iter().flat_map(|v| v.to_le_bytes()).collect());
        weights.insert(name, w);
    }
    assert_eq!(
        weights.len(),
        102,
        "conv/fc weights, fc bias, 4 tensors per BN"
    );
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("resnet18.onnx");
    std::fs::write(&onnx, prost::Message::encode_to_vec(&m)).unwrap();
    // Without a normalisation the graph would take unit images: say so in the source.
    let plain = breakingbed::onnx::import::import_file(&onnx, &Options::default()).unwrap();
    assert_eq!(plain.normalization, NormSource::Unit);
    let r = Reference {
        input: synth("input", &[2, 3, 64, 64])
            .into_dimensionality::<Ix4>()
            .unwrap(),
        logits: WeightStore::load(fixture("resnet18.ref.safetensors"))
            .unwrap()
            .tensors
            .remove("logits")
            .unwrap()
            .into_dimensionality::<Ix2>()
            .unwrap(),
        weights,
    };
    // At 64x64 the built-in assumes CIFAR statistics; give it ImageNet's, as the import gets.
    let mut builtin = model::builtin("resnet18", Some([3, 64, 64]), None).unwrap();
    builtin.normalization = Normalization::imagenet();
    check_float_model(
        &onnx,
        r,
        &builtin,
        Some(Normalization::imagenet()),
        &Normalization::imagenet(),
    );
}

#[test]
fn qonnx_binarized_resnet8_is_the_xnor_variant_bit_exactly() {
    let path = fixture("qonnx_resnet8_xnor.onnx");
    let m = model::open(path.to_str().unwrap(), None, None, None).unwrap();
    let binary: Vec<&str> = m.binarized.iter().map(String::as_str).collect();
    assert_eq!(
        binary,
        [
            "layer1.0.conv1",
            "layer1.0.conv2",
            "layer2.0.conv1",
            "layer2.0.conv2",
            "layer3.0.conv1",
            "layer3.0.conv2"
        ]
    );
    let spec = breakingbed::onnx::import::qonnx::xnor_spec(
        &m.network,
        &m.binarized,
        VariantSpec::new(VariantKind::Xnor),
        true,
        true,
    )
    .unwrap();
    // Cost: the built-in ResNet8 XNOR variant at 1x28x28.
    let ncc = NccParams::reference();
    let ours = cost(&apply(&m.network, &spec).unwrap(), &ncc).total;
    let builtin = model::builtin("resnet8", Some([1, 28, 28]), None).unwrap();
    let theirs = cost(
        &apply(&builtin, &VariantSpec::new(VariantKind::Xnor)).unwrap(),
        &ncc,
    )
    .total;
    assert_eq!(ours, theirs);
    // Bit-exact engine == float reference, accumulators included.
    let r = reference(&fixture("qonnx_resnet8_xnor.ref.safetensors"));
    let cn = apply(&m.network, &spec).unwrap();
    let p = m.weights.clone().unwrap();
    let fe = FloatEngine::new(Net::new(cn.clone(), p.clone()).unwrap()).unwrap();
    let be = BinaryEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let (lf, tf) = fe.run(&r.input, true).unwrap();
    let (lb, tb) = be.run(&r.input, true).unwrap();
    assert_eq!(tf.accumulators.len(), 6);
    assert_eq!(tf.accumulators.len(), tb.accumulators.len());
    for ((_, _, _, a), (_, _, _, b)) in tf.accumulators.iter().zip(&tb.accumulators) {
        assert_eq!(a, b, "accumulators differ");
    }
    assert_eq!(lf, lb);
    // And both equal what the qonnx executor computed on the file.
    let d = rel_diff(&lf, &r.logits);
    assert!(
        d <= 1e-4,
        "logits differ from the qonnx executor by {d} (relative)"
    );
}

// ------------------------------------------------------------------ errors

fn decoded(name: &str) -> proto::ModelProto {
    let bytes = std::fs::read(fixture(name)).unwrap();
    proto::decode_model(&bytes, name).unwrap()
}

fn import_err(m: &proto::ModelProto) -> String {
    import_model(m, "t", "t.onnx", &Options::default())
        .unwrap_err()
        .to_string()
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn an_unsupported_op_names_the_node_its_type_and_the_supported_list() {
    let mut m = decoded("resnet8_28.onnx");
    let g = m.graph.as_mut().unwrap();
    let relu = g
        .node
        .iter_mut()
        .find(|n| n.op_type.as_deref() == Some("Relu"))
        .unwrap();
    relu.op_type = Some("Sigmoid".into());
    let name = relu.name.clone().unwrap();
    let e = import_err(&m);
    assert!(e.contains(&format!("node '{name}'")), "{e}");
    assert!(e.contains("op_type 'Sigmoid' is not supported"), "{e}");
    assert!(e.contains("supported: Conv, BatchNormalization"), "{e}");
}

#[test]
fn a_missing_initializer_is_named() {
    let mut m = decoded("resnet8_28.onnx");
    let g = m.graph.as_mut().unwrap();
    g.initializer
        .retain(|t| t.name.as_deref() != Some("layer1.0.conv1.weight"));
    let e = import_err(&m);
    assert!(
        e.contains("input 'layer1.0.conv1.weight' is not a graph input, an initializer"),
        "{e}"
    );
}

#[test]
fn a_broken_file_is_an_input_error_not_a_panic() {
    let bytes = std::fs::read(fixture("resnet8_28.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    let e = model::open(p.to_str().unwrap(), None, None, None).unwrap_err();
    assert!(e.to_string().contains("not an ONNX model"), "{e}");
    let (code, _, err) = crate::common::bbed(&["cost", "--model", p.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("broken.onnx") && err.contains("not an ONNX model"),
        "{err}"
    );
}

#[test]
fn constructs_without_an_equivalent_are_refused() {
    // A branch that does not reach the output would be counted but never used.
    let mut m = decoded("resnet8_28.onnx");
    let g = m.graph.as_mut().unwrap();
    let first = g
        .node
        .iter()
        .position(|n| n.op_type.as_deref() == Some("Relu"))
        .unwrap();
    let src = g.node[first].output[0].clone();
    g.node.insert(
        first + 1,
        node("Relu", "dangling", &[&src], &["dangling_out"]),
    );
    assert!(import_err(&m).contains("does not contribute to the graph output"));

    // ReLU6 (Clip 0..6) has no layer kind.
    let mut m = decoded("resnet8_28.onnx");
    let g = m.graph.as_mut().unwrap();
    let i = g
        .node
        .iter()
        .position(|n| n.op_type.as_deref() == Some("Relu"))
        .unwrap();
    let (inp, out) = (g.node[i].input[0].clone(), g.node[i].output[0].clone());
    for (n, v) in [("lo6", 0.0f32), ("hi6", 6.0)] {
        g.initializer.push(TensorProto {
            name: Some(n.into()),
            data_type: Some(1),
            float_data: vec![v],
            ..Default::default()
        });
    }
    g.node[i] = node("Clip", "relu6", &[&inp, "lo6", "hi6"], &[&out]);
    let e = import_err(&m);
    assert!(e.contains("relu6") && e.contains("Clip(0, 6)"), "{e}");

    // A symbolic spatial size.
    let mut m = decoded("resnet8_28.onnx");
    let g = m.graph.as_mut().unwrap();
    let t = g.input[0].r#type.as_mut().unwrap();
    let Some(proto::type_proto::Value::TensorType(tt)) = t.value.as_mut() else {
        panic!()
    };
    tt.shape.as_mut().unwrap().dim[2].value = Some(
        proto::tensor_shape_proto::dimension::Value::DimParam("h".into()),
    );
    assert!(import_err(&m).contains("dimension 2 must be a fixed size"));

    // A folded tensor sized by the file is bounded before it is allocated.
    let mut m = decoded("resnet8_28.onnx");
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(TensorProto {
        name: Some("huge".into()),
        data_type: Some(7),
        dims: vec![2],
        int64_data: vec![1 << 20, 1 << 20],
        ..Default::default()
    });
    g.node
        .insert(0, node("ConstantOfShape", "bomb", &["huge"], &["bomb_out"]));
    assert!(import_err(&m).contains("too large"));
}

#[test]
fn normalisation_is_never_applied_twice() {
    let p = fixture("resnet20_cifar.onnx");
    let e = model::open(
        p.to_str().unwrap(),
        None,
        None,
        Some(Normalization::cifar10()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("would apply it twice"), "{e}");
}

#[test]
fn a_binarized_model_refuses_a_contradicting_variant() {
    let q = fixture("qonnx_resnet8_xnor.onnx");
    let (code, _, err) =
        crate::common::bbed(&["cost", "--model", q.to_str().unwrap(), "--variant", "abc"]);
    assert_ne!(code, 0);
    assert!(err.contains("already binarized"), "{err}");
    let (code, _, err) = crate::common::bbed(&[
        "cost",
        "--model",
        q.to_str().unwrap(),
        "--variant",
        "xnor",
        "--fp-first-last",
        "false",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("float in the file but binary in the variant: [conv1, linear]"),
        "{err}"
    );
    // Without --variant the model runs as what it is.
    let (code, out, err) =
        crate::common::bbed(&["cost", "--model", q.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"variant\": \"xnor\""), "{out}");
}

#[test]
fn a_zoo_entry_may_name_an_onnx_model_relative_to_the_zoo() {
    use breakingbed::zoo::ZooEntry;
    let dir = fixture("");
    let mut entry = ZooEntry {
        name: "q".into(),
        model: "qonnx_resnet8_xnor.onnx".into(),
        input: None,
        classes: None,
        variant: VariantSpec::new(VariantKind::Vanilla),
        weights: PathBuf::from("absent.safetensors"),
        accuracy: None,
        cost: None,
        training: None,
    };
    // A binarized model cannot be an entry of another variant.
    let e = entry.network(&dir).unwrap_err().to_string();
    assert!(
        e.contains("zoo entry \"q\"") && e.contains("must be xnor"),
        "{e}"
    );
    entry.variant = VariantSpec::new(VariantKind::Xnor);
    let cn = entry.network(&dir).unwrap();
    assert_eq!(cn.network.name, "qonnx_resnet8_xnor");
    assert_eq!(cn.spec.kind, VariantKind::Xnor);
}
