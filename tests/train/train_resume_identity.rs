//! A resumed run must be the run it continues: every setting that changes the result is stored
//! in the checkpoint and a mismatch is refused naming it; only `epochs` may change, and only
//! grow (the cosine length and step milestones follow it).

use crate::train_support;

use breakingbed::train::{
    resume_mismatch, train, OptimizerConfig, Params, RunOptions, Schedule, Stamp, TrainConfig,
};
use std::collections::BTreeMap;
use train_support::{blobs, SoftmaxRegression};

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        eval_batch_size: 64,
        seed: 7,
        optimizer: OptimizerConfig::sgd(0.9, 5e-4),
        schedule: Schedule::Cosine {
            lr: 0.05,
            min_lr: 0.0,
            total_epochs: epochs,
            warmup_epochs: 0,
        },
        augment_pad: None,
        kd: None,
        checkpoint_every: None,
    }
}

fn stamp(cfg: TrainConfig, subset: &str) -> Stamp {
    Stamp {
        config: cfg,
        identity: BTreeMap::from([("--subset".to_string(), subset.to_string())]),
    }
}

#[test]
fn only_a_growing_epoch_count_passes() {
    let a = stamp(config(2), "300");
    assert_eq!(resume_mismatch(&a, &a), None);
    // More epochs: the schedule's length follows; accepted.
    assert_eq!(resume_mismatch(&a, &stamp(config(5), "300")), None);
    let mut step = config(4);
    step.schedule = Schedule::Step {
        lr: 0.05,
        milestones: vec![2, 3],
        gamma: 0.1,
    };
    let mut step8 = config(8);
    step8.schedule = Schedule::Step {
        lr: 0.05,
        milestones: vec![4, 6],
        gamma: 0.1,
    };
    assert_eq!(
        resume_mismatch(&stamp(step, "1"), &stamp(step8.clone(), "1")),
        None
    );
    // Fewer epochs: refused.
    let e = resume_mismatch(&a, &stamp(config(1), "300")).expect("refused");
    assert!(e.contains("epochs") && e.contains("only grow"), "{e}");
    // Any other change is named.
    let e = resume_mismatch(&a, &stamp(config(2), "200")).expect("refused");
    assert!(e.starts_with("--subset: checkpoint 300, now 200"), "{e}");
    let mut other = config(2);
    other.batch_size = 8;
    let e = resume_mismatch(&a, &stamp(other, "300")).expect("refused");
    assert!(e.starts_with("batch_size: checkpoint 16, now 8"), "{e}");
    let mut other = config(2);
    other.schedule = Schedule::Cosine {
        lr: 0.5,
        min_lr: 0.0,
        total_epochs: 2,
        warmup_epochs: 0,
    };
    let e = resume_mismatch(&a, &stamp(other, "300")).expect("refused");
    assert!(e.starts_with("schedule:") && e.contains("0.5"), "{e}");
    // A key only one side has (a checkpoint of an older version) is a mismatch too.
    let bare = Stamp {
        config: config(2),
        identity: BTreeMap::new(),
    };
    let e = resume_mismatch(&bare, &a).expect("refused");
    assert!(e.contains("--subset") && e.contains("not recorded"), "{e}");
}

#[test]
fn the_loop_stores_the_identity_and_extends_a_finished_run() {
    let (tr, te) = (blobs(64, 4, 8, 1), blobs(32, 4, 8, 2));
    let dir = tempfile::tempdir().unwrap();
    let run = |subset: &str| RunOptions {
        checkpoint: Some(dir.path().join("c.ckpt")),
        resume: true,
        identity: BTreeMap::from([("--subset".to_string(), subset.to_string())]),
        ..Default::default()
    };
    let mut m = SoftmaxRegression::new(64, 4, 3);
    let rep = train(
        &mut m,
        &tr,
        &te,
        &config(1),
        &run("64"),
        None,
        Params::new(),
    )
    .unwrap();
    assert_eq!(rep.epochs.len(), 1);
    // Finished checkpoint, other subset: refused, naming it.
    let e = train(
        &mut m,
        &tr,
        &te,
        &config(2),
        &run("32"),
        None,
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("c.ckpt") && e.contains("another training config") && e.contains("--subset"),
        "{e}"
    );
    // Same settings, more epochs: continues with epoch 1 only.
    let rep = train(
        &mut m,
        &tr,
        &te,
        &config(2),
        &run("64"),
        None,
        Params::new(),
    )
    .unwrap();
    assert_eq!(rep.epochs.len(), 1);
    assert_eq!(rep.epochs[0].epoch, 1);
    assert_eq!(rep.resumed_from.expect("resumed").epoch, 1);
}
