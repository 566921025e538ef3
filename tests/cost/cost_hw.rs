//! One hardware schema: `cost` reads any hardware file (or a built-in name) and its [ncc]
//! table; every shipped file carries the paper's reference unit, so NCC does not depend on
//! which file is given. An old [ncc]-only file still loads.

use breakingbed::cost::NccParams;
use serde_json::Value;

use crate::common;

fn hw(name: &str) -> String {
    format!("{}/hw/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_shipped_file_gives_the_reference_unit() {
    let r = NccParams::reference();
    assert_eq!(
        (r.mac_lanes, r.xnor_lanes, r.divide_macs_by_lanes),
        (2, 48, false)
    );
    for f in [
        "paper.toml",
        "zcu102.toml",
        "zu3eg.toml",
        "zynq7020.toml",
        "reference.toml",
    ] {
        assert_eq!(
            NccParams::load(std::path::Path::new(&hw(f))).unwrap(),
            r,
            "{f}"
        );
    }
    let old = "[ncc]\nmac_lanes = 2\nxnor_lanes = 32\ndivide_macs_by_lanes = true\n";
    let p = NccParams::from_toml_str(old, "old.toml").unwrap();
    assert_eq!((p.xnor_lanes, p.divide_macs_by_lanes), (32, true));
    let bad = NccParams::from_toml_str("[other]\nx = 1\n", "x.toml").unwrap_err();
    assert!(bad.to_string().contains("x.toml"), "{bad}");
}

fn ncc(args: &[&str]) -> f64 {
    let mut full = vec![
        "cost",
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--format",
        "json",
    ];
    full.extend_from_slice(args);
    let (code, out, err) = common::bbed(&full);
    assert_eq!(code, 0, "{args:?}: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["total"]["ncc"].as_f64().unwrap()
}

/// `cost --hw` takes the files `simulate` takes (it used to refuse them for lack of [ncc]).
#[test]
fn cost_reads_simulate_hardware_files() {
    let base = ncc(&[]);
    assert!((base - 1.2786).abs() < 1e-3, "{base}");
    assert_eq!(ncc(&["--hw", &hw("zcu102.toml")]), base);
    assert_eq!(ncc(&["--hw", "zynq7020"]), base);
    assert_eq!(ncc(&["--hw", "paper"]), base);
}
