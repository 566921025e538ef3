//! PGD throughput (gradient iterations x images per second) on a CIFAR-sized batch of 128.
//! Stand-in model: the `testing::Mlp` fixture on 3x32x32 inputs until the ResNet20 float engine
//! implements `WhiteBox`; swap the model in `bench_pgd` then.
//! Run: `cargo bench --bench attack_white -- --warm-up-time 1 --measurement-time 3`.

use breakingbed::attack::spec::{AttackSpec, PgdSpec};
use breakingbed::attack::testing::Mlp;
use breakingbed::attack::threat::{Budget, Norm, Scale};
use breakingbed::attack::{run_white, Normalization};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn bench_pgd(c: &mut Criterion) {
    let mut m = Mlp::random([3, 32, 32], 128, 10, 1);
    m.norm = Normalization::cifar10();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 128;
    let x = Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen_range(0.0f32..1.0));
    let y: Vec<usize> = (0..n).map(|i| i % 10).collect();
    let iterations = 10;
    let spec = AttackSpec::Pgd(PgdSpec {
        norm: Norm::Linf,
        eps: Budget::new(8.0, Scale::Pixel).into(),
        step: Budget::new(2.0, Scale::Pixel).into(),
        iterations,
        restarts: 1,
        random_start: true,
        trace_every: 5,
        targeted: false,
        target: None,
    });
    let mut g = c.benchmark_group("pgd_mlp_cifar_batch128");
    g.sample_size(10);
    g.throughput(Throughput::Elements((n * iterations) as u64));
    g.bench_function("linf_10_iters", |b| {
        b.iter(|| run_white(&m, &spec, &x, &y, 0).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_pgd);
criterion_main!(benches);
