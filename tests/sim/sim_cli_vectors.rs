//! `bbed vectors`: files written by the CLI are read back with `sim::vectors::read`, decoded per
//! the manifest's bit order and re-checked, from the decoded data, against the bit-exact engine's
//! `bconv2d` (binary) and the naive integer convolution of `sim::reference` (fixed point), not
//! against the simulator that wrote them.

use std::path::Path;
use std::process::Command;

use breakingbed::engine::binary::{bconv2d, pack_activations_i8, pack_weights_i8};
use breakingbed::sim::reference::fixed_conv;
use breakingbed::sim::vectors::{read, GoldenSet};
use breakingbed::sim::{LayerSpec, Precision};
use ndarray::Array4;
use serde_json::Value;

fn bbed(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run bbed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// Channel-packed words -> +/-1 in `[c][positions]` order (bit i of word j = channel j*lanes+i,
/// 0 -> +1, 1 -> -1), i.e. CHW for activations and `[o][kh][kw]` x channels for weights.
fn unpack(words: &[u64], lanes: usize, c: usize, positions: usize) -> Vec<Vec<i8>> {
    let wpp = c.div_ceil(lanes);
    assert_eq!(words.len(), positions * wpp);
    (0..positions)
        .map(|p| {
            (0..c)
                .map(|ch| {
                    let w = words[p * wpp + ch / lanes];
                    // Unused high bits must be zero.
                    if ch / lanes == wpp - 1 {
                        let used = c - (wpp - 1) * lanes;
                        assert_eq!(w >> used, 0, "unused bits set");
                    }
                    if (w >> (ch % lanes)) & 1 == 0 {
                        1
                    } else {
                        -1
                    }
                })
                .collect()
        })
        .collect()
}

/// Re-checks a binary set: decode, convolve with the naive reference, compare all images.
fn recheck_binary(gs: &GoldenSet, spec: &LayerSpec, images: usize) -> (Vec<i8>, Vec<Vec<i8>>) {
    let g = spec.geometry().unwrap();
    assert_eq!(gs.manifest.kind, "binary");
    assert_eq!(gs.manifest.images, images);
    let lanes = gs.manifest.weights.word_width as usize;
    let k = g.kh;
    // weights: positions [o][kh][kw], channels innermost -> reorder to [o][in][kh][kw].
    let wpos = unpack(&gs.weights, lanes, g.c, g.o * k * k);
    let mut w = vec![0i8; g.o * g.c * k * k];
    for o in 0..g.o {
        for t in 0..k * k {
            for i in 0..g.c {
                w[(o * g.c + i) * k * k + t] = wpos[o * k * k + t][i];
            }
        }
    }
    let per_img = g.h * g.w * g.c.div_ceil(lanes);
    let outs = g.o * g.pixels();
    assert_eq!(gs.activations.len(), images * per_img);
    assert_eq!(gs.expected.len(), images * outs);
    let mut xs = Vec::new();
    for n in 0..images {
        let pos = unpack(
            &gs.activations[n * per_img..][..per_img],
            lanes,
            g.c,
            g.h * g.w,
        );
        let mut x = vec![0i8; g.c * g.h * g.w];
        for (p, chans) in pos.iter().enumerate() {
            for (c, &v) in chans.iter().enumerate() {
                x[c * g.h * g.w + p] = v;
            }
        }
        let wa = Array4::from_shape_vec((g.o, g.c, k, k), w.clone()).unwrap();
        let xa = Array4::from_shape_vec((1, g.c, g.h, g.w), x.clone()).unwrap();
        let acc = bconv2d(
            &pack_activations_i8(&xa).unwrap(),
            &pack_weights_i8(&wa).unwrap(),
            g.stride,
            g.pad,
        )
        .unwrap();
        let want: Vec<i64> = acc.iter().map(|&d| d as i64).collect();
        assert_eq!(gs.expected[n * outs..][..outs], want[..], "image {n}");
        xs.push(x);
    }
    (w, xs)
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("vectors.json")).unwrap()).unwrap()
}

#[test]
fn xnor_layer_vectors_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v");
    let o = out.display().to_string();
    ok(&[
        "vectors",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--layer",
        "layer2.0.conv1",
        "--images",
        "2",
        "--seed",
        "3",
        "--out",
        &o,
    ]);
    let gs = read(&out).unwrap();
    let spec = gs.manifest.layer.clone();
    assert_eq!(spec.name, "layer2.0.conv1");
    assert_eq!(spec.precision, Precision::Binary { m: 1, n: 1 });
    // resnet8 layer2.0.conv1: 16 -> 32 channels, stride 2 on a 32x32 input.
    assert!(matches!(
        spec.kind,
        breakingbed::sim::LayerKind::Conv {
            in_c: 16,
            out_c: 32,
            stride: 2,
            in_h: 32,
            ..
        }
    ));
    recheck_binary(&gs, &spec, 2);
    let s = summary(&out);
    assert_eq!(s["layer_index"], 3);
    assert_eq!(s["sets"].as_array().unwrap().len(), 1);
}

/// ABC 2x3: one set per (weight base, activation base) pair; all pairs share the weights of
/// their base and the activations of theirs; every set re-checks.
#[test]
fn abc_vectors_one_set_per_base_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("abc");
    let o = out.display().to_string();
    ok(&[
        "vectors",
        "--model",
        "resnet8",
        "--variant",
        "abc",
        "--m",
        "2",
        "--n",
        "3",
        "--layer",
        "layer3.0.conv2",
        "--out",
        &o,
    ]);
    let s = summary(&out);
    let sets = s["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 6);
    assert_eq!(s["alpha"].as_array().unwrap().len(), 2 * 64);
    assert_eq!(s["beta"].as_array().unwrap().len(), 3);
    let mut weights = vec![None; 2];
    let mut acts = vec![None; 3];
    for set in sets {
        let (i, j) = (
            set["weight_base"].as_u64().unwrap() as usize,
            set["act_base"].as_u64().unwrap() as usize,
        );
        assert_eq!(set["dir"], format!("w{i}_a{j}"));
        let gs = read(&out.join(format!("w{i}_a{j}"))).unwrap();
        let spec = gs.manifest.layer.clone();
        let (w, x) = recheck_binary(&gs, &spec, 1);
        match &weights[i] {
            None => weights[i] = Some(w),
            Some(prev) => assert_eq!(prev, &w, "weight base {i} differs between sets"),
        }
        match &acts[j] {
            None => acts[j] = Some(x),
            Some(prev) => assert_eq!(prev, &x, "activation base {j} differs between sets"),
        }
    }
    assert_ne!(weights[0], weights[1]);
}

/// The fp first conv: fixed-point codes, re-checked by an exact integer convolution.
#[test]
fn full_precision_vectors_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fp");
    let o = out.display().to_string();
    ok(&[
        "vectors",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--layer",
        "conv1",
        "--hw",
        "hw/zcu102.toml",
        "--out",
        &o,
    ]);
    let gs = read(&out).unwrap();
    assert_eq!(gs.manifest.kind, "fixed");
    let width = gs.manifest.weights.word_width;
    assert_eq!(width, 8); // zcu102: INT8 lanes
    let sx = |v: u64| (((v << (64 - width)) as i64) >> (64 - width)) as i32;
    let w: Vec<i32> = gs.weights.iter().map(|&v| sx(v)).collect();
    let x: Vec<i32> = gs.activations.iter().map(|&v| sx(v)).collect();
    let g = gs.manifest.layer.geometry().unwrap();
    assert_eq!(gs.expected, fixed_conv(&g, &w, &x));
    // Codes use the range the summary documents: |value| <= 1 in Q4.4 -> |code| <= 16.
    assert!(x.iter().all(|&v| v.abs() <= 16));
    assert!(x.iter().any(|&v| v != 0));
}

#[test]
fn same_seed_same_files_other_seed_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let p = dir.path().join(name);
        ok(&[
            "vectors",
            "--model",
            "resnet8",
            "--variant",
            "xnor",
            "--layer",
            "layer1.0.conv2",
            "--seed",
            seed,
            "--out",
            &p.display().to_string(),
        ]);
        std::fs::read_to_string(p.join("acts.hex")).unwrap()
    };
    assert_eq!(run("a", "1"), run("b", "1"));
    assert_ne!(run("c", "1"), run("d", "2"));
}

#[test]
fn refuses_non_empty_dir_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    let o = dir.path().display().to_string();
    let args = [
        "vectors",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--layer",
        "layer1.0.conv1",
        "--out",
        &o,
    ];
    let (code, out, err) = bbed(&args);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("--out") && err.contains("--force"), "{err}");
    assert!(!dir.path().join("manifest.json").exists());
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
    assert!(dir.path().join("manifest.json").exists());
    assert!(dir.path().join("keep.txt").exists());
    // --out naming a file is refused (even with --force).
    let file = dir.path().join("keep.txt").display().to_string();
    let mut on_file = args.to_vec();
    on_file[8] = &file;
    on_file.push("--force");
    let (code, _, err) = bbed(&on_file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--out") || err.contains("keep.txt"), "{err}");
}

#[test]
fn unknown_layer_lists_valid_names() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("x").display().to_string();
    let (code, out, err) = bbed(&[
        "vectors",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--layer",
        "layer9.conv",
        "--out",
        &o,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    for n in [
        "--layer",
        "layer9.conv",
        "conv1",
        "layer3.0.conv2",
        "linear",
    ] {
        assert!(err.contains(n), "'{n}' not in {err}");
    }
    // A non-weighted layer is not a valid choice either.
    let (code, _, err) = bbed(&[
        "vectors",
        "--model",
        "resnet8",
        "--layer",
        "layer1.0.bn1",
        "--out",
        &o,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!Path::new(&o).exists());
}
