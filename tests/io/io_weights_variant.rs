//! The variant stored in a weight file's metadata ([`check_variant`]) and the header-only
//! metadata reader ([`read_metadata`]): what `bbed train` / `prune` write is read back, a
//! mismatch names file, stored and asked variant, a file without the entry is accepted, and
//! malformed headers or entries are errors naming the file, never a panic.

use breakingbed::engine::params;
use breakingbed::io::weights::{check_variant, read_metadata, WeightStore};
use breakingbed::model;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{ArrayD, IxDyn};

fn spec(kind: VariantKind) -> VariantSpec {
    VariantSpec::new(kind)
}

#[test]
fn saved_variant_is_read_back_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let net = model::builtin("resnet8", Some([1, 8, 8]), Some(10)).unwrap();
    let mut abc = spec(VariantKind::Abc);
    abc.options.m = 2;
    abc.options.n = 3;
    let cn = apply(&net, &abc).unwrap();
    let path = dir.path().join("w.safetensors");
    params::save(&cn, &params::init(&cn, 1), &path).unwrap();
    let meta = read_metadata(&path).unwrap();
    assert_eq!(meta, WeightStore::load(&path).unwrap().metadata);
    assert_eq!(meta["model"], "\"resnet8\"");
    check_variant(&path, &cn.spec).unwrap();
    // Options that do not change how weights are read are not compared.
    let mut other = cn.spec.clone();
    other.options.scales = false;
    other.options.rate = 0.3;
    check_variant(&path, &other).unwrap();
    for (asked, stored, want) in [
        (spec(VariantKind::Vanilla), "abc (m=2, n=3", "vanilla"),
        (
            spec(VariantKind::Xnor),
            "abc (m=2, n=3",
            "xnor (fp_first_last=true",
        ),
        (
            {
                let mut s = cn.spec.clone();
                s.options.n = 2;
                s
            },
            "abc (m=2, n=3",
            "abc (m=2, n=2",
        ),
    ] {
        let e = check_variant(&path, &asked).unwrap_err().to_string();
        assert!(e.contains(path.to_str().unwrap()), "{e}");
        assert!(e.contains(&format!("saved for variant {stored}")), "{e}");
        assert!(e.contains(&format!("asks for {want}")), "{e}");
    }
}

#[test]
fn float_kinds_are_told_apart_and_missing_options_take_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut store = WeightStore::new();
    store.insert("x", ArrayD::zeros(IxDyn(&[2])));
    // A hand-written entry (as from another tool) with only the kind.
    store
        .metadata
        .insert("variant".into(), r#"{"kind": "xnor"}"#.into());
    store.save(&path).unwrap();
    check_variant(&path, &spec(VariantKind::Xnor)).unwrap();
    let mut all = spec(VariantKind::Xnor);
    all.options.fp_first_last = false;
    assert!(check_variant(&path, &all).is_err());
    store
        .metadata
        .insert("variant".into(), r#"{"kind": "kd"}"#.into());
    store.save(&path).unwrap();
    let e = check_variant(&path, &spec(VariantKind::Vanilla))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("saved for variant kd") && e.contains("asks for vanilla"),
        "{e}"
    );
}

#[test]
fn malformed_metadata_and_headers_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut store = WeightStore::new();
    store.insert("x", ArrayD::zeros(IxDyn(&[2])));
    for bad in ["not json", r#"{"kind": "ternary"}"#, r#"{"options": {}}"#] {
        store.metadata.insert("variant".into(), bad.into());
        store.save(&path).unwrap();
        let e = check_variant(&path, &spec(VariantKind::Vanilla))
            .unwrap_err()
            .to_string();
        assert!(e.contains(path.to_str().unwrap()), "{e}");
        assert!(e.contains("metadata \"variant\""), "{bad}: {e}");
    }
    // Without metadata: an empty map, and any variant is accepted.
    store.metadata.clear();
    store.save(&path).unwrap();
    assert!(read_metadata(&path).unwrap().is_empty());
    check_variant(&path, &spec(VariantKind::Abc)).unwrap();
    // Truncated files: a short length field, a header length past the end, short data.
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 5, 8, 12, bytes.len() - 1] {
        let p = dir.path().join(format!("cut{cut}.safetensors"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        // Only the last cut keeps the header whole (the data is short): that still parses.
        match read_metadata(&p) {
            Ok(m) => assert!(cut >= 8 && m.is_empty(), "cut {cut}: {m:?}"),
            Err(e) => assert!(e.to_string().contains(p.to_str().unwrap()), "{e}"),
        }
    }
    let p = dir.path().join("huge.safetensors");
    std::fs::write(&p, u64::MAX.to_le_bytes()).unwrap();
    let e = read_metadata(&p).unwrap_err().to_string();
    assert!(e.contains("implausibly large"), "{e}");
}
