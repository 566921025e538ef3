//! Safetensors weight files: round trips, an independent reader/writer (the `safetensors` crate),
//! dtype conversion against the `half` crate, and every kind of bad file.

use breakingbed::io::WeightStore;
use breakingbed::Error;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

fn arr(shape: &[usize], f: impl Fn(usize) -> f32) -> ArrayD<f32> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
}

fn sample_store() -> WeightStore {
    let mut s = WeightStore::new();
    s.insert(
        "conv1.weight",
        arr(&[16, 3, 3, 3], |i| i as f32 * 0.01 - 2.0),
    );
    s.insert("bn1.running_var", arr(&[16], |i| 1.0 + i as f32));
    s.insert("linear.bias", arr(&[10], |i| -(i as f32)));
    // Values whose bits must survive exactly: -0, infinities, the smallest subnormal.
    s.insert(
        "special",
        ArrayD::from_shape_vec(
            IxDyn(&[4]),
            vec![-0.0, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(1)],
        )
        .unwrap(),
    );
    s.insert("scalar", ArrayD::from_elem(IxDyn(&[]), 3.5));
    s.metadata.insert("model".into(), "resnet20".into());
    s.metadata.insert("variant".into(), "xnor".into());
    s
}

fn bits(a: &ArrayD<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn input_message(e: Error) -> String {
    match e {
        Error::Input { .. } => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn round_trip_with_metadata_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut s = sample_store();
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Opts {
        bases_w: u32,
        bases_a: u32,
    }
    s.set_meta_json(
        "options",
        &Opts {
            bases_w: 3,
            bases_a: 3,
        },
    )
    .unwrap();
    s.save(&path).unwrap();
    let back = WeightStore::load(&path).unwrap();
    assert_eq!(back.metadata, s.metadata);
    assert_eq!(back.tensors.len(), s.tensors.len());
    for (name, t) in &s.tensors {
        let b = &back.tensors[name];
        assert_eq!(b.shape(), t.shape(), "{name}");
        assert_eq!(bits(b), bits(t), "{name}");
    }
    assert_eq!(
        back.meta_json::<Opts>("options").unwrap(),
        Some(Opts {
            bases_w: 3,
            bases_a: 3
        })
    );
    assert_eq!(back.meta_json::<Opts>("absent").unwrap(), None);
    assert_eq!(back.source.as_deref(), Some(path.as_path()));
    // Saving is deterministic: the same store gives the same bytes.
    assert_eq!(s.to_bytes(), sample_store_with_options().to_bytes());
}

fn sample_store_with_options() -> WeightStore {
    let mut s = sample_store();
    s.metadata
        .insert("options".into(), r#"{"bases_w":3,"bases_a":3}"#.into());
    s
}

#[test]
fn written_file_reads_with_the_reference_crate() {
    let s = sample_store();
    let bytes = s.to_bytes();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(header_len % 8, 0, "header padded to 8 bytes");
    let st = SafeTensors::deserialize(&bytes).expect("reference reader accepts our file");
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "bn1.running_var",
            "conv1.weight",
            "linear.bias",
            "scalar",
            "special"
        ]
    );
    let t = st.tensor("conv1.weight").unwrap();
    assert_eq!(t.dtype(), Dtype::F32);
    assert_eq!(t.shape(), &[16, 3, 3, 3]);
    // Element 5 of conv1.weight is 5 * 0.01 - 2.0, little-endian at byte 20.
    let d = t.data();
    assert_eq!(
        f32::from_le_bytes(d[20..24].try_into().unwrap()),
        5.0f32 * 0.01 - 2.0
    );
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let m = meta.metadata().as_ref().unwrap();
    assert_eq!(m["model"], "resnet20");
    assert_eq!(m["variant"], "xnor");
}

fn write_reference(path: &Path, tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::serialize(views, &Some(meta)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn other_float_dtypes_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.safetensors");
    // Hand-picked half-precision encodings (IEEE 754 binary16): 0x3C00 = 1.0, 0xC000 = -2.0,
    // 0x7BFF = 65504 (largest finite), 0x0001 = 2^-24 (smallest subnormal), 0x3555 =
    // 0.333251953125 = 1365/4096. bfloat16 is the top half of an f32: 0x3F80 = 1.0, 0xC040 = -3.0.
    let f16: Vec<u8> = [0x3C00u16, 0xC000, 0x7BFF, 0x0001, 0x3555]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [0x3F80u16, 0xC040]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    let f64b: Vec<u8> = [0.1f64, -1e300, 2.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_reference(
        &path,
        vec![
            ("h", Dtype::F16, vec![5], f16),
            ("b", Dtype::BF16, vec![2], bf16),
            ("d", Dtype::F64, vec![3, 1], f64b),
        ],
    );
    let s = WeightStore::load(&path).unwrap();
    assert_eq!(
        s.tensors["h"].iter().copied().collect::<Vec<_>>(),
        vec![1.0, -2.0, 65504.0, 2f32.powi(-24), 1365.0 / 4096.0]
    );
    assert_eq!(
        s.tensors["b"].iter().copied().collect::<Vec<_>>(),
        vec![1.0, -3.0]
    );
    let d: Vec<f32> = s.tensors["d"].iter().copied().collect();
    assert_eq!(d[0], 0.1f32);
    assert_eq!(d[1], f32::NEG_INFINITY, "out of f32 range rounds to -inf");
    assert_eq!(d[2], 2.5);
    assert_eq!(s.tensors["d"].shape(), &[3, 1]);
    assert_eq!(s.metadata["format"], "pt");
}

#[test]
fn every_f16_bit_pattern_matches_the_half_crate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all_f16.safetensors");
    let data: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    write_reference(&path, vec![("all", Dtype::F16, vec![65536], data)]);
    let s = WeightStore::load(&path).unwrap();
    for (h, &got) in s.tensors["all"].iter().enumerate() {
        let want = half::f16::from_bits(h as u16).to_f32();
        if want.is_nan() {
            assert!(got.is_nan(), "{h:#06x}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
        }
    }
}

#[test]
fn integer_tensors_rejected_except_bn_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int.safetensors");
    let one = 1.0f32.to_le_bytes().to_vec();
    write_reference(
        &path,
        vec![
            ("w", Dtype::F32, vec![1], one.clone()),
            (
                "bn1.num_batches_tracked",
                Dtype::I64,
                vec![],
                7i64.to_le_bytes().to_vec(),
            ),
        ],
    );
    let s = WeightStore::load(&path).unwrap();
    assert_eq!(s.skipped, vec!["bn1.num_batches_tracked".to_string()]);
    assert_eq!(s.tensors.len(), 1);

    write_reference(
        &path,
        vec![
            ("w", Dtype::F32, vec![1], one),
            ("idx", Dtype::I32, vec![2], vec![0; 8]),
            ("mask", Dtype::U8, vec![3], vec![1; 3]),
        ],
    );
    let msg = input_message(WeightStore::load(&path).unwrap_err());
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(msg.contains("\"idx\" is I32"), "{msg}");
    assert!(msg.contains("\"mask\" is U8"), "{msg}");
}

#[test]
fn truncated_and_corrupted_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample_store().to_bytes();
    let path = dir.path().join("bad.safetensors");
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "one byte short",
            good[..good.len() - 1].to_vec(),
            "truncated",
        ),
        (
            "inside the data",
            good[..8 + header_len + 10].to_vec(),
            "truncated",
        ),
        (
            "inside the header",
            good[..8 + header_len / 2].to_vec(),
            "truncated",
        ),
        ("four bytes", good[..4].to_vec(), "not a safetensors file"),
        ("empty", Vec::new(), "not a safetensors file"),
        (
            "one byte extra",
            [good.clone(), vec![0]].concat(),
            "corrupted",
        ),
        (
            "broken json",
            {
                let mut b = good.clone();
                b[8] = b'X';
                b
            },
            "corrupted",
        ),
    ];
    for (what, bytes, needle) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let msg = input_message(WeightStore::load(&path).unwrap_err());
        assert!(msg.contains(path.to_str().unwrap()), "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg}");
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.safetensors");
    match WeightStore::load(&path).unwrap_err() {
        e @ Error::Io { .. } => assert!(e.to_string().contains("nope.safetensors")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn check_lists_missing_unexpected_and_mismatched() {
    let s = sample_store();
    let p = Path::new("model/w.safetensors");
    let mut expected: Vec<(String, Vec<usize>)> = s
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape().to_vec()))
        .collect();
    s.check(&expected, p).unwrap();

    expected.retain(|(n, _)| n != "special" && n != "scalar");
    expected.push(("layer1.0.conv1.weight".into(), vec![16, 16, 3, 3]));
    expected.push(("fc.bias".into(), vec![1000]));
    for (n, shape) in expected.iter_mut() {
        if n == "conv1.weight" {
            *shape = vec![16, 3, 3, 4];
        }
    }
    let msg = input_message(s.check(&expected, p).unwrap_err());
    assert!(msg.starts_with("model/w.safetensors: "), "{msg}");
    assert!(
        msg.contains("missing 2 tensor(s): fc.bias [1000], layer1.0.conv1.weight [16, 16, 3, 3]"),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected 2 tensor(s): scalar [], special [4]"),
        "{msg}"
    );
    assert!(
        msg.contains("conv1.weight: expected [16, 3, 3, 4], found [16, 3, 3, 3]"),
        "{msg}"
    );
}

#[test]
fn get_checks_name_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    sample_store().save(&path).unwrap();
    let s = WeightStore::load(&path).unwrap();
    assert_eq!(s.get("linear.bias", &[10]).unwrap()[[3]], -3.0);
    let msg = input_message(s.get("linear.bias", &[100]).unwrap_err());
    assert!(msg.contains("expected shape [100], found [10]"), "{msg}");
    assert!(msg.contains("w.safetensors"), "{msg}");
    let msg = input_message(s.get("fc.weight", &[10, 64]).unwrap_err());
    assert!(
        msg.contains("missing tensor \"fc.weight\" (expected shape [10, 64])"),
        "{msg}"
    );
}

#[test]
fn malformed_metadata_json_is_an_error() {
    let mut s = sample_store();
    s.metadata.insert("options".into(), "{not json".into());
    let msg = input_message(s.meta_json::<serde_json::Value>("options").unwrap_err());
    assert!(msg.contains("metadata \"options\""), "{msg}");
}

#[test]
fn save_is_atomic_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/w.safetensors");
    sample_store().save(&path).unwrap();
    let mut other = WeightStore::new();
    other.insert("x", arr(&[2], |i| i as f32));
    other.save(&path).unwrap();
    assert_eq!(WeightStore::load(&path).unwrap().tensors.len(), 1);
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("w.safetensors")]);

    // A target that cannot be replaced (a non-empty directory): error, temp file cleaned up.
    let blocker = dir.path().join("blocked");
    std::fs::create_dir_all(blocker.join("inner")).unwrap();
    assert!(other.save(&blocker).is_err());
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(entries.iter().all(|n| !n.contains(".tmp.")), "{entries:?}");
}

#[test]
fn reserved_tensor_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = WeightStore::new();
    s.insert("__metadata__", arr(&[1], |_| 0.0));
    let msg = input_message(s.save(dir.path().join("w.safetensors")).unwrap_err());
    assert!(msg.contains("reserved"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_stores_round_trip(
        tensors in prop::collection::btree_map(
            "[a-z][a-z0-9_.]{0,12}",
            prop::collection::vec(1usize..5, 0..4)
                .prop_flat_map(|shape| {
                    let n: usize = shape.iter().product();
                    (Just(shape), prop::collection::vec(any::<u32>(), n))
                }),
            0..6,
        ),
        meta in prop::collection::btree_map("[a-z]{1,6}", ".{0,20}", 0..3),
    ) {
        let mut s = WeightStore::new();
        for (name, (shape, raw)) in &tensors {
            let v: Vec<f32> = raw.iter().map(|&b| f32::from_bits(b)).collect();
            s.insert(name.clone(), ArrayD::from_shape_vec(IxDyn(shape), v).unwrap());
        }
        s.metadata = meta;
        let back = WeightStore::from_bytes(&s.to_bytes(), Path::new("mem")).unwrap();
        prop_assert_eq!(&back.metadata, &s.metadata);
        prop_assert_eq!(back.tensors.len(), s.tensors.len());
        for (name, t) in &s.tensors {
            prop_assert_eq!(back.tensors[name].shape(), t.shape());
            prop_assert_eq!(bits(&back.tensors[name]), bits(t));
        }
    }
}

#[test]
fn check_finite_names_bad_tensors() {
    let mut s = WeightStore::new();
    s.insert("ok", arr(&[3], |i| i as f32));
    s.insert(
        "a.weight",
        arr(&[4], |i| if i >= 2 { f32::NAN } else { 1.0 }),
    );
    s.insert(
        "b.bias",
        arr(&[2], |i| if i == 0 { f32::INFINITY } else { 0.0 }),
    );
    let msg = input_message(s.check_finite().unwrap_err());
    assert!(
        msg.contains("a.weight (2 value(s), first at flat index 2: NaN)"),
        "{msg}"
    );
    assert!(
        msg.contains("b.bias (1 value(s), first at flat index 0: inf)"),
        "{msg}"
    );
    assert!(!msg.contains("ok ("), "{msg}");
    s.tensors.retain(|n, _| n == "ok");
    s.check_finite().unwrap();
}
