//! Self-describing vectors and stress sets, checked from the files alone: the manifest's
//! geometry, datapath and coverage against values derived by hand or by the naive references in
//! `sim::reference` (not the simulator that wrote them); the stress patterns' goldens against
//! closed forms; the ABC scaled golden recomputed in the stated order; `--force` leaving exactly
//! one run's files.

use std::collections::BTreeSet;
use std::path::Path;

use breakingbed::sim::reference::fixed_conv;
use breakingbed::sim::vectors::{read, read_hex_values, Datapath, HexFile};
use serde_json::Value;

use crate::common::bbed;

pub(crate) const ZCU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml");

/// Runs `bbed vectors --out OUT args` (must succeed) and returns its `vectors.json`.
pub(crate) fn vectors(out: &Path, args: &[&str]) -> Value {
    let o = out.display().to_string();
    let mut a = vec!["vectors", "--out", &o];
    a.extend_from_slice(args);
    let (code, _, err) = bbed(&a);
    assert_eq!(code, 0, "{a:?}: {err}");
    serde_json::from_str(&std::fs::read_to_string(out.join("vectors.json")).unwrap()).unwrap()
}

fn sext(v: u64, bits: u32) -> i32 {
    (((v << (64 - bits)) as i64) >> (64 - bits)) as i32
}

/// The fp first conv of resnet8 (3 -> 16 channels, 3x3, 10x10 input) on INT8 lanes: the manifest
/// states the geometry and slice parameters, every stress golden equals the naive integer
/// convolution of its decoded codes, and the coverage claims hold on the decoded data.
#[test]
fn fixed_manifest_and_stress_sets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v");
    let s = vectors(
        &out,
        &[
            "--model",
            "resnet8",
            "--input",
            "3,10,10",
            "--variant",
            "xnor",
            "--layer",
            "conv1",
            "--hw",
            ZCU,
        ],
    );
    let dirs: Vec<&str> = s["stress_sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["dir"].as_str().unwrap())
        .collect();
    assert_eq!(
        dirs,
        [
            "stress/max_product",
            "stress/mixed_extremes",
            "stress/borrow_boundary",
            "stress/full_range"
        ]
    );
    for d in std::iter::once(".").chain(dirs.iter().copied()) {
        let gs = read(&out.join(d)).unwrap();
        let m = &gs.manifest;
        let geo = &m.geometry;
        // out = floor((10 + 2 - 3) / 1) + 1 = 10; 27 taps per output.
        assert_eq!((geo.out_h, geo.out_w, geo.reduction), (10, 10, 27));
        assert!(!geo.linear_as_conv);
        match &m.datapath {
            Datapath::PackedMac {
                lanes,
                width,
                spacing,
                guard_bits,
                acc_width,
                field_bits,
                drain_every,
                drains_per_output,
                ..
            } => {
                assert_eq!(
                    (*lanes, *width, *spacing, *guard_bits, *acc_width),
                    (2, 8, 18, 2, 48)
                );
                assert_eq!(field_bits, &[18, 30]);
                // 27 taps, drained after taps 4, 8, ..., 24.
                assert_eq!((*drain_every, *drains_per_output), (4, 6));
            }
            other => panic!("{other:?}"),
        }
        assert!(m.weights.signed && m.activations.signed && m.expected.signed);
        assert_eq!(m.schedule.cycles_per_output, 27);
        let w: Vec<i32> = gs.weights.iter().map(|&v| sext(v, 8)).collect();
        let x: Vec<i32> = gs.activations.iter().map(|&v| sext(v, 8)).collect();
        let g = m.layer.geometry().unwrap();
        let sums = fixed_conv(&g, &w, &x);
        assert_eq!(gs.expected, sums, "{d}");
        // Coverage from the decoded data: the undrained peak is the largest |sum| of a whole
        // reduction; it overflows when it leaves the 18-bit lower field (or the 30-bit upper).
        let c = &m.coverage;
        let peak = sums.iter().map(|v| v.abs()).max().unwrap();
        assert_eq!(c.undrained_peak, Some(peak), "{d}");
        let over = sums.chunks(100).enumerate().any(|(o, ch)| {
            let lim = if o % 2 == 0 {
                (1i64 << 17) - 1
            } else {
                (1i64 << 29) - 1
            };
            ch.iter().any(|&v| v > lim || v < -lim - 1)
        });
        assert_eq!(c.undrained_overflow, Some(over), "{d}");
        assert_eq!(
            c.max_abs_weight,
            Some(w.iter().map(|v| v.abs() as i64).max().unwrap())
        );
        // Read-outs recomputed here: lane sums per chunk of 4 issued taps (padded ones included)
        // in the stated order in_c, kh, kw; a negative lower-lane chunk below a real channel is a
        // borrow read-out.
        let (mut peak_ro, mut borrows) = (0i64, 0u64);
        for o in 0..16 {
            for oy in 0..10 {
                for ox in 0..10 {
                    let mut taps = Vec::new();
                    for ci in 0..3 {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let (y, xx) = (oy + kh, ox + kw); // padded coordinates
                                let inside = (1..=10).contains(&y) && (1..=10).contains(&xx);
                                taps.push(if inside {
                                    w[((o * 3 + ci) * 3 + kh) * 3 + kw] as i64
                                        * x[(ci * 10 + y - 1) * 10 + xx - 1] as i64
                                } else {
                                    0
                                });
                            }
                        }
                    }
                    for chunk in taps.chunks(4) {
                        let v: i64 = chunk.iter().sum();
                        peak_ro = peak_ro.max(v.abs());
                        borrows += u64::from(o.is_multiple_of(2) && v < 0);
                    }
                }
            }
        }
        assert_eq!(c.readout_peak, Some(peak_ro), "{d}");
        assert_eq!(c.borrow_readouts, Some(borrows), "{d}");
        // 10x10 output with padding 1: the 36 border pixels of 16 channels touch padding.
        assert_eq!(c.outputs_with_padding, 36 * 16);
    }
    let stress = |name: &str| read(&out.join(format!("stress/{name}"))).unwrap();
    // max_product: -128 * -128 on every real tap: 27 real taps inside, 18 on edges, 12 corners.
    let mp = stress("max_product");
    assert_eq!(mp.manifest.coverage.max_abs_act, Some(128));
    assert_eq!(mp.expected.iter().max(), Some(&(27 * 16384)));
    assert_eq!(mp.expected.iter().min(), Some(&(12 * 16384)));
    // Every output overflows an undrained 18-bit field (>= 12 * 2^14 > 2^17 - 1), while the
    // drained read-outs peak at exactly 4 * 2^14.
    assert_eq!(mp.manifest.coverage.undrained_overflow, Some(true));
    assert_eq!(mp.manifest.coverage.readout_peak, Some(4 * 16384));
    // mixed_extremes: lower lanes negative at every read-out, so borrows are exercised.
    let mx = stress("mixed_extremes");
    assert!(mx.manifest.coverage.borrow_readouts.unwrap() > 0);
    assert!(mx.expected.iter().any(|&v| v < -(1 << 17)));
    // borrow_boundary: +/-1 products, so |sum| <= 27 taps, and negative lower fields at
    // read-outs.
    let bb = stress("borrow_boundary");
    assert!(bb.expected.iter().all(|v| v.abs() <= 27));
    assert!(bb.manifest.coverage.borrow_readouts.unwrap() > 0);
    // full_range: the codes span the full 8-bit range (not +/-16).
    let fr = stress("full_range");
    let codes: Vec<i32> = fr.activations.iter().map(|&v| sext(v, 8)).collect();
    assert!(codes.iter().any(|&v| v < -100) && codes.iter().any(|&v| v > 100));
}

/// A linear layer is a 1x1 conv on a 1x1 image: the manifest says so and the sizes follow.
#[test]
fn linear_layer_is_described_as_1x1_conv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lin");
    vectors(
        &out,
        &[
            "--model",
            "resnet8",
            "--input",
            "3,8,8",
            "--variant",
            "xnor",
            "--layer",
            "linear",
            "--hw",
            ZCU,
        ],
    );
    let m = read(&out).unwrap().manifest;
    let g = &m.geometry;
    assert!(g.linear_as_conv);
    assert_eq!(
        (g.in_c, g.in_h, g.in_w, g.out_c, g.kernel, g.stride, g.padding, g.out_h, g.out_w),
        (64, 1, 1, 10, 1, 1, 0, 1, 1)
    );
    assert_eq!(m.coverage.outputs_with_padding, 0);
}

/// Binary stress goldens in closed form: all_match = +K_real, all_mismatch = -K_real, with
/// K_real = in_c x (taps inside the image), counted here from the geometry.
#[test]
fn binary_stress_closed_forms() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    vectors(
        &out,
        &[
            "--model",
            "resnet8",
            "--input",
            "3,6,6",
            "--variant",
            "xnor",
            "--layer",
            "layer2.0.conv1",
            "--hw",
            ZCU,
            "--images",
            "2",
        ],
    );
    let gs = read(&out.join("stress/all_match")).unwrap();
    let m = &gs.manifest;
    match &m.datapath {
        Datapath::XnorPopcount {
            lanes,
            words_per_tap,
            last_word_valid_lanes,
            ..
        } => assert_eq!(
            (*lanes, *words_per_tap, *last_word_valid_lanes),
            (48, 1, 16)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.coverage.unused_lanes, Some(32));
    assert!(!m.weights.signed && m.expected.signed);
    // layer2.0.conv1: 16 -> 32 channels, stride 2, 6x6 input, 3x3 output.
    let (c, h, o, ho) = (16i64, 6i64, 32usize, 3usize);
    let mut k_real = Vec::new();
    for oy in 0..ho as i64 {
        for ox in 0..ho as i64 {
            let inside =
                |p: i64| (0..3).filter(|k| (0..h).contains(&(p * 2 - 1 + k))).count() as i64;
            k_real.push(c * inside(oy) * inside(ox));
        }
    }
    let want: Vec<i64> = (0..2 * o).flat_map(|_| k_real.clone()).collect();
    assert_eq!(gs.expected, want);
    let mm = read(&out.join("stress/all_mismatch")).unwrap();
    assert_eq!(mm.expected, want.iter().map(|v| -v).collect::<Vec<_>>());
    assert_eq!(gs.manifest.set.name, "stress/all_match");
    assert!(gs.manifest.set.base_pair.is_none());
}

fn f32s(dir: &Path, f: &Value) -> Vec<f32> {
    let hf: HexFile = serde_json::from_value(f.clone()).unwrap();
    assert_eq!((hf.word_width, hf.signed), (32, false));
    read_hex_values(dir, &hf)
        .unwrap()
        .into_iter()
        .map(|v| f32::from_bits(v as u32))
        .collect()
}

/// ABC 2x3: each set names its base pair; scaled.hex equals the stated f32 evaluation order
/// (i outer, j inner, alpha[i][o] * beta[j] times the set's dot) applied to the sets' goldens.
#[test]
fn abc_scaled_golden_follows_the_stated_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("abc");
    let s = vectors(
        &out,
        &[
            "--model",
            "resnet8",
            "--input",
            "3,8,8",
            "--variant",
            "abc",
            "--m",
            "2",
            "--n",
            "3",
            "--layer",
            "layer2.0.conv2",
            "--images",
            "2",
            "--hw",
            ZCU,
        ],
    );
    let sc = &s["scaled"];
    let y = f32s(&out, &sc["output"]);
    let alpha = f32s(&out, &sc["alpha"]);
    let beta = f32s(&out, &sc["beta"]);
    let json_alpha: Vec<f32> = s["alpha"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(alpha, json_alpha);
    let (o, px) = (32usize, 16usize); // layer2.0.conv2: 32 channels on 4x4
    let mut dots = vec![vec![Vec::new(); 3]; 2];
    for (i, row) in dots.iter_mut().enumerate() {
        for (j, d) in row.iter_mut().enumerate() {
            let gs = read(&out.join(format!("w{i}_a{j}"))).unwrap();
            let bp = gs.manifest.set.base_pair.unwrap();
            assert_eq!((bp.weight_base, bp.act_base), (i, j));
            *d = gs.expected;
        }
    }
    assert_eq!(y.len(), 2 * o * px);
    for n in 0..2 {
        for oc in 0..o {
            for p in 0..px {
                let idx = (n * o + oc) * px + p;
                let mut v = 0f32;
                for (i, row) in dots.iter().enumerate() {
                    for (j, d) in row.iter().enumerate() {
                        v += (alpha[i * o + oc] * beta[j]) * d[idx] as f32;
                    }
                }
                assert_eq!(
                    v.to_bits(),
                    y[idx].to_bits(),
                    "image {n} channel {oc} pixel {p}"
                );
            }
        }
    }
}

fn walk(root: &Path, dir: &Path, acc: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, acc);
        } else {
            acc.insert(
                p.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

/// `--force` after an ABC run (6 base-pair sets, stress sets, testbench) with an XNOR layer of
/// another shape: no stale set survives, a file of the user's stays, and `files` lists exactly
/// what is on disk besides it.
#[test]
fn force_leaves_no_stale_sets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v");
    let base = ["--model", "resnet8", "--input", "3,8,8", "--hw", ZCU];
    let mut abc = base.to_vec();
    abc.extend([
        "--variant",
        "abc",
        "--m",
        "2",
        "--n",
        "3",
        "--layer",
        "layer3.0.conv1",
        "--testbench",
    ]);
    vectors(&out, &abc);
    assert!(out.join("w1_a2/expected.hex").exists());
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let mut fp = base.to_vec();
    fp.extend(["--variant", "xnor", "--layer", "conv1", "--force"]);
    let s = vectors(&out, &fp);
    let mut on_disk = BTreeSet::new();
    walk(&out, &out, &mut on_disk);
    let listed: BTreeSet<String> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    on_disk.remove("notes.txt");
    assert_eq!(on_disk, listed);
    assert!(out.join("notes.txt").exists());
    for stale in [
        "w0_a0",
        "w1_a2",
        "testbench",
        "scaled.hex",
        "stress/all_match",
    ] {
        assert!(!out.join(stale).exists(), "{stale} survived --force");
    }
    assert!(out.join("stress/max_product/expected.hex").exists());
}
