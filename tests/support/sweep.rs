//! Shared fixtures of the sweep tests: a tiny seeded data set (written as IDX so the CLI can load
//! it), a two-entry zoo (resnet8 vanilla and XNOR, seeded initial weights) and a reduced grid that
//! touches every attack in a few milliseconds per image.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use breakingbed::engine::params;
use breakingbed::io::dataset::Dataset;
use breakingbed::io::idx::write_idx;
use breakingbed::report::SweepRecord;
use breakingbed::sweep::{SweepOptions, RESULTS_FILE};
use breakingbed::variant::{self, VariantKind, VariantSpec};
use breakingbed::zoo::{ZooEntry, ZooManifest};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const SIDE: usize = 8;
pub const N_DATA: usize = 24;

/// Every attack of the paper's grid, shrunk; PGD has two settings and a random start (reruns).
pub const GRID: &str = r#"
[[grid]]
name = "fgsm"
spec = { attack = "fgsm", eps = { value = 2, scale = "pixel" } }
sweep = { "eps.value" = [2, 16] }

[[grid]]
name = "pgd"
spec = { attack = "pgd", norm = "linf", eps = { value = 0.1, scale = "normalized" }, step = { value = 0.5, scale = "normalized" }, iterations = 2, trace_every = 1 }
sweep = { "eps.value" = [0.1, 1.0] }

[[grid]]
name = "cw"
spec = { attack = "cw", c = 1.0, binary_search_steps = 1, max_iterations = 2, abort_early = false }

[[grid]]
name = "deepfool"
spec = { attack = "deepfool", max_iterations = 1 }
sweep = { max_iterations = [1, 3] }

[[grid]]
name = "localsearch"
spec = { attack = "localsearch", eps = { value = 16, scale = "pixel" }, rounds = 2 }

[[grid]]
name = "genattack"
spec = { attack = "genattack", eps = { value = 8, scale = "pixel" }, generations = 3, population = 4 }
"#;

/// Cells per zoo entry of [`GRID`] with `reruns` PGD reruns.
pub fn cells_per_entry(reruns: usize) -> usize {
    2 + 2 * reruns + 1 + 2 + 1 + 1
}

pub fn dataset(seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images = Array4::from_shape_fn((N_DATA, 1, SIDE, SIDE), |_| rng.gen::<u8>());
    let labels = (0..N_DATA).map(|i| (i % 10) as u16).collect();
    Dataset::new(images, labels, 10, "synthetic").unwrap()
}

/// [`dataset`] relabelled with the first zoo entry's predictions, so that entry is 100% accurate
/// on clean images and strain (which needs clean accuracy > 0) is defined.
pub fn dataset_labelled_by(zoo: &Path, seed: u64) -> Dataset {
    use breakingbed::attack::Model;
    let d = dataset(seed);
    let zoo = breakingbed::sweep::load_zoo(zoo, [1, SIDE, SIDE], 10).unwrap();
    let z = zoo[0].float().logits(&d.to_unit(0..N_DATA).unwrap());
    let labels = z
        .rows()
        .into_iter()
        .map(|r| breakingbed::attack::classifier::argmax(&r.to_vec()) as u16)
        .collect();
    Dataset::new(d.images, labels, 10, "synthetic, model-labelled").unwrap()
}

/// Writes `d` as an MNIST-style IDX folder (test split only).
pub fn write_dataset(dir: &Path, d: &Dataset) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let px: Vec<u8> = d.images.iter().copied().collect();
    write_idx(
        dir.join("t10k-images-idx3-ubyte"),
        &[N_DATA, SIDE, SIDE],
        &px,
        false,
    )
    .unwrap();
    write_idx(
        dir.join("t10k-labels-idx1-ubyte"),
        &[N_DATA],
        &d.labels.iter().map(|&l| l as u8).collect::<Vec<u8>>(),
        false,
    )
    .unwrap();
    dir.to_path_buf()
}

/// A zoo of resnet8 on 1 x SIDE x SIDE, vanilla and XNOR, with seeded initial weights.
pub fn write_zoo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut entries = Vec::new();
    for (i, kind) in [VariantKind::Vanilla, VariantKind::Xnor]
        .into_iter()
        .enumerate()
    {
        let name = format!("resnet8-{}", kind.name());
        let net = breakingbed::model::resolve("resnet8", Some([1, SIDE, SIDE]), Some(10)).unwrap();
        let spec = VariantSpec::new(kind);
        let cn = variant::apply(&net, &spec).unwrap();
        let p = params::init(&cn, 100 + i as u64);
        let file = format!("{name}.safetensors");
        params::save(&cn, &p, &dir.join(&file)).unwrap();
        entries.push(ZooEntry {
            name,
            model: "resnet8".into(),
            input: Some([1, SIDE, SIDE]),
            classes: Some(10),
            variant: spec,
            weights: file.into(),
            accuracy: None,
            cost: None,
            training: None,
        });
    }
    ZooManifest {
        dataset: "synthetic".into(),
        entries,
    }
    .save(dir)
    .unwrap();
    dir.to_path_buf()
}

pub fn write_grid(dir: &Path) -> PathBuf {
    let p = dir.join("grid.toml");
    std::fs::write(&p, GRID).unwrap();
    p
}

pub fn options(zoo: &Path, config: &Path, out: &Path) -> SweepOptions {
    SweepOptions {
        zoo: zoo.to_path_buf(),
        config: config.to_path_buf(),
        out: out.to_path_buf(),
        images: 3,
        seed: 7,
        reruns: 2,
        shard: None,
        resume: false,
        only_attacks: None,
        skip_corrupt: false,
        max_records: None,
        progress: false,
    }
}

/// The records of a sweep folder as sorted JSON lines (order-free comparison, exact numbers).
pub fn sorted_lines(out: &Path) -> Vec<String> {
    let recs = breakingbed::report::load_records(out.join(RESULTS_FILE), false).unwrap();
    let mut v: Vec<String> = recs
        .iter()
        .map(|r: &SweepRecord| serde_json::to_string(r).unwrap())
        .collect();
    v.sort();
    v
}

/// Every file below `dir` with its bytes (to check that nothing was overwritten).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
