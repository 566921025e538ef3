//! `bbed train` / `bbed prune` end to end: bad input gives a clear `error:` (exit 2, no panic)
//! naming the flag/file; a prune -> fine-tune round trip loads with the variant flags and keeps
//! masks. The round trip uses a 300-image Fashion-MNIST subset (skipped with a notice when the
//! data is absent, unless CI is set).

use breakingbed::engine::params;
use breakingbed::io::idx::FASHION_MNIST_DIR;
use breakingbed::io::WeightStore;
use breakingbed::model;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use std::path::Path;

use crate::common;
use common::bbed;

fn assert_user_error(args: &[&str], needles: &[&str]) {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 2, "{args:?}: stderr {err}");
    assert!(out.is_empty(), "{args:?}: stdout {out}");
    assert!(err.contains("error:"), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
}

fn save_init(model_name: &str, input: [usize; 3], path: &Path) {
    let net = model::builtin(model_name, Some(input), Some(10)).unwrap();
    let cn = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    params::save(&cn, &params::init(&cn, 1), path).unwrap();
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s).display().to_string();
    let empty = d("empty");
    std::fs::create_dir(&empty).unwrap();
    let w8 = d("r8.safetensors");
    let w20 = d("r20.safetensors");
    save_init("resnet8", [1, 28, 28], Path::new(&w8));
    save_init("resnet20", [1, 28, 28], Path::new(&w20));
    let out = d("o.safetensors");
    let m = ["--model", "resnet8", "--input", "1,28,28"];
    let args = |extra: &[&str]| -> Vec<String> {
        ["train"]
            .iter()
            .chain(m.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let call = |v: Vec<String>, needles: &[&str]| {
        let r: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
        assert_user_error(&r, needles)
    };
    // A data directory without the expected files.
    call(
        args(&["--data", &empty, "--out", &out]),
        &["--data", "t10k-images-idx3-ubyte"],
    );
    // Pruning rates outside (0, 1).
    for r in ["1.5", "0", "1", "-0.2"] {
        assert_user_error(
            &[
                "prune",
                "--model",
                "resnet8",
                "--input",
                "1,28,28",
                "--weights",
                &w8,
                "--scheme",
                "channel",
                "--rate",
                r,
                "--out",
                &out,
            ],
            &["--rate", "(0, 1)"],
        );
    }
    if Path::new(FASHION_MNIST_DIR).exists() {
        // A teacher of another architecture.
        call(
            args(&[
                "--data",
                FASHION_MNIST_DIR,
                "--subset",
                "50",
                "--test-subset",
                "50",
                "--out",
                &out,
                "--variant",
                "kd",
                "--teacher",
                &w20,
            ]),
            &["--teacher", "resnet8"],
        );
        // kd without a teacher; a training rate outside (0, 1).
        call(
            args(&[
                "--data",
                FASHION_MNIST_DIR,
                "--out",
                &out,
                "--variant",
                "kd",
            ]),
            &["--teacher"],
        );
        call(
            args(&[
                "--data",
                FASHION_MNIST_DIR,
                "--out",
                &out,
                "--variant",
                "channel",
                "--rate",
                "1",
            ]),
            &["--rate", "(0, 1)"],
        );
        // Init weights of another architecture.
        call(
            args(&[
                "--data",
                FASHION_MNIST_DIR,
                "--subset",
                "50",
                "--out",
                &out,
                "--init",
                &w20,
            ]),
            &["--init", "weights do not match"],
        );
        // Wrong input size for the data.
        assert_user_error(
            &[
                "train",
                "--model",
                "resnet8",
                "--data",
                FASHION_MNIST_DIR,
                "--subset",
                "50",
                "--out",
                &out,
            ],
            &["--input", "1,28,28"],
        );
    }
    assert!(!Path::new(&out).exists());
}

#[test]
fn prune_then_finetune_round_trip() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FASHION_MNIST_DIR} is missing"
        );
        eprintln!("skipping: {FASHION_MNIST_DIR} is absent");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |s: &str| dir.path().join(s).display().to_string();
    let common = [
        "--model",
        "resnet8",
        "--input",
        "1,28,28",
        "--data",
        FASHION_MNIST_DIR,
        "--subset",
        "300",
        "--test-subset",
        "100",
        "--batch",
        "50",
    ];
    let run = |extra: &[&str]| {
        let mut a = vec!["train"];
        a.extend(common);
        a.extend(extra);
        let (code, out, err) = bbed(&a);
        assert_eq!(code, 0, "{a:?}: {err}");
        assert!(out.contains("test accuracy"), "{out}");
    };
    let v = d("v.safetensors");
    let log = d("v.jsonl");
    run(&["--out", &v, "--log", &log]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // Resume after completion changes nothing and trains nothing.
    let before = std::fs::read(&v).unwrap();
    run(&["--out", &v, "--log", &log, "--resume"]);
    assert_eq!(before, std::fs::read(&v).unwrap());

    for scheme in ["channel", "kernel"] {
        let p = d(&format!("{scheme}.pruned.safetensors"));
        let (code, _, err) = bbed(&[
            "prune",
            "--model",
            "resnet8",
            "--input",
            "1,28,28",
            "--weights",
            &v,
            "--scheme",
            scheme,
            "--rate",
            "0.5",
            "--out",
            &p,
        ]);
        assert_eq!(code, 0, "{err}");
        let ft = d(&format!("{scheme}.safetensors"));
        run(&[
            "--init",
            &p,
            "--variant",
            scheme,
            "--rate",
            "0.5",
            "--lr",
            "0.01",
            "--out",
            &ft,
        ]);
        let net = model::builtin("resnet8", Some([1, 28, 28]), Some(10)).unwrap();
        let mut spec = VariantSpec::new(VariantKind::parse(scheme).unwrap());
        spec.options.rate = 0.5;
        let cn = apply(&net, &spec).unwrap();
        let store = WeightStore::load(&ft).unwrap();
        let masks: Vec<&String> = store
            .tensors
            .keys()
            .filter(|k| k.ends_with(".mask"))
            .collect();
        if scheme == "kernel" {
            assert!(!masks.is_empty());
            for mk in masks {
                let w = &store.tensors[mk.trim_end_matches(".mask")];
                let m = &store.tensors[mk];
                assert!(
                    w.iter().zip(m.iter()).all(|(w, m)| *m != 0.0 || *w == 0.0),
                    "{mk}"
                );
            }
        } else {
            assert!(masks.is_empty());
            params::load(&cn, Path::new(&ft)).unwrap();
        }
    }
}
