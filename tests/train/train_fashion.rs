//! Gradient descent on real data: softmax regression on a 10,000-image subset of Fashion-MNIST
//! (Debian package `dataset-fashion-mnist`), one epoch, evaluated on the full 10,000-image test
//! split. Published baseline: logistic regression reaches about 84% (Xiao et al. 2017,
//! "Fashion-MNIST", benchmark table); one epoch on a sixth of the data must clear 70%.
//! Skipped with a notice when the data is absent, unless CI is set.

use crate::train_support;

use breakingbed::io::idx::{load_mnist_dir, FASHION_MNIST_DIR};
use breakingbed::train::{train, OptimizerConfig, Params, RunOptions, Schedule, TrainConfig};
use std::path::Path;
use std::time::Instant;
use train_support::SoftmaxRegression;

#[test]
fn softmax_regression_learns_fashion_mnist_in_one_epoch() {
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
    let (train_set, test_set) = load_mnist_dir(FASHION_MNIST_DIR).unwrap();
    let train_set = train_set.expect("train split").sample(10_000, 1).unwrap();
    let [c, h, w] = train_set.image_shape();
    let mut model = SoftmaxRegression::new(c * h * w, 10, 2);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        eval_batch_size: 1000,
        seed: 3,
        optimizer: OptimizerConfig::sgd(0.9, 0.0),
        schedule: Schedule::Cosine {
            lr: 0.05,
            min_lr: 0.0,
            total_epochs: 1,
            warmup_epochs: 0,
        },
        augment_pad: None,
        kd: None,
        checkpoint_every: None,
    };
    let rep = train(
        &mut model,
        &train_set,
        &test_set,
        &cfg,
        &RunOptions::default(),
        None,
        Params::new(),
    )
    .unwrap();
    let acc = rep.epochs[0].test_accuracy;
    eprintln!(
        "Fashion-MNIST softmax regression, 1 epoch on 10k: test accuracy {:.2}% (loss {:.4}) in {:.1}s",
        100.0 * acc,
        rep.epochs[0].test_loss,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(test_set.len(), 10_000);
    assert!(acc > 0.70, "test accuracy {acc}");
}
