//! Resource model: block RAM packing, popcount-tree logic, FINN's MVAU formulas and the
//! sequential array's resources, each against hand-computed cases.

use breakingbed::hw::Device;
use breakingbed::sim::resources::finn::Mvau;
use breakingbed::sim::resources::logic::{adder_tree, lane_drain, popcount_tree};
use breakingbed::sim::resources::memory::{place, Memory, BRAM18_BITS};
use breakingbed::sim::resources::{fit, Capacity, Resources};
use breakingbed::sim::{simulate_layers, LayerKind, LayerSpec, Precision};
use proptest::prelude::*;

fn zcu102_with(dsps: u32) -> Device {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml"))
        .unwrap()
        .replace("dsp_count = 2520", &format!("dsp_count = {dsps}"));
    Device::from_toml_str(&text, "zcu102-small").unwrap()
}

/// UG573 aspect ratios: 16K x 1 holds 16,384 one-bit words in one RAMB18; one more word needs a
/// second; 512 x 36 is one block; 37 bits wide needs two 36-wide blocks; 8 x 4096 fits two 4K x 4
/// (or two 2K x 9); a 4K x 72 URAM is one URAM but 16 RAMB18s.
#[test]
fn bram18_packing_hand_cases() {
    let m = |width, depth| Memory { width, depth };
    assert_eq!(m(1, 16384).bram18(), 1);
    assert_eq!(m(1, 16385).bram18(), 2);
    assert_eq!(m(36, 512).bram18(), 1);
    assert_eq!(m(37, 512).bram18(), 2);
    assert_eq!(m(8, 4096).bram18(), 2);
    assert_eq!(m(72, 4096).bram18(), 16);
    assert_eq!(m(72, 4096).uram(), 1);
    assert_eq!(m(73, 4097).uram(), 4);
    assert_eq!(m(0, 10).bram18(), 0);
    // A feature map of 18,432 bits is exactly one block; one more bit spills.
    assert_eq!(Memory::map(BRAM18_BITS).bram18(), 1);
    assert_eq!(Memory::map(BRAM18_BITS + 1).bram18(), 2);
}

proptest! {
    /// Our rule takes the cheapest aspect ratio, so it never needs more blocks than FINN's
    /// width-driven choice (same table), and the blocks always hold the bits.
    #[test]
    fn bram18_never_exceeds_finn_and_holds_the_bits(
        pe in 1u64..8, simd in 1u64..64, w in 1u64..9, mh_f in 1u64..32, mw_f in 1u64..64,
    ) {
        let (mh, mw) = (pe * mh_f, simd * mw_f);
        let ours = Memory { width: pe * simd * w, depth: mh * mw / (pe * simd) }.bram18();
        let finn = Mvau {
            mh, mw, pe, simd, vectors: 1, w_bits: w, a_bits: 1, signed_input: false,
            dsp_products: false,
        }.bram18();
        prop_assert!(ours <= finn, "ours {ours} finn {finn}");
        prop_assert!(ours * BRAM18_BITS >= mh * mw * w);
    }
}

/// Weight memories spill to URAM, largest first, only while block RAM overflows.
#[test]
fn uram_placement() {
    let big = Memory {
        width: 72,
        depth: 4096,
    }; // 16 RAMB18 or 1 URAM
    let small = Memory {
        width: 36,
        depth: 512,
    }; // 1 RAMB18
    assert_eq!(
        place(&[small, big], Some(10), Some(4)),
        vec![(1, 0), (0, 1)]
    );
    // Enough block RAM: nothing moves.
    assert_eq!(
        place(&[small, big], Some(17), Some(4)),
        vec![(1, 0), (16, 0)]
    );
    // No URAM on the part: nothing can move (and the design will not fit).
    assert_eq!(
        place(&[small, big], Some(10), Some(0)),
        vec![(1, 0), (16, 0)]
    );
}

/// Popcount of 48 bits with the XNOR in the DSP48 ALU: 8 LUT6 6:3 compressors x 3 LUTs = 24
/// LUTs (8 x 3-bit), then adders 4 x 3 + 2 x 4 + 1 x 5 = 25 LUTs: 49 LUTs; registers
/// 24 + 16 + 10 + 6 = 56. With 16 fused XNOR inputs: 6 groups x 2 LUTs = 12 (6 x 2-bit), adders
/// 3 x 2 = 6 (3 x 3-bit), 3 (one 4-bit, one 3-bit passed), 4 (5-bit): 25 LUTs; registers
/// 12 + 9 + (4 + 3) + 5 = 33.
#[test]
fn popcount_tree_hand_counts() {
    assert_eq!(popcount_tree(48, false), (49, 56));
    assert_eq!(popcount_tree(16, true), (25, 33));
    assert_eq!(popcount_tree(0, true), (0, 0));
    // Two 18-bit lane outputs: one 18-LUT adder, a 19-bit register.
    assert_eq!(adder_tree(vec![18, 18]), (18, 19));
    // INT8 lanes, 2 guard bits: cascades of 4 products; SIMD 32 -> 8 chains of 18 bits:
    // 4 x 18 + 2 x 19 + 20 = 130 LUTs, plus a 22-bit accumulator.
    assert_eq!(lane_drain(32, 8, 2, 22).0, 130 + 22);
    // SIMD within one cascade: no fabric tree, only the accumulator.
    assert_eq!(lane_drain(4, 8, 2, 22), (22, 22));
}

/// FINN's formulas on two ResNet20 layers, computed by hand:
/// - binary 3x3 conv 16 -> 16 (MW 144), PE 16, SIMD 16: mult 16 x 1 x 2 = 32, adder tree
///   2 x 31 = 62, accumulator ceil(log2 144 + 1 + log2(1 + 2^-8.17) + 1) = 10 bits:
///   LUT = 300 + 1.1 x 16 x 104 = 2130.4 -> 2130; memory 256 bits x 9 -> width > 18, depth <= 512:
///   ceil(256 / 36) = 8 RAMB18; cycles (16/16) x (144/16) x 1024 = 9216; no DSP.
/// - INT8 3x3 conv 3 -> 16 (MW 27) on DSPs, PE 16, SIMD 3: DSP 16 x 3 x ceil(16/48) = 48;
///   adder tree 16 x 5 = 80, accumulator ceil(log2 27 + 14 + eps + 1) = 20: LUT = 300 + 1.1 x 16
///   x 100 = 2060.
#[test]
fn finn_formulas_hand_cases() {
    let bin = Mvau {
        mh: 16,
        mw: 144,
        pe: 16,
        simd: 16,
        vectors: 1024,
        w_bits: 1,
        a_bits: 1,
        signed_input: false,
        dsp_products: false,
    };
    assert_eq!(bin.acc_bits(), 10);
    assert_eq!(bin.luts(), 2130);
    assert_eq!(bin.bram18(), 8);
    assert_eq!(bin.exp_cycles(), 9216);
    assert_eq!(bin.dsps(), 0);
    let fp = Mvau {
        mh: 16,
        mw: 27,
        pe: 16,
        simd: 3,
        vectors: 1024,
        w_bits: 8,
        a_bits: 8,
        signed_input: true,
        dsp_products: true,
    };
    assert_eq!(fp.acc_bits(), 20);
    assert_eq!(fp.dsps(), 48);
    assert_eq!(fp.luts(), 2060);
}

#[test]
fn fit_names_the_binding_resource() {
    let used = Resources {
        dsp: 10,
        lut: 100,
        ff: 1,
        bram18: 0,
        uram: 0,
    };
    let cap = Capacity {
        dsp: Some(20),
        lut: Some(50),
        ff: None,
        bram18: Some(10),
        uram: Some(0),
    };
    let f = fit(&used, &cap);
    assert!(!f.fits);
    assert_eq!(f.binding.as_deref(), Some("lut"));
    assert_eq!(f.binding_share, Some(2.0));
    let ok = fit(&Resources { lut: 50, ..used }, &cap);
    assert!(ok.fits);
    assert_eq!(ok.binding.as_deref(), Some("lut"));
}

/// One binary 1x1 conv, 48 -> 2 channels on a 2x2 image, on 4 DSP48E2 (zcu102 slice):
/// 2 groups x 2 pixel rows = 4 slices, each a 48-input popcount tree (49 LUT / 56 FF) plus a
/// 6-bit accumulator (reduction 48 -> ceil(log2 49) = 6): 55 LUT, 62 FF per slice.
/// Weights 2 x 48 bits read 96 wide: depth 1 -> 3 RAMB18 (36 wide); input map 192 bits and output
/// map 2 x 4 x 32 = 256 bits: one block each. DDR: weights 12 B + image 24 B + output 32 B.
#[test]
fn sequential_resources_hand_case() {
    let dev = zcu102_with(4);
    let spec = LayerSpec {
        name: "c".into(),
        kind: LayerKind::Conv {
            in_c: 48,
            out_c: 2,
            kernel: 1,
            stride: 1,
            padding: 0,
            in_h: 2,
            in_w: 2,
        },
        precision: Precision::Binary { m: 1, n: 1 },
    };
    let r = simulate_layers(&[spec], &dev).unwrap();
    let want = Resources {
        dsp: 4,
        lut: 4 * 55,
        ff: 4 * 62,
        bram18: 3 + 1 + 1,
        uram: 0,
    };
    assert_eq!(r.layers[0].resources, Some(want));
    assert_eq!(r.resources, want);
    assert_eq!(r.ddr_bytes_per_frame, 12 + 24 + 32);
    assert!(r.physical);
}
