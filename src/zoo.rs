//! A zoo: one folder of trained variants with a `manifest.json` describing each entry (network,
//! variant options, weight file relative to the folder, measured accuracy, cost). `bbed zoo`
//! writes it, `bbed sweep` and `bbed report` read it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::exec::Net;
use crate::engine::params;
use crate::variant::{self, CompressedNetwork, VariantSpec};
use crate::{Error, Result};

pub const MANIFEST: &str = "manifest.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZooEntry {
    /// Unique name, e.g. `resnet20-xnor`.
    pub name: String,
    /// Built-in model name or path to a network TOML or ONNX file (relative to the zoo folder or
    /// absolute).
    pub model: String,
    /// Input size override `[C, H, W]` of a built-in (e.g. `[1, 28, 28]` for Fashion-MNIST).
    #[serde(default)]
    pub input: Option<[usize; 3]>,
    #[serde(default)]
    pub classes: Option<usize>,
    pub variant: VariantSpec,
    /// Weight file (safetensors), relative to the zoo folder.
    pub weights: PathBuf,
    /// Test accuracy in [0, 1] measured when the entry was trained.
    #[serde(default)]
    pub accuracy: Option<f32>,
    /// Free-form cost summary (e.g. `cost::CostTotals` as JSON).
    #[serde(default)]
    pub cost: Option<serde_json::Value>,
    /// Every setting `bbed zoo` trained the entry with (epochs, rate, batch, subsets, seed, data
    /// and initial-weight fingerprints), so a re-run with other settings re-trains the entry
    /// instead of skipping it; `None` for entries written by hand or by older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ZooManifest {
    /// Data set the zoo was trained on (free text, e.g. `fashion-mnist`).
    pub dataset: String,
    pub entries: Vec<ZooEntry>,
}

impl ZooManifest {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let m: ZooManifest = serde_json::from_str(&text).map_err(|e| {
            Error::input(
                path.display().to_string(),
                format!("malformed zoo manifest: {e}"),
            )
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for e in &m.entries {
            if !seen.insert(&e.name) {
                return Err(Error::input(
                    path.display().to_string(),
                    format!("entry name {:?} appears twice", e.name),
                ));
            }
        }
        Ok(m)
    }

    /// Writes the manifest atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("manifest serialises");
        crate::io::atomic::write_bytes_atomic(&dir.join(MANIFEST), text.as_bytes())
    }
}

impl ZooEntry {
    /// The compressed network this entry describes.
    pub fn network(&self, dir: &Path) -> Result<CompressedNetwork> {
        let file =
            self.model.ends_with(".toml") || self.model.to_ascii_lowercase().ends_with(".onnx");
        let model = if file && Path::new(&self.model).is_relative() {
            dir.join(&self.model).display().to_string()
        } else {
            self.model.clone()
        };
        let m = crate::model::open(&model, self.input, self.classes, None)?;
        if !m.binarized.is_empty() {
            // A binarized (QONNX) model is the XNOR variant of its skeleton: the entry must say so.
            let ctx = |e: Error| match e {
                Error::Input { message, .. } => {
                    Error::input(format!("zoo entry {:?}", self.name), message)
                }
                other => other,
            };
            if self.variant.kind != variant::VariantKind::Xnor {
                return Err(ctx(Error::input(
                    "variant",
                    format!("{model} is binarized (QONNX), so the entry's variant must be xnor"),
                )));
            }
            crate::onnx::import::qonnx::xnor_spec(
                &m.network,
                &m.binarized,
                self.variant.clone(),
                false,
                false,
            )
            .map_err(ctx)?;
        }
        variant::apply(&m.network, &self.variant)
    }

    /// Network plus its weights, checked; a missing weight file is an error naming the entry.
    pub fn load(&self, dir: &Path) -> Result<Net> {
        let cn = self.network(dir)?;
        let path = dir.join(&self.weights);
        if !path.is_file() {
            return Err(Error::input(
                format!("zoo entry {:?}", self.name),
                format!("weight file {} does not exist", path.display()),
            ));
        }
        let p = params::load(&cn, &path)?;
        Net::new(cn, p)
    }
}
