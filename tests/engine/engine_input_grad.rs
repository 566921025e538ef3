//! The attacks' gradient path (`Net::forward_taped_eval` + `Net::input_grad`, and the one-call
//! `Net::logits_and_input_grad`): logits bit-identical to inference, input gradients equal to
//! the full backward pass's to rounding (a second walk: batch tape, parameter gradients,
//! grouped GEMMs, col2im for strided convs; engine_gradcheck.rs checks that one against central
//! finite differences), and each image's gradient bitwise independent of the images beside it
//! and of the thread count.

use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::{BinWeights, ConvBackend, Mode, Net};
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::{s, Array1, Array2, Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// ResNet8 with non-trivial BN statistics (so eval BN is not the identity).
fn net(kind: VariantKind, seed: u64) -> Net {
    let m = model::builtin("resnet8", None, None).unwrap();
    let cn = variant::apply(&m, &VariantSpec::new(kind)).unwrap();
    let mut p = params::init(&cn, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for (name, t) in p.iter_mut() {
        if name.ends_with("running_mean") || name.contains("bn") && name.ends_with(".bias") {
            t.mapv_inplace(|_| rng.gen_range(-0.3..0.3));
        } else if name.ends_with("running_var") || name.contains("bn") && name.ends_with(".weight")
        {
            t.mapv_inplace(|_| rng.gen_range(0.5..1.5));
        }
    }
    Net::new(cn, p).unwrap()
}

fn images(n: usize, seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_simple_fn((n, 3, 32, 32), || rng.gen::<f32>())
}

fn two_call(
    net: &Net,
    bw: &[Option<BinWeights>],
    x: &Array4<f32>,
    c: &Array2<f32>,
) -> (Array2<f32>, Array4<f32>) {
    let (z, tape) = net.forward_taped_eval(x, bw).unwrap();
    (z, net.input_grad(&tape, bw, c).unwrap())
}

fn max_rel(a: &Array4<f32>, b: &Array4<f32>) -> f32 {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn logits_equal_inference_and_gradients_equal_the_full_backward() {
    for kind in [VariantKind::Vanilla, VariantKind::Xnor, VariantKind::Abc] {
        let net = net(kind, 4);
        let bw = net.binarize(false).unwrap();
        let x = images(3, 9);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let c = Array2::from_shape_simple_fn((3, 10), || StandardNormal.sample(&mut rng));
        let (z, g) = two_call(&net, &bw, &x, &c);
        // Logits: bit-identical to the tape-free inference path.
        let zi = net.infer(&x, ConvBackend::Float, &bw).unwrap();
        assert_eq!(z, zi, "{kind:?}: logits differ from Net::infer");
        // Gradient: the full backward (batch tape, parameter gradients on) to rounding.
        let (_, tape) = net
            .forward(&x, Mode::Eval, ConvBackend::Float, &bw, false)
            .unwrap();
        let full = net.backward(&tape, &bw, &c, true).unwrap().input;
        let err = max_rel(&g, &full);
        assert!(
            err < 1e-4,
            "{kind:?}: input_grad vs backward, max rel err {err}"
        );
        assert!(
            full.iter().any(|v| v.abs() > 1e-6),
            "{kind:?}: zero gradient"
        );
        // input_grad also reads an ordinary batch tape.
        let g2 = net.input_grad(&tape, &bw, &c).unwrap();
        assert!(
            max_rel(&g2, &full) < 1e-4,
            "{kind:?}: input_grad on a batch tape"
        );
    }
}

#[test]
fn an_images_gradient_is_bitwise_independent_of_its_batch_and_the_thread_count() {
    for kind in [VariantKind::Vanilla, VariantKind::Xnor] {
        let net = net(kind, 7);
        let bw = net.binarize(false).unwrap();
        let x = images(5, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let c = Array2::from_shape_simple_fn((5, 10), || StandardNormal.sample(&mut rng));
        let pool = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        let (z1, g1) = pool(1).install(|| two_call(&net, &bw, &x, &c));
        let (z2, g2) = pool(2).install(|| two_call(&net, &bw, &x, &c));
        assert_eq!(z1, z2, "{kind:?}: logits depend on the thread count");
        assert_eq!(g1, g2, "{kind:?}: gradients depend on the thread count");
        // Image 3 alone, and image 3 first in a batch with other images.
        let others = images(2, 99);
        let x3 = x.slice(s![3..4, .., .., ..]).to_owned();
        let c3 = c.slice(s![3..4, ..]).to_owned();
        let mixed = ndarray::concatenate(Axis(0), &[x3.view(), others.view()]).unwrap();
        let cm = ndarray::concatenate(Axis(0), &[c3.view(), c.slice(s![0..2, ..])]).unwrap();
        for t in [1, 2] {
            let (za, ga) = pool(t).install(|| two_call(&net, &bw, &x3, &c3));
            let (zb, gb) = pool(t).install(|| two_call(&net, &bw, &mixed, &cm));
            let want = g1.slice(s![3..4, .., .., ..]);
            assert_eq!(
                ga.view(),
                want,
                "{kind:?}, {t} threads: alone vs in the batch"
            );
            assert_eq!(
                gb.slice(s![0..1, .., .., ..]),
                want,
                "{kind:?}, {t} threads: other batch"
            );
            assert_eq!(za.row(0), z1.row(3));
            assert_eq!(zb.row(0), z1.row(3));
        }
        // The one-call route gives the same bits.
        let (zf, gf) = pool(2)
            .install(|| net.logits_and_input_grad(&x, &bw, |i, _| Ok(c.row(i).to_owned())))
            .unwrap();
        assert_eq!(zf, z1, "{kind:?}: fused logits");
        assert_eq!(gf, g1, "{kind:?}: fused gradients");
    }
}

#[test]
fn mismatched_dlogits_are_errors() {
    let net = net(VariantKind::Vanilla, 1);
    let bw = net.binarize(false).unwrap();
    let x = images(2, 1);
    let (_, tape) = net.forward_taped_eval(&x, &bw).unwrap();
    let e = net
        .input_grad(&tape, &bw, &Array2::zeros((3, 10)))
        .unwrap_err();
    assert!(e.to_string().contains("dlogits"), "{e}");
    let e = net
        .backward(&tape, &bw, &Array2::zeros((2, 10)), false)
        .err()
        .expect("an error");
    assert!(e.to_string().contains("input_grad"), "{e}");
    let e = net
        .logits_and_input_grad(&x, &bw, |_, _| Ok(Array1::zeros(4)))
        .unwrap_err();
    assert!(e.to_string().contains("dloss"), "{e}");
    // The engine's classifier keeps giving the same gradients (the old route).
    let fe = FloatEngine::new(net).unwrap();
    assert!(fe.try_input_vjp(&x, &Array2::ones((2, 10))).is_ok());
}
