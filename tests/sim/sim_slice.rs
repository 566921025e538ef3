//! Slice model against independent truth: packed MAC lanes vs plain i64 products, XNOR+popcount
//! vs a bitvec bit-by-bit count.

use bitvec::prelude::*;
use breakingbed::hw::Device;
use breakingbed::sim::slice::{popcount_matches, xnor_dot, xnor_word, PackedMac};
use proptest::prelude::*;

fn device(lanes: u32, width: u32, spacing: u32, guard: u32, acc: u32, packing: &str) -> Device {
    let a_width = if packing == "shared_operand" {
        (lanes - 1) * spacing + width
    } else {
        27
    };
    let text = format!(
        r#"
[device]
name = "test"
dsp_count = 1
clock_mhz = 100.0
[slice]
family = "test"
abstract = true
a_width = {a_width}
b_width = {b}
acc_width = {acc}
latency = 4
[slice.mac]
lanes = {lanes}
width = {width}
spacing = {spacing}
guard_bits = {guard}
packing = "{packing}"
[slice.xnor]
lanes = {x}
[popcount]
inputs = 48
latency = 3
"#,
        b = width.max(18),
        x = acc.min(48)
    );
    Device::from_toml_str(&text, "test.toml").unwrap()
}

fn paper() -> Device {
    Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/paper.toml")).unwrap()
}

/// 16-bit operands with the extremes over-represented.
fn op16() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(-32768),
        Just(32767),
        Just(-1),
        Just(0),
        Just(1),
        -32768i32..=32767
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Paper abstraction (2 x 16-bit lanes, independent operands): the packed register read out
    /// with borrow correction equals the two separately accumulated products, over sums as long
    /// as the documented 2^16 products per field.
    #[test]
    fn packed_two_lane_mac_equals_separate_products(
        pairs in prop::collection::vec((op16(), op16(), op16(), op16()), 1..16),
        len_exp in 0u32..=16,
    ) {
        let dev = paper();
        assert_eq!(dev.max_accumulations(), 1 << 16);
        let mut mac = PackedMac::new(&dev);
        let n = 1usize << len_exp;
        let (mut s0, mut s1) = (0i64, 0i64);
        for i in 0..n {
            let (a0, b0, a1, b1) = pairs[i % pairs.len()];
            mac.mac_independent(&[a0, a1], &[b0, b1]);
            s0 += a0 as i64 * b0 as i64;
            s1 += a1 as i64 * b1 as i64;
        }
        prop_assert_eq!(mac.lanes(), vec![s0, s1]);
    }

    /// Physical shared-operand packing on a 48-bit P (2 x 8-bit weights, 18 bits apart, as the
    /// ZCU102 file): one multiply of the packed A by the shared B equals two products.
    #[test]
    fn shared_operand_int8_packing_equals_separate_products(
        ops in prop::collection::vec((-128i32..=127, -128i32..=127, -128i32..=127), 1..=4),
    ) {
        let dev = Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml")).unwrap();
        let mut mac = PackedMac::new(&dev);
        let (mut s0, mut s1) = (0i64, 0i64);
        for &(w0, w1, a) in &ops {
            mac.mac_shared(&[w0, w1], a);
            s0 += (w0 * a) as i64;
            s1 += (w1 * a) as i64;
        }
        prop_assert!(mac.p() < (1u128 << 48));
        prop_assert_eq!(mac.lanes(), vec![s0, s1]);
    }

    /// Random valid lane configurations (1-3 lanes, widths 2-16, both packings): extreme and
    /// random operands accumulated the full 2^guard times read back exactly.
    #[test]
    fn random_lane_configs_accumulate_exactly(
        lanes in 1u32..=3,
        width in 2u32..=16,
        guard in 0u32..=6,
        extra in 0u32..=4,
        shared in any::<bool>(),
        seed_ops in prop::collection::vec((any::<i32>(), any::<i32>(), any::<i32>(), any::<i32>()), 1..8),
    ) {
        let spacing = 2 * width + guard + extra;
        let acc = (lanes - 1) * spacing + 2 * width + guard;
        let packing = if shared { "shared_operand" } else { "independent" };
        let dev = device(lanes, width, spacing, guard, acc, packing);
        let lo = -(1i64 << (width - 1));
        let span = 1i64 << width;
        let fit = |v: i32| (lo + (v as i64).rem_euclid(span)) as i32;
        let mut mac = PackedMac::new(&dev);
        let mut sums = vec![0i64; lanes as usize];
        for i in 0..(1usize << guard) {
            let (a, b, c, d) = seed_ops[i % seed_ops.len()];
            // Every other step uses the most negative operand squared, the largest product.
            let (w, x): (Vec<i32>, i32) = if i % 2 == 0 {
                (vec![lo as i32; lanes as usize], lo as i32)
            } else {
                ([a, b, c].iter().take(lanes as usize).map(|&v| fit(v)).collect(), fit(d))
            };
            mac.mac(&w, x);
            for l in 0..lanes as usize {
                sums[l] += w[l] as i64 * x as i64;
            }
        }
        prop_assert_eq!(mac.lanes(), sums);
    }

    /// 48-bit XNOR + popcount tree equals a bit-by-bit bitvec count of matching positions, and
    /// the derived +/-1 dot equals the sum of products of the decoded +/-1 values.
    #[test]
    fn xnor_popcount_matches_bitvec(a in any::<u64>(), b in any::<u64>(), valid in 0u32..=48) {
        let a = a & ((1u64 << 48) - 1);
        let b = b & ((1u64 << 48) - 1);
        let av = a.view_bits::<Lsb0>();
        let bv = b.view_bits::<Lsb0>();
        let matches = (0..valid as usize).filter(|&i| av[i] == bv[i]).count() as u32;
        prop_assert_eq!(popcount_matches(a, b, 48, valid), matches);
        let pm = |bit: bool| if bit { -1i32 } else { 1 };
        let dot: i32 = (0..valid as usize).map(|i| pm(av[i]) * pm(bv[i])).sum();
        prop_assert_eq!(xnor_dot(a, b, 48, valid), dot);
        // The ALU word never has bits above the lane count.
        prop_assert_eq!(xnor_word(a, b, 48) >> 48, 0);
    }
}

/// The guard bits are exactly what the field needs: 2^g products of (-2^(w-1))^2 fit, one
/// doubling more overflows the low field (so the drain interval in the docs is tight).
#[test]
fn guard_bits_bound_is_tight() {
    let dev = device(2, 8, 18, 2, 48, "shared_operand");
    let mut mac = PackedMac::new(&dev);
    for _ in 0..4 {
        mac.mac(&[-128, -128], -128);
    }
    assert_eq!(mac.lanes(), vec![4 * 16384, 4 * 16384]);
    for _ in 0..4 {
        mac.mac(&[-128, -128], -128);
    }
    assert_ne!(
        mac.lanes()[0],
        8 * 16384,
        "8 x 2^14 cannot fit an 18-bit signed field"
    );
}

/// Worst case of the paper abstraction: 2^16 products of -32768 * -32768 (= 2^46 per lane) and
/// of -32768 * 32767 read back exactly.
#[test]
fn paper_extremes_over_full_guard_range() {
    let dev = paper();
    let mut mac = PackedMac::new(&dev);
    for _ in 0..(1 << 16) {
        mac.mac_independent(&[-32768, -32768], &[-32768, 32767]);
    }
    assert_eq!(
        mac.lanes(),
        vec![(1i64 << 16) * (1 << 30), (1i64 << 16) * (-32768 * 32767)]
    );
}
