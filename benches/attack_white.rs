//! White-box attack throughput on the float engine: ResNet20 (random init, seed 0), a batch of
//! 128 CIFAR-sized images, through the driver (`run_white`: batches of the driver's size, one
//! forward pass per gradient). FGSM (eps 8/255), PGD L-inf (10 iterations, no random start,
//! step 2/255), DeepFool (50 iterations at most), CW-L2 (c 1, one search step, 50 steps, lr 0.01,
//! no early abort): the settings of the peer scripts in `benches/peers/`.
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench attack_white -- --warm-up-time 1 --measurement-time 4`.
//!
//! `BBED_PEER_DIR=DIR cargo bench --bench attack_white` instead writes the random-init weights to
//! `DIR/resnet20_init.safetensors` (parameter names as the engine reads them) for the peer
//! scripts, and exits.

use breakingbed::attack::spec::AttackSpec;
use breakingbed::attack::{run_white, Model};
use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use criterion::{criterion_group, Criterion, Throughput};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SPECS: [(&str, &str); 4] = [
    (
        "fgsm",
        "attack = \"fgsm\"\neps = { value = 8, scale = \"pixel\" }\n",
    ),
    (
        "pgd_linf_10",
        "attack = \"pgd\"\neps = { value = 8, scale = \"pixel\" }\n\
         step = { value = 2, scale = \"pixel\" }\niterations = 10\nrandom_start = false\n\
         trace_every = 0\n",
    ),
    (
        "deepfool_50",
        "attack = \"deepfool\"\nmax_iterations = 50\n",
    ),
    (
        "cw_c1_50",
        "attack = \"cw\"\nc = 1.0\nbinary_search_steps = 1\nmax_iterations = 50\n\
         learning_rate = 0.01\nabort_early = false\n",
    ),
];

fn resnet20() -> (
    breakingbed::variant::CompressedNetwork,
    breakingbed::engine::params::Params,
) {
    let n = breakingbed::model::builtin("resnet20", None, None).unwrap();
    let cn = apply(&n, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let p = params::init(&cn, 0);
    (cn, p)
}

fn bench_attacks(c: &mut Criterion) {
    let (cn, p) = resnet20();
    let m = FloatEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 128;
    let x = Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen_range(0u8..=255) as f32 / 255.0);
    // Labels: the clean predictions, so every image is attacked.
    let z = m.logits(&x);
    let y: Vec<usize> = (0..n)
        .map(|i| breakingbed::attack::classifier::argmax(&z.row(i).to_vec()))
        .collect();
    let mut g = c.benchmark_group("resnet20_float_batch128");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    for (name, toml) in SPECS {
        let spec = AttackSpec::from_toml(toml, name).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| run_white(&m, &spec, &x, &y, 0).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_attacks);

fn main() {
    if let Ok(dir) = std::env::var("BBED_PEER_DIR") {
        let (cn, p) = resnet20();
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join("resnet20_init.safetensors");
        params::save(&cn, &p, &path).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
