//! `bbed prune-agent` end to end: a (briefly searched) rates TOML that `bbed cost` reads back at
//! or under the budget, and clear errors for bad input. The model is an untrained CNN and the
//! search has 3 episodes: this checks the plumbing, tests/train_amc_net.rs checks the agent.

use breakingbed::engine::params;
use breakingbed::io::idx::FASHION_MNIST_DIR;
use breakingbed::model::custom::from_toml_str;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use std::path::Path;

use crate::common;
use common::{bbed, tiny_cnn};

/// The network description (see `common::tiny_cnn`).
fn net_toml() -> String {
    tiny_cnn("tiny", [1, 28, 28], 2, 10)
}

fn setup(dir: &tempfile::TempDir) -> (String, String) {
    let net_path = dir.path().join("tiny.toml");
    std::fs::write(&net_path, net_toml()).unwrap();
    let net = from_toml_str(&net_toml(), "tiny").unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let w = dir.path().join("w.safetensors");
    params::save(&cn, &params::init(&cn, 1), &w).unwrap();
    (net_path.display().to_string(), w.display().to_string())
}

#[test]
fn prune_agent_writes_rates_the_cost_model_reads() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FASHION_MNIST_DIR} is missing"
        );
        eprintln!("skipping: {FASHION_MNIST_DIR} is absent");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (net, w) = setup(&dir);
    let out = dir.path().join("rates.toml").display().to_string();
    let (code, stdout, err) = bbed(&[
        "prune-agent",
        "--model",
        &net,
        "--weights",
        &w,
        "--data",
        FASHION_MNIST_DIR,
        "--budget",
        "0.6",
        "--out",
        &out,
        "--val",
        "64",
        "--episodes",
        "3",
        "--warmup",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("conv2\t") && stdout.contains("conv3\t"),
        "{stdout}"
    );
    let (code, json, err) = bbed(&[
        "cost",
        "--model",
        &net,
        "--variant",
        "channel",
        "--rate",
        "0",
        "--rates",
        &out,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, full, _) = bbed(&["cost", "--model", &net, "--format", "json"]);
    let macs = |s: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["total"]["fp_macs"]
            .as_f64()
            .unwrap_or_else(|| panic!("no total.fp_macs in {s}"))
    };
    assert!(
        macs(&json) <= 0.6 * macs(&full),
        "{} vs {}",
        macs(&json),
        macs(&full)
    );
}

#[test]
fn prune_agent_bad_input_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let (net, w) = setup(&dir);
    let out = dir.path().join("r.toml").display().to_string();
    let data = dir.path().display().to_string();
    for (budget, needle) in [("1.5", "budget"), ("0", "budget"), ("0.05", "unreachable")] {
        let (code, _, err) = bbed(&[
            "prune-agent",
            "--model",
            &net,
            "--weights",
            &w,
            "--data",
            FASHION_MNIST_DIR,
            "--budget",
            budget,
            "--out",
            &out,
            "--val",
            "8",
            "--episodes",
            "1",
            "--warmup",
            "1",
        ]);
        if needle == "unreachable" && !Path::new(FASHION_MNIST_DIR).exists() {
            continue;
        }
        assert_eq!(code, 2, "{budget}: {err}");
        assert!(
            err.starts_with("error:") && err.contains(needle),
            "{budget}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = bbed(&[
        "prune-agent",
        "--model",
        &net,
        "--weights",
        "/nonexistent.safetensors",
        "--data",
        &data,
        "--budget",
        "0.5",
        "--out",
        &out,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent.safetensors"), "{err}");
}
