//! Training checkpoints: everything a killed run needs to continue bit for bit.
//!
//! A checkpoint is one safetensors file written atomically by [`WeightStore::save`] (temp file +
//! rename, so a kill during the write leaves the previous checkpoint intact). Tensors:
//! - `param/{name}`: the model's trained parameters;
//! - `buffer/{name}`: non-trained model state (batch-norm running statistics);
//! - `optim/{slot}/{name}`: optimizer buffers (momentum, Adam moments);
//! - `mask/{name}`: fixed pruning masks.
//!
//! The metadata key `checkpoint` holds JSON: format tag, [`Progress`], optimizer step count,
//! [`RngState`] and the training config. Floats that must survive exactly (the running loss sum)
//! are stored as IEEE bit patterns, and the RNG word position (a `u128`) as a decimal string,
//! because JSON numbers are not guaranteed to round-trip either.

use crate::io::WeightStore;
use crate::train::optim::{OptimizerState, Params};
use crate::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format tag written into every checkpoint; loading refuses anything else.
pub const FORMAT: &str = "breakingbed-checkpoint-1";

/// Exact position of a ChaCha8 stream: key (hex of the 32-byte seed), stream id and word position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed_hex: String,
    pub stream: u64,
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        RngState {
            seed_hex: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let bad = |m: &str| Error::input("checkpoint rng", m.to_string());
        if self.seed_hex.len() != 64 || !self.seed_hex.is_ascii() {
            return Err(bad("seed_hex must be 64 hex digits"));
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed_hex[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("seed_hex must be 64 hex digits"))?;
        }
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| bad("word_pos must be a decimal integer"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Where in the run the checkpoint was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Epoch in progress (0-based); equals the number of finished epochs when `step_in_epoch` is 0.
    pub epoch: usize,
    /// Updates already taken in `epoch`.
    pub step_in_epoch: usize,
    /// Updates taken since the start of the run.
    pub global_step: u64,
    /// Bits of the f64 sum of training losses over the steps taken in `epoch`.
    pub epoch_loss_sum_bits: u64,
}

impl Progress {
    pub fn epoch_loss_sum(&self) -> f64 {
        f64::from_bits(self.epoch_loss_sum_bits)
    }
}

#[derive(Serialize, Deserialize)]
struct Meta<C> {
    format: String,
    progress: Progress,
    optimizer_steps: u64,
    rng: RngState,
    config: C,
}

/// A training run's complete state; `C` is the training config (checked on resume).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint<C> {
    pub params: Params,
    pub buffers: Params,
    pub optimizer: OptimizerState,
    pub masks: Params,
    pub progress: Progress,
    pub rng: RngState,
    pub config: C,
}

const PREFIXES: [&str; 4] = ["param/", "buffer/", "optim/", "mask/"];

impl<C: Serialize + DeserializeOwned> Checkpoint<C> {
    /// Write atomically to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut store = WeightStore::new();
        for (prefix, map) in PREFIXES.iter().zip([
            &self.params,
            &self.buffers,
            &self.optimizer.buffers,
            &self.masks,
        ]) {
            for (name, t) in map {
                store.insert(format!("{prefix}{name}"), t.clone());
            }
        }
        let meta = Meta {
            format: FORMAT.to_string(),
            progress: self.progress.clone(),
            optimizer_steps: self.optimizer.steps,
            rng: self.rng.clone(),
            config: &self.config,
        };
        let json = serde_json::to_string(&meta).map_err(|e| {
            Error::internal(
                path.as_ref().display().to_string(),
                format!("config does not serialise: {e}"),
            )
        })?;
        store.metadata.insert("checkpoint".into(), json);
        store.save(path)
    }

    /// Read a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ctx = || path.display().to_string();
        let store = WeightStore::load(path)?;
        let json = store.metadata.get("checkpoint").ok_or_else(|| {
            Error::input(
                ctx(),
                "not a training checkpoint (no \"checkpoint\" metadata); pass the checkpoint \
                 file, not a weights file",
            )
        })?;
        let meta: Meta<C> = serde_json::from_str(json)
            .map_err(|e| Error::input(ctx(), format!("checkpoint metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(Error::input(
                ctx(),
                format!(
                    "checkpoint format {:?} is not {FORMAT:?} (written by another version?)",
                    meta.format
                ),
            ));
        }
        meta.rng
            .restore()
            .map_err(|e| Error::input(ctx(), e.to_string()))?;
        let mut maps: [Params; 4] = Default::default();
        for (name, t) in store.tensors {
            let Some(i) = PREFIXES.iter().position(|p| name.starts_with(p)) else {
                return Err(Error::input(
                    ctx(),
                    format!("tensor {name:?} has none of the prefixes {PREFIXES:?}"),
                ));
            };
            maps[i].insert(name[PREFIXES[i].len()..].to_string(), t);
        }
        let [params, buffers, optim, masks] = maps;
        Ok(Checkpoint {
            params,
            buffers,
            optimizer: OptimizerState {
                buffers: optim,
                steps: meta.optimizer_steps,
            },
            masks,
            progress: meta.progress,
            rng: meta.rng,
            config: meta.config,
        })
    }
}
