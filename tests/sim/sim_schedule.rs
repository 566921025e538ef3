//! Cycle counts: closed form vs the FINN-style analytic formula, vs the cycle-by-cycle stepper,
//! memory stalls, and the paper's Table 1 NCC from the reports.

use breakingbed::hw::Device;
use breakingbed::sim::{
    grouped_cycles, simulate_layers, step_cycles, LayerKind, LayerSpec, Mapping, Precision,
};
use proptest::prelude::*;

fn device(dsps: u32, mac_lanes: u32, xnor_lanes: u32, mem: Option<u32>) -> Device {
    let mem = mem
        .map(|b| format!("mem_bytes_per_cycle = {b}"))
        .unwrap_or_default();
    let text = format!(
        r#"
[device]
name = "t"
dsp_count = {dsps}
clock_mhz = 250.0
{mem}
[slice]
family = "test"
abstract = true
a_width = 27
b_width = 18
acc_width = 96
latency = 4
[slice.mac]
lanes = {mac_lanes}
width = 8
guard_bits = 8
packing = "independent"
[slice.xnor]
lanes = {xnor_lanes}
[popcount]
inputs = 64
latency = 3
"#
    );
    Device::from_toml_str(&text, "t.toml").unwrap()
}

fn conv(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    hw: usize,
    p: Precision,
) -> LayerSpec {
    LayerSpec {
        name: format!("conv{in_c}x{out_c}"),
        kind: LayerKind::Conv {
            in_c,
            out_c,
            kernel,
            stride,
            padding: kernel / 2,
            in_h: hw,
            in_w: hw,
        },
        precision: p,
    }
}

/// FINN's expected cycles (anchors: (MH/PE) * (MW/SIMD) * vectors) for a matrix of
/// MH = out_c rows, MW = in_c*k*k columns, applied to `vectors` pixels on `rows` parallel pixel rows.
fn finn(mh: u64, mw: u64, pe: u64, simd: u64, vectors: u64, rows: u64) -> u64 {
    mh.div_ceil(pe) * mw.div_ceil(simd) * vectors.div_ceil(rows)
}

#[test]
fn mac_layer_matches_finn_formula_when_even() {
    // 4 slices x 2 lanes = PE 8, SIMD 1; 16 out channels, 8x3x3 inputs, 16x16 pixels.
    let dev = device(4, 2, 48, None);
    let spec = conv(8, 16, 3, 1, 16, Precision::Full);
    let m = Mapping::new(&spec, &dev).unwrap();
    let c = grouped_cycles(&m, None);
    assert_eq!(c.compute_cycles, finn(16, 72, 8, 1, 256, 1));
    assert_eq!(c.cycles, c.compute_cycles + 4);
    let r = breakingbed::sim::simulate_layer(&spec, &dev).unwrap();
    assert_eq!(r.utilization, 1.0);
    assert_eq!(r.ideal_cycles, r.compute_cycles);
}

#[test]
fn xnor_layer_matches_finn_formula_when_even() {
    // PE = 4 slices (one output channel each), SIMD = 48 lanes, 96 input channels.
    let dev = device(4, 2, 48, None);
    let spec = conv(96, 8, 3, 1, 8, Precision::Binary { m: 1, n: 1 });
    let m = Mapping::new(&spec, &dev).unwrap();
    let c = grouped_cycles(&m, None);
    assert_eq!(c.compute_cycles, finn(8, 96 * 9, 4, 48, 64, 1));
    assert_eq!(c.cycles, c.compute_cycles + 4 + 3);
    let r = breakingbed::sim::simulate_layer(&spec, &dev).unwrap();
    assert_eq!(r.utilization, 1.0);
    // ABC 3x3 bases: nine times the work and the cycles.
    let abc = conv(96, 8, 3, 1, 8, Precision::Binary { m: 3, n: 3 });
    let ra = breakingbed::sim::simulate_layer(&abc, &dev).unwrap();
    assert_eq!(ra.compute_cycles, 9 * r.compute_cycles);
    assert_eq!(ra.utilization, 1.0);
}

#[test]
fn utilization_drops_as_documented() {
    let dev = device(4, 2, 48, None);
    // 16 input channels fill 16 of 48 XNOR lanes: utilization 1/3.
    let r = breakingbed::sim::simulate_layer(
        &conv(16, 8, 3, 1, 8, Precision::Binary { m: 1, n: 1 }),
        &dev,
    )
    .unwrap();
    assert!((r.utilization - 16.0 / 48.0).abs() < 1e-12);
    // 64 channels: two words per tap, 64 of 96 lanes busy.
    let r = breakingbed::sim::simulate_layer(
        &conv(64, 8, 3, 1, 8, Precision::Binary { m: 1, n: 1 }),
        &dev,
    )
    .unwrap();
    assert!((r.utilization - 64.0 / 96.0).abs() < 1e-12);
    // 15 output channels on 2-lane slices: groups of 2, last lane of the last group idle
    // (8 groups on 4 columns -> 2 tiles): 15 / 16.
    let r = breakingbed::sim::simulate_layer(&conv(8, 15, 3, 1, 8, Precision::Full), &dev).unwrap();
    assert!((r.utilization - 15.0 / 16.0).abs() < 1e-12);
    // Linear 64 -> 10 on 2520 slices: only 5 two-lane groups have work.
    let big = device(2520, 2, 48, None);
    let lin = LayerSpec {
        name: "fc".into(),
        kind: LayerKind::Linear {
            in_f: 64,
            out_f: 10,
        },
        precision: Precision::Full,
    };
    let r = breakingbed::sim::simulate_layer(&lin, &big).unwrap();
    assert!((r.utilization - 5.0 / 2520.0).abs() < 1e-12);
    assert_eq!(r.compute_cycles, 64);
}

#[test]
fn memory_stalls_follow_bandwidth() {
    // 4 columns x 2 lanes x 8 bits of weights + 1 row x 8 bits activation = 72 bits = 9 bytes
    // per issue; 3 bytes per cycle -> each issue takes 3 cycles.
    let dev = device(4, 2, 48, Some(3));
    let spec = conv(8, 16, 3, 1, 4, Precision::Full);
    let m = Mapping::new(&spec, &dev).unwrap();
    assert_eq!(m.demand_bits, 72);
    let c = grouped_cycles(&m, Some(3));
    assert_eq!(c.stall_cycles, 2 * c.compute_cycles);
    assert_eq!(step_cycles(&m, Some(3)), c);
    // Enough bandwidth: no stalls.
    assert_eq!(grouped_cycles(&m, Some(9)).stall_cycles, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Evenly dividing shapes: cycles = FINN formula + fill, utilization exactly 1.
    #[test]
    fn even_shapes_give_formula_and_full_utilization(
        cols_pow in 0u32..3, rows_pow in 0u32..3, lanes in 1u32..=2, t in 1usize..3,
        in_words in 1usize..3, k in prop::sample::select(vec![1usize, 3]), binary in any::<bool>(),
    ) {
        let cols = 1usize << cols_pow;
        let rows = 1usize << rows_pow;
        let d = cols * rows;
        let hw = 8usize; // 64 pixels, divisible by rows
        let dev = device(d as u32, lanes, 16, None);
        let (prec, outs, simd, in_c) = if binary {
            (Precision::Binary { m: 1, n: 1 }, 1usize, 16u64, 16 * in_words)
        } else {
            (Precision::Full, lanes as usize, 1u64, 3 * in_words)
        };
        // Either one group per column and `rows` pixel rows, or `t` groups per column on a
        // single row: both fill the grid exactly.
        let t = if rows > 1 { 1 } else { t };
        let out_c = cols * outs * t;
        let spec = conv(in_c, out_c, k, 1, hw, prec);
        let m = Mapping::new(&spec, &dev).unwrap();
        prop_assert_eq!((m.cols, m.rows), (cols, rows));
        let c = grouped_cycles(&m, None);
        let pe = (cols * outs) as u64;
        prop_assert_eq!(
            c.compute_cycles,
            finn(out_c as u64, (in_c * k * k) as u64, pe, simd, 64, rows as u64)
        );
        prop_assert_eq!(c.cycles, c.compute_cycles + m.latency);
        let r = breakingbed::sim::simulate_layer(&spec, &dev).unwrap();
        prop_assert_eq!(r.utilization, 1.0);
        prop_assert_eq!(r.ideal_cycles, r.compute_cycles);
    }

    /// On random small layers and bandwidths, grouped counting equals the cycle-by-cycle count,
    /// and the busy lane-slots the stepper tallies slice by slice equal the layer's work.
    #[test]
    fn grouped_equals_cycle_by_cycle(
        d in 1u32..12, mac_lanes in 1u32..=3, xnor_lanes in prop::sample::select(vec![8u32, 16, 48]),
        in_c in 1usize..40, out_c in 1usize..20, k in prop::sample::select(vec![1usize, 3]),
        stride in 1usize..=2, hw in 3usize..7, binary in any::<bool>(), mn in 1usize..=2,
        mem in prop::option::of(1u32..40),
    ) {
        let dev = device(d, mac_lanes, xnor_lanes, mem);
        let prec = if binary { Precision::Binary { m: mn, n: 1 } } else { Precision::Full };
        let spec = conv(in_c, out_c, k, stride, hw, prec);
        let m = Mapping::new(&spec, &dev).unwrap();
        let grouped = grouped_cycles(&m, mem);
        let stepped = step_cycles(&m, mem);
        prop_assert_eq!(grouped, stepped);
        prop_assert_eq!(stepped.busy_lane_ops, m.work);
    }
}

/// ResNet20 (CIFAR-10, option A shortcuts) conv and linear layers.
fn resnet20(inner: Precision) -> Vec<LayerSpec> {
    let mut v = vec![conv(3, 16, 3, 1, 32, Precision::Full)];
    let mut c = 16;
    let mut hw = 32;
    for (stage, width) in [16usize, 32, 64].into_iter().enumerate() {
        for block in 0..3 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            v.push(conv(c, width, 3, stride, hw, inner));
            hw /= stride;
            v.push(conv(width, width, 3, 1, hw, inner));
            c = width;
        }
    }
    v.push(LayerSpec {
        name: "fc".into(),
        kind: LayerKind::Linear {
            in_f: 64,
            out_f: 10,
        },
        precision: Precision::Full,
    });
    v
}

#[test]
fn resnet20_ncc_reproduces_table1() {
    let paper = Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/paper.toml")).unwrap();
    let full = simulate_layers(&resnet20(Precision::Full), &paper).unwrap();
    // anchors.md: ResNet20 option A = 40,551,040 MACs.
    let macs: u64 = full.layers.iter().map(|l| l.work).sum();
    assert_eq!(macs, 40_551_040);
    // Table 1 (NCC, 10^6): ResNet20 41, XNOR 1.3, ABC(3x3) 8.0, ABC(5x5) 21.3.
    let cases = [
        (Precision::Full, 41.0, 0.5),
        (Precision::Binary { m: 1, n: 1 }, 1.3, 0.05),
        (Precision::Binary { m: 3, n: 3 }, 8.0, 0.05),
        (Precision::Binary { m: 5, n: 5 }, 21.3, 0.05),
    ];
    for (p, table, tol) in cases {
        let r = simulate_layers(&resnet20(p), &paper).unwrap();
        assert!(
            (r.ncc - table).abs() <= tol,
            "{p:?}: ncc {} vs Table 1 {table}",
            r.ncc
        );
        assert_eq!(
            r.total_cycles,
            r.layers.iter().map(|l| l.cycles).sum::<u64>()
        );
        assert!((r.latency_us - r.total_cycles as f64 / 100.0).abs() < 1e-9);
        assert!((r.frames_per_s * r.latency_us - 1e6).abs() < 1e-3);
    }
}

#[test]
fn report_serialises_with_required_fields() {
    let dev = Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml")).unwrap();
    let r = simulate_layers(&resnet20(Precision::Binary { m: 1, n: 1 }), &dev).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "dsp_count",
        "clock_mhz",
        "ncc",
        "total_cycles",
        "ideal_cycles",
        "utilization",
        "latency_us",
        "layers",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["name", "cycles", "utilization"] {
        assert!(v["layers"][0].get(key).is_some(), "layer missing {key}");
    }
    assert_eq!(v["dsp_count"], 2520);
}

#[test]
fn bad_layer_is_an_input_error() {
    let dev = device(4, 2, 48, None);
    let spec = conv(0, 8, 3, 1, 8, Precision::Full);
    let e = Mapping::new(&spec, &dev).unwrap_err().to_string();
    assert!(e.contains("in_c"), "{e}");
    let spec = conv(8, 8, 3, 1, 8, Precision::Binary { m: 0, n: 1 });
    let e = Mapping::new(&spec, &dev).unwrap_err().to_string();
    assert!(e.contains("precision.m"), "{e}");
}
