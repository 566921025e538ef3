//! Flag groups shared by subcommands that take a network and a variant (`cost`, `infer`,
//! `verify`, `simulate`, `vectors`, `attack`, `train`, `prune`, `zoo`): `#[command(flatten)]` a
//! [`ModelArgs`] / [`VariantArgs`] and call [`ModelArgs::load`] / [`VariantArgs::spec`]. Unset
//! variant flags keep the defaults of [`crate::variant::VariantOptions`], so defaults live in one
//! place.

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::engine::params::{self, Params};
use crate::io::weights::WeightStore;
use crate::model::{resnet::BUILTIN_NAMES, Network, Normalization, Resolved};
use crate::variant::{BnMode, CompressedNetwork, ShortcutPrecision, VariantKind, VariantSpec};
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[arg(long, help = format!("Built-in model ({BUILTIN_NAMES}), path to a network TOML, or an ONNX / QONNX file (.onnx; carries its weights)"))]
    pub model: String,
    /// Override the input size of a built-in model as C,H,W (e.g. 1,28,28)
    #[arg(long, value_parser = parse_shape)]
    pub input: Option<[usize; 3]>,
    /// Override the number of classes of a built-in model
    #[arg(long)]
    pub classes: Option<usize>,
    /// ONNX models whose graph expects normalised input: per-channel mean on the [0,1] scale
    /// (comma-separated; with --std)
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        requires = "std"
    )]
    pub mean: Option<Vec<f32>>,
    /// ONNX models whose graph expects normalised input: per-channel std (with --mean)
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,
}

impl ModelArgs {
    /// The network description: a built-in, a network TOML, or an ONNX file's graph.
    pub fn load(&self) -> Result<Network> {
        Ok(self.open()?.network)
    }

    /// The network with what the model file carries (ONNX weights, binarized layers).
    pub fn open(&self) -> Result<Resolved> {
        let norm = match (&self.mean, &self.std) {
            (Some(mean), Some(std)) => Some(Normalization {
                mean: mean.clone(),
                std: std.clone(),
            }),
            _ => None,
        };
        crate::model::open(&self.model, self.input, self.classes, norm)
    }

    /// The model and the variant to run it as ([`VariantArgs::spec_for`]).
    pub fn load_spec(&self, variant: &VariantArgs) -> Result<(Resolved, VariantSpec)> {
        let m = self.open()?;
        let spec = variant.spec_for(&m)?;
        Ok((m, spec))
    }

    /// Where the parameters come from, for reports: `--weights`, else an ONNX model file (its
    /// initializers), else `None` (the seeded random initialisation).
    pub fn weights_source(&self, weights: Option<&Path>) -> Option<String> {
        weights
            .map(|p| p.display().to_string())
            .or_else(|| crate::model::is_onnx(&self.model).then(|| self.model.clone()))
    }

    /// The parameters of `cn`: `--weights` when given, else the model file's own (ONNX
    /// initializers, checked against the variant's names and shapes), else the seeded random
    /// initialisation.
    pub fn params(
        &self,
        m: &Resolved,
        cn: &CompressedNetwork,
        weights: Option<&Path>,
        init_seed: u64,
    ) -> Result<Params> {
        if let Some(path) = weights {
            crate::io::weights::check_variant(path, &cn.spec)?;
            return params::load(cn, path);
        }
        let Some(w) = &m.weights else {
            return Ok(params::init(cn, init_seed));
        };
        let mut store = WeightStore::new();
        for (k, v) in w {
            store.insert(k.clone(), v.clone());
        }
        store
            .check(&params::expected(cn), &self.model)
            .map_err(|e| match e {
                Error::Input { context, message } => Error::input(
                    context,
                    format!(
                        "the model file's weights do not fit variant {} ({message}); give weights trained for it",
                        cn.spec.label()
                    ),
                ),
                other => other,
            })?;
        Ok(store.tensors)
    }
}

fn parse_shape(s: &str) -> std::result::Result<[usize; 3], String> {
    let msg = || format!("'{s}' is not C,H,W (three positive integers)");
    let v: Vec<usize> = s
        .split([',', 'x'])
        .map(|p| p.trim().parse::<usize>().map_err(|_| msg()))
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok([*c, *h, *w]),
        _ => Err(msg()),
    }
}

/// How a `--data` image folder (ImageNet layout, see [`crate::io::folder`]) is read; for other
/// data formats these flags are an input error.
#[derive(Debug, Clone, Default, Args)]
pub struct FolderArgs {
    /// Image folders only: length of the shorter side after resizing, in pixels (default 256)
    #[arg(long, value_name = "PIXELS")]
    pub resize: Option<u32>,
    /// Image folders only: side of the square centre crop, in pixels (default 224; at most
    /// --resize)
    #[arg(long, value_name = "PIXELS")]
    pub crop: Option<u32>,
    /// Image folders only: read at most N images per class folder (the first in file-name order)
    #[arg(long, value_name = "N")]
    pub limit_per_class: Option<usize>,
}

impl FolderArgs {
    /// Loads `--data` ([`crate::io::load_dataset_with`]): the folder options when any flag is
    /// set (unset ones keep [`crate::io::folder::FolderOptions::default`]'s values).
    pub fn load(&self, data: &Path) -> Result<(Option<crate::io::Dataset>, crate::io::Dataset)> {
        let set = self.resize.is_some() || self.crop.is_some() || self.limit_per_class.is_some();
        let d = crate::io::folder::FolderOptions::default();
        let opts = crate::io::folder::FolderOptions {
            resize: self.resize.unwrap_or(d.resize),
            crop: self.crop.unwrap_or(d.crop),
            limit_per_class: self.limit_per_class.or(d.limit_per_class),
        };
        crate::io::load_dataset_with(data, set.then_some(&opts))
    }
}

#[derive(Debug, Clone, Args)]
pub struct VariantArgs {
    /// Variant: vanilla, kd, filter, channel, kernel, weight, xnor, abc (default vanilla; a
    /// binarized QONNX model is xnor)
    #[arg(long)]
    pub variant: Option<String>,
    /// ABC weight bases M (default 1)
    #[arg(long)]
    pub m: Option<usize>,
    /// ABC activation bases N (default 1)
    #[arg(long)]
    pub n: Option<usize>,
    /// Pruning rate in [0,1]: fraction of filters/channels/kernels/weights removed (default 0.5)
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// TOML file of per-layer rate overrides: `"layer1.*.conv2" = 0.7` (`*` is a wildcard)
    #[arg(long)]
    pub rates: Option<PathBuf>,
    /// Keep the first conv and last linear layer full precision / unpruned (default true)
    #[arg(long)]
    pub fp_first_last: Option<bool>,
    /// Precision of 1x1 projection-shortcut convs in binary variants (default binary)
    #[arg(long, value_parser = ["full", "binary"])]
    pub shortcut: Option<String>,
    /// Batch-norm: folded (no parameters) or counted (2 fp32 per channel) (default folded)
    #[arg(long, value_parser = ["folded", "counted"])]
    pub bn: Option<String>,
    /// Count fp32 scale factors of binary layers (default true)
    #[arg(long)]
    pub scales: Option<bool>,
    /// Count conv/linear biases (default true)
    #[arg(long)]
    pub bias: Option<bool>,
    /// Sparse index bits per kept weight (weight) or kernel (kernel pruning) (default 4)
    #[arg(long)]
    pub index_bits: Option<u32>,
}

/// Replaces an input error's context with the CLI flag the user typed.
fn recontext(e: Error, flag: &str) -> Error {
    match e {
        Error::Input { message, .. } => Error::input(flag, message),
        other => other,
    }
}

fn load_rates(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| {
        Error::input(
            path.display().to_string(),
            format!("malformed rates TOML (expected `\"layer pattern\" = rate` lines): {e}"),
        )
    })
}

impl VariantArgs {
    /// The variant spec these flags describe (vanilla when `--variant` is not given); errors
    /// name the flag.
    pub fn spec(&self) -> Result<VariantSpec> {
        let kind = VariantKind::parse(self.variant.as_deref().unwrap_or("vanilla"))
            .map_err(|e| recontext(e, "--variant"))?;
        self.spec_as(kind)
    }

    /// The variant for model `m`: [`VariantArgs::spec`] for a float model; for a binarized
    /// (QONNX) model the XNOR variant whose binarized layers are the file's, so a `--variant`
    /// other than xnor, or options that binarize other layers, are an error.
    pub fn spec_for(&self, m: &Resolved) -> Result<VariantSpec> {
        if m.binarized.is_empty() {
            return self.spec();
        }
        if let Some(v) = &self.variant {
            let kind = VariantKind::parse(v).map_err(|e| recontext(e, "--variant"))?;
            if kind != VariantKind::Xnor {
                return Err(Error::input(
                    "--variant",
                    format!(
                        "{}: the model is already binarized (QONNX: layers {}), i.e. the xnor variant; \
                         omit --variant or pass --variant xnor",
                        kind.name(),
                        m.binarized.join(", ")
                    ),
                ));
            }
        }
        crate::onnx::import::qonnx::xnor_spec(
            &m.network,
            &m.binarized,
            self.spec_as(VariantKind::Xnor)?,
            self.fp_first_last.is_none(),
            self.shortcut.is_none(),
        )
    }

    fn spec_as(&self, kind: VariantKind) -> Result<VariantSpec> {
        let mut spec = VariantSpec::new(kind);
        let o = &mut spec.options;
        if let Some(m) = self.m {
            o.m = m;
        }
        if let Some(n) = self.n {
            o.n = n;
        }
        if let Some(r) = self.rate {
            o.rate = r;
        }
        if let Some(p) = &self.rates {
            o.rates = load_rates(p)?;
        }
        if let Some(b) = self.fp_first_last {
            o.fp_first_last = b;
        }
        if let Some(s) = &self.shortcut {
            o.shortcut = if s == "full" {
                ShortcutPrecision::Full
            } else {
                ShortcutPrecision::Binary
            };
        }
        if let Some(s) = &self.bn {
            o.bn = if s == "counted" {
                BnMode::Counted
            } else {
                BnMode::Folded
            };
        }
        if let Some(b) = self.scales {
            o.scales = b;
        }
        if let Some(b) = self.bias {
            o.bias = b;
        }
        if let Some(b) = self.index_bits {
            o.index_bits = b;
        }
        spec.validate().map_err(|e| match &e {
            // Option errors come back named by field ("rate", "rates.\"x\""): show the flag.
            Error::Input { context, .. } if !context.starts_with("rates.") => {
                let flag = format!("--{}", context.replace('_', "-"));
                recontext(e, &flag)
            }
            _ => e,
        })?;
        Ok(spec)
    }
}
