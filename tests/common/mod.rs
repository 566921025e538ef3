//! Shared helper of the CLI tests: runs the `bbed` binary built for this test run.

use std::process::Command;

/// Runs `bbed args` and returns (exit code, stdout, stderr); a signal death reads as -1.
pub fn bbed(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(args)
        .output()
        .expect("run bbed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}
