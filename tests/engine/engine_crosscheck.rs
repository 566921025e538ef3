//! The bit-exact binarized engine against the float reference on whole networks: integer
//! accumulators of every binarized layer equal, logits identical (the executor evaluates both
//! with the same scaling order, see `engine::exec`), predictions identical.

use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn engines(
    model_name: &str,
    kind: VariantKind,
    m: usize,
    n: usize,
    seed: u64,
) -> (FloatEngine, BinaryEngine) {
    let net = model::builtin(model_name, None, None).unwrap();
    let mut spec = VariantSpec::new(kind);
    spec.options.m = m;
    spec.options.n = n;
    let cn = variant::apply(&net, &spec).unwrap();
    let p = params::init(&cn, seed);
    (
        FloatEngine::new(Net::new(cn.clone(), p.clone()).unwrap()).unwrap(),
        BinaryEngine::new(Net::new(cn, p).unwrap()).unwrap(),
    )
}

fn images(n: usize, seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen::<f32>())
}

fn check(model_name: &str, kind: VariantKind, m: usize, n: usize) {
    let (f, b) = engines(model_name, kind, m, n, 7);
    let x = images(3, 11);
    let (lf, tf) = f.run(&x, true).unwrap();
    let (lb, tb) = b.run(&x, true).unwrap();
    assert!(!tf.accumulators.is_empty());
    assert_eq!(tf.accumulators.len(), tb.accumulators.len());
    for ((li, i, j, sf), (_, _, _, sb)) in tf.accumulators.iter().zip(&tb.accumulators) {
        assert_eq!(sf, sb, "layer {li} base ({i},{j}) accumulators differ");
        // +/-1 sums are integers.
        assert!(sf.iter().all(|v| v.fract() == 0.0));
    }
    assert_eq!(lf, lb, "{model_name} {kind:?}: logits differ");
}

#[test]
fn xnor_resnet20_engines_agree_exactly() {
    check("resnet20", VariantKind::Xnor, 1, 1);
}

#[test]
fn abc_3x3_resnet8_engines_agree_exactly() {
    check("resnet8", VariantKind::Abc, 3, 3);
}
