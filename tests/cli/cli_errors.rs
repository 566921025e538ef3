//! Bad input to `bbed`: a clear `error: ...` naming the field, exit code 2, never a panic.

use crate::common;
use common::bbed;

/// Exit 2, nothing on stdout, an `error:` line containing every `needle`, no panic.
fn assert_user_error(args: &[&str], needles: &[&str]) {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 2, "{args:?}: stderr {err}");
    assert!(out.is_empty(), "{args:?}: stdout {out}");
    assert!(err.starts_with("error:"), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn unknown_model() {
    assert_user_error(
        &["cost", "--model", "resnet19"],
        &["model", "resnet19", "resnet20"],
    );
    assert_user_error(&["cost", "--model", "vgg16"], &["model", "vgg16"]);
}

#[test]
fn unknown_variant() {
    assert_user_error(
        &["cost", "--model", "resnet20", "--variant", "ternary"],
        &["--variant", "ternary", "xnor"],
    );
}

/// One rate rule for every command (issue 18): a pruning rate lies in (0, 1); the message names
/// that range (it said [0, 1] while a rate of 1 silently kept one filter per layer).
#[test]
fn rate_out_of_range() {
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--variant",
            "weight",
            "--rate",
            "-0.1",
        ],
        &["--rate", "(0, 1)"],
    );
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--variant",
            "filter",
            "--rate",
            "1.5",
        ],
        &["--rate", "1.5"],
    );
}

#[test]
fn rate_override_out_of_range_or_unmatched() {
    let d = tempfile::tempdir().unwrap();
    let p = write(&d, "rates.toml", "\"layer1.*\" = 2.0\n");
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--variant",
            "weight",
            "--rates",
            &p,
        ],
        &["rates.\"layer1.*\"", "(0, 1)"],
    );
    let p = write(&d, "typo.toml", "\"layr1.*\" = 0.3\n");
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--variant",
            "weight",
            "--rates",
            &p,
        ],
        &["layr1.*", "matches no layer"],
    );
}

#[test]
fn malformed_toml_files() {
    let d = tempfile::tempdir().unwrap();
    let net = write(&d, "net.toml", "name = \"x\"\ninput = [1, 28\n");
    assert_user_error(
        &["cost", "--model", &net],
        &["net.toml", "malformed network TOML"],
    );
    let rates = write(&d, "rates.toml", "layer1 = [\n");
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--variant",
            "weight",
            "--rates",
            &rates,
        ],
        &["rates.toml", "malformed rates TOML"],
    );
    let t1 = write(&d, "t1.toml", "[[rows]]\ndataset = 1\n");
    assert_user_error(
        &["table1", "--config", &t1],
        &["t1.toml", "malformed Table 1 TOML"],
    );
    let hw = write(
        &d,
        "hw.toml",
        "[ncc]\nmac_lanes = 2\nxnor_lanes = 0\ndivide_macs_by_lanes = false\n",
    );
    assert_user_error(
        &["cost", "--model", "resnet8", "--hw", &hw],
        &["hw.toml", "ncc.xnor_lanes"],
    );
    assert_user_error(
        &["cost", "--model", "/nonexistent/net.toml"],
        &["/nonexistent/net.toml"],
    );
}

#[test]
fn custom_network_whose_shapes_do_not_chain() {
    let d = tempfile::tempdir().unwrap();
    let text = r#"
name = "broken"
input = [1, 8, 8]
num_classes = 4
[[layers]]
name = "c1"
op = "conv"
out_c = 4
kernel = 3
[[layers]]
name = "c2"
op = "conv"
in_c = 8
out_c = 4
kernel = 3
[[layers]]
name = "fc"
op = "linear"
out_f = 4
"#;
    let p = write(&d, "broken.toml", text);
    assert_user_error(
        &["cost", "--model", &p],
        &["broken.toml", "layer 'c2'", "in_c = 8", "4 channels"],
    );
    let add = text.replace("in_c = 8\n", "").replace(
        "name = \"fc\"",
        "name = \"sum\"\nop = \"add\"\ninputs = [\"c1\", \"c2\"]\n[[layers]]\nname = \"fc\"",
    );
    let p = write(&d, "add.toml", &add);
    assert_user_error(
        &["cost", "--model", &p],
        &["layer 'sum'", "different shapes"],
    );
    let unknown_op = text.replace("op = \"linear\"", "op = \"dense\"");
    let p = write(&d, "op.toml", &unknown_op);
    assert_user_error(&["cost", "--model", &p], &["layers[2]", "dense"]);
}

#[test]
fn bad_abc_bases_and_clap_usage_errors_exit_2() {
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--variant",
            "abc",
            "--m",
            "0",
        ],
        &["--m", "1..=32"],
    );
    let (code, _, err) = bbed(&["cost", "--modle", "resnet20"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--modle") && !err.contains("panicked"));
    let (code, _, err) = bbed(&["cost", "--model", "resnet20", "--input", "3,32"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("C,H,W"));
}

#[test]
fn absurd_sizes_are_rejected_not_overflowed() {
    assert_user_error(
        &[
            "cost",
            "--model",
            "resnet20",
            "--input",
            "3,4000000000,4000000000",
        ],
        &["too large"],
    );
}

#[test]
fn help_explains_units() {
    for args in [&["--help"][..], &["cost", "--help"], &["table1", "--help"]] {
        let (code, out, _) = bbed(args);
        assert_eq!(code, 0);
        assert!(out.contains("10^6"), "{args:?}: {out}");
        assert!(out.contains("MB"), "{args:?}");
    }
}
