//! `bbed attack` end to end on resnet8 (random init, or weights written by the test) and a tiny
//! CIFAR-10 binary file the test writes: JSON keys and aggregates against the per-image rows
//! and an independent engine run, resume (smaller limit then larger, and a killed run with a torn
//! last line) against one uninterrupted run, `--spec` vs the attack subcommand, gradient-masking
//! warnings, and bad input naming the flag (and the spec field path).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use breakingbed::attack::classifier::argmax;
use breakingbed::attack::Model;
use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::Array4;
use serde_json::Value;

use crate::common;
use common::bbed;

pub(crate) const N_IMAGES: usize = 8;

pub(crate) fn json(args: &[&str]) -> Value {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A CIFAR-10 binary file of `N_IMAGES` pseudo-random images (LCG bytes) with labels i % 10.
pub(crate) fn cifar_file(dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    let mut s: u32 = 12345;
    for i in 0..N_IMAGES {
        bytes.push((i % 10) as u8);
        for _ in 0..3072 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            bytes.push((s >> 16) as u8);
        }
    }
    let p = dir.join("test_batch.bin");
    std::fs::write(&p, bytes).unwrap();
    p
}

pub(crate) fn pixels(path: &Path) -> (Array4<f32>, Vec<usize>) {
    let b = std::fs::read(path).unwrap();
    let n = b.len() / 3073;
    let mut x = Array4::<f32>::zeros((n, 3, 32, 32));
    let mut labels = Vec::new();
    for (i, rec) in b.chunks(3073).enumerate() {
        labels.push(rec[0] as usize);
        for (j, &p) in rec[1..].iter().enumerate() {
            x[[i, j / 1024, (j / 32) % 32, j % 32]] = p as f32 / 255.0;
        }
    }
    (x, labels)
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The attack subcommand and its flags: they come after the run's flags.
pub(crate) const PGD: [&str; 11] = [
    "pgd",
    "--eps",
    "0.5",
    "--eps-scale",
    "normalized",
    "--step",
    "0.25",
    "--step-scale",
    "normalized",
    "--iterations",
    "2",
];

pub(crate) fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn json_has_the_issue_keys_and_consistent_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let args = with(
        &[
            "attack",
            "--model",
            "resnet8",
            "--data",
            s(&data),
            "--limit",
            "6",
            "--format",
            "json",
        ],
        &PGD,
    );
    let v = json(&args);
    for k in [
        "images",
        "accuracy_clean",
        "accuracy_adv",
        "mean_loss",
        "normalization",
        "scale",
        "attack",
        "engine",
        "warnings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["scale"], "normalized");
    assert_eq!(v["engine"], "float");
    assert_eq!(v["attack"]["attack"], "pgd");
    assert_eq!(v["attack"]["iterations"], 2);
    // Published CIFAR-10 channel statistics (mean 0.4914/0.4822/0.4465, std 0.2470/0.2435/0.2616).
    let norm = &v["normalization"];
    assert!((norm["mean"][0].as_f64().unwrap() - 0.4914).abs() < 1e-6);
    assert!((norm["std"][2].as_f64().unwrap() - 0.2616).abs() < 1e-6);

    let (x, labels) = pixels(&data);
    // The same network and init, run directly through the library, must give the same clean
    // predictions: the CLI attacked the right images with the right labels.
    let cn = apply(
        &breakingbed::model::builtin("resnet8", None, None).unwrap(),
        &VariantSpec::new(VariantKind::Vanilla),
    )
    .unwrap();
    let fe = FloatEngine::new(Net::new(cn.clone(), params::init(&cn, 0)).unwrap()).unwrap();
    let logits = fe.logits(&x);

    let imgs = v["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 6);
    let (mut clean_ok, mut adv_ok) = (0, 0);
    for (i, im) in imgs.iter().enumerate() {
        for k in [
            "index",
            "label",
            "clean_pred",
            "adv_pred",
            "success",
            "linf",
            "l2",
            "iterations",
        ] {
            assert!(im.get(k).is_some(), "image {i} lacks {k}: {im}");
        }
        assert_eq!(im["index"], i);
        assert_eq!(im["label"], labels[i]);
        let row = logits.row(i).to_vec();
        assert_eq!(im["clean_pred"], argmax(&row));
        assert!(im["linf"].as_f64().unwrap() <= 0.5 + 1e-4, "{im}");
        let (l, c, a) = (
            im["label"].as_u64().unwrap(),
            im["clean_pred"].as_u64().unwrap(),
            im["adv_pred"].as_u64().unwrap(),
        );
        clean_ok += usize::from(l == c);
        adv_ok += usize::from(l == a);
        assert_eq!(im["success"].as_bool().unwrap(), a != l);
    }
    assert!((v["accuracy_clean"].as_f64().unwrap() - clean_ok as f64 / 6.0).abs() < 1e-6);
    assert!((v["accuracy_adv"].as_f64().unwrap() - adv_ok as f64 / 6.0).abs() < 1e-6);
    let mean: f64 = imgs
        .iter()
        .map(|i| i["loss"].as_f64().unwrap())
        .sum::<f64>()
        / 6.0;
    assert!((v["mean_loss"].as_f64().unwrap() - mean).abs() < 1e-4);
}

pub(crate) fn records(path: &Path) -> Vec<Value> {
    let mut r: Vec<Value> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    r.sort_by_key(|v| v["result"]["index"].as_u64());
    r
}

/// `--limit 3` then `--limit 8 --resume` equals one `--limit 8` run: same JSON images, same
/// records (the attack's randomness is keyed by image index, not by chunk or thread).
fn check_resume_by_limit(attack: &[&str], variant: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let (one, two) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    let base = [
        "attack",
        "--model",
        "resnet8",
        "--variant",
        variant,
        "--data",
        s(&data),
        "--format",
        "json",
        "--seed",
        "7",
        "--chunk",
        "2",
    ];
    let full = json(&with(
        &with(&base, &["--limit", "8", "--out", s(&one)]),
        attack,
    ));
    let part = json(&with(
        &with(&base, &["--limit", "3", "--out", s(&two)]),
        attack,
    ));
    assert_eq!(part["images"].as_array().unwrap().len(), 3);
    let resumed = json(&with(
        &with(&base, &["--limit", "8", "--out", s(&two), "--resume"]),
        attack,
    ));
    assert_eq!(full["images"], resumed["images"]);
    assert_eq!(full["accuracy_adv"], resumed["accuracy_adv"]);
    assert_eq!(records(&one), records(&two));
    assert_eq!(records(&one).len(), 8);
    // The report stage reads the records back as sweep records, with the JSON's numbers.
    let recs = breakingbed::report::load_records(&one, false).unwrap();
    assert_eq!(recs.len(), 8);
    for r in &recs {
        let im = &full["images"][r.result.index];
        assert_eq!(im["adv_pred"], r.result.adv_pred);
        assert_eq!(im["linf"].as_f64().unwrap() as f32, r.result.linf);
        assert_eq!(r.attack, full["attack"]["attack"].as_str().unwrap());
        assert_eq!(r.model, "resnet8");
    }
}

#[test]
fn resume_after_a_smaller_limit_equals_one_run_pgd() {
    check_resume_by_limit(&with(&PGD, &["--restarts", "2"]), "vanilla");
}

#[test]
fn resume_after_a_smaller_limit_equals_one_run_genattack_on_xnor() {
    let ga = [
        "genattack",
        "--eps",
        "8",
        "--eps-scale",
        "pixel",
        "--generations",
        "15",
        "--targeted",
        "--target",
        "random",
    ];
    check_resume_by_limit(&ga, "xnor");
}

#[test]
fn killed_run_with_a_torn_line_resumes_to_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let (one, two) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    let args = |out: &Path| -> Vec<String> {
        [
            "attack",
            "--model",
            "resnet8",
            "--variant",
            "xnor",
            "--data",
            s(&data),
            "--chunk",
            "1",
            "--format",
            "json",
            "--out",
            s(out),
            "genattack",
            "--eps",
            "8",
            "--eps-scale",
            "pixel",
            "--generations",
            "60",
            "--targeted",
            "--target",
            "next",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(args(&two))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill after the first saved record (or let it finish if it is faster than the poll).
    let t0 = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&two).map_or(0, |t| t.lines().count());
        if lines >= 1 || t0.elapsed().as_secs() > 60 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    // A write cut short by the kill.
    let mut f = std::fs::OpenOptions::new().append(true).open(&two).unwrap();
    std::io::Write::write_all(&mut f, b"{\"variant\":\"resn").unwrap();
    drop(f);

    let v1 = json(&args(&one).iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let mut a2 = args(&two);
    a2.insert(1, "--resume".into());
    let v2 = json(&a2.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(v1["images"], v2["images"]);
    assert_eq!(v1["images"].as_array().unwrap().len(), N_IMAGES);
    assert_eq!(records(&one), records(&two));
}

#[test]
fn resume_with_other_settings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let out = dir.path().join("r.jsonl");
    let base = [
        "attack",
        "--model",
        "resnet8",
        "--data",
        s(&data),
        "--limit",
        "2",
    ];
    json(&with(
        &with(&base, &["--out", s(&out), "--format", "json"]),
        &PGD,
    ));
    let (code, _, err) = bbed(&with(
        &with(&base, &["--out", s(&out), "--resume", "--seed", "3"]),
        &PGD,
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--resume") && err.contains("seed"), "{err}");
    // Without --resume an existing file is not overwritten.
    let (code, _, err) = bbed(&with(&with(&base, &["--out", s(&out)]), &PGD));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("r.jsonl") && err.contains("--resume"), "{err}");
}

#[test]
fn spec_file_means_the_same_as_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let spec = dir.path().join("pgd.toml");
    std::fs::write(
        &spec,
        "attack = \"pgd\"\neps = { value = 0.5, scale = \"normalized\" }\n\
         step = { value = 0.25, scale = \"normalized\" }\niterations = 2\n",
    )
    .unwrap();
    let base = [
        "attack",
        "--model",
        "resnet8",
        "--data",
        s(&data),
        "--limit",
        "3",
        "--format",
        "json",
    ];
    let a = json(&with(&base, &PGD));
    let b = json(&with(&base, &["--spec", s(&spec)]));
    assert_eq!(a["attack"], b["attack"]);
    assert_eq!(a["images"], b["images"]);
}

/// All-zero classifier weights give constant logits, so every input gradient is exactly zero:
/// the white-box result must say so (AutoAttack-style check) instead of reporting robustness.
#[test]
fn gradient_masking_warning_is_visible_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let net = breakingbed::model::builtin("resnet8", None, None).unwrap();
    let cn = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let mut p = params::init(&cn, 0);
    let last = &cn.network.layers.last().unwrap().name;
    for (k, t) in p.iter_mut() {
        if k.starts_with(&format!("{last}.")) {
            t.fill(0.0);
        }
    }
    let w = dir.path().join("w.safetensors");
    params::save(&cn, &p, &w).unwrap();
    let base = [
        "attack",
        "--model",
        "resnet8",
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--limit",
        "3",
    ];
    let fgsm = ["fgsm", "--eps", "8", "--eps-scale", "pixel"];
    let (code, out, err) = bbed(&with(&with(&base, &["--format", "json"]), &fgsm));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let warns = v["warnings"].as_array().unwrap();
    assert_eq!(warns.len(), 1, "{v}");
    assert_eq!(warns[0]["images"], 3);
    assert!(warns[0]["message"]
        .as_str()
        .unwrap()
        .contains("gradient masking"));
    assert!(
        err.contains("warning:") && err.contains("gradient masking"),
        "{err}"
    );
    // Zero gradient: FGSM does not move the image.
    for im in v["images"].as_array().unwrap() {
        assert_eq!(im["linf"], 0.0);
    }
    let (code, out, _) = bbed(&with(&base, &fgsm));
    assert_eq!(code, 0);
    assert!(
        out.contains("WARNING") && out.contains("gradient masking"),
        "{out}"
    );
}

/// Exit 2, nothing on stdout, an `error:` line naming `flag`, no panic.
/// `bbed attack` on ResNet8 (random weights) and the first image of `data`, before the attack
/// subcommand.
pub(crate) fn one_image_attack(data: &str) -> [&str; 7] {
    [
        "attack", "--model", "resnet8", "--data", data, "--limit", "1",
    ]
}

pub(crate) fn assert_flag_error(args: &[&str], flag: &str) {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?}: {out}");
    assert!(err.starts_with("error:"), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(flag), "{args:?}: '{flag}' not in {err}");
}

#[test]
fn bad_input_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let base = one_image_attack(s(&data));
    let pgd = |more: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|a| a.to_string()).collect();
        v.extend(more.iter().map(|a| a.to_string()));
        v
    };
    let check = |more: &[&'static str], flag: &str| {
        let v = pgd(more);
        assert_flag_error(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>(), flag);
    };
    // eps without a scale (clap: a required flag of the spec)
    check(&["fgsm", "--eps", "8"], "--eps-scale");
    // negative budgets
    check(&["fgsm", "--eps", "-8", "--eps-scale", "pixel"], "--eps");
    let pgd_step = |step: &'static str| -> Vec<&'static str> {
        vec![
            "pgd",
            "--eps",
            "1",
            "--eps-scale",
            "pixel",
            "--step",
            step,
            "--step-scale",
            "pixel",
            "--iterations",
            "2",
        ]
    };
    check(&pgd_step("-1"), "--step");
    // spec validation errors name the flag and the field path
    check(&["cw", "--c", "-1"], "--c (cw.c)");
    const FGSM8: [&str; 5] = ["fgsm", "--eps", "8", "--eps-scale", "pixel"];
    let fgsm = |more: &[&'static str]| -> Vec<&'static str> {
        FGSM8.iter().chain(more).copied().collect()
    };
    // targeted without target, target without targeted, bad target, out-of-range class
    check(&fgsm(&["--targeted"]), "--target (fgsm.target)");
    check(&fgsm(&["--target", "3"]), "--targeted (fgsm.targeted)");
    check(&fgsm(&["--targeted", "--target", "cat"]), "--target");
    check(
        &fgsm(&["--targeted", "--target", "10"]),
        "--target (fgsm.target)",
    );
    // unknown attack, scale, norm; flags the attack does not take; missing required flags
    check(&["boundary"], "boundary");
    check(
        &["fgsm", "--eps", "8", "--eps-scale", "bytes"],
        "--eps-scale",
    );
    check(&fgsm(&["--restarts", "3"]), "--restarts");
    check(
        &[
            "pgd",
            "--eps",
            "1",
            "--eps-scale",
            "pixel",
            "--iterations",
            "2",
        ],
        "--step",
    );
    let mut l1 = pgd_step("1");
    l1.extend(["--norm", "l1"]);
    check(&l1, "--norm");
    check(
        &[
            "genattack",
            "--eps",
            "8",
            "--eps-scale",
            "pixel",
            "--generations",
            "5",
            "--population",
            "1",
        ],
        "--population (genattack.population)",
    );
    // data / model shape mismatch (run flags come before the attack)
    let mut shape = vec!["--input", "1,28,28"];
    shape.extend(FGSM8);
    check(&shape, "--data");
    let mut classes = vec!["--classes", "5"];
    classes.extend(FGSM8);
    check(&classes, "--data");
    // --spec and an attack subcommand together are refused, naming --spec
    let mut both = vec!["--spec", "x.toml"];
    both.extend(FGSM8);
    check(&both, "--spec");
    // neither: the error lists the attacks
    check(&[], "genattack");
}
