//! Attacks on the real engines (issue 5's benches), ResNet20 on CIFAR-sized inputs, random init:
//! - PGD gradient iterations per second on the float engine, batch of 128 images
//!   (throughput = images x iterations);
//! - GenAttack queries per second on ResNet20-XNOR, bit-exact XNOR/popcount engine vs the float
//!   engine (throughput = queries; the count is measured once per engine beforehand, it is
//!   deterministic for the seed). The ratio of the two is the bit-exact engine's speedup.
//!
//! Run: `cargo bench --bench attack_engine -- --warm-up-time 1 --measurement-time 3`.

use breakingbed::attack::genattack::{genattack_batch, GenAttackConfig};
use breakingbed::attack::spec::AttackSpec;
use breakingbed::attack::{run_white, Model, Scale};
use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn net(kind: VariantKind) -> Net {
    let n = breakingbed::model::builtin("resnet20", None, None).unwrap();
    let cn = apply(&n, &VariantSpec::new(kind)).unwrap();
    let p = params::init(&cn, 1);
    Net::new(cn, p).unwrap()
}

fn images(n: usize) -> (Array4<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen_range(0u8..=255) as f32 / 255.0);
    (x, (0..n).map(|i| i % 10).collect())
}

fn bench_pgd(c: &mut Criterion) {
    let fe = FloatEngine::new(net(VariantKind::Vanilla)).unwrap();
    let n = 128;
    let (x, y) = images(n);
    let iterations = 2;
    let spec = AttackSpec::from_toml(
        &format!(
            "attack = \"pgd\"\neps = {{ value = 0.5, scale = \"normalized\" }}\n\
             step = {{ value = 0.5, scale = \"normalized\" }}\niterations = {iterations}\n"
        ),
        "bench",
    )
    .unwrap();
    let mut g = c.benchmark_group("pgd_resnet20_float_batch128");
    g.sample_size(10);
    g.throughput(Throughput::Elements((n * iterations) as u64));
    g.bench_function("linf_2_iters", |b| {
        b.iter(|| run_white(&fe, &spec, &x, &y, 0).unwrap())
    });
    g.finish();
}

fn bench_genattack(c: &mut Criterion) {
    let xnor = || net(VariantKind::Xnor);
    let be = BinaryEngine::new(xnor()).unwrap();
    let fe = FloatEngine::new(xnor()).unwrap();
    let (x, y) = images(8);
    let targets: Vec<usize> = y.iter().map(|l| (l + 1) % 10).collect();
    let cfg = GenAttackConfig {
        generations: 20,
        eps: 8.0,
        scale: Scale::Pixel,
        ..GenAttackConfig::default()
    };
    let run = |m: &dyn Model| genattack_batch(m, x.view(), &y, Some(&targets), 0, &cfg, 3).unwrap();
    let queries = |m: &dyn Model| -> u64 { run(m).iter().map(|o| o.result.queries.unwrap()).sum() };
    let mut g = c.benchmark_group("genattack_resnet20_xnor_8img_20gen");
    g.sample_size(10);
    g.throughput(Throughput::Elements(queries(&be)));
    g.bench_function("bitwise_engine", |b| b.iter(|| run(&be)));
    g.throughput(Throughput::Elements(queries(&fe)));
    g.bench_function("float_engine", |b| b.iter(|| run(&fe)));
    g.finish();
}

criterion_group!(benches, bench_pgd, bench_genattack);
criterion_main!(benches);
