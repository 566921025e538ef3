//! Real data in the hardware commands (`--data`, `--weights`): the golden accumulators of a
//! binary layer equal the engine's own integer sums `s_ij` for the same images and weights (taped
//! forward pass on the bitwise backend, a separate code path), the scaled golden equals the
//! engine's layer output bit for bit, a fixed-point layer's codes follow the stated per-tensor
//! power-of-two rule, and `simulate --functional` passes on real data. Bad flags are clear errors.

use std::path::{Path, PathBuf};

use breakingbed::engine::exec::{ConvBackend, Mode, Net};
use breakingbed::engine::params;
use breakingbed::io::cifar::write_cifar_file;
use breakingbed::io::dataset::Dataset;
use breakingbed::model;
use breakingbed::sim::reference::fixed_conv;
use breakingbed::sim::vectors::read;
use breakingbed::variant::{self, CompressedNetwork, VariantKind, VariantSpec};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::common::bbed;

use crate::sim_vectors_stress::ZCU;

/// Six random CIFAR-format images, written as `test_batch.bin`.
fn cifar(dir: &Path) -> (PathBuf, Dataset) {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let images = Array4::from_shape_simple_fn((6, 3, 32, 32), || rng.gen::<u8>());
    let labels = (0..6).map(|_| rng.gen_range(0..10u16)).collect();
    let ds = Dataset::new(images, labels, 10, "synthetic").unwrap();
    let path = dir.join("test_batch.bin");
    write_cifar_file(&path, &ds).unwrap();
    (path, ds)
}

fn resnet8(spec: VariantSpec) -> CompressedNetwork {
    variant::apply(&model::builtin("resnet8", None, None).unwrap(), &spec).unwrap()
}

fn abc(m: usize, n: usize) -> VariantSpec {
    let mut s = VariantSpec::new(VariantKind::Abc);
    s.options.m = m;
    s.options.n = n;
    s
}

/// Weights of `cn` from seed 11 (not the CLI's default seed 0), saved as safetensors.
fn weights(dir: &Path, cn: &CompressedNetwork, name: &str) -> PathBuf {
    let p = dir.join(name);
    params::save(cn, &params::init(cn, 11), &p).unwrap();
    p
}

fn run(args: &[&str]) {
    let (code, _, err) = bbed(args);
    assert_eq!(code, 0, "{args:?}: {err}");
}

/// (weight base i, activation base j, the engine's sums `s_ij`).
type PairSums = (usize, usize, Vec<i64>);

/// The engine's sums `s_ij` of network layer `layer` for images `range`, and its output.
fn engine(
    cn: &CompressedNetwork,
    w: &Path,
    ds: &Dataset,
    range: std::ops::Range<usize>,
    layer: &str,
) -> (Vec<PairSums>, Vec<f32>) {
    let net = Net::new(cn.clone(), params::load(cn, w).unwrap()).unwrap();
    let bw = net.binarize(true).unwrap();
    let x = ds.to_unit(range).unwrap();
    let (_, tape) = net
        .forward(&x, Mode::Eval, ConvBackend::Bitwise, &bw, true)
        .unwrap();
    let li = cn.network.index_of(layer).unwrap();
    let sums = tape
        .accumulators
        .iter()
        .filter(|(l, ..)| *l == li)
        .map(|(_, i, j, s)| (*i, *j, s.iter().map(|&v| v as i64).collect()))
        .collect();
    let y = net
        .layer_output(&tape, layer)
        .unwrap()
        .iter()
        .copied()
        .collect();
    (sums, y)
}

#[test]
fn binary_goldens_equal_the_engine_on_real_images() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ds) = cifar(dir.path());
    for (name, spec, m, n) in [
        ("xnor", VariantSpec::new(VariantKind::Xnor), 1, 1),
        ("abc", abc(2, 2), 2, 2),
    ] {
        let cn = resnet8(spec);
        let w = weights(dir.path(), &cn, &format!("{name}.safetensors"));
        let out = dir.path().join(name);
        let mut args = vec![
            "vectors",
            "--model",
            "resnet8",
            "--layer",
            "layer2.0.conv1",
            "--hw",
            ZCU,
            "--data",
            data.to_str().unwrap(),
            "--weights",
            w.to_str().unwrap(),
            "--index",
            "2",
            "--images",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        let abc = ["--variant", "abc", "--m", "2", "--n", "2"];
        if name == "abc" {
            args.extend(abc);
        } else {
            args.extend(["--variant", "xnor"]);
        }
        run(&args);
        let (sums, y) = engine(&cn, &w, &ds, 2..4, "layer2.0.conv1");
        assert_eq!(sums.len(), m * n);
        for (i, j, s) in sums {
            let set = if m * n == 1 {
                out.clone()
            } else {
                out.join(format!("w{i}_a{j}"))
            };
            let gs = read(&set).unwrap();
            assert_eq!(gs.manifest.set.name, "real");
            assert!(
                gs.manifest.set.data.contains("test images 2..4"),
                "{}",
                gs.manifest.set.data
            );
            assert_eq!(gs.expected, s, "{name} pair ({i}, {j})");
        }
        // The scaled golden is the engine's layer output, bit for bit (no bias on resnet convs).
        let scaled: Vec<u32> = std::fs::read_to_string(out.join("scaled.hex"))
            .unwrap()
            .lines()
            .map(|l| u32::from_str_radix(l, 16).unwrap())
            .collect();
        let want: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
        assert_eq!(scaled, want, "{name}");
    }
}

/// conv1 (full precision) on INT8 lanes: the activation codes are the normalised images rounded
/// with one power-of-two scale that is as fine as the 8-bit range allows; same for the weights;
/// the golden is the exact integer convolution of the codes.
#[test]
fn fixed_point_real_inputs_follow_the_stated_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ds) = cifar(dir.path());
    let cn = resnet8(VariantSpec::new(VariantKind::Xnor));
    let w = weights(dir.path(), &cn, "w.safetensors");
    let out = dir.path().join("fp");
    run(&[
        "vectors",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--layer",
        "conv1",
        "--hw",
        ZCU,
        "--data",
        data.to_str().unwrap(),
        "--weights",
        w.to_str().unwrap(),
        "--images",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let gs = read(&out).unwrap();
    let f = gs.manifest.fixed_format.unwrap();
    let sx = |v: &u64| (((v << 56) as i64) >> 56) as i32;
    let x: Vec<i32> = gs.activations.iter().map(sx).collect();
    let wq: Vec<i32> = gs.weights.iter().map(sx).collect();
    let norm = &cn.network.normalization;
    let unit = ds.to_unit(0..2).unwrap();
    let mut want = Vec::new();
    for n in 0..2 {
        for c in 0..3 {
            for v in unit.slice(ndarray::s![n, c, .., ..]).iter() {
                let z = (v - norm.mean[c]) / norm.std[c];
                want.push((z as f64 * (f.act_frac as f64).exp2()).round() as i32);
            }
        }
    }
    assert_eq!(x, want);
    // The scale is the finest that fits: the largest code is above 63, at most 127.
    let top = x.iter().map(|v| v.abs()).max().unwrap();
    assert!((64..=127).contains(&top), "{top}");
    let p = params::load(&cn, &w).unwrap();
    let wf: Vec<f32> = p["conv1.weight"].iter().copied().collect();
    let wwant: Vec<i32> = wf
        .iter()
        .map(|&v| (v as f64 * (f.weight_frac as f64).exp2()).round() as i32)
        .collect();
    assert_eq!(wq, wwant);
    let g = gs.manifest.layer.geometry().unwrap();
    let per = 3 * 32 * 32;
    for n in 0..2 {
        let e = fixed_conv(&g, &wq, &x[n * per..(n + 1) * per]);
        assert_eq!(gs.expected[n * e.len()..(n + 1) * e.len()], e[..]);
    }
}

#[test]
fn simulate_functional_on_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar(dir.path());
    let cn = resnet8(VariantSpec::new(VariantKind::Xnor));
    let w = weights(dir.path(), &cn, "w.safetensors");
    let (code, out, err) = bbed(&[
        "simulate",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--hw",
        ZCU,
        "--functional",
        "--data",
        data.to_str().unwrap(),
        "--weights",
        w.to_str().unwrap(),
        "--images",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["functional_match"], true);
    let f = &v["functional"];
    assert!(
        f["inputs"].as_str().unwrap().starts_with("real:"),
        "{}",
        f["inputs"]
    );
    // resnet8: conv1, six block convs, linear.
    assert_eq!(f["layers"].as_array().unwrap().len(), 8);
    // Without --data the inputs stay seeded random.
    let (code, out, err) = bbed(&[
        "simulate",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--hw",
        ZCU,
        "--functional",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["functional"]["inputs"]
        .as_str()
        .unwrap()
        .contains("random"));
}

#[test]
fn bad_real_data_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = cifar(dir.path());
    let d = data.to_str().unwrap();
    let o = dir.path().join("o");
    let o = o.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &[
                "vectors", "--model", "resnet8", "--layer", "conv1", "--data", d, "--index", "5",
                "--images", "2", "--out", o,
            ],
            &["--index", "6 test images"],
        ),
        (
            &[
                "vectors",
                "--model",
                "resnet8",
                "--layer",
                "conv1",
                "--weights",
                "w.st",
                "--out",
                o,
            ],
            &["--data"],
        ),
        (
            &["simulate", "--model", "resnet8", "--data", d],
            &["--data", "--functional"],
        ),
        (
            &[
                "vectors", "--model", "resnet8", "--input", "1,28,28", "--layer", "conv1",
                "--data", d, "--out", o,
            ],
            &["--data", "[3, 32, 32]"],
        ),
    ];
    for (args, needles) in cases {
        let (code, out, err) = bbed(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
        }
    }
    assert!(!Path::new(o).exists());
}
