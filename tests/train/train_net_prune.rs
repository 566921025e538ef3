//! Pruning a trained network's weights ([`breakingbed::train::physical`]) against independent
//! truth:
//! - the pruned model's parameters and MACs, *measured* from its tensors and the feature-map
//!   sizes of an actual forward pass, equal the cost model's for the same rates;
//! - filter/channel: the physically smaller network computes exactly what the full network
//!   computes when the consumers' input channels of the removed filters are zeroed (a naive
//!   re-selection of those filters by l2 norm in this file), so slicing, BN and the residual
//!   structure are right;
//! - kernel/weight: masks keep the cost model's unit counts and stay fixed through fine-tuning.

use breakingbed::cost::{cost, NccParams};
use breakingbed::engine::exec::{ConvBackend, Mode, Net};
use breakingbed::engine::params;
use breakingbed::io::Dataset;
use breakingbed::model::{self, Network, Op};
use breakingbed::train::physical::{sparse_masks, structured};
use breakingbed::train::{
    apply_masks, train, NetModel, OptimizerConfig, Params, RunOptions, Schedule, TrainConfig,
    Trainable,
};
use breakingbed::variant::{apply, CompressedNetwork, Sparsity, VariantKind, VariantSpec};
use ndarray::{Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn base() -> Network {
    model::builtin("resnet8", Some([3, 12, 12]), Some(5)).unwrap()
}

/// Random weights with non-trivial BN statistics (so a wrongly sliced BN channel shows).
fn weights(cn: &CompressedNetwork, seed: u64) -> Params {
    let mut p = params::init(cn, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    for (k, t) in p.iter_mut() {
        if k.ends_with(".running_mean") || k.ends_with(".bias") {
            t.mapv_inplace(|_| rng.gen_range(-0.5..0.5));
        } else if k.ends_with(".running_var") {
            t.mapv_inplace(|_| rng.gen_range(0.5..2.0));
        } else if k.contains("bn") && k.ends_with(".weight") {
            t.mapv_inplace(|_| rng.gen_range(0.5..1.5));
        }
    }
    p
}

fn spec(kind: VariantKind, rate: f64) -> VariantSpec {
    let mut s = VariantSpec::new(kind);
    s.options.rate = rate;
    s
}

fn input(n: usize, seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn((n, 3, 12, 12), |_| rng.gen_range(0.0f32..1.0))
}

/// (params, MACs) of conv/linear layers measured from tensors (non-zero weights + biases) and
/// the output sizes of a forward pass.
fn measure(cn: &CompressedNetwork, p: &Params) -> (u64, u64) {
    let net = Net::new(cn.clone(), p.clone()).unwrap();
    let bw = net.binarize(false).unwrap();
    let (_, tape) = net
        .forward(&input(1, 0), Mode::Eval, ConvBackend::Float, &bw, false)
        .unwrap();
    let (mut params, mut macs) = (0u64, 0u64);
    for l in &cn.network.layers {
        if !matches!(l.op, Op::Conv { .. } | Op::Linear { .. }) {
            continue;
        }
        let nz = p[&format!("{}.weight", l.name)]
            .iter()
            .filter(|&&v| v != 0.0)
            .count() as u64;
        let bias = p
            .get(&format!("{}.bias", l.name))
            .map_or(0, |b| b.len() as u64);
        let y = net.layer_output(&tape, &l.name).unwrap();
        params += nz + bias;
        macs += nz * (y.dim().2 * y.dim().3) as u64;
    }
    (params, macs)
}

#[test]
fn structured_pruning_matches_cost_model_and_zeroed_full_network() {
    let net = base();
    let full = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let p = weights(&full, 1);
    let x = input(6, 9);
    for (kind, rate) in [
        (VariantKind::Filter, 0.5),
        (VariantKind::Channel, 0.5),
        (VariantKind::Channel, 0.3),
    ] {
        let s = spec(kind, rate);
        let (small, sp) = structured(&net, &p, &s).unwrap();
        // Loads exactly as `--variant channel --rate R` describes it.
        assert_eq!(small, apply(&net, &s).unwrap());
        let c = cost(&small, &NccParams::reference());
        let (mp, mm) = measure(&small, &sp);
        assert_eq!(mp, c.total.fp_params, "{kind:?} params");
        assert_eq!(mm, c.total.fp_macs, "{kind:?} MACs");
        assert!(mm < full.network.macs());

        // Naive truth: zero, in the full network, the consumer input channels of the filters a
        // plain l2-norm ranking removes; outputs must agree with the small network.
        let mut zeroed = p.clone();
        for (name, consumer) in [
            ("layer1.0.conv1", "layer1.0.conv2"),
            ("layer2.0.conv1", "layer2.0.conv2"),
            ("layer3.0.conv1", "layer3.0.conv2"),
        ] {
            let w = &p[&format!("{name}.weight")];
            let wc = &p[&format!("{consumer}.weight")];
            let n = w.shape()[0];
            let norm = |o: usize| -> f64 {
                match kind {
                    VariantKind::Filter => w
                        .index_axis(Axis(0), o)
                        .iter()
                        .map(|&v| (v as f64).powi(2))
                        .sum(),
                    _ => wc
                        .index_axis(Axis(1), o)
                        .iter()
                        .map(|&v| (v as f64).powi(2))
                        .sum(),
                }
            };
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| norm(a).partial_cmp(&norm(b)).unwrap().then(a.cmp(&b)));
            let removed = ((n as f64) * rate).round() as usize;
            let t = zeroed.get_mut(&format!("{consumer}.weight")).unwrap();
            for &o in &order[..removed] {
                t.index_axis_mut(Axis(1), o).fill(0.0);
            }
        }
        let run = |cn: &CompressedNetwork, p: &Params| {
            let n = Net::new(cn.clone(), p.clone()).unwrap();
            let bw = n.binarize(false).unwrap();
            n.forward(&x, Mode::Eval, ConvBackend::Float, &bw, false)
                .unwrap()
                .0
        };
        let (a, b) = (run(&full, &zeroed), run(&small, &sp));
        let diff = (&a - &b).mapv(f32::abs).fold(0f32, |m, &v| m.max(v));
        assert!(diff < 1e-4, "{kind:?}@{rate}: max logit difference {diff}");
    }
}

#[test]
fn sparse_masks_match_cost_model_and_stay_fixed_in_finetuning() {
    let net = base();
    let full = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let p = weights(&full, 2);
    for kind in [VariantKind::Kernel, VariantKind::Weight] {
        let s = spec(kind, 0.6);
        let cn = apply(&net, &s).unwrap();
        let masks = sparse_masks(&net, &p, &s).unwrap();
        let mut mp = p.clone();
        apply_masks(&mut mp, &masks).unwrap();
        let c = cost(&cn, &NccParams::reference());
        let (params_measured, macs_measured) = measure(&cn, &mp);
        assert_eq!(params_measured, c.total.fp_params, "{kind:?} params");
        assert_eq!(macs_measured, c.total.fp_macs, "{kind:?} MACs");
        for (l, lc) in cn.network.layers.iter().zip(&cn.layers) {
            let has_mask = masks.contains_key(&format!("{}.weight", l.name));
            assert_eq!(
                has_mask,
                matches!(lc.sparsity, Sparsity::Sparse { .. }),
                "{}",
                l.name
            );
        }

        // Fine-tune a few steps; pruned weights stay exactly zero, kept ones move.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let images = Array4::from_shape_fn((40, 3, 12, 12), |_| rng.gen_range(0u8..=255));
        let labels: Vec<u16> = (0..40).map(|i| (i % 5) as u16).collect();
        let data = Dataset::new(images, labels, 5, "synthetic").unwrap();
        let mut m = NetModel::new(cn.clone(), mp.clone()).unwrap();
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 10,
            eval_batch_size: 40,
            seed: 1,
            optimizer: OptimizerConfig::sgd(0.9, 1e-3),
            schedule: Schedule::Constant { lr: 0.05 },
            augment_pad: None,
            kd: None,
            checkpoint_every: None,
        };
        train(
            &mut m,
            &data,
            &data,
            &cfg,
            &RunOptions::default(),
            None,
            masks.clone(),
        )
        .unwrap();
        for (k, mask) in &masks {
            let after = &m.params()[k];
            let before = &mp[k];
            let mut moved = 0;
            for ((a, b), mk) in after.iter().zip(before.iter()).zip(mask.iter()) {
                if *mk == 0.0 {
                    assert_eq!(*a, 0.0, "{k}: pruned weight moved");
                } else if a != b {
                    moved += 1;
                }
            }
            assert!(moved > 0, "{k}: kept weights did not train");
        }
    }
}
