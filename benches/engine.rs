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
//! against the native build of the previous commit, same machine, interleaved, 2026-12-06 at
//! load 3.1-3.6 (other builds running), images/s, median of 3 (range): 1 thread, before / after:
//! float b1 1,742 (1,575-1,772) / 1,658 (1,194-1,733); b128 1,526 (1,209-1,605) / 1,592
//! (1,516-1,778); XNOR b1 19,241 (18,753-20,926) / 19,782 (14,362-20,521); b128 16,622
//! (13,055-18,149) / 15,187 (14,372-17,673); XNOR/float b1 11.0x / 11.9x, b128 10.9x / 9.5x.
//! 2 threads, one run each: float b128 1,880 / 1,880, XNOR b128 25,738 / 20,643. The
//! differences are within the run-to-run spread of this shared machine.

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
