//! `bbed attack` and `bbed sweep` share one attack driver: for the same seed (the sweep's cell
//! seed passed to `bbed attack --seed`) and image, both draw the same target, run on the same
//! engine and write the same record, field by field; an image whose target is its own label is
//! recorded as not attacked by both, and neither run aborts.

use std::collections::BTreeMap;
use std::path::Path;

use breakingbed::report::{load_records, SweepRecord};
use breakingbed::sweep::plan::cell_seed;
use breakingbed::sweep::{load_zoo, RESULTS_FILE};
use serde_json::Value;

use crate::common::bbed;
use crate::sweep_support::{dataset, write_dataset, write_zoo, N_DATA, SIDE};

const SEED: u64 = 5;
const NOT_ATTACKED: &str = "target equals the true label: image not attacked";

/// (grid entry name, TOML spec, the same attack as `bbed attack` flags, fixed target class).
const CASES: [(&str, &str, &[&str], Option<usize>); 4] = [
    (
        "ga-random",
        r#"{ attack = "genattack", eps = { value = 8, scale = "pixel" }, generations = 3, population = 4, targeted = true, target = "random" }"#,
        &[
            "genattack",
            "--eps",
            "8",
            "--eps-scale",
            "pixel",
            "--generations",
            "3",
            "--population",
            "4",
            "--targeted",
            "--target",
            "random",
        ],
        None,
    ),
    (
        "fgsm-random",
        r#"{ attack = "fgsm", eps = { value = 4, scale = "pixel" }, targeted = true, target = "random" }"#,
        &[
            "fgsm",
            "--eps",
            "4",
            "--eps-scale",
            "pixel",
            "--targeted",
            "--target",
            "random",
        ],
        None,
    ),
    (
        "ga-class3",
        r#"{ attack = "genattack", eps = { value = 12, scale = "pixel" }, generations = 3, population = 4, targeted = true, target = 3 }"#,
        &[
            "genattack",
            "--eps",
            "12",
            "--eps-scale",
            "pixel",
            "--generations",
            "3",
            "--population",
            "4",
            "--targeted",
            "--target",
            "3",
        ],
        Some(3),
    ),
    (
        "fgsm-class3",
        r#"{ attack = "fgsm", eps = { value = 16, scale = "pixel" }, targeted = true, target = 3 }"#,
        &[
            "fgsm",
            "--eps",
            "16",
            "--eps-scale",
            "pixel",
            "--targeted",
            "--target",
            "3",
        ],
        Some(3),
    ),
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn by_index(records: Vec<SweepRecord>) -> BTreeMap<usize, SweepRecord> {
    records.into_iter().map(|r| (r.result.index, r)).collect()
}

#[test]
fn attack_and_sweep_give_the_same_target_engine_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&dir.path().join("zoo"));
    let data = write_dataset(&dir.path().join("data"), &dataset(3));
    let grid: String = CASES
        .iter()
        .map(|(name, spec, _, _)| format!("[[grid]]\nname = \"{name}\"\nspec = {spec}\n\n"))
        .collect();
    let config = dir.path().join("grid.toml");
    std::fs::write(&config, grid).unwrap();
    let out = dir.path().join("sweep");
    let images = N_DATA.to_string();
    let seed = SEED.to_string();
    let (code, _, err) = bbed(&[
        "sweep",
        "--zoo",
        s(&zoo),
        "--config",
        s(&config),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--images",
        &images,
        "--seed",
        &seed,
        "--reruns",
        "1",
    ]);
    // Images whose label is the fixed target do not abort the sweep.
    assert_eq!(code, 0, "{err}");
    let swept = load_records(out.join(RESULTS_FILE), false).unwrap();
    let loaded = load_zoo(&zoo, [1, SIDE, SIDE], 10).unwrap();
    let input = format!("1,{SIDE},{SIDE}");

    for entry in &loaded {
        let name = &entry.entry.name;
        let kind = entry.entry.variant.kind.name();
        let weights = zoo.join(&entry.entry.weights);
        for (attack, toml, flags, class) in CASES {
            let sweep = by_index(
                swept
                    .iter()
                    .filter(|r| &r.variant == name && r.attack == attack)
                    .cloned()
                    .collect(),
            );
            assert_eq!(sweep.len(), N_DATA, "{name} {attack}");
            let setting = sweep.values().next().unwrap().setting.clone();
            let cell = cell_seed(SEED, name, attack, &setting, 0).to_string();
            let jsonl = dir.path().join(format!("{name}-{attack}.jsonl"));
            let mut argv = vec![
                "attack",
                "--model",
                "resnet8",
                "--input",
                &input,
                "--classes",
                "10",
                "--variant",
                kind,
                "--weights",
                s(&weights),
                "--data",
                s(&data),
                "--seed",
                &cell,
                "--format",
                "json",
                "--out",
                s(&jsonl),
            ];
            argv.extend(flags);
            let (code, stdout, err) = bbed(&argv);
            assert_eq!(code, 0, "{argv:?}: {err}");
            let report: Value = serde_json::from_str(&stdout).unwrap();

            // Engine: the command's report, the sweep's engines, and the rule itself.
            let table: toml::Table = toml::from_str(&format!("x = {toml}")).unwrap();
            let spec = breakingbed::attack::AttackSpec::from_table(
                table["x"].as_table().unwrap().clone(),
                "case",
            )
            .unwrap();
            let rule = if !spec.is_white_box() && kind == "xnor" {
                "binary"
            } else {
                "float"
            };
            assert_eq!(report["engine"], rule, "{name} {attack}");
            assert_eq!(entry.engines.kind(&spec).name(), rule, "{name} {attack}");

            let attacked = by_index(load_records(&jsonl, false).unwrap());
            assert_eq!(attacked.len(), N_DATA);
            for (index, a) in &attacked {
                // The labels (variant and attack names) are each command's own: the zoo entry
                // and grid entry names in a sweep. The setting and the result are the driver's.
                let b = &sweep[index];
                assert_eq!(a.setting, b.setting);
                assert_eq!(a.result, b.result, "{name} {attack} image {index}");
                // The target rule: a fixed class as given; random never the label.
                let r = &a.result;
                match class {
                    Some(c) => assert_eq!(r.target, Some(c)),
                    None => assert!(r.target.is_some() && r.target != Some(r.label)),
                }
                let skipped = r.warning.as_deref() == Some(NOT_ATTACKED);
                assert_eq!(skipped, r.target == Some(r.label), "{r:?}");
                if skipped {
                    assert_eq!((r.l0, r.clean_pred), (0, r.adv_pred));
                }
            }
            if class.is_some() {
                // Labels are i % 10: images 3, 13, 23 have label 3.
                let skipped = attacked
                    .values()
                    .filter(|r| r.result.warning.as_deref() == Some(NOT_ATTACKED))
                    .count();
                assert_eq!(skipped, 3, "{name} {attack}");
            }
        }
    }
}
