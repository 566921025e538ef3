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

/// A tiny 3-conv CNN description (conv1 4 channels with stride `conv1_stride`, conv2 8
/// channels stride 2, conv3 8 channels, ReLUs, global average pool, linear to `classes`): the
/// network of the pruning-agent CLI tests. Not every test file uses it.
#[allow(dead_code)]
pub fn tiny_cnn(name: &str, [c, h, w]: [usize; 3], conv1_stride: usize, classes: usize) -> String {
    format!(
        r#"
name = "{name}"
input = [{c}, {h}, {w}]
num_classes = {classes}
[[layers]]
name = "conv1"
op = "conv"
out_c = 4
kernel = 3
stride = {conv1_stride}
padding = 1
[[layers]]
name = "relu1"
op = "relu"
[[layers]]
name = "conv2"
op = "conv"
out_c = 8
kernel = 3
stride = 2
padding = 1
[[layers]]
name = "relu2"
op = "relu"
[[layers]]
name = "conv3"
op = "conv"
out_c = 8
kernel = 3
padding = 1
[[layers]]
name = "pool"
op = "global_avg_pool"
[[layers]]
name = "fc"
op = "linear"
out_f = {classes}
"#
    )
}
