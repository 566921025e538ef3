//! Folding and dataflow: FINN's cycle formula against an MVAU loop run step by step, legal folds,
//! and the folding search on hand-computed cases.

use breakingbed::hw::Device;
use breakingbed::sim::fold::{divisors, Unit};
use breakingbed::sim::{dataflow, Fold, LayerKind, LayerSpec, Precision, Target};
use proptest::prelude::*;

fn zcu102() -> Device {
    Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml")).unwrap()
}

fn conv(in_c: usize, out_c: usize, k: usize, hw: usize, p: Precision) -> LayerSpec {
    LayerSpec {
        name: format!("conv{in_c}x{out_c}"),
        kind: LayerKind::Conv {
            in_c,
            out_c,
            kernel: k,
            stride: 1,
            padding: k / 2,
            in_h: hw,
            in_w: hw,
        },
        precision: p,
    }
}

fn linear(in_f: usize, out_f: usize) -> LayerSpec {
    LayerSpec {
        name: "fc".into(),
        kind: LayerKind::Linear { in_f, out_f },
        precision: Precision::Full,
    }
}

/// Runs an MVAU the way FINN's hardware does: per input vector, neuron folds (MH / PE) times
/// synapse folds (MW / SIMD), one cycle each, PE rows x SIMD columns of the weight matrix per
/// cycle. Returns the cycles and asserts every weight is used exactly once per vector.
fn mvau_steps(mh: u64, mw: u64, pe: u64, simd: u64, vectors: u64) -> u64 {
    let mut cycles = 0;
    for _ in 0..vectors {
        let mut used = vec![0u8; (mh * mw) as usize];
        for nf in 0..mh / pe {
            for sf in 0..mw / simd {
                cycles += 1;
                for p in 0..pe {
                    for s in 0..simd {
                        used[((nf * pe + p) * mw + sf * simd + s) as usize] += 1;
                    }
                }
            }
        }
        assert!(used.iter().all(|&u| u == 1));
    }
    cycles
}

proptest! {
    /// Unit::cycles is FINN's (MH/PE) x (MW/SIMD) x output pixels (x base pairs) and equals the
    /// step-by-step MVAU count for every legal fold.
    #[test]
    fn cycles_match_finn_formula_and_steps(
        in_c in 1usize..12, out_c in 1usize..12, k in prop::sample::select(vec![1usize, 3]),
        hw in 1usize..5, m in 1usize..3, n in 1usize..3, pick in any::<prop::sample::Index>(),
    ) {
        let p = Precision::Binary { m, n };
        let spec = conv(in_c, out_c, k, hw, p);
        let g = spec.geometry().unwrap();
        let u = Unit::new(&g, p);
        let cands = u.candidates();
        let f = cands[pick.index(cands.len())];
        let (mh, mw, px) = (out_c as u64, (in_c * k * k) as u64, g.pixels() as u64);
        prop_assert!(mh.is_multiple_of(f.pe) && (in_c as u64).is_multiple_of(f.simd));
        let want = (mh / f.pe) * (mw / f.simd) * px * (m * n) as u64;
        prop_assert_eq!(u.cycles(f), want);
        prop_assert_eq!(u.cycles(f), mvau_steps(mh, mw, f.pe, f.simd, px) * (m * n) as u64);
        prop_assert_eq!(u.finn(f, &zcu102()).exp_cycles() * (m * n) as u64, want);
    }

    /// The candidates are exactly the legal folds: PE | out_c, SIMD | in_c.
    #[test]
    fn candidates_are_the_legal_folds(in_c in 1usize..40, out_c in 1usize..40) {
        let p = Precision::Full;
        let u = Unit::new(&conv(in_c, out_c, 3, 4, p).geometry().unwrap(), p);
        let mut want = Vec::new();
        for pe in 1..=out_c as u64 {
            for simd in 1..=in_c as u64 {
                if (out_c as u64).is_multiple_of(pe) && (in_c as u64).is_multiple_of(simd) {
                    want.push(Fold { pe, simd });
                }
            }
        }
        prop_assert_eq!(u.candidates(), want);
        prop_assert!(u.candidates().iter().all(|&f| u.legal(f)));
    }
}

#[test]
fn divisors_of_small_numbers() {
    assert_eq!(divisors(1), vec![1]);
    assert_eq!(divisors(10), vec![1, 2, 5, 10]);
    assert_eq!(divisors(64), vec![1, 2, 4, 8, 16, 32, 64]);
    assert_eq!(divisors(49), vec![1, 7, 49]);
}

/// The final linear layer (64 -> 10, INT8 on ZCU102) at a target of 2 cycles (150 M frames/s at
/// 300 MHz). Folds within 2 cycles: (PE 10, SIMD 64) 1 cycle, 5 x 64 = 320 DSPs; (10, 32) 2
/// cycles, 5 x 32 = 160 DSPs, 10 lanes x (8 chains of 4 products: adder tree 4x18 + 2x19 + 20
/// = 130 LUTs, plus a 22-bit accumulator) = 1,520 LUTs; (5, 64) 2 cycles, 3 x 64 = 192 DSPs,
/// 5 x (16 chains: 8x18 + 4x19 + 2x20 + 21 = 281, + 22) = 1,515 LUTs. Least cost
/// dsp/2520 + lut/274080: (10, 32). It uses 160 DSPs, not the 5 of the sequential array.
#[test]
fn linear_layer_folds_onto_many_dsps() {
    let dev = zcu102();
    let d = dataflow(&[linear(64, 10)], &dev, Target::Fps(150e6)).unwrap();
    let l = &d.layers[0];
    assert_eq!((l.pe, l.simd, l.cycles), (10, 32, 2));
    assert_eq!(l.resources.dsp, 160);
    assert_eq!(l.resources.lut, 1520);
    assert!(d.target_met);
    assert_eq!(d.ii_cycles, 2);
    assert_eq!(d.bottleneck, "fc");
}

/// Fps target: every layer meets the II and the slowest sets the throughput; an unreachable
/// target is reported as not met and the layer that cannot reach it runs at its fastest.
#[test]
fn fps_target_and_bottleneck() {
    let dev = zcu102();
    let b = Precision::Binary { m: 1, n: 1 };
    // conv 3 -> 16 at 8x8: fastest 16/16 x 27/3 x 64 = 576 cycles; the 1x1 binary conv 64.
    let layers = [conv(3, 16, 3, 8, Precision::Full), conv(16, 16, 1, 8, b)];
    let t = 300e6 / 1000.0; // 1000 cycles
    let d = dataflow(&layers, &dev, Target::Fps(t)).unwrap();
    assert!(d.target_met);
    assert!(d.layers.iter().all(|l| l.cycles <= 1000));
    let max = d.layers.iter().map(|l| l.cycles).max().unwrap();
    assert_eq!(d.ii_cycles, max);
    assert!((d.frames_per_s - 300e6 / max as f64).abs() < 1e-6);
    let slow = dataflow(&layers, &dev, Target::Fps(300e6 / 100.0)).unwrap();
    assert!(!slow.target_met);
    assert_eq!(slow.bottleneck, "conv3x16");
    assert_eq!(slow.layers[0].cycles, 576);
}

/// Budget: the design stays within the DSP budget and a larger budget is never slower here; a
/// budget no design meets (0 DSPs for a full-precision layer) is reported as not met.
#[test]
fn budget_search() {
    let dev = zcu102();
    let layers = [conv(16, 32, 3, 8, Precision::Full), linear(2048, 10)];
    let mut last = u64::MAX;
    for budget in [8u64, 64, 512] {
        let d = dataflow(
            &layers,
            &dev,
            Target::Budget {
                dsp: Some(budget),
                lut: None,
            },
        )
        .unwrap();
        assert!(d.target_met);
        assert!(d.resources.dsp <= budget, "{budget}: {}", d.resources.dsp);
        assert!(d.ii_cycles <= last);
        last = d.ii_cycles;
    }
    let none = dataflow(
        &layers,
        &dev,
        Target::Budget {
            dsp: Some(0),
            lut: None,
        },
    )
    .unwrap();
    assert!(!none.target_met);
}
