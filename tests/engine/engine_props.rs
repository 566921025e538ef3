//! Property tests: on random small networks (custom TOML with random channel counts that cross the
//! 64-bit word boundary, kernels, strides, paddings, input sizes) and on ResNet8 with random input
//! shapes, the bit-exact binary engine and the float reference agree exactly for XNOR and for
//! ABC with M, N in 1..=3: every integer accumulator equal, logits bit-identical, predictions
//! identical. The float reference is the independent side: it computes the +/-1 sums by float
//! GEMM on +/-1 tensors, the binary engine by XNOR + popcount on packed words.

use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::model::{self, Network};
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::Array4;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
struct Shape {
    c: usize,
    h: usize,
    w: usize,
    c1: usize,
    c2: usize,
    k2: usize,
    s2: usize,
    p2: usize,
    k3: usize,
    s3: usize,
}

fn toml_net(s: &Shape) -> String {
    format!(
        r#"
name = "prop"
input = [{c}, {h}, {w}]
num_classes = 7

[[layers]]
name = "conv1"
op = "conv"
out_c = {c1}
kernel = 3
padding = 1

[[layers]]
name = "bn1"
op = "batch_norm"

[[layers]]
name = "act1"
op = "hardtanh"

[[layers]]
name = "conv2"
op = "conv"
out_c = {c2}
kernel = {k2}
stride = {s2}
padding = {p2}

[[layers]]
name = "bn2"
op = "batch_norm"

[[layers]]
name = "act2"
op = "hardtanh"

[[layers]]
name = "conv3"
op = "conv"
out_c = {c2}
kernel = {k3}
stride = {s3}
padding = {p3}

[[layers]]
name = "gap"
op = "global_avg_pool"

[[layers]]
name = "fc"
op = "linear"
out_f = 7
"#,
        c = s.c,
        h = s.h,
        w = s.w,
        c1 = s.c1,
        c2 = s.c2,
        k2 = s.k2,
        s2 = s.s2,
        p2 = s.p2,
        k3 = s.k3,
        s3 = s.s3,
        p3 = s.k3 / 2,
    )
}

fn shapes() -> impl Strategy<Value = Shape> {
    (
        (1usize..4, 7usize..12, 7usize..12),
        (1usize..80, 1usize..80),
        (prop_oneof![Just(1usize), Just(3)], 1usize..3, 0usize..2),
        (prop_oneof![Just(1usize), Just(3)], 1usize..3),
    )
        .prop_map(|((c, h, w), (c1, c2), (k2, s2, p2), (k3, s3))| Shape {
            c,
            h,
            w,
            c1,
            c2,
            k2,
            s2,
            p2,
            k3,
            s3,
        })
}

fn spec(xnor: bool, m: usize, n: usize) -> VariantSpec {
    let mut s = VariantSpec::new(if xnor {
        VariantKind::Xnor
    } else {
        VariantKind::Abc
    });
    s.options.m = m;
    s.options.n = n;
    s
}

/// Runs both engines on random images and checks exact agreement.
fn agree(net: &Network, spec: &VariantSpec, seed: u64, batch: usize) -> Result<(), TestCaseError> {
    let cn = variant::apply(net, spec).unwrap();
    let mut p = params::init(&cn, seed);
    // Random BN statistics and affine parameters (negative scales too) so sign inputs are
    // not all centred the same way, and a binary layer's sign interval (the inference path
    // turns a binary conv's sums straight into the next conv's sign bits) lies anywhere and
    // points either way.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bns: Vec<String> = cn
        .network
        .layers
        .iter()
        .filter(|l| matches!(l.op, model::Op::BatchNorm { .. }))
        .map(|l| format!("{}.", l.name))
        .collect();
    for (name, t) in p.iter_mut() {
        if !bns.iter().any(|b| name.starts_with(b.as_str())) {
            continue;
        }
        if name.ends_with("running_mean") {
            t.mapv_inplace(|_| rng.gen_range(-0.5..0.5));
        } else if name.ends_with("running_var") {
            t.mapv_inplace(|_| rng.gen_range(0.2..2.0));
        } else if name.ends_with(".weight") {
            t.mapv_inplace(|_| rng.gen_range(-1.5..1.5));
        } else if name.ends_with(".bias") {
            t.mapv_inplace(|_| rng.gen_range(-0.5..0.5));
        }
    }
    let f = FloatEngine::new(Net::new(cn.clone(), p.clone()).unwrap()).unwrap();
    let b = BinaryEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let [c, h, w] = net.input;
    let x = Array4::from_shape_simple_fn((batch, c, h, w), || rng.gen::<f32>());
    let (lf, tf) = f.run(&x, true).unwrap();
    let (lb, tb) = b.run(&x, true).unwrap();
    let pairs = spec.options.m * spec.options.n;
    prop_assert!(!tf.accumulators.is_empty());
    prop_assert_eq!(tf.accumulators.len(), tb.accumulators.len());
    prop_assert_eq!(tf.accumulators.len() % pairs, 0);
    for ((li, i, j, sf), (lj, _, _, sb)) in tf.accumulators.iter().zip(&tb.accumulators) {
        prop_assert_eq!(li, lj);
        prop_assert!(sf == sb, "layer {li} base ({i},{j}) accumulators differ");
    }
    prop_assert!(lf == lb, "logits differ:\n{lf:?}\n{lb:?}");
    // The tape-free inference path (what try_logits uses) is the same arithmetic.
    prop_assert!(
        f.try_logits(&x).unwrap() == lf,
        "float infer path differs from run"
    );
    prop_assert!(
        b.try_logits(&x).unwrap() == lb,
        "binary infer path differs from run"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn custom_nets_binary_equals_float(
        s in shapes(),
        xnor in any::<bool>(),
        m in 1usize..4,
        n in 1usize..4,
        seed in any::<u64>(),
    ) {
        let net = model::custom::from_toml_str(&toml_net(&s), "prop").unwrap();
        let (m, n) = if xnor { (1, 1) } else { (m, n) };
        agree(&net, &spec(xnor, m, n), seed, 2)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Vanilla nets: the tape-free inference path (image by image, with conv + BN + add +
    /// activation fused) equals the taped forward pass on the whole batch bit for bit (including ReLU, max pooling and the
    /// option-A / 1x1 shortcuts of ResNet8).
    #[test]
    fn infer_path_equals_taped_forward(s in shapes(), relu in any::<bool>(), resnet in any::<bool>(), seed in any::<u64>()) {
        let net = if resnet {
            model::builtin("resnet8", Some([s.c, s.h + 4, s.w + 4]), None).unwrap()
        } else {
            let text = toml_net(&s).replace("hardtanh", if relu { "relu" } else { "hardtanh" });
            model::custom::from_toml_str(&text, "prop").unwrap()
        };
        let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
        let f = FloatEngine::new(Net::new(cn.clone(), params::init(&cn, seed)).unwrap()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [c, h, w] = net.input;
        // Batches of several images too: inference runs image by image, the taped pass on the
        // whole batch, so this also checks that an image's result does not depend on its batch.
        let n = 1 + (seed % 3) as usize * 5;
        let x = Array4::from_shape_simple_fn((n, c, h, w), || rng.gen::<f32>());
        let (l, _) = f.run(&x, false).unwrap();
        prop_assert!(f.try_logits(&x).unwrap() == l);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn resnet8_random_input_shapes_binary_equals_float(
        c in 1usize..4,
        h in 8usize..17,
        w in 8usize..17,
        xnor in any::<bool>(),
        m in 1usize..4,
        n in 1usize..4,
        seed in any::<u64>(),
    ) {
        let net = model::builtin("resnet8", Some([c, h, w]), None).unwrap();
        let (m, n) = if xnor { (1, 1) } else { (m, n) };
        agree(&net, &spec(xnor, m, n), seed, 2)?;
    }
}

/// Batch-norms that follow no conv head their own fused group (BN, residual add, activation):
/// still bit-identical to the taped pass, for the float and both binarized variants.
#[test]
fn batch_norm_after_a_pool_fuses_with_its_add_and_activation() {
    let text = r#"
name = "bnhead"
input = [2, 8, 8]
num_classes = 5

[[layers]]
name = "conv1"
op = "conv"
out_c = 6
kernel = 3
padding = 1

[[layers]]
name = "pool"
op = "max_pool"
kernel = 2
stride = 2

[[layers]]
name = "bn"
op = "batch_norm"

[[layers]]
name = "add"
op = "add"
inputs = ["bn", "pool"]

[[layers]]
name = "act"
op = "hardtanh"

[[layers]]
name = "conv2"
op = "conv"
out_c = 6
kernel = 3
padding = 1

[[layers]]
name = "gap"
op = "global_avg_pool"

[[layers]]
name = "fc"
op = "linear"
out_f = 5
"#;
    let net = model::custom::from_toml_str(text, "bnhead").unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let mut p = params::init(&cn, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (name, t) in p.iter_mut() {
        if name.ends_with("running_mean") {
            t.mapv_inplace(|_| rng.gen_range(-0.5..0.5));
        }
    }
    let f = FloatEngine::new(Net::new(cn, p).unwrap()).unwrap();
    let x = Array4::from_shape_simple_fn((3, 2, 8, 8), || rng.gen::<f32>());
    let (l, _) = f.run(&x, false).unwrap();
    assert!(f.try_logits(&x).unwrap() == l);
    for (xnor, m, n) in [(true, 1, 1), (false, 2, 2)] {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        agree(&net, &spec(xnor, m, n), rng.gen(), 3).unwrap();
    }
}

/// The inference plan turns every ResNet20-XNOR block's first binary conv into a producer of
/// sign bits for the second (its output reaches only that conv, through BN and hardtanh),
/// and nothing else: the second convs feed residual adds, the vanilla net has no binary
/// layers. The second convs of all blocks but the last (read by the pooling) also frame their
/// float output's signs for the next block's first conv.
#[test]
fn resnet20_xnor_plans_sign_bits_for_each_block() {
    let net = model::builtin("resnet20", None, None).unwrap();
    for (kind, want, framed) in [(VariantKind::Xnor, 9, 8), (VariantKind::Vanilla, 0, 0)] {
        let cn = variant::apply(&net, &VariantSpec::new(kind)).unwrap();
        let n = Net::new(cn.clone(), params::init(&cn, 1)).unwrap();
        let bw = n.binarize(true).unwrap();
        let plan = n.infer_plan(&bw).unwrap();
        assert_eq!(plan.sign_bit_layers(), want, "{kind:?}");
        assert_eq!(plan.framed_float_layers(), framed, "{kind:?}");
    }
}
