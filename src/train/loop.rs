//! The generic training loop: seeded shuffling, augmentation, optimizer + schedule, optional
//! distillation from a teacher, evaluation each epoch, a JSONL log, checkpoints and exact resume.
//!
//! Determinism: the run is a pure function of the config, the initial model and the data.
//! - Epoch `e` visits the training set in `Dataset::shuffled_indices(epoch_seed(seed, e))` order, in
//!   consecutive batches of `batch_size` (the last may be shorter).
//! - Augmentation (pad + random crop + flip, `crate::io::augment`) draws from one ChaCha8 stream
//!   (`seed`, stream 1) continued across batches and epochs; its exact word position is saved.
//! - Checkpoints are written at the end of every epoch and, with `checkpoint_every`, every that many
//!   updates; a resumed run reloads parameters, model buffers, optimizer state, masks, RNG position
//!   and the running loss sum, replays the epoch's order and skips the batches already taken, so
//!   its final parameters equal an uninterrupted run's bit for bit (same thread count).
//! - Per epoch the log gets `{"epoch", "global_step", "lr", "train_loss", "test_loss",
//!   "test_accuracy", "seconds"}`; on resume records of epochs already logged are not repeated.
//!
//! Images reach the model in unit scale (\[0,1\]); normalisation is the model's job.

use crate::io::{augment, Dataset, JsonlWriter};
use crate::train::checkpoint::{Checkpoint, Progress, RngState};
use crate::train::kd::{argmax_rows, cross_entropy, kd_loss, KdConfig};
use crate::train::optim::{Optimizer, OptimizerConfig, Params};
use crate::train::schedule::Schedule;
use crate::{Error, Result};
use ndarray::{Array2, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// A loss on logits: returns the loss and its gradient w.r.t. the logits.
pub type LogitLoss<'a> = dyn FnMut(&Array2<f32>) -> Result<(f32, Array2<f32>)> + 'a;

/// Inference: unit-scale NCHW images to logits (N x classes), in evaluation mode (batch-norm uses
/// running statistics).
pub trait Predict {
    fn predict(&self, x: &Array4<f32>) -> Result<Array2<f32>>;
}

/// A model the loop can train.
pub trait Trainable: Predict {
    /// Trained parameters, by name.
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;

    /// Mean cross-entropy loss of the batch and its gradient for every parameter. `train` selects
    /// training-mode behaviour (batch statistics, running-stat updates).
    fn forward_backward(
        &mut self,
        x: &Array4<f32>,
        labels: &[usize],
        train: bool,
    ) -> Result<(f32, Params)>;

    /// As [`Trainable::forward_backward`] with a caller-given loss: `loss(logits)` returns the
    /// loss and its gradient w.r.t. the logits. Needed for distillation.
    fn forward_backward_with(
        &mut self,
        _x: &Array4<f32>,
        _train: bool,
        _loss: &mut LogitLoss<'_>,
    ) -> Result<(f32, Params)> {
        Err(Error::input(
            "teacher",
            "this model does not support a custom loss, so it cannot be distilled",
        ))
    }

    /// Non-trained state saved in checkpoints (batch-norm running statistics); none by default.
    fn buffers(&self) -> Params {
        Params::new()
    }

    fn set_buffers(&mut self, buffers: Params) -> Result<()> {
        if buffers.is_empty() {
            Ok(())
        } else {
            Err(Error::input(
                "checkpoint",
                "holds model buffers but this model keeps none",
            ))
        }
    }
}

/// Everything that determines the result of a run (saved in checkpoints and checked on resume).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Pad-crop-flip augmentation with this padding (4 for CIFAR); `None` trains on raw images.
    pub augment_pad: Option<usize>,
    /// Distillation settings; required exactly when a teacher is given.
    pub kd: Option<KdConfig>,
    /// Also checkpoint every this many updates (epoch ends are always checkpointed).
    pub checkpoint_every: Option<u64>,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::input("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::input("batch_size", "must be at least 1"));
        }
        if self.eval_batch_size == 0 {
            return Err(Error::input("eval_batch_size", "must be at least 1"));
        }
        if self.checkpoint_every == Some(0) {
            return Err(Error::input("checkpoint_every", "must be at least 1"));
        }
        self.optimizer.validate()?;
        self.schedule.validate()?;
        if let Some(kd) = &self.kd {
            kd.validate()?;
        }
        Ok(())
    }
}

/// Files and behaviour of one invocation (not part of the result).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub checkpoint: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// Continue from `checkpoint` if it exists (a missing one starts a fresh run).
    pub resume: bool,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Stop right after this many updates as if killed: no checkpoint or log line is written for
    /// the interrupted epoch (for testing resume).
    pub halt_after_steps: Option<u64>,
    /// Settings outside [`TrainConfig`] that change the result (model, variant, data, initial
    /// weights, ...), by the name the user knows them under (a flag) -> a fingerprint. Stored in
    /// the checkpoint; a resume with any differing value is refused naming it.
    pub identity: BTreeMap<String, String>,
    /// Print each epoch's [`EpochRecord::line`] to stdout as soon as the epoch ends, flushed, so
    /// a batch job's log shows it even if the run is killed later.
    pub epoch_lines: bool,
}

/// What a checkpoint of the loop stores as its config: the [`TrainConfig`] (flattened, so older
/// checkpoints still load) plus [`RunOptions::identity`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    #[serde(flatten)]
    pub config: TrainConfig,
    #[serde(default)]
    pub identity: BTreeMap<String, String>,
}

/// Why a checkpoint written with `theirs` cannot be continued with `ours`, naming the first
/// differing setting; `None` when it can. Only `epochs` may change, and only grow (the schedule's
/// epoch-derived fields, cosine `total_epochs` and step `milestones`, follow it).
pub fn resume_mismatch(theirs: &Stamp, ours: &Stamp) -> Option<String> {
    if ours.config.epochs < theirs.config.epochs {
        return Some(format!(
            "epochs: the checkpoint was written for {} epochs, now {}; epochs may only grow",
            theirs.config.epochs, ours.config.epochs
        ));
    }
    let comparable = |c: &TrainConfig| {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("epochs");
            if let Some(sched) = o.get_mut("schedule").and_then(|v| v.as_object_mut()) {
                sched.remove("total_epochs");
                sched.remove("milestones");
            }
        }
        v
    };
    let (a, b) = (comparable(&theirs.config), comparable(&ours.config));
    if a != b {
        let empty = serde_json::Map::new();
        let (ma, mb) = (
            a.as_object().unwrap_or(&empty),
            b.as_object().unwrap_or(&empty),
        );
        let field = ma
            .iter()
            .find(|(k, v)| mb.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| "config".into());
        let show = |m: &serde_json::Map<String, serde_json::Value>| {
            m.get(&field)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into())
        };
        return Some(format!(
            "{field}: checkpoint {}, now {}",
            show(ma),
            show(mb)
        ));
    }
    let keys: std::collections::BTreeSet<&String> =
        theirs.identity.keys().chain(ours.identity.keys()).collect();
    for k in keys {
        let (x, y) = (theirs.identity.get(k), ours.identity.get(k));
        if x != y {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(not recorded)".into());
            return Some(format!("{k}: checkpoint {}, now {}", show(x), show(y)));
        }
    }
    None
}

/// One line of the JSONL log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub global_step: u64,
    /// Learning rate of the epoch's last update.
    pub lr: f32,
    pub train_loss: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
}

impl EpochRecord {
    /// The human-readable line `bbed train` prints per epoch.
    pub fn line(&self) -> String {
        format!(
            "epoch {:>3}  lr {:.5}  train_loss {:.4}  test_loss {:.4}  test_acc {:.2}%  {:.1}s",
            self.epoch,
            self.lr,
            self.train_loss,
            self.test_loss,
            100.0 * self.test_accuracy,
            self.seconds
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Epochs finished by this invocation.
    pub epochs: Vec<EpochRecord>,
    /// Updates taken in total (including before a resume).
    pub global_step: u64,
    /// The run stopped at `halt_after_steps`.
    pub halted: bool,
    /// Where a resumed run started.
    pub resumed_from: Option<Progress>,
}

/// Shuffle seed of epoch `e` (SplitMix64 finaliser, so neighbouring epochs get unrelated orders).
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The augmentation stream of a fresh run.
pub fn augment_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    rng
}

/// Mean cross-entropy and top-1 accuracy of `model` on `data` (inference mode).
pub fn evaluate(model: &dyn Predict, data: &Dataset, batch: usize) -> Result<(f64, f64)> {
    if data.is_empty() {
        return Err(Error::input(&data.source, "no images to evaluate on"));
    }
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for r in data.batch_ranges(batch)? {
        let x = data.to_unit(r.clone())?;
        let labels: Vec<usize> = data.labels_of(r)?.iter().map(|&l| l as usize).collect();
        let logits = model.predict(&x)?;
        if logits.dim() != (labels.len(), data.classes) {
            return Err(Error::input(
                &data.source,
                format!(
                    "model returned logits {:?} for {} images of {} classes",
                    logits.dim(),
                    labels.len(),
                    data.classes
                ),
            ));
        }
        let (l, _) = cross_entropy(&logits, &labels)?;
        loss += l as f64 * labels.len() as f64;
        correct += argmax_rows(&logits)
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
    }
    Ok((loss / data.len() as f64, correct as f64 / data.len() as f64))
}

fn same_layout(what: &str, want: &Params, got: &Params) -> Result<()> {
    let describe = |m: &Params| {
        m.iter()
            .map(|(n, t)| format!("{n} {:?}", t.shape()))
            .collect::<Vec<_>>()
    };
    if describe(want) != describe(got) {
        return Err(Error::input(
            what,
            format!(
                "tensors {:?} do not match the model's {:?} (checkpoint of another model?)",
                describe(got),
                describe(want)
            ),
        ));
    }
    Ok(())
}

/// Train `model` on `train_set`, evaluating on `test_set` after each epoch. `masks` (0/1 per
/// parameter name) stay fixed throughout; `teacher` enables distillation with `cfg.kd`.
pub fn train<M: Trainable>(
    model: &mut M,
    train_set: &Dataset,
    test_set: &Dataset,
    cfg: &TrainConfig,
    run: &RunOptions,
    teacher: Option<&dyn Predict>,
    masks: Params,
) -> Result<TrainReport> {
    cfg.validate()?;
    match (teacher.is_some(), cfg.kd.is_some()) {
        (true, false) => {
            return Err(Error::input(
                "kd",
                "a teacher was given but no distillation settings (temperature, weight)",
            ))
        }
        (false, true) => {
            return Err(Error::input(
                "teacher",
                "distillation settings were given but no teacher model",
            ))
        }
        _ => {}
    }
    if train_set.is_empty() {
        return Err(Error::input(&train_set.source, "no training images"));
    }
    if train_set.image_shape() != test_set.image_shape() || train_set.classes != test_set.classes {
        return Err(Error::input(
            &test_set.source,
            format!(
                "test images {:?} / {} classes differ from training images {:?} / {} classes",
                test_set.image_shape(),
                test_set.classes,
                train_set.image_shape(),
                train_set.classes
            ),
        ));
    }

    let mut opt = Optimizer::new(cfg.optimizer.clone())?;
    opt.set_masks(masks)?;
    crate::train::optim::apply_masks(model.params_mut(), opt.masks())?;
    let mut rng = augment_rng(cfg.seed);
    let mut progress = Progress {
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
        epoch_loss_sum_bits: 0f64.to_bits(),
    };
    let mut resumed_from = None;
    let stamp = Stamp {
        config: cfg.clone(),
        identity: run.identity.clone(),
    };
    if let Some(path) = &run.checkpoint {
        if path.exists() {
            if !run.resume {
                return Err(Error::input(
                    path.display().to_string(),
                    "a checkpoint already exists: resume it (--resume) or delete it",
                ));
            }
            let ck: Checkpoint<Stamp> = Checkpoint::load(path)?;
            let ctx = path.display().to_string();
            if let Some(why) = resume_mismatch(&ck.config, &stamp) {
                return Err(Error::input(
                    ctx,
                    format!(
                        "was written with another training config ({why}); only --epochs may \
                         change, and only grow: start a new run (new --out or --checkpoint) \
                         instead"
                    ),
                ));
            }
            if &ck.masks != opt.masks() {
                return Err(Error::input(
                    ctx,
                    "its pruning masks differ from the ones given for this run",
                ));
            }
            same_layout(&ctx, model.params(), &ck.params)?;
            *model.params_mut() = ck.params;
            model.set_buffers(ck.buffers)?;
            opt.set_state(ck.optimizer)?;
            rng = ck.rng.restore()?;
            progress = ck.progress;
            resumed_from = Some(progress.clone());
        } else if run.resume {
            eprintln!(
                "note: no checkpoint at {}; starting a fresh run",
                path.display()
            );
        }
    }

    let mut log = match &run.log {
        Some(p) => {
            let (w, state) =
                JsonlWriter::open(p, run.resume, |v| v.get("epoch").and_then(|e| e.as_u64()))?;
            Some((w, state.completed))
        }
        None => None,
    };

    let ranges = train_set.batch_ranges(cfg.batch_size)?;
    let spe = ranges.len() as u64;
    let total = spe * cfg.epochs as u64;
    let bar = crate::io::progress::Progress::new("train", "updates", total, run.progress);
    bar.set_position(progress.global_step.min(total));

    let save = |model: &M, opt: &Optimizer, rng: &ChaCha8Rng, progress: &Progress| -> Result<()> {
        match &run.checkpoint {
            Some(path) => Checkpoint {
                params: model.params().clone(),
                buffers: model.buffers(),
                optimizer: opt.state().clone(),
                masks: opt.masks().clone(),
                progress: progress.clone(),
                rng: RngState::capture(rng),
                config: stamp.clone(),
            }
            .save(path),
            None => Ok(()),
        }
    };

    let mut report = TrainReport {
        epochs: Vec::new(),
        global_step: progress.global_step,
        halted: false,
        resumed_from,
    };
    let mut lr = cfg.schedule.lr_at(progress.global_step, spe);
    while progress.epoch < cfg.epochs {
        let started = Instant::now();
        let order = train_set.shuffled_indices(epoch_seed(cfg.seed, progress.epoch));
        let mut loss_sum = progress.epoch_loss_sum();
        for r in ranges.iter().skip(progress.step_in_epoch) {
            let batch = train_set.subset(&order[r.clone()])?;
            let mut x = batch.to_unit(0..batch.len())?;
            if let Some(pad) = cfg.augment_pad {
                x = augment::augment_with(&x, pad, &mut rng);
            }
            let labels: Vec<usize> = batch.labels.iter().map(|&l| l as usize).collect();
            lr = cfg.schedule.lr_at(progress.global_step, spe);
            let (loss, grads) = match (teacher, &cfg.kd) {
                (Some(t), Some(kd)) => {
                    let t_logits = t.predict(&x)?;
                    model.forward_backward_with(&x, true, &mut |s| {
                        kd_loss(s, &t_logits, &labels, kd)
                    })?
                }
                _ => model.forward_backward(&x, &labels, true)?,
            };
            if !loss.is_finite() {
                return Err(Error::input(
                    "training",
                    format!(
                        "loss became {loss} at update {} (epoch {}); lower the learning rate",
                        progress.global_step, progress.epoch
                    ),
                ));
            }
            opt.step(model.params_mut(), &grads, lr)?;
            if let Some((name, _)) = model
                .params()
                .iter()
                .find(|(_, p)| p.iter().any(|v| !v.is_finite()))
            {
                return Err(Error::input(
                    "training",
                    format!(
                        "parameter {name:?} overflowed at update {} (epoch {}); lower the \
                         learning rate",
                        progress.global_step, progress.epoch
                    ),
                ));
            }
            loss_sum += loss as f64;
            progress.step_in_epoch += 1;
            progress.global_step += 1;
            progress.epoch_loss_sum_bits = loss_sum.to_bits();
            report.global_step = progress.global_step;
            bar.inc(1);
            bar.set_message(format!("epoch {} loss {loss:.4}", progress.epoch));
            let epoch_done = progress.step_in_epoch == ranges.len();
            if let Some(k) = cfg.checkpoint_every {
                if progress.global_step.is_multiple_of(k) && !epoch_done {
                    save(model, &opt, &rng, &progress)?;
                }
            }
            if run.halt_after_steps == Some(progress.global_step) && !epoch_done {
                report.halted = true;
                bar.abandon();
                return Ok(report);
            }
        }
        let (test_loss, test_accuracy) = evaluate(&*model, test_set, cfg.eval_batch_size)?;
        let record = EpochRecord {
            epoch: progress.epoch,
            global_step: progress.global_step,
            lr,
            train_loss: loss_sum / ranges.len() as f64,
            test_loss,
            test_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        // Log before checkpointing: a kill in between repeats the epoch on resume, and the
        // completed-key check below keeps its line from being written twice.
        if let Some((w, done)) = &mut log {
            if !done.contains(&(record.epoch as u64)) {
                w.append(&record)?;
                done.insert(record.epoch as u64);
            }
        }
        progress.epoch += 1;
        progress.step_in_epoch = 0;
        progress.epoch_loss_sum_bits = 0f64.to_bits();
        save(model, &opt, &rng, &progress)?;
        if run.epoch_lines {
            // Written and flushed per epoch: stdout to a file is block-buffered otherwise.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", record.line());
            let _ = out.flush();
        }
        report.epochs.push(record);
        if run.halt_after_steps == Some(progress.global_step) {
            report.halted = progress.epoch < cfg.epochs;
            break;
        }
    }
    bar.finish_and_clear();
    Ok(report)
}
