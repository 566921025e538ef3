//! Exit codes: bad input exits 2, a bug exits 70 (`Error::Internal` or a panic, also one on a
//! rayon worker) with one `error: internal error ...` line asking for a bug report.
//!
//! The bug cases run `cli::guarded` / `cli::finish`, the functions `bbed`'s `main` runs, in a
//! child process (this test binary re-run on an ignored test), because the panic hook they
//! install is process-wide and would change how every other test's failure is reported.

use std::process::Command;

use breakingbed::cli::{finish, guarded};
use breakingbed::Error;
use rayon::prelude::*;

use crate::common::bbed;

const MODE_VAR: &str = "BBED_EXIT_CODE_CHILD";

#[test]
#[ignore = "child process of the exit-code tests below"]
fn exit_code_child() {
    let code = match std::env::var(MODE_VAR).as_deref() {
        Ok("panic") => guarded(|| panic!("invariant broken\nsecond line")),
        Ok("worker-panic") => guarded(|| {
            (0..64usize).into_par_iter().for_each(|i| {
                if i == 37 {
                    panic!("worker invariant broken");
                }
            });
            0
        }),
        Ok("internal") => guarded(|| finish(Err(Error::internal("plan", "cell count differs")))),
        Ok("input") => guarded(|| finish(Err(Error::input("--images", "must be at least 1")))),
        Ok("ok") => guarded(|| finish(Ok(String::new()))),
        _ => return,
    };
    std::process::exit(code);
}

/// Runs [`exit_code_child`] in `mode`; returns (exit code, stderr).
fn child(mode: &str) -> (i32, String) {
    // The child's name inside this binary: its module path without the crate (binary) name.
    let name = format!(
        "{}::exit_code_child",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", &name, "--nocapture", "--quiet"])
        .env(MODE_VAR, mode)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into())
}

/// One stderr line: an internal error that asks for a bug report and carries `needle`.
fn assert_bug_report(err: &str, needle: &str) {
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    let line = lines[0];
    assert!(line.starts_with("error: internal error"), "{line}");
    assert!(line.contains("bug") && line.contains("report"), "{line}");
    assert!(line.contains(needle), "'{needle}' not in {line}");
    assert!(!line.contains("panicked"), "{line}");
}

#[test]
fn panic_exits_70_with_one_line_asking_for_a_bug_report() {
    let (code, err) = child("panic");
    assert_eq!(code, 70, "{err}");
    assert_bug_report(
        &err,
        "invariant broken second line at tests/cli/cli_exit_codes.rs:",
    );
}

#[test]
fn panic_on_a_rayon_worker_exits_70() {
    let (code, err) = child("worker-panic");
    assert_eq!(code, 70, "{err}");
    assert_bug_report(&err, "worker invariant broken");
}

#[test]
fn internal_error_exits_70_bad_input_2_success_0() {
    let (code, err) = child("internal");
    assert_eq!(code, 70, "{err}");
    assert_bug_report(&err, "plan: cell count differs");
    let (code, err) = child("input");
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim(), "error: --images: must be at least 1");
    let (code, err) = child("ok");
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn bbed_bad_input_exits_2_and_help_lists_the_codes() {
    let (code, out, err) = bbed(&[
        "verify",
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--images",
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        out.is_empty() && err.starts_with("error: --images"),
        "{err}"
    );
    assert!(!err.contains("internal"), "{err}");
    let (code, out, _) = bbed(&["--help"]);
    assert_eq!(code, 0);
    let codes = out.split_once("Exit codes:").map(|(_, c)| c).unwrap_or("");
    for line in ["  1   a check", "  2   bad input", "  70  internal error"] {
        assert!(codes.contains(line), "{line:?} not in {out}");
    }
}
