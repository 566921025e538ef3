//! `bbed prune --agent --budget B` end to end on a tiny 3-channel CNN and a folder-of-images
//! data set made here: the rates TOML it writes is read back by `bbed prune --rates` (same
//! weights as the agent's own `--out`), by the cost model (at or under the budget) and by the
//! channel variant the pruned weights load into; bad flag combinations exit 2. The search is 3
//! episodes long: this checks the plumbing, tests/train_amc_net.rs checks the agent.

use breakingbed::engine::params;
use breakingbed::model::custom::from_toml_str;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use image::{Rgb, RgbImage};
use std::collections::BTreeMap;
use std::path::Path;

use crate::common;
use common::{bbed, tiny_cnn};

/// The network description (see `common::tiny_cnn`); 224 x 224 is the folder loader's default
/// centre crop.
fn net_toml() -> String {
    tiny_cnn("tiny3", [3, 224, 224], 4, 3)
}

struct Setup {
    _dir: tempfile::TempDir,
    net: String,
    weights: String,
    data: String,
    root: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let net_path = root.join("tiny3.toml");
    std::fs::write(&net_path, net_toml()).unwrap();
    let net = from_toml_str(&net_toml(), "tiny3").unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let w = root.join("w.safetensors");
    params::save(&cn, &params::init(&cn, 1), &w).unwrap();
    let data = root.join("imgs");
    for (split, n) in [("train", 4u32), ("val", 2)] {
        for (k, class) in ["a", "b", "c"].iter().enumerate() {
            for i in 0..n {
                let img = RgbImage::from_fn(24, 24, |x, y| {
                    Rgb([(x * 10) as u8, (y * 10 + i) as u8, (k * 120) as u8])
                });
                let p = data.join(split).join(class).join(format!("{i}.png"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                img.save(&p).unwrap();
            }
        }
    }
    Setup {
        net: net_path.display().to_string(),
        weights: w.display().to_string(),
        data: data.display().to_string(),
        root,
        _dir: dir,
    }
}

const SEARCH: [&str; 6] = ["--val", "12", "--episodes", "3", "--warmup", "2"];

impl Setup {
    /// `bbed prune --agent --budget 0.5` on this setup's net, weights and data, then `extra`.
    fn agent_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "prune",
            "--agent",
            "--budget",
            "0.5",
            "--model",
            &self.net,
            "--weights",
            &self.weights,
            "--data",
            &self.data,
        ];
        args.extend(extra);
        args
    }
}

#[test]
fn prune_agent_flag_writes_rates_that_prune_and_cost_read() {
    let s = setup();
    let rates = s.root.join("r.toml").display().to_string();
    let pruned = s.root.join("p.safetensors").display().to_string();
    let mut args = s.agent_args(&["--rates-out", &rates, "--out", &pruned]);
    args.extend(SEARCH);
    let (code, out, err) = bbed(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote") && out.contains(&pruned), "{out}");

    // The channel-prunable convs are the ones consuming a conv's output: conv2 and conv3.
    let text = std::fs::read_to_string(&rates).unwrap();
    let r: BTreeMap<String, f64> = toml::from_str(&text).unwrap();
    assert_eq!(r.keys().collect::<Vec<_>>(), ["conv2", "conv3"], "{text}");
    // AMC's action range is [0, 0.8].
    assert!(r.values().all(|&v| (0.0..=0.8).contains(&v)), "{text}");

    // Plain `bbed prune` reads the file and cuts exactly what --agent --out cut.
    let again = s.root.join("p2.safetensors").display().to_string();
    let (code, _, err) = bbed(&[
        "prune",
        "--model",
        &s.net,
        "--weights",
        &s.weights,
        "--scheme",
        "channel",
        "--rates",
        &rates,
        "--out",
        &again,
    ]);
    assert_eq!(code, 0, "{err}");

    // The pruned weights load into the channel variant the file describes, whose channel
    // counts follow round(rate * channels) removed (variant module doc) from conv1/conv2.
    let net = from_toml_str(&net_toml(), "tiny3").unwrap();
    let mut spec = VariantSpec::new(VariantKind::Channel);
    spec.options.rate = 0.0;
    spec.options.rates = r.clone();
    let cn = variant::apply(&net, &spec).unwrap();
    let p = params::load(&cn, Path::new(&pruned)).unwrap();
    // (The metadata differs: global rate 0 vs the default 0.5, which no layer uses.)
    assert!(p == params::load(&cn, Path::new(&again)).unwrap());
    for (conv, producer_c) in [("conv2", 4.0), ("conv3", 8.0)] {
        let kept = producer_c - (r[conv] * producer_c).round();
        assert_eq!(
            p[&format!("{conv}.weight")].shape()[1],
            kept as usize,
            "{conv}"
        );
    }

    // The cost model reads it too, at or under the budget of the unpruned MACs.
    let (code, json, err) = bbed(&[
        "cost",
        "--model",
        &s.net,
        "--variant",
        "channel",
        "--rate",
        "0",
        "--rates",
        &rates,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, full, _) = bbed(&["cost", "--model", &s.net, "--format", "json"]);
    let macs = |s: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["total"]["fp_macs"].as_f64().unwrap()
    };
    assert!(macs(&json) <= 0.5 * macs(&full), "{json} vs {full}");

    // Without --rates-out the rates go next to --out.
    let only_out = s.root.join("q.safetensors").display().to_string();
    let mut args = s.agent_args(&["--out", &only_out]);
    args.extend(SEARCH);
    let (code, _, err) = bbed(&args);
    assert_eq!(code, 0, "{err}");
    let beside = s.root.join("q.rates.toml");
    // Same seed, same data: the same rates.
    let r2: BTreeMap<String, f64> =
        toml::from_str(&std::fs::read_to_string(beside).unwrap()).unwrap();
    assert_eq!(r2, r);
}

#[test]
fn prune_agent_flag_errors_exit_2_naming_the_flag() {
    let s = setup();
    let rates = s.root.join("r.toml").display().to_string();
    let base = [
        "prune",
        "--model",
        &s.net,
        "--weights",
        &s.weights,
        "--data",
        &s.data,
        "--rates-out",
        &rates,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .chain(SEARCH.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        // --agent without --budget, and with --rate / --rates: clap usage errors.
        (with(&["--agent"]), "--budget"),
        (
            with(&["--agent", "--budget", "0.5", "--rate", "0.3"]),
            "--rate",
        ),
        (
            with(&["--agent", "--budget", "0.5", "--rates", &rates]),
            "--rates",
        ),
        // --budget without --agent.
        (with(&["--budget", "0.5", "--scheme", "channel"]), "--agent"),
        // Budget outside (0, 1).
        (with(&["--agent", "--budget", "1"]), "--budget"),
        (with(&["--agent", "--budget", "0"]), "--budget"),
        (with(&["--agent", "--budget", "1.5"]), "--budget"),
        (with(&["--agent", "--budget", "-0.2"]), "--budget"),
        // The agent picks channel rates only.
        (
            with(&["--agent", "--budget", "0.5", "--scheme", "filter"]),
            "--scheme",
        ),
    ];
    for (args, needle) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = bbed(&a);
        assert_eq!(code, 2, "{a:?}: {err}");
        assert!(
            err.starts_with("error:") && err.contains(needle),
            "{a:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!Path::new(&rates).exists(), "no error case may write rates");
    // Neither --rates-out nor --out: nowhere to write.
    let (code, _, err) = bbed(&s.agent_args(&[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--rates-out"), "{err}");
}
