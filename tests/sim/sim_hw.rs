//! Shipped hardware files load with their documented facts; bad files give errors naming the
//! file and the field.

use std::path::Path;

use breakingbed::hw::{resolve, Device, NccParams, Packing, BUILTIN, DEFAULT_PART};
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

/// Checked arithmetic: a latency of 2^32 - 1 used to wrap the XNOR fill (slice + popcount
/// latency) to 2; now both latencies are bounded and the error names the field.
#[test]
fn huge_latencies_are_field_errors() {
    let (ctx, msg) = input_err(&GOOD.replace("latency = 4", "latency = 4294967295"));
    assert_eq!(ctx, "bad.toml: slice.latency", "{msg}");
    assert!(msg.contains("4294967295"), "{msg}");
    let (ctx, _) = input_err(&GOOD.replace("latency = 3", "latency = 4294967295"));
    assert_eq!(ctx, "bad.toml: popcount.latency");
    let (ctx, _) = input_err(&GOOD.replace("dsp_count = 10", "dsp_count = 4294967295"));
    assert_eq!(ctx, "bad.toml: device.dsp_count");
}

/// A physical slice is checked against its family's datasheet (DSP48E1 25x18, DSP48E2 27x18,
/// 48-bit P, one multiplier); `abstract = true` lifts the check.
#[test]
fn physical_slices_respect_the_dsp_family() {
    let e1 = GOOD.replace("DSP48E2", "DSP48E1");
    let cases = [
        (
            GOOD.replace("a_width = 27", "a_width = 30"),
            "slice.a_width",
        ),
        (e1.clone(), "slice.a_width"),
        (
            GOOD.replace("b_width = 18", "b_width = 24"),
            "slice.b_width",
        ),
        (
            GOOD.replace("acc_width = 48", "acc_width = 96"),
            "slice.acc_width",
        ),
        (GOOD.replace("DSP48E2", "DSP58"), "slice.family"),
        (
            GOOD.replace("lanes = 1\n", "lanes = 2\n")
                .replace("width = 16\nguard_bits = 16", "width = 8\nguard_bits = 2")
                .replace("packing = \"shared_operand\"", "packing = \"independent\""),
            "slice.mac.packing",
        ),
    ];
    for (text, field) in &cases {
        let (ctx, msg) = input_err(text);
        assert_eq!(ctx, format!("bad.toml: {field}"), "{msg}");
    }
    // DSP48E1 with its own 25-bit A port loads.
    assert!(Device::from_toml_str(&e1.replace("a_width = 27", "a_width = 25"), "e1").is_ok());
    // The same out-of-datasheet slices load when declared abstract, and say so.
    for (text, _) in &cases {
        let t = text.replace("[slice]\n", "[slice]\nabstract = true\n");
        let d = Device::from_toml_str(&t, "abstract.toml").unwrap();
        assert!(!d.physical());
    }
    assert!(Device::from_toml_str(GOOD, "good.toml").unwrap().physical());
}

/// One schema: [ncc] sits beside the device; absent it is the paper's reference unit; a bad
/// lane count names the field; an old [ncc]-only file is refused by the hardware model with a
/// clear message.
#[test]
fn ncc_table_in_the_hardware_file() {
    let d = Device::from_toml_str(GOOD, "good.toml").unwrap();
    assert_eq!(d.ncc, NccParams::PAPER);
    assert_eq!((d.ncc.mac_lanes, d.ncc.xnor_lanes), (2, 48));
    let with =
        format!("{GOOD}[ncc]\nmac_lanes = 1\nxnor_lanes = 64\ndivide_macs_by_lanes = true\n");
    let d = Device::from_toml_str(&with, "good.toml").unwrap();
    assert_eq!((d.ncc.mac_lanes, d.ncc.xnor_lanes), (1, 64));
    assert!(d.ncc.divide_macs_by_lanes);
    let (ctx, _) = input_err(&with.replace("xnor_lanes = 64", "xnor_lanes = 0"));
    assert_eq!(ctx, "bad.toml: ncc.xnor_lanes");
    let (ctx, msg) =
        input_err("[ncc]\nmac_lanes = 2\nxnor_lanes = 48\ndivide_macs_by_lanes = false\n");
    assert_eq!(ctx, "bad.toml: device");
    assert!(msg.contains("[ncc]") && msg.contains("cost"), "{msg}");
}

/// Capacities from the vendor tables (DS891 / product selection guide for Zynq UltraScale+,
/// DS190 for Zynq-7000): LUTs, FFs, RAMB18 (= 2 x RAMB36), no UltraRAM on these three parts.
#[test]
fn shipped_capacities() {
    let cases = [
        ("zcu102.toml", 274_080, 548_160, 1_824),
        ("zu3eg.toml", 70_560, 141_120, 432),
        ("zynq7020.toml", 53_200, 106_400, 280),
    ];
    for (file, lut, ff, bram18) in cases {
        let d = Device::load(hw(file)).unwrap();
        assert!(d.physical(), "{file}");
        assert_eq!(d.device.lut, Some(lut), "{file}");
        assert_eq!(d.device.ff, Some(ff), "{file}");
        assert_eq!(d.device.bram18, Some(bram18), "{file}");
        assert_eq!(d.device.uram, Some(0), "{file}");
        assert!(d.device.ddr_gbytes_per_s.unwrap() > 0.0, "{file}");
        assert_eq!(d.ncc, NccParams::PAPER, "{file}");
    }
    let p = Device::load(hw("paper.toml")).unwrap();
    assert!(!p.physical());
    assert_eq!(p.device.lut, None);
}

/// Built-in parts by name; the default part is ZCU102's XCZU9EG (physical); `reference` is the
/// paper slice under its old name.
#[test]
fn builtin_parts_and_default() {
    let d = resolve(None).unwrap();
    assert_eq!(DEFAULT_PART, "zcu102");
    assert_eq!(d.device.name, "xczu9eg (ZCU102)");
    assert!(d.physical());
    assert_eq!(d.slice.family, "DSP48E2");
    let paper = resolve(Some(Path::new("paper"))).unwrap();
    let file = Device::load(hw("paper.toml")).unwrap();
    assert_eq!(
        (&paper.device, &paper.slice, &paper.popcount, &paper.ncc),
        (&file.device, &file.slice, &file.popcount, &file.ncc)
    );
    let reference = resolve(Some(Path::new("reference"))).unwrap();
    assert_eq!(
        (&reference.device, &reference.slice, &reference.ncc),
        (&paper.device, &paper.slice, &paper.ncc)
    );
    for (name, _, _) in BUILTIN {
        resolve(Some(Path::new(name))).unwrap();
    }
    // Anything else is a path.
    match resolve(Some(Path::new("no/such/part"))) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("part")),
        other => panic!("{other:?}"),
    }
}
