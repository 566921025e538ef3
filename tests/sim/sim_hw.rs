//! Shipped hardware files load with their documented facts; bad files give errors naming the
//! file and the field.

use breakingbed::hw::{Device, Packing};
use breakingbed::Error;

fn hw(name: &str) -> String {
    format!("{}/hw/{name}", env!("CARGO_MANIFEST_DIR"))
}

const GOOD: &str = r#"
[device]
name = "t"
dsp_count = 10
clock_mhz = 200.0
[slice]
family = "DSP48E2"
a_width = 27
b_width = 18
acc_width = 48
latency = 4
[slice.mac]
lanes = 1
width = 16
guard_bits = 16
packing = "shared_operand"
[slice.xnor]
lanes = 48
[popcount]
inputs = 48
latency = 3
"#;

fn input_err(text: &str) -> (String, String) {
    match Device::from_toml_str(text, "bad.toml") {
        Err(Error::Input { context, message }) => (context, message),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn shipped_files_load_with_datasheet_facts() {
    // DSP counts: Xilinx product tables (XCZU9EG 2520, XCZU3EG 360, XC7Z020 220 DSP slices).
    let cases = [
        ("zcu102.toml", 2520, "DSP48E2", 27),
        ("zu3eg.toml", 360, "DSP48E2", 27),
        ("zynq7020.toml", 220, "DSP48E1", 25),
    ];
    for (file, dsps, family, a) in cases {
        let d = Device::load(hw(file)).unwrap();
        assert_eq!(d.device.dsp_count, dsps, "{file}");
        assert_eq!(d.slice.family, family, "{file}");
        assert_eq!(d.slice.a_width, a, "{file}");
        assert_eq!(d.slice.b_width, 18, "{file}");
        assert_eq!(d.slice.acc_width, 48, "{file}");
        assert_eq!(d.slice.xnor.lanes, 48, "{file}");
        assert_eq!(d.slice.mac.packing, Packing::SharedOperand, "{file}");
    }
    // The paper's abstraction: two 16-bit MACs or 48 XNORs per DSP48 (Sec. 4.1).
    let p = Device::load(hw("paper.toml")).unwrap();
    assert_eq!((p.slice.mac.lanes, p.slice.mac.width), (2, 16));
    assert_eq!(p.slice.xnor.lanes, 48);
    assert_eq!(p.slice.mac.packing, Packing::Independent);
}

#[test]
fn good_text_loads_and_defaults_spacing() {
    let d = Device::from_toml_str(GOOD, "good.toml").unwrap();
    assert_eq!(d.mac_spacing(), 48);
    assert_eq!(d.max_accumulations(), 1 << 16);
    assert_eq!(d.xnor_latency(), 7);
    assert_eq!(d.device.mem_bytes_per_cycle, None);
}

#[test]
fn missing_field_is_named() {
    let (ctx, msg) = input_err(&GOOD.replace("dsp_count = 10\n", ""));
    assert_eq!(ctx, "bad.toml");
    assert!(msg.contains("dsp_count"), "{msg}");
    let (_, msg) = input_err(&GOOD.replace("guard_bits = 16\n", ""));
    assert!(msg.contains("guard_bits"), "{msg}");
}

#[test]
fn unknown_field_is_named() {
    let (_, msg) = input_err(&GOOD.replace("clock_mhz", "clock_mzh"));
    assert!(msg.contains("clock_mzh"), "{msg}");
}

#[test]
fn zero_dsps_rejected() {
    let (ctx, _) = input_err(&GOOD.replace("dsp_count = 10", "dsp_count = 0"));
    assert_eq!(ctx, "bad.toml: device.dsp_count");
}

#[test]
fn lanes_not_fitting_accumulator_rejected() {
    // 2 lanes x (2*16 + 8 guard bits) = 80 bits > 48.
    let text = GOOD
        .replace("lanes = 1\n", "lanes = 2\n")
        .replace("guard_bits = 16", "guard_bits = 8")
        .replace("packing = \"shared_operand\"", "packing = \"independent\"")
        .replace("width = 16\n", "width = 16\nspacing = 40\n");
    let (ctx, msg) = input_err(&text);
    assert_eq!(ctx, "bad.toml: slice.mac", "{msg}");
    assert!(msg.contains("80") || msg.contains("need"), "{msg}");
    // Default spacing 24 < 2*16 + 8: the spacing itself is too small.
    let text = GOOD
        .replace("lanes = 1\n", "lanes = 2\n")
        .replace("guard_bits = 16", "guard_bits = 8")
        .replace("packing = \"shared_operand\"", "packing = \"independent\"");
    let (ctx, _) = input_err(&text);
    assert_eq!(ctx, "bad.toml: slice.mac.spacing");
}

#[test]
fn other_bad_values_rejected() {
    let cases = [
        ("clock_mhz = 200.0", "clock_mhz = 0.0", "device.clock_mhz"),
        (
            "clock_mhz = 200.0",
            "clock_mhz = 200.0\nmem_bytes_per_cycle = 0",
            "device.mem_bytes_per_cycle",
        ),
        ("acc_width = 48", "acc_width = 200", "slice.acc_width"),
        ("latency = 4", "latency = 0", "slice.latency"),
        ("width = 16", "width = 1", "slice.mac.width"),
        ("lanes = 48", "lanes = 0", "slice.xnor.lanes"),
        ("inputs = 48", "inputs = 32", "popcount.inputs"),
        // 16-bit operand on an 18-bit B port is fine; 20 bits is not.
        (
            "width = 16\nguard_bits = 16",
            "width = 20\nguard_bits = 4",
            "slice.mac.width",
        ),
    ];
    for (from, to, field) in cases {
        let (ctx, msg) = input_err(&GOOD.replacen(from, to, 1));
        assert_eq!(ctx, format!("bad.toml: {field}"), "{to}: {msg}");
    }
    // Shared operand packing wider than the A port (2 x 16 bits 40 apart = 56 > 27).
    let text = GOOD
        .replace("lanes = 1\n", "lanes = 2\n")
        .replace("acc_width = 48", "acc_width = 96")
        .replace("guard_bits = 16", "guard_bits = 8")
        .replace("width = 16\n", "width = 16\nspacing = 40\n");
    let (ctx, _) = input_err(&text);
    assert_eq!(ctx, "bad.toml: slice.mac.packing");
}

#[test]
fn missing_file_is_io_error() {
    match Device::load(hw("nope.toml")) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("nope.toml")),
        other => panic!("{other:?}"),
    }
}
