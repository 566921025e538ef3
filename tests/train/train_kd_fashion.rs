//! Distillation on real data (Fashion-MNIST): a softmax-regression student trained on 1,000
//! images with KD-KL from a stronger teacher (a 1-hidden-layer MLP trained on 20,000 images) is
//! compared with the same student trained on the same 1,000 images with labels alone.
//! Skipped with a notice when the data is absent, unless CI is set.

use crate::train_support;

use breakingbed::io::idx::{load_mnist_dir, FASHION_MNIST_DIR};
use breakingbed::train::{
    train, KdConfig, OptimizerConfig, Params, RunOptions, Schedule, TrainConfig,
};
use std::path::Path;
use std::time::Instant;
use train_support::{Mlp, SoftmaxRegression};

fn cfg(epochs: usize, lr: f32, kd: Option<KdConfig>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        eval_batch_size: 1000,
        seed: 5,
        optimizer: OptimizerConfig::sgd(0.9, 0.0),
        schedule: Schedule::Cosine {
            lr,
            min_lr: 0.0,
            total_epochs: epochs,
            warmup_epochs: 0,
        },
        augment_pad: None,
        kd,
        checkpoint_every: None,
    }
}

#[test]
fn student_distilled_from_a_better_teacher_beats_the_student_alone() {
    if !Path::new(FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FASHION_MNIST_DIR} is missing: apt-get install -y dataset-fashion-mnist"
        );
        eprintln!("skipping: {FASHION_MNIST_DIR} is absent");
        return;
    }
    let t0 = Instant::now();
    let (full, test) = load_mnist_dir(FASHION_MNIST_DIR).unwrap();
    let full = full.expect("train split");
    let big = full.sample(20_000, 1).unwrap();
    let dim = 28 * 28;
    let none = RunOptions::default();

    let mut teacher = Mlp::new(dim, 128, 10, 3);
    let t = train(
        &mut teacher,
        &big,
        &test,
        &cfg(3, 0.05, None),
        &none,
        None,
        Params::new(),
    )
    .unwrap();
    let teacher_acc = t.epochs.last().unwrap().test_accuracy;

    // Three differently seeded 1,000-image subsets, so one lucky draw cannot carry the result.
    let kd = KdConfig {
        temperature: 4.0,
        weight: 0.9,
    };
    let mut gains = Vec::new();
    for subset_seed in [2u64, 12, 22] {
        let small = full.sample(1_000, subset_seed).unwrap();
        let mut alone = SoftmaxRegression::new(dim, 10, 4);
        let a = train(
            &mut alone,
            &small,
            &test,
            &cfg(10, 0.05, None),
            &none,
            None,
            Params::new(),
        )
        .unwrap();
        let alone_acc = a.epochs.last().unwrap().test_accuracy;
        let mut student = SoftmaxRegression::new(dim, 10, 4);
        let s = train(
            &mut student,
            &small,
            &test,
            &cfg(10, 0.05, Some(kd)),
            &none,
            Some(&teacher),
            Params::new(),
        )
        .unwrap();
        let kd_acc = s.epochs.last().unwrap().test_accuracy;
        eprintln!(
            "Fashion-MNIST KD (subset seed {subset_seed}): teacher MLP {:.2}%, student alone \
             {:.2}%, student distilled {:.2}%",
            100.0 * teacher_acc,
            100.0 * alone_acc,
            100.0 * kd_acc
        );
        assert!(
            teacher_acc > alone_acc,
            "the teacher must be the better model"
        );
        gains.push(kd_acc - alone_acc);
    }
    eprintln!("({:.1}s)", t0.elapsed().as_secs_f64());
    assert!(
        gains.iter().all(|&g| g > 0.0),
        "accuracy gains from KD: {gains:?}"
    );
}
