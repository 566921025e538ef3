//! `bbed attack <attack>` flags are the spec's fields: every serde field of every attack is a
//! flag named after its path (and every flag is a field), flags left out give the spec file's
//! defaults, `--help` shows each default, and bad values name the flag or the field path.

use std::collections::BTreeSet;

use breakingbed::attack::spec::{AttackSpec, ATTACK_NAMES};
use breakingbed::cli::{Cli, Command};
use clap::{CommandFactory, Parser};
use serde_json::Value;

use crate::common::bbed;

/// Per attack: the fields a spec file must give (TOML) and the same as flags.
fn required(name: &str) -> (&'static str, Vec<&'static str>) {
    match name {
        "fgsm" => (
            "eps = { value = 8, scale = \"pixel\" }",
            vec!["--eps", "8", "--eps-scale", "pixel"],
        ),
        "pgd" => (
            "eps = { value = 0.5, scale = \"normalized\" }\n\
             step = { value = 0.25, scale = \"unit\" }\niterations = 3",
            vec![
                "--eps",
                "0.5",
                "--eps-scale",
                "normalized",
                "--step",
                "0.25",
                "--step-scale",
                "unit",
                "--iterations",
                "3",
            ],
        ),
        "cw" | "deepfool" => ("", vec![]),
        "localsearch" => (
            "eps = { value = 16, scale = \"pixel\" }",
            vec!["--eps", "16", "--eps-scale", "pixel"],
        ),
        "genattack" => (
            "eps = { value = 8, scale = \"pixel\" }\ngenerations = 20",
            vec!["--eps", "8", "--eps-scale", "pixel", "--generations", "20"],
        ),
        other => panic!("no required fields listed for {other}"),
    }
}

/// The spec with only its required fields, from TOML (serde defaults fill the rest); targeted
/// attacks get a target so that the optional `target` field is serialised too.
fn from_file(name: &str, targeted: bool) -> AttackSpec {
    let (fields, _) = required(name);
    let target = if targeted {
        "\ntargeted = true\ntarget = \"next\""
    } else {
        ""
    };
    AttackSpec::from_toml(&format!("attack = \"{name}\"\n{fields}{target}"), "test").unwrap()
}

/// The same spec from the command line (clap defaults fill the rest).
fn from_flags(name: &str, more: &[&str]) -> Result<AttackSpec, clap::Error> {
    let mut argv = vec!["bbed", "attack", "--model", "m", "--data", "d", name];
    argv.extend(required(name).1);
    argv.extend(more);
    let cli = Cli::try_parse_from(argv)?;
    match cli.command {
        Command::Attack(a) => Ok(a.attack.expect("an attack subcommand")),
        other => panic!("not the attack command: {other:?}"),
    }
}

/// Flag names of the serde fields: `eps = { value, scale }` is `--eps` and `--eps-scale`,
/// `max_iterations` is `--max-iterations`.
fn field_flags(spec: &AttackSpec) -> BTreeSet<String> {
    let v = serde_json::to_value(spec).unwrap();
    let mut out = BTreeSet::new();
    for (k, val) in v.as_object().unwrap() {
        if k == "attack" {
            continue;
        }
        let flag = format!("--{}", k.replace('_', "-"));
        match val {
            Value::Object(o) => {
                for sub in o.keys() {
                    out.insert(if sub == "value" {
                        flag.clone()
                    } else {
                        format!("{flag}-{}", sub.replace('_', "-"))
                    });
                }
            }
            _ => {
                out.insert(flag);
            }
        }
    }
    out
}

fn attack_command(name: &str) -> clap::Command {
    Cli::command()
        .find_subcommand("attack")
        .unwrap()
        .find_subcommand(name)
        .unwrap_or_else(|| panic!("no `bbed attack {name}`"))
        .clone()
}

#[test]
fn every_spec_field_is_a_flag_and_every_flag_a_field() {
    // clap's own consistency checks (unique argument ids and names, valid defaults), which
    // release builds do not run at parse time.
    Cli::command().debug_assert();
    let subcommands: BTreeSet<String> = Cli::command()
        .find_subcommand("attack")
        .unwrap()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    let names: BTreeSet<String> = ATTACK_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(subcommands, names);
    for name in ATTACK_NAMES {
        let has_target = !matches!(name, "deepfool" | "localsearch");
        let spec = from_file(name, has_target);
        let fields = field_flags(&spec);
        let flags: BTreeSet<String> = attack_command(name)
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|l| l != "--help")
            // A negation (`--no-random-start`) is the flag of its positive's field.
            .filter(|l| {
                l.strip_prefix("--no-")
                    .is_none_or(|pos| !fields.contains(&format!("--{pos}")))
            })
            .collect();
        assert_eq!(fields, flags, "{name}: serde fields vs flags");
    }
}

#[test]
fn flags_left_out_give_the_spec_file_defaults() {
    for name in ATTACK_NAMES {
        assert_eq!(
            from_flags(name, &[]).unwrap(),
            from_file(name, false),
            "{name}"
        );
    }
    // Flags reach fields that only a spec file could set before.
    let AttackSpec::Pgd(p) =
        from_flags("pgd", &["--random-start", "false", "--restarts", "4"]).unwrap()
    else {
        panic!("not pgd")
    };
    assert!(!p.random_start.get());
    assert_eq!(p.restarts, 4);
    let AttackSpec::Cw(c) = from_flags(
        "cw",
        &[
            "--binary-search-steps",
            "2",
            "--learning-rate",
            "0.5",
            "--abort-early",
            "false",
            "--report-scale",
            "pixel",
        ],
    )
    .unwrap() else {
        panic!("not cw")
    };
    assert_eq!(
        (c.binary_search_steps, c.learning_rate, c.abort_early),
        (2, 0.5, false)
    );
    assert_eq!(c.report_scale, breakingbed::attack::Scale::Pixel);
}

#[test]
fn pgd_random_start_and_its_negation() {
    let start = |more: &[&str]| match from_flags("pgd", more).unwrap() {
        AttackSpec::Pgd(p) => p.random_start.get(),
        _ => panic!("not pgd"),
    };
    assert!(start(&[]));
    assert!(start(&["--random-start"]));
    assert!(!start(&["--random-start", "false"]));
    assert!(!start(&["--no-random-start"]));
    // The last one given wins.
    assert!(start(&["--no-random-start", "--random-start"]));
    assert!(!start(&["--random-start", "--no-random-start"]));
    // A spec file holds the resolved bool, and reads back to the same spec.
    let spec = from_flags("pgd", &["--no-random-start"]).unwrap();
    let toml = toml::to_string(&spec).unwrap();
    assert!(toml.contains("random_start = false"), "{toml}");
    assert_eq!(AttackSpec::from_toml(&toml, "t").unwrap(), spec);
}

#[test]
fn help_lists_every_flag_with_its_default() {
    for name in ATTACK_NAMES {
        let (code, help, err) = bbed(&["attack", name, "--help"]);
        assert_eq!(code, 0, "{err}");
        for arg in attack_command(name).get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            assert!(
                help.contains(&format!("--{long}")),
                "{name}: --{long}\n{help}"
            );
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if let [d] = defaults.as_slice() {
                assert!(
                    help.contains(&format!("[default: {d}]")),
                    "{name} --{long}: default {d} not shown\n{help}"
                );
            }
        }
    }
    // Units: budgets say their scale, and the scale values are listed.
    let (_, help, _) = bbed(&["attack", "pgd", "--help"]);
    assert!(help.contains("in --eps-scale units"), "{help}");
    assert!(help.contains("normalized"), "{help}");
}

#[test]
fn bad_values_name_the_flag_or_the_field_path() {
    let e = from_flags("pgd", &["--norm", "l1"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--norm"), "{e}");
    let argv = [
        "bbed", "attack", "--model", "m", "--data", "d", "fgsm", "--eps", "8",
    ];
    let e = Cli::try_parse_from(argv.iter().chain(&["--eps-scale", "bytes"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--eps-scale") && e.contains("bytes"), "{e}");
    let e = Cli::try_parse_from(
        argv.iter()
            .chain(&["--eps-scale", "unit", "--target", "cat"]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--target") && e.contains("cat"), "{e}");
    // A spec file: the file and the field path.
    let e = AttackSpec::from_toml(
        "attack = \"pgd\"\neps = { value = 1, scale = \"bytes\" }\n\
         step = { value = 1, scale = \"unit\" }\niterations = 1",
        "run.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("run.toml: pgd.eps.scale:"), "{e}");
    let e = AttackSpec::from_toml("attack = \"cw\"\nmax_iterations = \"many\"", "run.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("run.toml: cw.max_iterations:"), "{e}");
    let e = AttackSpec::from_toml(
        "attack = \"genattack\"\neps = { value = 8, scale = \"pixel\" }\n\
         generations = 3\npopulation = 1",
        "run.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("run.toml: genattack.population:"), "{e}");
}
