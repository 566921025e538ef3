//! `bbed cost` / `bbed table1` output in every format, checked against independent figures.

use std::process::Command;

fn bbed_ok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(args)
        .output()
        .expect("run bbed");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn table1_json_has_the_required_keys_and_paper_values() {
    let v: serde_json::Value =
        serde_json::from_str(&bbed_ok(&["table1", "--format", "json"])).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 24);
    for r in rows {
        for k in [
            "dataset",
            "model",
            "variant",
            "paper_memory_mb",
            "memory_mb",
            "paper_ncc",
            "ncc",
            "note",
        ] {
            assert!(r.get(k).is_some(), "missing {k} in {r}");
        }
    }
    // First row of the paper's Table 1: ResNet20, 1.07 MB, NCC 41 (40,551,040 MACs).
    assert_eq!(rows[0]["paper_memory_mb"], 1.07);
    assert!((rows[0]["ncc"].as_f64().unwrap() - 40.551040).abs() < 1e-9);
}

#[test]
fn table1_text_formats_have_one_line_per_row() {
    let csv = bbed_ok(&["table1", "--format", "csv"]);
    assert_eq!(
        csv.lines().next().unwrap().split(',').next(),
        Some("dataset")
    );
    let md = bbed_ok(&["table1", "--format", "md"]);
    assert_eq!(md.lines().count(), 24 + 2);
    let table = bbed_ok(&["table1"]);
    assert_eq!(table.lines().count(), 24 + 2);
}

#[test]
fn cost_json_total_matches_published_macs() {
    let v: serde_json::Value = serde_json::from_str(&bbed_ok(&[
        "cost", "--model", "resnet18", "--format", "json",
    ]))
    .unwrap();
    assert_eq!(v["total"]["fp_macs"], 1_814_073_344u64);
    // Vanilla, BN folded, biases counted: weights 11,689,512 - 9,600 BN affine values.
    assert_eq!(v["total"]["fp_params"], 11_689_512u64 - 9_600);
    assert_eq!(v["layers"].as_array().unwrap().len(), 0);
}

#[test]
fn cost_per_layer_csv_sums_to_total() {
    let csv = bbed_ok(&[
        "cost",
        "--model",
        "resnet20",
        "--variant",
        "abc",
        "--m",
        "3",
        "--n",
        "2",
        "--per-layer",
        "--format",
        "csv",
    ]);
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let col = lines[0].iter().position(|h| *h == "binary_ops").unwrap();
    let body = &lines[1..];
    let (total, layers) = body.split_last().unwrap();
    assert_eq!(total[0], "TOTAL");
    let sum: u64 = layers.iter().map(|l| l[col].parse::<u64>().unwrap()).sum();
    assert_eq!(sum, total[col].parse::<u64>().unwrap());
    // 6 binary ops per XNOR-popcount MAC of the (40,551,040 - 443,008) binary MACs.
    assert_eq!(sum, 6 * (40_551_040 - 443_008));
}

#[test]
fn cost_of_the_example_custom_network() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/custom_net.toml");
    let v: serde_json::Value = serde_json::from_str(&bbed_ok(&[
        "cost",
        "--model",
        path,
        "--format",
        "json",
        "--per-layer",
    ]))
    .unwrap();
    // By hand: conv1 1*16*9*28*28 = 112,896; conv2 16*32*9*14*14 = 903,168;
    // conv3 32*32*9*14*14 = 1,806,336; fc 32*7*7*10 = 15,680.
    assert_eq!(
        v["total"]["fp_macs"],
        112_896u64 + 903_168 + 1_806_336 + 15_680
    );
    assert_eq!(v["layers"].as_array().unwrap().len(), 12);
}

#[test]
fn input_override_runs_resnet20_on_mnist_shape() {
    let v: serde_json::Value = serde_json::from_str(&bbed_ok(&[
        "cost", "--model", "resnet20", "--input", "1,28,28", "--format", "json",
    ]))
    .unwrap();
    // conv1 16*1*9*28*28 + stage1 6 convs 16*16*9*28*28 + stage2 32*16*9*14*14 + 5*32*32*9*14*14
    // + stage3 64*32*9*7*7 + 5*64*64*9*7*7 + linear 640.
    let expect: u64 = 16 * 9 * 784
        + 6 * 16 * 16 * 9 * 784
        + 32 * 16 * 9 * 196
        + 5 * 32 * 32 * 9 * 196
        + 64 * 32 * 9 * 49
        + 5 * 64 * 64 * 9 * 49
        + 640;
    assert_eq!(v["total"]["fp_macs"], expect);
}
