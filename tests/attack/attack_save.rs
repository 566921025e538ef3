//! `bbed attack --save-adv`: the saved adversarial images read back (safetensors through the
//! `safetensors` crate, `.npy` through NumPy) agree with what the attack reported: the norms
//! recomputed from the saved floats and the data set's pixels equal the JSON's, labels and
//! predictions equal the JSON's, the u8 pixels are the rounded floats; the grid is a PNG of the
//! documented size; existing files are refused without --force; a bad extension and --resume
//! are refused naming the flag.

use std::path::Path;
use std::process::Command;

use ndarray::{Array4, Axis};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::attack_cli::{assert_flag_error, cifar_file, json, pixels, s, N_IMAGES};
use crate::common::bbed;

fn fgsm_args<'a>(data: &'a str, save: &'a str) -> Vec<&'a str> {
    vec![
        "attack",
        "--model",
        "resnet8",
        "--data",
        data,
        "--format",
        "json",
        "--chunk",
        "3",
        "--save-adv",
        save,
        "fgsm",
        "--eps",
        "4",
        "--eps-scale",
        "pixel",
    ]
}

fn ints(st: &SafeTensors, name: &str) -> Vec<i64> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Checks saved floats against the data set and the JSON report: norms in pixel scale,
/// per-image fields.
fn check_against_report(
    adv: &Array4<f32>,
    data: &Path,
    report: &Value,
    fields: &[(&str, Vec<i64>)],
) {
    let (clean, labels) = pixels(data);
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), N_IMAGES);
    for (i, img) in images.iter().enumerate() {
        let d = &adv.index_axis(Axis(0), i) - &clean.index_axis(Axis(0), i);
        let linf = d.iter().fold(0.0f32, |m, v| m.max(v.abs())) * 255.0;
        let l2 = d
            .iter()
            .map(|v| (v * 255.0) as f64 * (v * 255.0) as f64)
            .sum::<f64>()
            .sqrt();
        assert!(
            (linf as f64 - img["linf"].as_f64().unwrap()).abs() < 1e-3,
            "image {i} linf"
        );
        assert!(
            (l2 - img["l2"].as_f64().unwrap()).abs() < 1e-2 * l2.max(1.0),
            "image {i} l2"
        );
        assert!(linf <= 4.0 + 1e-3, "image {i} outside the ball: {linf}");
        assert_eq!(img["label"].as_u64().unwrap() as usize, labels[i]);
        for (name, v) in fields {
            assert_eq!(img[*name].as_i64().unwrap(), v[i], "image {i}: {name}");
        }
    }
    // The attack changed something (otherwise the comparison is vacuous).
    assert!(images.iter().any(|m| m["linf"].as_f64().unwrap() > 0.0));
}

#[test]
fn safetensors_read_back_matches_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let out = dir.path().join("adv.safetensors");
    let report = json(&fgsm_args(s(&data), s(&out)));
    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("adv").unwrap();
    assert_eq!(t.shape(), &[N_IMAGES, 3, 32, 32]);
    let f: Vec<f32> = t
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let adv = Array4::from_shape_vec((N_IMAGES, 3, 32, 32), f).unwrap();
    let u8s = st.tensor("adv_u8").unwrap();
    assert_eq!(u8s.dtype(), safetensors::Dtype::U8);
    for (a, &p) in adv.iter().zip(u8s.data()) {
        assert_eq!((a * 255.0).round() as u8, p);
    }
    check_against_report(
        &adv,
        &data,
        &report,
        &[
            ("index", ints(&st, "index")),
            ("label", ints(&st, "label")),
            ("clean_pred", ints(&st, "clean_pred")),
            ("adv_pred", ints(&st, "adv_pred")),
        ],
    );
    assert!(ints(&st, "target").iter().all(|&t| t == -1));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let settings: Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["bbed"]).unwrap();
    assert_eq!(settings["run"]["attack"]["attack"], "fgsm");
    assert_eq!(settings["scale"], "pixel");

    // The grid: 3 rows of N_IMAGES columns of 32x32 images drawn 4x, 2-pixel gaps.
    let png = std::fs::read(dir.path().join("adv.grid.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), ((N_IMAGES * 130 + 2) as u32, (3 * 130 + 2) as u32));

    // Existing files are refused without --force (naming the flag), replaced with it.
    let (code, _, err) = bbed(&fgsm_args(s(&data), s(&out)));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--save-adv") && err.contains("--force"),
        "{err}"
    );
    let mut forced = fgsm_args(s(&data), s(&out));
    forced.insert(1, "--force");
    assert_eq!(json(&forced)["images"], report["images"]);
}

#[test]
fn bad_extension_and_resume_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let bad = dir.path().join("adv.png");
    assert_flag_error(&fgsm_args(s(&data), s(&bad)), "--save-adv");
    assert!(!bad.exists());
    let out = dir.path().join("r.jsonl");
    let save = dir.path().join("a.npy");
    let mut args = fgsm_args(s(&data), s(&save));
    args.splice(1..1, ["--out", s(&out), "--resume"]);
    assert_flag_error(&args, "--save-adv");
}

#[test]
fn numpy_reads_the_npy_files() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy = Command::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_numpy {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with numpy is required under CI"
        );
        eprintln!("skipped: python3 with numpy not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let out = dir.path().join("adv.npy");
    let report = json(&fgsm_args(s(&data), s(&out)));
    // NumPy loads both arrays; we print them back as JSON (floats as exact bit patterns).
    let script = r#"
import json, sys, numpy as np
a = np.load(sys.argv[1]); u = np.load(sys.argv[2]); m = json.load(open(sys.argv[3]))
assert a.dtype == np.float32 and u.dtype == np.uint8 and a.shape == u.shape == tuple(m["shape"])
assert (np.round(a.astype(np.float64) * 255).astype(np.uint8) == u).all()
print(json.dumps({"bits": a.view(np.uint32).ravel().tolist(), "shape": list(a.shape), "meta": m}))
"#;
    let o = Command::new(&python)
        .args([
            "-c",
            script,
            s(&out),
            s(&dir.path().join("adv.u8.npy")),
            s(&dir.path().join("adv.npy.meta.json")),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let bits: Vec<f32> = v["bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| f32::from_bits(b.as_u64().unwrap() as u32))
        .collect();
    let adv = Array4::from_shape_vec((N_IMAGES, 3, 32, 32), bits).unwrap();
    let m = &v["meta"];
    let field = |k: &str| -> Vec<i64> {
        m[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    };
    check_against_report(
        &adv,
        &data,
        &report,
        &[
            ("index", field("index")),
            ("label", field("label")),
            ("clean_pred", field("clean_pred")),
            ("adv_pred", field("adv_pred")),
        ],
    );
    assert_eq!(m["settings"]["run"]["attack"]["attack"], "fgsm");
}
