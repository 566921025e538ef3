//! XNOR-popcount dot products against the plain +/-1 dot product (and a direct count of matching
//! positions for FINN's convention), on every popcount path this CPU has.

use breakingbed::engine::binary::{
    bdot, bdot_matches, bdot_with, pack_vector_i8, reference, PopcountPath,
};
use proptest::prelude::*;

fn pm1(bits: &[bool]) -> Vec<i8> {
    bits.iter().map(|&b| if b { -1 } else { 1 }).collect()
}

/// Two equal-length +/-1 vectors, length 1..10,000 (most lengths are not multiples of 64).
fn pair() -> impl Strategy<Value = (Vec<i8>, Vec<i8>)> {
    (1usize..10_000).prop_flat_map(|k| {
        (
            prop::collection::vec(any::<bool>(), k),
            prop::collection::vec(any::<bool>(), k),
        )
            .prop_map(|(a, b)| (pm1(&a), pm1(&b)))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bdot_equals_pm1_dot_on_every_path((a, b) in pair()) {
        let k = a.len();
        let (pa, pb) = (pack_vector_i8(&a).unwrap(), pack_vector_i8(&b).unwrap());
        let truth = reference::dot_i8(&a, &b).unwrap();
        let paths = PopcountPath::available();
        prop_assert!(paths.contains(&PopcountPath::Portable));
        for path in paths {
            prop_assert_eq!(bdot_with(path, &pa, &pb, k).unwrap(), truth, "{:?}", path);
        }
        prop_assert_eq!(bdot(&pa, &pb, k).unwrap(), truth);
        let matches = a.iter().zip(&b).filter(|(x, y)| x == y).count() as u32;
        prop_assert_eq!(bdot_matches(&pa, &pb, k).unwrap(), matches);
        prop_assert_eq!(2 * matches as i32 - k as i32, truth); // (dot + K) / 2 = matches
    }

    /// Biased contents (mostly equal / mostly opposite) reach the extremes +/-K.
    #[test]
    fn bdot_extremes(k in 1usize..3000, flip in any::<bool>()) {
        let a = vec![1i8; k];
        let b = vec![if flip { -1i8 } else { 1 }; k];
        let (pa, pb) = (pack_vector_i8(&a).unwrap(), pack_vector_i8(&b).unwrap());
        for path in PopcountPath::available() {
            let expect = if flip { -(k as i32) } else { k as i32 };
            prop_assert_eq!(bdot_with(path, &pa, &pb, k).unwrap(), expect);
        }
    }
}

#[test]
fn the_avx512_path_is_exercised_on_this_machine() {
    // The brief's machines have VPOPCNTDQ; if this fails the AVX-512 path went untested.
    if std::env::var_os("BBED_ALLOW_NO_AVX512").is_none() {
        assert!(
            PopcountPath::Avx512.is_available(),
            "no avx512vpopcntdq detected"
        );
    }
}

#[test]
fn bad_operands_are_input_errors() {
    let a = vec![0u64; 2];
    // 65 bits need 2 words; 3 words is wrong.
    let e = bdot(&a, &[0, 0, 0], 65).unwrap_err().to_string();
    assert!(e.contains("operand b") && e.contains("expected 2"), "{e}");
    // Tail bit 65 set in a 65-bit vector.
    let e = bdot(&[0, 0b10], &a, 65).unwrap_err().to_string();
    assert!(e.contains("tail"), "{e}");
    assert!(bdot(&[], &[], 0).is_err());
}
