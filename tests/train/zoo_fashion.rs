//! `bbed zoo` fast mode on a 150-image Fashion-MNIST subset (Debian `dataset-fashion-mnist`;
//! skipped with a notice when absent, unless CI is set), six of the ten entries to stay fast:
//! - every entry's manifest accuracy is recomputed independently by loading the entry from the
//!   folder (`ZooEntry::load`) and evaluating it; its cost equals the cost model's for the
//!   entry's network; binarized entries agree exactly between the float and bit-exact engines;
//! - a second run is a no-op (resumable: finished entries are skipped, files untouched).

use breakingbed::attack::Model;
use breakingbed::cli::args::{FolderArgs, ModelArgs};
use breakingbed::cli::train::load_data;
use breakingbed::cli::zoo::{build, ZooArgs};
use breakingbed::cost::{cost, NccParams};
use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::io::idx::FASHION_MNIST_DIR;
use breakingbed::train::evaluate;
use breakingbed::train::kd::argmax_rows;
use breakingbed::variant::VariantKind;
use breakingbed::zoo::ZooManifest;
use std::path::{Path, PathBuf};

#[test]
fn zoo_fast_mode_builds_and_resumes() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FASHION_MNIST_DIR} is missing"
        );
        eprintln!("skipping: {FASHION_MNIST_DIR} is absent");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = ZooArgs {
        model: ModelArgs {
            model: "resnet8".into(),
            input: Some([1, 28, 28]),
            classes: None,
            mean: None,
            std: None,
        },
        data: PathBuf::from(FASHION_MNIST_DIR),
        folder: FolderArgs::default(),
        out: dir.path().to_path_buf(),
        epochs: 1,
        finetune_epochs: None,
        rate: 0.5,
        batch: 50,
        subset: Some(150),
        test_subset: Some(100),
        seed: 3,
        only: Some(
            ["vanilla", "kd", "channel", "weight", "xnor", "abc3x3"]
                .map(String::from)
                .to_vec(),
        ),
        force: false,
    };
    let m = build(&args, false).unwrap();
    assert_eq!(m.entries.len(), 6);
    let (_, test) = load_data(
        &args.data,
        &args.folder,
        args.subset,
        args.test_subset,
        args.seed,
    )
    .unwrap();
    let again = ZooManifest::load(dir.path()).unwrap();
    assert_eq!(again, m);
    for e in &m.entries {
        let net = e.load(dir.path()).unwrap();
        let (_, acc) = evaluate(&net, &test, 100).unwrap();
        assert_eq!(acc as f32, e.accuracy.unwrap(), "{}", e.name);
        let c = cost(&net.cn, &NccParams::reference());
        assert_eq!(
            e.cost.as_ref().unwrap(),
            &serde_json::to_value(&c.total).unwrap()
        );
        if matches!(e.variant.kind, VariantKind::Xnor | VariantKind::Abc) {
            let x = test.to_unit(0..test.len()).unwrap();
            let fe =
                FloatEngine::new(Net::new(net.cn.clone(), net.params.clone()).unwrap()).unwrap();
            let be = BinaryEngine::new(net).unwrap();
            assert_eq!(
                argmax_rows(&fe.logits(&x)),
                argmax_rows(&be.logits(&x)),
                "{}",
                e.name
            );
        }
    }
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before: Vec<_> = m
        .entries
        .iter()
        .map(|e| stamp(&dir.path().join(&e.weights)))
        .collect();
    let m2 = build(&args, false).unwrap();
    assert_eq!(m2, m);
    let after: Vec<_> = m
        .entries
        .iter()
        .map(|e| stamp(&dir.path().join(&e.weights)))
        .collect();
    assert_eq!(before, after);
}
