//! `bbed attack` as a batch job: progress lines on a stderr that is not a terminal (counts,
//! rate, ETA; a resumed run counts from where it resumed), and the shared memory guard refusing
//! an estimate over `BBED_MAX_MEMORY` before any work or output.

use std::path::Path;
use std::process::Command;

use crate::attack_cli::{cifar_file, s, with, PGD};
use crate::attack_run_identity::write_model;

/// Runs `bbed args` with extra environment variables: (exit code, stdout, stderr).
fn bbed_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn attack_args<'a>(model: &'a Path, data: &'a Path, out: &'a Path, limit: &'a str) -> Vec<&'a str> {
    let base = vec![
        "attack",
        "--model",
        s(model),
        "--data",
        s(data),
        "--chunk",
        "2",
        "--limit",
        limit,
        "--out",
        s(out),
    ];
    with(&base, &PGD)
}

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("attack: "))
        .collect()
}

#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 1);
    let data = cifar_file(dir.path());
    let out = dir.path().join("r.jsonl");
    // BBED_PROGRESS_SECS=0: a line after every image.
    let env = [("BBED_PROGRESS_SECS", "0")];
    let (code, _, err) = bbed_env(&attack_args(&model, &data, &out, "2"), &env);
    assert_eq!(code, 0, "{err}");
    let lines = progress_lines(&err);
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("1/2 images (50.0%)"), "{err}");
    assert!(lines.iter().all(|l| l.contains("/s, ETA ")), "{err}");
    assert!(lines[1].contains("2/2 images (100.0%)"), "{err}");

    // Resumed with a larger limit: the count starts at the two images already in the file.
    let mut args = attack_args(&model, &data, &out, "5");
    args.insert(1, "--resume");
    let (code, _, err) = bbed_env(&args, &env);
    assert_eq!(code, 0, "{err}");
    let lines = progress_lines(&err);
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains("3/5 images (60.0%)"), "{err}");
    assert!(lines[2].contains("5/5 images (100.0%)"), "{err}");
}

#[test]
fn memory_guard_refuses_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), 1);
    let data = cifar_file(dir.path());
    let out = dir.path().join("r.jsonl");
    // 1 kB: below any network's estimate, far above nothing.
    let (code, stdout, err) = bbed_env(
        &attack_args(&model, &data, &out, "2"),
        &[("BBED_MAX_MEMORY", "0.000001")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        err.starts_with("error:") && !err.contains("panicked"),
        "{err}"
    );
    for want in [
        "model tiny",
        "estimated",
        "GB",
        "--chunk",
        "BBED_MAX_MEMORY",
    ] {
        assert!(err.contains(want), "'{want}' not in {err}");
    }
    assert!(!out.exists(), "the guard runs before the output is opened");
    // The same run under the default limit goes through.
    let (code, _, err) = bbed_env(&attack_args(&model, &data, &out, "2"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.exists());
}
