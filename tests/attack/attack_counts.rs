//! Iteration counts of zero (`pgd.iterations`, `cw.max_iterations`, `deepfool.max_iterations`,
//! `localsearch.rounds`, `genattack.generations`) are refused by the one rule of the spec types,
//! whichever way the spec arrives: flags (the error names the flag and the field path), a spec
//! file (the file and the field path), TOML in the library, a sweep grid.

use breakingbed::attack::spec::{AttackSpec, Grid};

use crate::attack_cli::{assert_flag_error, cifar_file, one_image_attack, s};

/// Each attack with one count set to zero: (attack, field, its flag, the rest of the flags,
/// the same attack as TOML fields).
const CASES: [(&str, &str, &str, &[&str], &str); 5] = [
    (
        "pgd",
        "iterations",
        "--iterations",
        &[
            "--eps",
            "1",
            "--eps-scale",
            "pixel",
            "--step",
            "1",
            "--step-scale",
            "pixel",
        ],
        r#"eps = { value = 1, scale = "pixel" }
step = { value = 1, scale = "pixel" }"#,
    ),
    ("cw", "max_iterations", "--max-iterations", &[], ""),
    ("deepfool", "max_iterations", "--max-iterations", &[], ""),
    (
        "localsearch",
        "rounds",
        "--rounds",
        &["--eps", "8", "--eps-scale", "pixel"],
        r#"eps = { value = 8, scale = "pixel" }"#,
    ),
    (
        "genattack",
        "generations",
        "--generations",
        &["--eps", "8", "--eps-scale", "pixel"],
        r#"eps = { value = 8, scale = "pixel" }"#,
    ),
];

fn toml(attack: &str, field: &str, value: usize, rest: &str) -> String {
    format!("attack = \"{attack}\"\n{field} = {value}\n{rest}\n")
}

#[test]
fn zero_counts_are_refused_naming_the_field_in_the_library() {
    for (attack, field, _, _, rest) in CASES {
        let err = AttackSpec::from_toml(&toml(attack, field, 0, rest), "run.toml")
            .unwrap_err()
            .to_string();
        let want = format!("run.toml: {attack}.{field}");
        assert!(err.contains(&want), "'{want}' not in {err}");
        assert!(err.contains("at least 1"), "{err}");
        // One more is a valid spec: the rule is about zero, not about the rest of the case.
        AttackSpec::from_toml(&toml(attack, field, 1, rest), "run.toml")
            .unwrap_or_else(|e| panic!("{attack}.{field} = 1: {e}"));
    }
}

#[test]
fn zero_counts_are_refused_in_a_sweep_grid() {
    let grid = r#"
[[grid]]
name = "pgd0"
spec = { attack = "pgd", eps = { value = 1, scale = "pixel" }, step = { value = 1, scale = "pixel" }, iterations = 2 }
sweep = { iterations = [2, 0] }
"#;
    let err = Grid::from_toml(grid, "grid.toml")
        .unwrap()
        .expand("grid.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("grid.toml") && err.contains("pgd.iterations"),
        "{err}"
    );
    assert!(err.contains("at least 1"), "{err}");
}

#[test]
fn zero_counts_are_refused_from_flags_and_spec_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_file(dir.path());
    let base = one_image_attack(s(&data));
    for (attack, field, flag, rest, rest_toml) in CASES {
        let mut args: Vec<&str> = base.to_vec();
        args.push(attack);
        args.extend_from_slice(rest);
        args.extend_from_slice(&[flag, "0"]);
        assert_flag_error(&args, &format!("{flag} ({attack}.{field})"));

        let spec = dir.path().join(format!("{attack}.toml"));
        std::fs::write(&spec, toml(attack, field, 0, rest_toml)).unwrap();
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(&["--spec", s(&spec)]);
        assert_flag_error(&args, &format!("{}: {attack}.{field}", s(&spec)));
    }
}
