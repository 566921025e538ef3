//! A training process killed with SIGKILL at an arbitrary moment and resumed from its checkpoint
//! ends with the same parameters, bit for bit, as an uninterrupted run. The child process is this
//! test binary re-run on the ignored test `child_training_process`.

use crate::train_support;

use breakingbed::train::{train, OptimizerConfig, Params, RunOptions, Schedule, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use train_support::{blobs, SoftmaxRegression};

const DIR_VAR: &str = "BBED_TRAIN_KILL_DIR";

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 6,
        batch_size: 16,
        eval_batch_size: 256,
        seed: 11,
        optimizer: OptimizerConfig::sgd(0.9, 1e-4),
        schedule: Schedule::Step {
            lr: 0.05,
            milestones: vec![2, 4],
            gamma: 0.1,
        },
        augment_pad: Some(2),
        kd: None,
        // Frequent checkpoints (each one fsyncs) make the run slow enough to be killed mid-way.
        checkpoint_every: Some(2),
    }
}

fn run(dir: Option<&Path>, resume: bool) -> (SoftmaxRegression, breakingbed::train::TrainReport) {
    let (tr, te) = (blobs(4000, 6, 16, 1), blobs(200, 6, 16, 2));
    let mut m = SoftmaxRegression::new(256, 6, 3).centered();
    let opts = RunOptions {
        checkpoint: dir.map(|d| d.join("run.ckpt")),
        log: dir.map(|d| d.join("run.jsonl")),
        resume,
        ..Default::default()
    };
    let rep = train(&mut m, &tr, &te, &config(), &opts, None, Params::new()).unwrap();
    (m, rep)
}

#[test]
#[ignore = "child process of sigkill_at_any_moment_then_resume_is_bitwise_identical"]
fn child_training_process() {
    if let Some(dir) = std::env::var_os(DIR_VAR) {
        run(Some(&PathBuf::from(dir)), false);
    }
}

#[test]
fn sigkill_at_any_moment_then_resume_is_bitwise_identical() {
    let dir = tempfile::tempdir().unwrap();
    // The test's name inside this binary: its module path without the crate (binary) name.
    let child_test = format!(
        "{}::child_training_process",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", &child_test, "--nocapture"])
        .env(DIR_VAR, dir.path())
        .spawn()
        .unwrap();
    let ck = dir.path().join("run.ckpt");
    let started = Instant::now();
    while !ck.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "child never checkpointed"
        );
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Kill as soon as the first checkpoint exists: an unloaded machine finishes the whole run in
    // well under a second, so waiting longer risks the child finishing first.
    let killed_mid_run = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();

    let (resumed, rep) = run(Some(dir.path()), true);
    let (reference, _) = run(None, false);
    let from = rep
        .resumed_from
        .clone()
        .expect("resumed from the child's checkpoint");
    eprintln!(
        "killed mid-run: {killed_mid_run}; resumed at update {} (epoch {}, step {} of it)",
        from.global_step, from.epoch, from.step_in_epoch
    );
    assert!(
        killed_mid_run,
        "the child finished before it could be killed"
    );
    let bits = |m: &SoftmaxRegression| {
        m.params
            .values()
            .flat_map(|t| t.iter().map(|v| v.to_bits()))
            .chain(
                m.running_mean
                    .iter()
                    .flat_map(|t| t.iter().map(|v| v.to_bits())),
            )
            .collect::<Vec<u32>>()
    };
    assert_eq!(bits(&resumed), bits(&reference));
    let lines = breakingbed::io::read_jsonl(dir.path().join("run.jsonl"), false).unwrap();
    let epochs: Vec<u64> = lines
        .records
        .iter()
        .map(|(_, v)| v["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, (0..6).collect::<Vec<u64>>(), "one line per epoch");
}
