//! `bbed attack --out X --resume` identifies a run's inputs by content: a run whose model
//! description, weights and data were moved elsewhere unchanged resumes to the records of one
//! uninterrupted run, and a file changed under the same path is refused, naming what changed
//! (and only that).

use std::path::{Path, PathBuf};

use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};

use crate::attack_cli::{cifar_file, json, records, s, with, PGD};
use crate::common::{bbed, tiny_cnn};

/// A tiny CNN on CIFAR-shaped images as a network TOML (`conv1_stride` changes the description
/// but not the parameter shapes).
pub(crate) fn write_model(dir: &Path, conv1_stride: usize) -> PathBuf {
    let p = dir.join("net.toml");
    std::fs::write(&p, tiny_cnn("tiny", [3, 32, 32], conv1_stride, 10)).unwrap();
    p
}

/// Seeded random weights of the vanilla variant of `model`.
fn write_weights(model: &Path, path: &Path, seed: u64) {
    let net = breakingbed::model::resolve(s(model), None, None).unwrap();
    let cn = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    params::save(&cn, &params::init(&cn, seed), path).unwrap();
}

/// The model, weights and data of a run, in folder `dir`.
struct Inputs {
    model: PathBuf,
    weights: PathBuf,
    data: PathBuf,
}

fn inputs(dir: &Path) -> Inputs {
    std::fs::create_dir_all(dir).unwrap();
    let model = write_model(dir, 1);
    let weights = dir.join("w.safetensors");
    write_weights(&model, &weights, 5);
    let data = cifar_file(dir);
    Inputs {
        model,
        weights,
        data,
    }
}

fn run_args<'a>(i: &'a Inputs, out: &'a Path, limit: &'a str) -> Vec<&'a str> {
    let base = vec![
        "attack",
        "--model",
        s(&i.model),
        "--weights",
        s(&i.weights),
        "--data",
        s(&i.data),
        "--format",
        "json",
        "--seed",
        "7",
        "--chunk",
        "2",
        "--limit",
        limit,
        "--out",
        s(out),
    ];
    with(&base, &PGD)
}

#[test]
fn moved_but_identical_inputs_resume_to_one_runs_records() {
    let dir = tempfile::tempdir().unwrap();
    let here = inputs(&dir.path().join("here"));
    let (one, two) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    let full = json(&run_args(&here, &one, "6"));
    let part = json(&run_args(&here, &two, "3"));
    assert_eq!(part["images"].as_array().unwrap().len(), 3);

    // Every input moves to another folder, bytes unchanged.
    std::fs::rename(dir.path().join("here"), dir.path().join("there")).unwrap();
    let there = Inputs {
        model: dir.path().join("there/net.toml"),
        weights: dir.path().join("there/w.safetensors"),
        data: dir.path().join("there/test_batch.bin"),
    };
    let mut args = run_args(&there, &two, "6");
    args.insert(1, "--resume");
    let resumed = json(&args);
    assert_eq!(full["images"], resumed["images"]);
    assert_eq!(records(&one), records(&two));
    assert_eq!(records(&two).len(), 6);
    // The report still names the paths of this invocation.
    assert_eq!(resumed["data"], s(&there.data));
}

/// Resumes `i` into `out` and returns the error; exit code 2 and no panic.
fn refused(i: &Inputs, out: &Path) -> String {
    let mut args = run_args(i, out, "4");
    args.insert(1, "--resume");
    let (code, stdout, err) = bbed(&args);
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        err.starts_with("error:") && !err.contains("panicked"),
        "{err}"
    );
    assert!(err.contains("--resume"), "{err}");
    err
}

#[test]
fn changed_file_under_the_same_path_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let i = inputs(dir.path());
    let out = dir.path().join("r.jsonl");
    json(&run_args(&i, &out, "2"));
    let fields = ["model_digest", "weights_digest", "data_digest"];
    let only = |err: &str, field: &str| {
        for f in fields {
            assert_eq!(err.contains(f), f == field, "{field}: {err}");
        }
    };

    // Other weights (another seed) in the same file.
    let weights = std::fs::read(&i.weights).unwrap();
    write_weights(&i.model, &i.weights, 6);
    let err = refused(&i, &out);
    only(&err, "weights_digest");
    assert!(err.contains(s(&i.weights)), "{err}");
    std::fs::write(&i.weights, &weights).unwrap();

    // One pixel of the data set changed.
    let data = std::fs::read(&i.data).unwrap();
    let mut edited = data.clone();
    edited[1] ^= 1;
    std::fs::write(&i.data, &edited).unwrap();
    let err = refused(&i, &out);
    only(&err, "data_digest");
    assert!(err.contains(s(&i.data)), "{err}");
    std::fs::write(&i.data, &data).unwrap();

    // The model description edited (same name, same parameter shapes, another stride).
    write_model(dir.path(), 2);
    let err = refused(&i, &out);
    only(&err, "model_digest");
    write_model(dir.path(), 1);

    // Everything restored: the run resumes.
    let mut args = run_args(&i, &out, "4");
    args.insert(1, "--resume");
    let v = json(&args);
    assert_eq!(v["images"].as_array().unwrap().len(), 4);
}
