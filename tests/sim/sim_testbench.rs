//! `bbed vectors --testbench`: the generated Verilog testbench and reference PE run in Icarus
//! Verilog on every set of a few layers (XNOR, ABC base pairs, fixed-point conv and linear, the
//! physical INT8 slice and the paper's virtual 96-bit one) and pass; PEs broken the way real RTL
//! breaks (fields never drained, read-out without borrow correction, a padded tap counted as a +1
//! activation, unused lanes not masked from the popcount) must fail on the stress sets. Verilator
//! lints the testbench and PEs with -Wall.
//!
//! Needs `iverilog`/`vvp` (and `verilator` for the lint): skipped with a message when missing,
//! a failure under `CI=true`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::sim_vectors_stress::ZCU;

const PAPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/hw/paper.toml");

fn tool(name: &str, version_flag: &str) -> bool {
    let ok = Command::new(name)
        .arg(version_flag)
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is required under CI=true (apt-get install iverilog verilator)");
        }
        eprintln!("skipped: {name} not installed (apt-get install iverilog verilator)");
    }
    ok
}

fn vectors(out: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--testbench"];
    a.extend_from_slice(args);
    crate::sim_vectors_stress::vectors(out, &a)
}

/// Every set directory of a `vectors.json`, relative to the output folder.
fn set_dirs(s: &Value) -> Vec<String> {
    s["sets"]
        .as_array()
        .unwrap()
        .iter()
        .chain(s["stress_sets"].as_array().unwrap())
        .map(|v| v["dir"].as_str().unwrap().to_string())
        .collect()
}

/// Compiles the testbench in `out/testbench` with `pe` as the PE source and runs it on `set`:
/// true when it passes (exit 0 and a PASS line).
fn run_set(out: &Path, pe: &str, set: &str) -> bool {
    let tb = out.join("testbench");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("vectors.json")).unwrap()).unwrap();
    let top = if s["layer"]["precision"]["type"] == "full" {
        "tb_mac"
    } else {
        "tb_xnor"
    };
    let pe_path = tb.join("pe_under_test.v");
    std::fs::write(&pe_path, pe).unwrap();
    let vvp = tb.join("t.vvp");
    let c = Command::new("iverilog")
        .args(["-g2005", "-o"])
        .arg(&vvp)
        .arg(tb.join(format!("{top}.v")))
        .arg(&pe_path)
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let r = Command::new("vvp")
        .arg("-n")
        .arg(&vvp)
        .arg(format!("+dir={}", out.join(set).display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout).to_string() + &String::from_utf8_lossy(&r.stderr);
    let pass = r.status.success() && text.contains("PASS");
    assert!(
        pass || text.contains("FAIL"),
        "neither PASS nor FAIL: {text}"
    );
    pass
}

fn pe(out: &Path) -> (String, String) {
    let tb = out.join("testbench");
    for name in ["bbed_xnor_pe.v", "bbed_mac_pe.v"] {
        if let Ok(t) = std::fs::read_to_string(tb.join(name)) {
            return (name.to_string(), t);
        }
    }
    panic!("no PE in {}", tb.display());
}

/// `text` with the one occurrence of `from` replaced (the bug must really be planted).
fn patch(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` not found once");
    text.replacen(from, to, 1)
}

#[test]
fn generated_testbench_passes_every_set() {
    if !tool("iverilog", "-V") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "xnor",
            &[
                "--model",
                "resnet8",
                "--input",
                "3,16,16",
                "--variant",
                "xnor",
                "--layer",
                "layer2.0.conv1",
                "--hw",
                ZCU,
                "--images",
                "2",
            ],
        ),
        (
            "abc",
            &[
                "--model",
                "resnet8",
                "--input",
                "3,16,16",
                "--variant",
                "abc",
                "--m",
                "2",
                "--n",
                "2",
                "--layer",
                "layer3.0.conv1",
                "--hw",
                ZCU,
            ],
        ),
        (
            "conv1_int8",
            &[
                "--model",
                "resnet8",
                "--input",
                "3,16,16",
                "--variant",
                "xnor",
                "--layer",
                "conv1",
                "--hw",
                ZCU,
            ],
        ),
        (
            "linear_int8",
            &[
                "--model",
                "resnet8",
                "--input",
                "3,16,16",
                "--variant",
                "xnor",
                "--layer",
                "linear",
                "--hw",
                ZCU,
                "--images",
                "3",
            ],
        ),
        (
            "conv1_paper",
            &[
                "--model",
                "resnet8",
                "--input",
                "3,8,8",
                "--layer",
                "layer1.0.conv1",
                "--hw",
                PAPER,
            ],
        ),
    ];
    for (name, args) in cases {
        let out = dir.path().join(name);
        let s = vectors(&out, args);
        let dirs = set_dirs(&s);
        assert!(dirs.len() >= 4, "{name}: {dirs:?}");
        let (_, text) = pe(&out);
        for d in &dirs {
            assert!(
                run_set(&out, &text, d),
                "{name}: set {d} failed with the reference PE"
            );
        }
    }
    // run.sh runs them all (and stops on a failure).
    let out = dir.path().join("xnor");
    let r = Command::new("sh")
        .arg(out.join("testbench/run.sh"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{text}");
    assert_eq!(text.matches("PASS").count(), 4, "{text}");
}

#[test]
fn broken_pes_fail_on_stress_sets() {
    if !tool("iverilog", "-V") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Longest reduction of resnet8: 64 x 3 x 3 = 576 taps, 143 drains per output on INT8 lanes.
    let fixed = dir.path().join("fixed");
    vectors(
        &fixed,
        &[
            "--model",
            "resnet8",
            "--input",
            "3,8,8",
            "--variant",
            "vanilla",
            "--layer",
            "layer3.0.conv2",
            "--hw",
            ZCU,
        ],
    );
    // 16 channels: 32 of the 48 lanes unused.
    let binary = dir.path().join("binary");
    vectors(
        &binary,
        &[
            "--model",
            "resnet8",
            "--input",
            "3,16,16",
            "--variant",
            "xnor",
            "--layer",
            "layer1.0.conv1",
            "--hw",
            ZCU,
        ],
    );
    let (_, mac) = pe(&fixed);
    let (_, xnor) = pe(&binary);
    let bugs: [(&str, &Path, String, &[&str]); 5] = [
        (
            "never drains",
            &fixed,
            patch(
                &mac,
                "if (count + 64'd1 == DRAIN_EVERY) begin",
                "if (1'b0) begin",
            ),
            &["stress/max_product", "stress/mixed_extremes"],
        ),
        (
            "no borrow correction",
            &fixed,
            patch(&mac, "v = (v - f) >>> SPACING;", "v = v >>> SPACING;"),
            &["stress/mixed_extremes", "stress/borrow_boundary"],
        ),
        (
            "padding issued as +1",
            &fixed,
            patch(
                &mac,
                "wire [WIDTH-1:0] b = pad ? {WIDTH{1'b0}} : x;",
                "wire [WIDTH-1:0] b = pad ? {{(WIDTH - 1) {1'b0}}, 1'b1} : x;",
            ),
            &["stress/max_product", "stress/borrow_boundary"],
        ),
        (
            "padded tap counted as +1",
            &binary,
            patch(&xnor, "else if (en && !pad) acc", "else if (en) acc"),
            &["stress/all_match", "stress/all_mismatch"],
        ),
        (
            "unused lanes counted",
            &binary,
            patch(&xnor, "~(w ^ x) & valid;", "~(w ^ x);"),
            &[
                "stress/all_match",
                "stress/all_mismatch",
                "stress/checkerboard",
            ],
        ),
    ];
    for (bug, out, text, must_fail) in bugs {
        for set in must_fail {
            assert!(!run_set(out, &text, set), "PE that {bug}: passed {set}");
        }
    }
    // The no-drain bug slips through typical data: the stress sets are what catches it.
    let nodrain = patch(
        &mac,
        "if (count + 64'd1 == DRAIN_EVERY) begin",
        "if (1'b0) begin",
    );
    assert!(
        run_set(&fixed, &nodrain, "."),
        "random set now catches no-drain"
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(fixed.join("vectors.json")).unwrap())
            .unwrap();
    assert_eq!(s["stress_sets"][0]["coverage"]["undrained_overflow"], true);
}

#[test]
fn verilator_lints_testbench_and_pes() {
    if !tool("verilator", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("x", ["--variant", "xnor", "--layer", "layer1.0.conv1"]),
        ("f", ["--variant", "xnor", "--layer", "conv1"]),
    ] {
        let out = dir.path().join(name);
        let mut a = vec!["--model", "resnet8", "--input", "3,8,8", "--hw", ZCU];
        a.extend_from_slice(&args);
        vectors(&out, &a);
        let tb = out.join("testbench");
        let (pe_name, _) = pe(&out);
        let top = if name == "x" { "tb_xnor.v" } else { "tb_mac.v" };
        let r = Command::new("verilator")
            .args(["--lint-only", "-Wall", "--timing"])
            .arg(tb.join(top))
            .arg(tb.join(&pe_name))
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
}
