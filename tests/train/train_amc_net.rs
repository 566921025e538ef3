//! The AMC environment on real networks: which layers it offers, that its FLOPs are the cost
//! model's (and a hand count), that its masks remove the lowest-l2 channels, and, on a small CNN
//! trained here on a Fashion-MNIST subset, that the agent's rates beat uniform rates at the same
//! FLOPs budget on the validation split (without fine-tuning, as AMC's reward).
//!
//! Sizes are scaled down for CI: 4,000 training images, 3 epochs, 1,000 validation images, an
//! agent with 64-unit layers, 100 episodes of which 30 warm-up (AMC: 300 units, 800/100).

use breakingbed::engine::exec::{ConvBackend, Mode, Net};
use breakingbed::engine::ops::loss::softmax_cross_entropy;
use breakingbed::engine::params;
use breakingbed::io::idx::{load_mnist_dir, FASHION_MNIST_DIR};
use breakingbed::io::Dataset;
use breakingbed::model::{builtin, custom::from_toml_str, Network};
use breakingbed::train::amc::{search, uniform_rate, AmcConfig, NetPruneEnv, PruneEnv};
use breakingbed::train::{Optimizer, OptimizerConfig};
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::{Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::time::Instant;

fn vanilla(net: &Network, seed: u64) -> Net {
    let cn = variant::apply(net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    let p = params::init(&cn, seed);
    Net::new(cn, p).unwrap()
}

/// `n` random images of the given shape with random labels (structure tests only).
fn noise_set(n: usize, shape: [usize; 3], classes: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let imgs = Array4::from_shape_fn((n, shape[0], shape[1], shape[2]), |_| rng.gen::<u8>());
    let labels = (0..n).map(|_| rng.gen_range(0..classes) as u16).collect();
    Dataset::new(imgs, labels, classes, "noise").unwrap()
}

#[test]
fn resnet8_env_offers_block_convs_and_counts_flops_like_the_cost_model() {
    let net = builtin("resnet8", None, None).unwrap();
    let env = NetPruneEnv::new(vanilla(&net, 1), &noise_set(8, [3, 32, 32], 10, 2)).unwrap();
    let names: Vec<String> = env.layers().into_iter().map(|l| l.name).collect();
    // Only the inner conv of each basic block: the other convs feed residual adds.
    assert_eq!(
        names,
        ["layer1.0.conv2", "layer2.0.conv2", "layer3.0.conv2"]
    );
    assert_eq!(env.flops(&[0.0; 3]).unwrap(), net.macs() as f64);
    // Hand count: removing k of the 16 channels between layer1.0.conv1 and conv2 (both 3x3,
    // 16 -> 16 at 32x32) saves k * 16*9*32*32 MACs in each of the two convs.
    let r = 0.3; // round(0.3 * 16) = 5 channels
    let saved = 2.0 * 5.0 * (16 * 9 * 32 * 32) as f64;
    assert_eq!(
        env.flops(&[r, 0.0, 0.0]).unwrap(),
        net.macs() as f64 - saved
    );
    // And equal to the cost model reading the same rates as a rates TOML.
    let rates = [0.3, 0.55, 0.7];
    let mut spec = VariantSpec::new(VariantKind::Channel);
    spec.options.rate = 0.0;
    spec.options.rates = names.iter().cloned().zip(rates).collect();
    assert_eq!(
        env.flops(&rates).unwrap(),
        variant::apply(&net, &spec).unwrap().network.macs() as f64
    );
}

#[test]
fn masks_zero_the_lowest_l2_input_channels_of_the_consumer() {
    let net = builtin("resnet8", None, None).unwrap();
    let env = NetPruneEnv::new(vanilla(&net, 4), &noise_set(4, [3, 32, 32], 10, 2)).unwrap();
    let p = env.masked_params(&[0.0, 0.5, 0.0]).unwrap();
    let w = &p["layer2.0.conv2.weight"];
    let orig = &vanilla(&net, 4).params["layer2.0.conv2.weight"];
    // Naive ranking: l2 norm of each input channel over (out, kh, kw), ascending.
    let c = orig.shape()[1];
    let mut norms: Vec<(f64, usize)> = (0..c)
        .map(|i| {
            let v = orig.index_axis(Axis(1), i);
            (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt(), i)
        })
        .collect();
    norms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let gone: Vec<usize> = norms[..c / 2].iter().map(|&(_, i)| i).collect();
    for i in 0..c {
        let zero = w.index_axis(Axis(1), i).iter().all(|&v| v == 0.0);
        assert_eq!(zero, gone.contains(&i), "channel {i}");
    }
    // Other layers are untouched.
    assert_eq!(
        p["layer1.0.conv2.weight"],
        vanilla(&net, 4).params["layer1.0.conv2.weight"]
    );
    assert!(env.masked_params(&[0.0, 1.0, 0.0]).is_err());
    assert!(env.masked_params(&[0.0, 0.5]).is_err());
}

#[test]
fn binarized_models_are_rejected() {
    let net = builtin("resnet8", None, None).unwrap();
    let cn = variant::apply(&net, &VariantSpec::new(VariantKind::Xnor)).unwrap();
    let p = params::init(&cn, 1);
    let e = NetPruneEnv::new(Net::new(cn, p).unwrap(), &noise_set(4, [3, 32, 32], 10, 2))
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("variant:"), "{e}");
    let e = NetPruneEnv::new(vanilla(&net, 1), &noise_set(4, [1, 28, 28], 10, 2))
        .err()
        .unwrap();
    assert!(e.to_string().contains("validation set"), "{e}");
}

/// conv2 is deliberately wide (64 filters from 8 input channels) and conv1 narrow, so layers differ
/// in redundancy as in real networks (AMC's point: uniform rates ignore this).
const CNN: &str = r#"
name = "amc-cnn"
input = [1, 28, 28]
num_classes = 10
[normalization]
mean = [0.2860]
std = [0.3530]
[[layers]]
name = "conv1"
op = "conv"
out_c = 8
kernel = 3
stride = 2
padding = 1
bias = true
[[layers]]
name = "relu1"
op = "relu"
[[layers]]
name = "conv2"
op = "conv"
out_c = 64
kernel = 3
stride = 2
padding = 1
bias = true
[[layers]]
name = "relu2"
op = "relu"
[[layers]]
name = "conv3"
op = "conv"
out_c = 16
kernel = 3
padding = 1
bias = true
[[layers]]
name = "relu3"
op = "relu"
[[layers]]
name = "conv4"
op = "conv"
out_c = 16
kernel = 3
padding = 1
bias = true
[[layers]]
name = "relu4"
op = "relu"
[[layers]]
name = "pool"
op = "global_avg_pool"
[[layers]]
name = "fc"
op = "linear"
out_f = 10
"#;

/// Adam, batch 64: enough for a clearly-above-chance model in seconds.
fn train(net: &mut Net, data: &Dataset, epochs: usize, seed: u64) {
    let bw = net.binarize(false).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::adam()).unwrap();
    for e in 0..epochs {
        let order = data.shuffled_indices(seed + e as u64);
        for chunk in order.chunks(64) {
            let b = data.subset(chunk).unwrap();
            let x = b.to_unit(0..b.len()).unwrap();
            let y: Vec<usize> = b
                .labels_of(0..b.len())
                .unwrap()
                .iter()
                .map(|&l| l as usize)
                .collect();
            let (logits, tape) = net
                .forward(&x, Mode::Train, ConvBackend::Float, &bw, false)
                .unwrap();
            let (_, dl) = softmax_cross_entropy(&logits, &y).unwrap();
            let g = net.backward(&tape, &bw, &dl, true).unwrap();
            opt.step(&mut net.params, &g.params, 3e-3).unwrap();
        }
    }
}

#[test]
fn agent_beats_uniform_rates_at_equal_flops_on_fashion_mnist() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FASHION_MNIST_DIR} is missing: apt-get install -y dataset-fashion-mnist"
        );
        eprintln!(
            "skipping: {FASHION_MNIST_DIR} is absent (apt-get install -y dataset-fashion-mnist)"
        );
        return;
    }
    let t0 = Instant::now();
    let (train_all, test) = load_mnist_dir(FASHION_MNIST_DIR).unwrap();
    let train_all = train_all.unwrap();
    let order = train_all.shuffled_indices(17);
    let train_set = train_all.subset(&order[..4000]).unwrap();
    let val = train_all.subset(&order[4000..5000]).unwrap();
    let test = test.sample(1000, 3).unwrap();
    let network = from_toml_str(CNN, "amc-cnn").unwrap();
    let mut net = vanilla(&network, 5);
    train(&mut net, &train_set, 3, 100);
    let t_train = t0.elapsed().as_secs_f64();
    let params = net.params.clone();
    let mut env = NetPruneEnv::new(net, &val).unwrap();
    let unpruned = env.evaluate(&[0.0; 3]).unwrap();
    assert!(
        unpruned > 0.6,
        "trained CNN reaches only {unpruned} on validation"
    );

    let budget = 0.5;
    let mut cfg = AmcConfig::amc(budget);
    cfg.episodes = 100;
    cfg.warmup = 30;
    cfg.ddpg.hidden = vec![64, 64];
    cfg.ddpg.batch_size = 32;
    let res = search(&mut env, &cfg, 9).unwrap();
    let warm_best = res.history[..cfg.warmup]
        .iter()
        .map(|e| e.accuracy)
        .fold(0.0, f64::max);
    let names: Vec<String> = env.layers().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["conv2", "conv3", "conv4"]);
    let agent: Vec<f64> = names.iter().map(|n| res.rates[n]).collect();
    let full = env.flops(&[0.0; 3]).unwrap();
    let u = uniform_rate(&env, budget, cfg.rbound).unwrap();
    let uni = [u; 3];
    // Equal budget: both within it, the agent's measured FLOPs are the cost model's.
    assert!(env.flops(&agent).unwrap() <= budget * full);
    assert!(env.flops(&uni).unwrap() <= budget * full);
    let acc_agent = env.evaluate(&agent).unwrap();
    let acc_uni = env.evaluate(&uni).unwrap();
    assert_eq!(acc_agent, res.accuracy, "evaluation is deterministic");

    // Held-out test split, for the report only (the agent never saw it).
    let mut test_env =
        NetPruneEnv::new(Net::new(env_cn(&network), params).unwrap(), &test).unwrap();
    let (t_agent, t_uni) = (
        test_env.evaluate(&agent).unwrap(),
        test_env.evaluate(&uni).unwrap(),
    );
    eprintln!(
        "AMC on a 4-conv CNN (Fashion-MNIST, 4k train / 1k val): unpruned val {unpruned:.3}; \
         budget {budget}: agent rates {agent:.3?} FLOPs {:.3} val {acc_agent:.3} test {t_agent:.3}; \
         uniform rate {u:.3} FLOPs {:.3} val {acc_uni:.3} test {t_uni:.3}; best episode {} \
         (best warm-up val {warm_best:.3}); train {t_train:.1}s, total {:.1}s",
        env.flops(&agent).unwrap() / full,
        env.flops(&uni).unwrap() / full,
        res.best_episode,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        acc_agent > acc_uni,
        "agent {acc_agent} does not beat uniform {acc_uni} on validation"
    );
    // The margin is wide enough (about 0.1 here) to hold on held-out data too.
    assert!(
        t_agent > t_uni,
        "agent {t_agent} does not beat uniform {t_uni} on the test split"
    );

    // The written rates file drives the cost model to the same FLOPs.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("amc_rates.toml");
    res.write_toml(&p).unwrap();
    let rates: std::collections::BTreeMap<String, f64> =
        toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let mut spec = VariantSpec::new(VariantKind::Channel);
    spec.options.rate = 0.0;
    spec.options.rates = rates;
    let pruned = variant::apply(&network, &spec).unwrap().network;
    assert_eq!(pruned.macs() as f64, env.flops(&agent).unwrap());
}

fn env_cn(net: &Network) -> breakingbed::variant::CompressedNetwork {
    variant::apply(net, &VariantSpec::new(VariantKind::Vanilla)).unwrap()
}

#[test]
fn search_on_a_network_is_the_same_for_any_thread_count() {
    let net = builtin("resnet8", None, None).unwrap();
    let val = noise_set(16, [3, 32, 32], 10, 8);
    let mut cfg = AmcConfig::amc(0.8);
    cfg.episodes = 4;
    cfg.warmup = 2;
    cfg.ddpg.hidden = vec![16];
    cfg.ddpg.batch_size = 8;
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut env = NetPruneEnv::new(vanilla(&net, 3), &val).unwrap();
                search(&mut env, &cfg, 21).unwrap()
            })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert!(one.history.iter().all(|e| e.flops_ratio <= 0.8));
}

/// Input channels of `w` ([out, in, k, k]) ranked by l2 norm: the `k` lowest, ties to the lower
/// index (naive reference for the environment's masks).
fn lowest_channels(w: &ndarray::ArrayD<f32>, k: usize) -> Vec<usize> {
    let mut norms: Vec<(f64, usize)> = (0..w.shape()[1])
        .map(|i| {
            let v = w.index_axis(Axis(1), i);
            (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>(), i)
        })
        .collect();
    norms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    norms[..k].iter().map(|&(_, i)| i).collect()
}

fn keep_along(t: &ndarray::ArrayD<f32>, axis: usize, gone: &[usize]) -> ndarray::ArrayD<f32> {
    let keep: Vec<usize> = (0..t.shape()[axis]).filter(|i| !gone.contains(i)).collect();
    t.select(Axis(axis), &keep)
}

#[test]
fn masked_evaluation_equals_the_physically_pruned_network() {
    let network = from_toml_str(CNN, "amc-cnn").unwrap();
    let net = vanilla(&network, 12);
    let full_params = net.params.clone();
    let val = noise_set(12, [1, 28, 28], 10, 4);
    let env = NetPruneEnv::new(vanilla(&network, 12), &val).unwrap();
    let rates = [0.5, 0.3, 0.25]; // inputs of conv2 (8 ch), conv3 (64), conv4 (16)
    let masked = env.masked_params(&rates).unwrap();

    // Physically pruned: the cost model's smaller network, weights sliced by the naive ranking.
    let spec = env.variant_spec(&rates).unwrap();
    let small_cn = variant::apply(&network, &spec).unwrap();
    let mut p = full_params.clone();
    for (consumer, producer, rate) in [
        ("conv2", "conv1", rates[0]),
        ("conv3", "conv2", rates[1]),
        ("conv4", "conv3", rates[2]),
    ] {
        let cw = format!("{consumer}.weight");
        let n = full_params[&cw].shape()[1];
        let gone = lowest_channels(&full_params[&cw], (rate * n as f64).round() as usize);
        p.insert(cw.clone(), keep_along(&p[&cw], 1, &gone));
        for t in ["weight", "bias"] {
            let name = format!("{producer}.{t}");
            p.insert(name.clone(), keep_along(&p[&name], 0, &gone));
        }
    }
    let small = Net::new(small_cn, p).unwrap();
    let masked_net = Net::new(env_cn(&network), masked).unwrap();
    let x = val.to_unit(0..val.len()).unwrap();
    let run = |n: &Net| {
        let bw = n.binarize(false).unwrap();
        n.forward(&x, Mode::Eval, ConvBackend::Float, &bw, false)
            .unwrap()
            .0
    };
    let (a, b) = (run(&masked_net), run(&small));
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() <= 1e-4 * (1.0 + u.abs()), "{u} vs {v}");
    }
    // The pruned network really is smaller, by the FLOPs the environment reports.
    assert_eq!(small.cn.network.macs() as f64, env.flops(&rates).unwrap());
    assert!(small.cn.network.macs() < network.macs());
}
