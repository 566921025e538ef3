//! Whole-network ResNet20 inference, float reference vs XNOR on the bit-exact binary engine, at
//! batch 1 and 128; throughput in images/s (criterion's "elem/s").
//!
//! Both run the executor in eval mode exactly as `bbed infer` does (`try_logits`), so the numbers
//! include normalisation, BN, activations and packing (no tape). The float ResNet20 is the
//! vanilla variant; the XNOR one keeps its first conv and last linear layer full precision (the
//! paper's setup). Run with a short measurement time on the shared machine:
//! `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`; single thread:
//! `RAYON_NUM_THREADS=1` in front. benches/onnx/resnet20_ort.py times onnxruntime on the same
//! weights for comparison.
//!
//! Measured 2026-11-26 (one session, two single-thread runs), images/s, 1 thread: float b1
//! 1,869 / 2,014, b128 1,875 / 1,896; XNOR b1 22,237 / 22,301 (11.90x / 11.07x), b128 21,614
//! / 21,808 (11.53x / 11.51x); onnxruntime b128 2,356. 2 threads, b128: float 3,488, XNOR
//! 37,945 (10.88x), onnxruntime 4,553.
//!
//! Portable build (no `target-cpu=native`; kernels chosen at run time, `engine::cpu`), A/B
//! against the native build of the commit before the change (same bench, both binaries run
//! interleaved A B A B on the same machine, 2026-12-06, quiet machine at load 1.0-2.1), images/s,
//! median of 3 runs, 1 thread, before / after: float b1 1,945 / 1,872, b128 1,935 / 1,955; XNOR
//! b1 22,610 / 22,239, b128 22,068 / 22,006; XNOR/float b1 11.6x / 11.9x, b128 11.4x / 11.3x.
//! 2 threads, b128, two runs each: float 3,640 and 3,803 / 3,611 and 3,702; XNOR 40,725 and
//! 42,510 / 41,672 and 42,306. After/before is 0.96-1.01 everywhere, within the run-to-run spread
//! (an earlier A/B at load 3-16, with other builds running, had 3-10x lower and overlapping numbers).

use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn net(kind: VariantKind) -> Net {
    let m = model::builtin("resnet20", None, None).unwrap();
    let cn = variant::apply(&m, &VariantSpec::new(kind)).unwrap();
    let p = params::init(&cn, 1);
    Net::new(cn, p).unwrap()
}

fn bench(c: &mut Criterion) {
    let float = FloatEngine::new(net(VariantKind::Vanilla)).unwrap();
    let xnor = BinaryEngine::new(net(VariantKind::Xnor)).unwrap();
    let mut g = c.benchmark_group("resnet20");
    g.sample_size(10);
    for batch in [1usize, 128] {
        let mut rng = ChaCha8Rng::seed_from_u64(batch as u64);
        let x = Array4::from_shape_simple_fn((batch, 3, 32, 32), || rng.gen::<f32>());
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("float", batch), &x, |b, x| {
            b.iter(|| float.try_logits(x).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("xnor_bitwise", batch), &x, |b, x| {
            b.iter(|| xnor.try_logits(x).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
