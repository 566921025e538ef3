//! `bbed simulate`: JSON shape and internal consistency, cycle totals against hand-derived
//! formulas from published MAC counts, functional checks, errors.

use std::process::Command;

use serde_json::Value;

fn bbed(args: &[&str]) -> (i32, String, String) {
    bbed_env(args, &[])
}

fn bbed_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bbed"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run bbed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json(args: &[&str]) -> Value {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

fn user_error(args: &[&str], needles: &[&str]) {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?}: stdout {out}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
}

#[test]
fn json_keys_present_and_consistent() {
    for (model, variant, hw) in [
        ("resnet8", "xnor", "hw/zcu102.toml"),
        ("resnet8", "vanilla", "hw/zynq7020.toml"),
        ("resnet20", "abc", "hw/zu3eg.toml"),
    ] {
        let v = json(&[
            "simulate",
            "--model",
            model,
            "--variant",
            variant,
            "--hw",
            hw,
            "--format",
            "json",
        ]);
        for k in [
            "dsp_count",
            "clock_mhz",
            "ncc",
            "total_cycles",
            "ideal_cycles",
            "utilization",
            "latency_us",
            "frames_per_s",
            "layers",
        ] {
            assert!(v.get(k).is_some(), "{model} {variant}: missing {k}");
        }
        assert!(v.get("functional_match").is_none());
        let layers = v["layers"].as_array().unwrap();
        for l in layers {
            for k in [
                "name",
                "cycles",
                "utilization",
                "ideal_cycles",
                "latency_us",
            ] {
                assert!(l.get(k).is_some(), "layer missing {k}: {l}");
            }
            let u = l["utilization"].as_f64().unwrap();
            assert!(u > 0.0 && u <= 1.0, "{l}");
            assert!(l["ideal_cycles"].as_u64() <= l["cycles"].as_u64());
        }
        let total = v["total_cycles"].as_u64().unwrap();
        let sum: u64 = layers.iter().map(|l| l["cycles"].as_u64().unwrap()).sum();
        assert_eq!(sum, total);
        let clock = v["clock_mhz"].as_f64().unwrap();
        let lat = v["latency_us"].as_f64().unwrap();
        assert!(
            (lat - total as f64 / clock).abs() <= 1e-9 * lat,
            "{lat} vs {total}/{clock}"
        );
        let fps = v["frames_per_s"].as_f64().unwrap();
        assert!((fps * lat - 1e6).abs() < 1e-6);
        let u = v["utilization"].as_f64().unwrap();
        assert!(u > 0.0 && u <= 1.0);
    }
}

/// ResNet-(6n+2) has 6n+1 convs + 1 fc (He et al. 2016, Sec. 4.2): resnet8 -> 8 layers.
#[test]
fn resnet8_has_eight_simulated_layers() {
    let v = json(&["simulate", "--model", "resnet8", "--format", "json"]);
    let names: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8);
    assert_eq!(names[0], "conv1");
    assert_eq!(names[7], "linear");
}

/// One `hw/paper.toml` slice (2 MAC lanes, 48 XNOR lanes, latency 4, popcount tree 3), vanilla
/// ResNet20: every output-channel count is even, so a slice retires exactly 2 MACs per compute
/// cycle and total cycles = MACs / 2 + 20 layers x 4 fill cycles, with the published option-A
/// count of 40,551,040 MACs (anchors) -> 20,275,520 + 80.
#[test]
fn paper_slice_vanilla_resnet20_is_half_the_macs() {
    let v = json(&[
        "simulate",
        "--model",
        "resnet20",
        "--hw",
        "hw/paper.toml",
        "--format",
        "json",
    ]);
    assert_eq!(v["total_cycles"].as_u64().unwrap(), 40_551_040 / 2 + 20 * 4);
    assert_eq!(v["ideal_cycles"].as_u64().unwrap(), 40_551_040 / 2);
    assert_eq!(v["utilization"].as_f64().unwrap(), 1.0);
    // NCC counts a fp MAC as one unit (Table 1: ResNet20 NCC "41").
    assert!((v["ncc"].as_f64().unwrap() - 40.55104).abs() < 1e-9);
}

/// ResNet20-XNOR on one paper slice, derived by hand per stage (one binary output per cycle
/// and tap-word: out_c x pixels x 9 taps x ceil(in_c / 48) words):
/// - conv1 (fp): 16 x 3 x 9 x 1024 MACs / 2 lanes = 221,184; fc (fp): 5 pairs x 64 = 320
/// - stage 1: 6 convs x 16 x 1024 x 9 x 1 = 884,736
/// - stage 2: 6 convs x 32 x 256 x 9 x 1 = 442,368
/// - stage 3: layer3.0.conv1 (in 32: 1 word) 64 x 64 x 9 = 36,864, five convs with in_c 64
///   (2 words, 16 of 96 lanes idle) 5 x 73,728 = 368,640
/// - fill: 2 fp layers x 4 + 18 binary layers x (4 + 3) = 134
#[test]
fn paper_slice_xnor_resnet20_matches_hand_count() {
    let v = json(&[
        "simulate",
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--hw",
        "hw/paper.toml",
        "--format",
        "json",
    ]);
    let expected = 221_184 + 320 + 884_736 + 442_368 + 36_864 + 368_640 + 134;
    assert_eq!(v["total_cycles"].as_u64().unwrap(), expected);
    // Table 1 prints NCC 1.3 for ResNet20-XNOR.
    assert!((v["ncc"].as_f64().unwrap() - 1.3).abs() < 0.05);
}

/// Kernel/weight pruning runs the dense schedule: same cycles as vanilla, layers listed.
#[test]
fn sparse_variants_use_dense_schedule() {
    let a = json(&["simulate", "--model", "resnet8", "--format", "json"]);
    let b = json(&[
        "simulate",
        "--model",
        "resnet8",
        "--variant",
        "weight",
        "--rate",
        "0.7",
        "--format",
        "json",
    ]);
    assert_eq!(a["total_cycles"], b["total_cycles"]);
    assert_eq!(
        b["dense_schedule_sparse_layers"].as_array().unwrap().len(),
        6
    );
    // Filter pruning shrinks the network, so it takes fewer cycles.
    let c = json(&[
        "simulate",
        "--model",
        "resnet8",
        "--variant",
        "filter",
        "--format",
        "json",
    ]);
    assert!(c["total_cycles"].as_u64() < a["total_cycles"].as_u64());
}

fn functional(args: &[&str]) -> Value {
    let mut full = vec!["simulate", "--functional", "--format", "json"];
    full.extend_from_slice(args);
    let v = json(&full);
    assert_eq!(v["functional_match"], Value::Bool(true), "{args:?}: {v}");
    let f = &v["functional"];
    let layers = f["layers"].as_array().unwrap();
    assert_eq!(layers.len(), v["layers"].as_array().unwrap().len());
    for l in layers {
        assert!(l["compared"].as_u64().unwrap() > 0, "{l}");
        assert_eq!(l["mismatches"].as_u64().unwrap(), 0, "{l}");
    }
    v
}

#[test]
fn functional_resnet8_xnor() {
    let v = functional(&["--model", "resnet8", "--variant", "xnor", "--images", "2"]);
    // conv1 is full precision: its error is real (quantisation) but within the bound.
    let conv1 = &v["functional"]["layers"][0];
    assert_eq!(conv1["criterion"], "bound");
    assert!(conv1["max_abs_err"].as_f64().unwrap() > 0.0);
    assert!(conv1["max_err_over_bound"].as_f64().unwrap() <= 1.0);
    // A binary layer: (dots + scaled outputs) per image = 2 x out_c x pixels, 2 images.
    let l = &v["functional"]["layers"][1];
    assert_eq!(l["criterion"], "exact");
    assert_eq!(l["compared"].as_u64().unwrap(), 2 * 2 * 16 * 32 * 32);
}

#[test]
fn functional_resnet20_xnor_on_physical_int8_lanes() {
    functional(&[
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--hw",
        "hw/zcu102.toml",
        "--images",
        "1",
    ]);
}

#[test]
fn functional_resnet8_abc_3x3() {
    let v = functional(&[
        "--model",
        "resnet8",
        "--variant",
        "abc",
        "--m",
        "3",
        "--n",
        "3",
        "--images",
        "2",
    ]);
    // 9 base pairs of dots + 1 scaled output per position.
    let l = &v["functional"]["layers"][1];
    assert_eq!(l["compared"].as_u64().unwrap(), 2 * 10 * 16 * 32 * 32);
}

/// Same seed -> same report, whatever the thread count; another seed -> other data (and still a
/// match).
#[test]
fn functional_is_deterministic_across_threads() {
    let args = [
        "simulate",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--functional",
        "--seed",
        "7",
        "--format",
        "json",
    ];
    let (c1, a, e1) = bbed_env(&args, &[("RAYON_NUM_THREADS", "1")]);
    let (c2, b, _) = bbed_env(&args, &[("RAYON_NUM_THREADS", "2")]);
    assert_eq!((c1, c2), (0, 0));
    // stderr is a pipe here, so the progress bar stays hidden.
    assert!(e1.is_empty(), "{e1}");
    assert_eq!(a, b);
    let mut other = args.to_vec();
    other[7] = "8";
    let (_, c, _) = bbed(&other);
    let (va, vc): (Value, Value) = (
        serde_json::from_str(&a).unwrap(),
        serde_json::from_str(&c).unwrap(),
    );
    assert_ne!(
        va["functional"]["layers"][0]["max_abs_err"],
        vc["functional"]["layers"][0]["max_abs_err"]
    );
    assert_eq!(vc["functional_match"], Value::Bool(true));
}

#[test]
fn text_formats_have_totals() {
    let (code, out, _) = bbed(&[
        "simulate",
        "--model",
        "resnet8",
        "--variant",
        "xnor",
        "--per-layer",
    ]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("layer1.0.conv1")));
    assert!(out.lines().last().unwrap().starts_with("TOTAL"));
    let (_, csv, _) = bbed(&["simulate", "--model", "resnet8", "--format", "csv"]);
    assert!(csv.starts_with("layer,precision,cycles,ideal_cycles,utilization"));
    assert_eq!(csv.lines().count(), 2);
    let (_, md, _) = bbed(&[
        "simulate",
        "--model",
        "resnet8",
        "--format",
        "md",
        "--per-layer",
    ]);
    assert_eq!(md.lines().count(), 2 + 8 + 1);
}

#[test]
fn help_explains_units() {
    let (code, out, _) = bbed(&["simulate", "--help"]);
    assert_eq!(code, 0);
    for n in ["cycles", "MHz", "us", "frames/s", "0-1", "utilization"] {
        assert!(out.contains(n), "simulate --help lacks {n}");
    }
    let (code, out, _) = bbed(&["vectors", "--help"]);
    assert_eq!(code, 0);
    for n in ["$readmemh", "+1 -> 0", "--force", "--layer"] {
        assert!(out.contains(n), "vectors --help lacks {n}");
    }
}

fn bad_hw(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    let s = p.display().to_string();
    (dir, s)
}

#[test]
fn bad_hw_file_names_the_field() {
    let good =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml")).unwrap();
    let (_d, zero) = bad_hw(&good.replace("dsp_count = 2520", "dsp_count = 0"));
    user_error(
        &["simulate", "--model", "resnet8", "--hw", &zero],
        &["device.dsp_count", "bad.toml"],
    );
    let (_d2, missing) = bad_hw(&good.replace("clock_mhz = 300.0", ""));
    user_error(
        &["simulate", "--model", "resnet8", "--hw", &missing],
        &["clock_mhz", "bad.toml"],
    );
    let (_d3, wide) = bad_hw(&good.replace("width = 8", "width = 16"));
    user_error(
        &["simulate", "--model", "resnet8", "--hw", &wide],
        &["slice.mac", "bad.toml"],
    );
    user_error(
        &["simulate", "--model", "resnet8", "--hw", "no/such/hw.toml"],
        &["no/such/hw.toml"],
    );
}

#[test]
fn bad_options_are_user_errors() {
    user_error(
        &[
            "simulate",
            "--model",
            "resnet8",
            "--functional",
            "--images",
            "0",
        ],
        &["--images"],
    );
    // --images without --functional is a usage error (clap: exit 2).
    let (code, _, err) = bbed(&["simulate", "--model", "resnet8", "--images", "2"]);
    assert_eq!(code, 2, "{err}");
    user_error(
        &["simulate", "--model", "resnet8", "--variant", "ternary"],
        &["--variant", "ternary"],
    );
}

/// Done-when of issue 16: without --hw, `simulate` reports the physical ZCU102 part with
/// resources in total and per layer, the capacity, `fits` and the binding resource. The array's
/// LUTs are the per-slice logic times its 2,520 slices, and every layer's share of it is at
/// most the total.
#[test]
fn default_is_physical_zcu102_with_resources() {
    let v = json(&[
        "simulate",
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--format",
        "json",
    ]);
    assert_eq!(v["physical"], Value::Bool(true));
    assert_eq!(v["mode"], "sequential");
    assert!(
        v["device"].as_str().unwrap().contains("xczu9eg"),
        "{}",
        v["device"]
    );
    assert_eq!(v["source"], "hw/zcu102.toml");
    let keys = ["dsp", "lut", "ff", "bram18", "uram"];
    let cap = &v["capacity"];
    assert_eq!(cap["dsp"], 2520);
    assert_eq!(cap["lut"], 274_080);
    let total = &v["resources"];
    for k in keys {
        let t = total[k].as_u64().unwrap();
        for l in v["layers"].as_array().unwrap() {
            assert!(l["resources"][k].as_u64().unwrap() <= t, "{k}: {l}");
        }
    }
    assert_eq!(total["dsp"], 2520);
    assert_eq!(total["lut"].as_u64().unwrap() % 2520, 0);
    let fits = keys
        .iter()
        .all(|k| total[k].as_u64().unwrap() <= cap[k].as_u64().unwrap());
    assert_eq!(v["fits"], Value::Bool(fits));
    assert!(keys.contains(&v["binding"].as_str().unwrap()));
    assert!(v["ddr"]["bytes_per_frame"].as_u64().unwrap() > 0);
    // The paper slice is an explicit choice and says it is not physical.
    let p = json(&[
        "simulate", "--model", "resnet8", "--hw", "paper", "--format", "json",
    ]);
    assert_eq!(p["physical"], Value::Bool(false));
    assert_eq!(p["capacity"]["lut"], Value::Null);
    let (_, text, _) = bbed(&["simulate", "--model", "resnet8", "--hw", "paper"]);
    assert!(text.contains("abstract slice (not physical)"), "{text}");
    let (_, text, _) = bbed(&["simulate", "--model", "resnet8"]);
    assert!(text.contains("physical slice"), "{text}");
}

/// Dataflow mode: the II is the slowest layer's, every fold is legal and its cycles are FINN's
/// (MH/PE) x (MW/SIMD) x output pixels; frames/s = clock / II; the design fits the part (the
/// default budget). A target no folding reaches (conv1 needs >= 9,216 cycles) is reported, and
/// the final linear layer then uses more than 5 DSPs.
#[test]
fn dataflow_mode_json() {
    let v = json(&[
        "simulate",
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--mode",
        "dataflow",
        "--format",
        "json",
    ]);
    assert_eq!(v["mode"], "dataflow");
    assert_eq!(v["physical"], Value::Bool(true));
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 20);
    let mut max = (0, "");
    for l in layers {
        let (mh, mw, pe, simd) = (
            l["mh"].as_u64().unwrap(),
            l["mw"].as_u64().unwrap(),
            l["pe"].as_u64().unwrap(),
            l["simd"].as_u64().unwrap(),
        );
        assert_eq!(mh % pe, 0, "{l}");
        assert_eq!(mw % simd, 0, "{l}");
        let c = l["cycles"].as_u64().unwrap();
        assert_eq!(
            c,
            (mh / pe) * (mw / simd) * l["output_pixels"].as_u64().unwrap()
        );
        assert_eq!(c, l["finn"]["cycles"].as_u64().unwrap());
        if c > max.0 {
            max = (c, l["name"].as_str().unwrap());
        }
    }
    assert_eq!(v["ii_cycles"].as_u64().unwrap(), max.0);
    let fps = v["frames_per_s"].as_f64().unwrap();
    assert!((fps - 300e6 / max.0 as f64).abs() < 1e-6 * fps);
    assert_eq!(v["fits"], Value::Bool(true));
    assert_eq!(v["target_met"], Value::Bool(true));
    let fast = json(&[
        "simulate",
        "--model",
        "resnet20",
        "--variant",
        "xnor",
        "--mode",
        "dataflow",
        "--target-fps",
        "1e8",
        "--format",
        "json",
    ]);
    assert_eq!(fast["target_met"], Value::Bool(false));
    assert_eq!(fast["bottleneck"], "conv1");
    let fc = fast["layers"].as_array().unwrap().last().unwrap();
    assert_eq!(fc["name"], "linear");
    assert!(fc["resources"]["dsp"].as_u64().unwrap() > 5, "{fc}");
}

#[test]
fn hardware_errors_name_file_and_field() {
    let good =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml")).unwrap();
    let (_d, lat) = bad_hw(&good.replace("latency = 4 ", "latency = 4294967295 "));
    user_error(
        &["simulate", "--model", "resnet8", "--hw", &lat],
        &["bad.toml", "slice.latency"],
    );
    let (_d2, fam) = bad_hw(&good.replace("a_width = 27", "a_width = 28"));
    user_error(
        &["simulate", "--model", "resnet8", "--hw", &fam],
        &["bad.toml", "slice.a_width", "DSP48E2"],
    );
    user_error(
        &["simulate", "--model", "resnet8", "--target-fps", "100"],
        &["--target-fps", "dataflow"],
    );
    user_error(
        &[
            "simulate",
            "--model",
            "resnet8",
            "--mode",
            "dataflow",
            "--target-fps",
            "0",
        ],
        &["--target-fps"],
    );
}
