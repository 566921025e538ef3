//! The training loop on a softmax-regression model with analytic gradients (tests/train_support):
//! the model's gradient against finite differences, loss decrease, exact resume, fixed masks,
//! distillation wiring, and the errors for bad runs.

use crate::train_support;

use breakingbed::io::read_jsonl;
use breakingbed::train::{
    prune_masks, train, Checkpoint, KdConfig, OptimizerConfig, Params, PruneScheme, PruneSpec,
    RunOptions, Schedule, TrainConfig, Trainable,
};
use std::collections::BTreeMap;
use train_support::{blobs, Mlp, SoftmaxRegression};

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        eval_batch_size: 64,
        seed: 7,
        optimizer: OptimizerConfig::Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: true,
        },
        schedule: Schedule::Cosine {
            lr: 0.05,
            min_lr: 0.0,
            total_epochs: epochs,
            warmup_epochs: usize::from(epochs > 1),
        },
        // Augmentation only where the test is about the RNG stream (shifted blobs blur the
        // classes for a linear model).
        augment_pad: None,
        kd: None,
        checkpoint_every: Some(3),
    }
}

/// Central differences of the loss against the analytic gradient at a few entries of every
/// parameter (f32 forward, so h and the tolerance are loose).
fn check_gradient(m: &mut dyn Trainable, x: &ndarray::Array4<f32>, labels: &[usize]) {
    let (_, g) = m.forward_backward(x, labels, true).unwrap();
    // Small enough that no ReLU of the MLP changes side between the two evaluations.
    let h = 1e-3f32;
    let names: Vec<String> = m.params().keys().cloned().collect();
    for name in names {
        for idx in [0usize, 7, 3, 101] {
            let idx = idx % m.params()[&name].len();
            let at = |m: &mut dyn Trainable, v: f32| {
                m.params_mut()
                    .get_mut(&name)
                    .unwrap()
                    .as_slice_mut()
                    .unwrap()[idx] = v;
                m.forward_backward(x, labels, true).unwrap().0 as f64
            };
            let orig = m.params()[&name].as_slice().unwrap()[idx];
            let fd = (at(m, orig + h) - at(m, orig - h)) / (2.0 * h as f64);
            at(m, orig);
            let an = g[&name].as_slice().unwrap()[idx] as f64;
            assert!((fd - an).abs() < 2e-3, "{name}[{idx}]: fd {fd} vs {an}");
        }
    }
}

#[test]
fn model_gradients_match_finite_differences() {
    // The test models must be right for the loop tests to mean anything.
    let data = blobs(5, 4, 6, 1);
    let x = data.to_unit(0..5).unwrap();
    let labels: Vec<usize> = data.labels.iter().map(|&l| l as usize).collect();
    check_gradient(&mut SoftmaxRegression::new(36, 4, 3), &x, &labels);
    check_gradient(
        &mut SoftmaxRegression::new(36, 4, 3).centered(),
        &x,
        &labels,
    );
    check_gradient(&mut Mlp::new(36, 8, 4, 3), &x, &labels);
}

#[test]
fn loss_decreases_and_accuracy_rises_far_above_chance() {
    let (tr, te) = (blobs(400, 4, 8, 1), blobs(200, 4, 8, 2));
    let mut m = SoftmaxRegression::new(64, 4, 3);
    let dir = tempfile::tempdir().unwrap();
    let run = RunOptions {
        log: Some(dir.path().join("log.jsonl")),
        ..Default::default()
    };
    let rep = train(&mut m, &tr, &te, &config(4), &run, None, Params::new()).unwrap();
    assert_eq!(rep.epochs.len(), 4);
    assert_eq!(rep.global_step, 4 * 25);
    let first = rep.epochs[0].train_loss;
    let last = rep.epochs[3].train_loss;
    assert!(last < 0.5 * first, "train loss {first} -> {last}");
    assert!(rep.epochs[3].test_accuracy > 0.9, "{:?}", rep.epochs[3]);
    let log = read_jsonl(dir.path().join("log.jsonl"), false).unwrap();
    assert_eq!(log.records.len(), 4);
    assert_eq!(log.records[2].1["epoch"], 2);
}

fn bits(p: &Params) -> BTreeMap<String, Vec<u32>> {
    p.iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Log records without the wall-clock field.
fn log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    read_jsonl(path, false)
        .unwrap()
        .records
        .into_iter()
        .map(|(_, mut v)| {
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn killed_and_resumed_runs_equal_an_uninterrupted_run_bitwise() {
    // 100 images / 16 = 7 updates per epoch, 3 epochs = 21 updates; checkpoints every 3 updates
    // and at epoch ends; augmentation on (RNG stream) and a running-mean buffer (model state).
    // Kills: mid-epoch right after a checkpoint (6), mid-epoch between checkpoints (8 -> resumes
    // from 7, the epoch end), twice in a row (10 then 17), and a kill after the epoch-0 log line
    // but before its checkpoint (case 3: the checkpoint of step 6 is put back after the run).
    let (tr, te) = (blobs(100, 4, 8, 1), blobs(50, 4, 8, 2));
    let mut cfg = config(3);
    cfg.augment_pad = Some(1);
    let model = || SoftmaxRegression::new(64, 4, 3).centered();
    let dir = tempfile::tempdir().unwrap();
    let (reference, ref_buffers) = {
        let mut m = model();
        let run = RunOptions {
            checkpoint: Some(dir.path().join("ref.ckpt")),
            log: Some(dir.path().join("ref.jsonl")),
            ..Default::default()
        };
        let rep = train(&mut m, &tr, &te, &cfg, &run, None, Params::new()).unwrap();
        assert!(!rep.halted);
        (m.params.clone(), m.buffers())
    };
    let cases = [vec![6u64], vec![8], vec![10, 17], vec![6, 8]];
    for (case, kills) in cases.into_iter().enumerate() {
        let ck = dir.path().join(format!("run{case}.ckpt"));
        let log = dir.path().join(format!("run{case}.jsonl"));
        let old = dir.path().join(format!("run{case}.old"));
        for (i, &k) in kills.iter().enumerate() {
            // Each "process" starts from a fresh model, as a restarted program would.
            let mut m = model();
            let run = RunOptions {
                checkpoint: Some(ck.clone()),
                log: Some(log.clone()),
                resume: i > 0,
                halt_after_steps: Some(k),
                ..Default::default()
            };
            let rep = train(&mut m, &tr, &te, &cfg, &run, None, Params::new()).unwrap();
            assert!(rep.halted && rep.global_step == k);
            if case == 3 && i == 0 {
                std::fs::copy(&ck, &old).unwrap();
            }
        }
        let mut expect_from = kills.last().map(|&k| (k - k % 3).max(k - k % 7)).unwrap();
        if case == 3 {
            std::fs::copy(&old, &ck).unwrap();
            expect_from = 6;
        }
        let mut m = model();
        let run = RunOptions {
            checkpoint: Some(ck.clone()),
            log: Some(log.clone()),
            resume: true,
            ..Default::default()
        };
        let rep = train(&mut m, &tr, &te, &cfg, &run, None, Params::new()).unwrap();
        assert_eq!(rep.resumed_from.expect("resumed").global_step, expect_from);
        assert_eq!(bits(&m.params), bits(&reference), "kills {kills:?}");
        assert_eq!(bits(&m.buffers()), bits(&ref_buffers), "kills {kills:?}");
        // Same lines (test loss depends on the restored buffer), none repeated.
        assert_eq!(log_lines(&log), log_lines(&dir.path().join("ref.jsonl")));
        let saved: Checkpoint<TrainConfig> = Checkpoint::load(&ck).unwrap();
        assert_eq!(saved.progress.global_step, 21);
        assert_eq!(bits(&saved.params), bits(&reference));
    }
}

#[test]
fn masks_stay_fixed_through_fine_tuning() {
    let (tr, te) = (blobs(200, 4, 8, 1), blobs(50, 4, 8, 2));
    let mut m = SoftmaxRegression::new(64, 4, 3);
    let spec = PruneSpec {
        scheme: PruneScheme::Weight,
        rate: 0.5,
        overrides: BTreeMap::new(),
        layers: vec!["fc.weight".into()],
    };
    let masks = prune_masks(&m.params, &spec).unwrap().masks;
    let rep = train(
        &mut m,
        &tr,
        &te,
        &config(2),
        &RunOptions::default(),
        None,
        masks.clone(),
    )
    .unwrap();
    let w = &m.params["fc.weight"];
    let zeros = w.iter().filter(|&&v| v == 0.0).count();
    assert_eq!(zeros, 128, "exactly the masked half is zero");
    for (v, mk) in w.iter().zip(masks["fc.weight"].iter()) {
        assert_eq!(*v == 0.0, *mk == 0.0);
    }
    assert!(
        rep.epochs[1].test_accuracy > 0.5,
        "still learns with half the weights"
    );
}

#[test]
fn distillation_from_a_teacher_trains_the_student() {
    let (tr, te) = (blobs(400, 4, 8, 1), blobs(200, 4, 8, 2));
    let mut teacher = SoftmaxRegression::new(64, 4, 11);
    train(
        &mut teacher,
        &tr,
        &te,
        &config(4),
        &RunOptions::default(),
        None,
        Params::new(),
    )
    .unwrap();
    let mut cfg = config(3);
    cfg.kd = Some(KdConfig {
        temperature: 4.0,
        weight: 0.7,
    });
    let mut student = SoftmaxRegression::new(64, 4, 12);
    let rep = train(
        &mut student,
        &tr,
        &te,
        &cfg,
        &RunOptions::default(),
        Some(&teacher),
        Params::new(),
    )
    .unwrap();
    assert!(rep.epochs[2].test_accuracy > 0.9, "{:?}", rep.epochs);
    // A teacher of another architecture (here: 6 classes instead of 4) is refused by the loss.
    let wrong = SoftmaxRegression::new(64, 6, 1);
    let mut s2 = SoftmaxRegression::new(64, 4, 12);
    let e = train(
        &mut s2,
        &tr,
        &te,
        &cfg,
        &RunOptions::default(),
        Some(&wrong),
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("teacher logits"), "{e}");
    // Teacher without KD settings, KD settings without teacher.
    let e = train(
        &mut s2,
        &tr,
        &te,
        &config(1),
        &RunOptions::default(),
        Some(&teacher),
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("kd:"), "{e}");
    let e = train(
        &mut s2,
        &tr,
        &te,
        &cfg,
        &RunOptions::default(),
        None,
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("teacher:"), "{e}");
}

#[test]
fn bad_runs_are_named_errors() {
    let (tr, te) = (blobs(40, 4, 8, 1), blobs(20, 4, 8, 2));
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("c.ckpt");
    let run = RunOptions {
        checkpoint: Some(ck.clone()),
        ..Default::default()
    };
    let mut m = SoftmaxRegression::new(64, 4, 3);
    train(&mut m, &tr, &te, &config(1), &run, None, Params::new()).unwrap();
    // An existing checkpoint is not silently overwritten.
    let e = train(&mut m, &tr, &te, &config(1), &run, None, Params::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.ckpt") && e.contains("--resume"), "{e}");
    // Resuming with another config.
    let resume = RunOptions {
        resume: true,
        ..run.clone()
    };
    let mut other = config(1);
    other.seed = 8;
    let e = train(&mut m, &tr, &te, &other, &resume, None, Params::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("c.ckpt") && e.contains("another training config"),
        "{e}"
    );
    // Resuming into a model of another shape.
    let mut big = SoftmaxRegression::new(64, 5, 3);
    let te5 = blobs(20, 5, 8, 2);
    let tr5 = blobs(40, 5, 8, 1);
    let e = train(
        &mut big,
        &tr5,
        &te5,
        &config(1),
        &resume,
        None,
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c.ckpt") && e.contains("another model"), "{e}");
    // A weights file is not a checkpoint.
    let mut ws = breakingbed::io::WeightStore::new();
    ws.insert("fc.bias", ndarray::ArrayD::zeros(ndarray::IxDyn(&[4])));
    let wfile = dir.path().join("w.safetensors");
    ws.save(&wfile).unwrap();
    let run_w = RunOptions {
        checkpoint: Some(wfile),
        resume: true,
        ..Default::default()
    };
    let e = train(&mut m, &tr, &te, &config(1), &run_w, None, Params::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a training checkpoint"), "{e}");
    // Bad config values.
    let mut c = config(1);
    c.batch_size = 0;
    let e = train(
        &mut m,
        &tr,
        &te,
        &c,
        &RunOptions::default(),
        None,
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("batch_size"), "{e}");
    // Test data of another shape.
    let e = train(
        &mut m,
        &tr,
        &blobs(10, 4, 6, 2),
        &config(1),
        &RunOptions::default(),
        None,
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("differ from training images"), "{e}");
    // Diverging training stops with an error instead of producing NaN weights.
    let mut c = config(1);
    c.schedule = Schedule::Constant { lr: 1e38 };
    c.optimizer = OptimizerConfig::sgd(0.0, 0.0);
    let mut m2 = SoftmaxRegression::new(64, 4, 3);
    let e = train(
        &mut m2,
        &tr,
        &te,
        &c,
        &RunOptions::default(),
        None,
        Params::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("non-finite") || e.contains("overflowed"), "{e}");
    assert!(e.contains("learning rate"), "{e}");
}
