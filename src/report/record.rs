//! The sweep record: one JSONL line per (variant, attack, setting, rerun, image), as the sweep
//! runner appends them and the report reads them back.
//!
//! A record carries everything the report needs to aggregate without re-running anything: the
//! zoo entry (`variant`, e.g. `"resnet20-xnor"`), its compression kind (`variant_kind`, e.g.
//! `"xnor"`; box-plots pool ResNet20 and ResNet56 per kind as the paper's Fig. 4 does), the base
//! `model`, the attack name, the attack [`Setting`] (units explicit through `scale`), the rerun
//! index (PGD is rerun with fresh random starts) and the per-image [`ImageResult`].
//!
//! Attack names are compared after [`canonical_attack`] (lower case, letters and digits only), so
//! `"LocalSearch"`, `"local_search"` and `"localsearch"` are the same attack.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::attack::{ImageResult, Scale};
use crate::io::jsonl::read_jsonl;
use crate::{Error, Result};

/// The attack hyper-parameters of one sweep cell; fields an attack does not use are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// Perturbation budget, in `scale` units.
    #[serde(default)]
    pub eps: Option<f32>,
    /// Scale of `eps` (pixel = 0-255, unit = \[0,1\], normalized).
    #[serde(default)]
    pub scale: Option<Scale>,
    /// Iterations (PGD, DeepFool, C&W search steps, LocalSearch rounds, GenAttack generations).
    #[serde(default)]
    pub iterations: Option<usize>,
    /// GenAttack population size N.
    #[serde(default)]
    pub population: Option<usize>,
    /// C&W trade-off constant c.
    #[serde(default)]
    pub c: Option<f32>,
}

impl Setting {
    /// A canonical, human-readable label; equal settings give equal labels, so it doubles as a
    /// grouping key (f32 values are printed with Rust's shortest round-trip formatting).
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = self.eps {
            let unit = match self.scale {
                Some(Scale::Pixel) => " (0-255)",
                Some(Scale::Unit) => " (unit)",
                Some(Scale::Normalized) => " (normalized)",
                None => "",
            };
            parts.push(format!("eps={e}{unit}"));
        }
        if let Some(i) = self.iterations {
            parts.push(format!("i={i}"));
        }
        if let Some(n) = self.population {
            parts.push(format!("N={n}"));
        }
        if let Some(c) = self.c {
            parts.push(format!("c={c}"));
        }
        if parts.is_empty() {
            "default".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// Numeric ordering key (eps, iterations, population, c; unset fields first), so settings
    /// sort as 2 < 4 < 16 rather than as strings.
    pub fn sort_key(&self) -> [f64; 4] {
        let f = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
        [
            f(self.eps.map(f64::from)),
            f(self.iterations.map(|i| i as f64)),
            f(self.population.map(|n| n as f64)),
            f(self.c.map(f64::from)),
        ]
    }

    /// Compare by [`Setting::sort_key`].
    pub fn numeric_cmp(&self, other: &Setting) -> std::cmp::Ordering {
        let (a, b) = (self.sort_key(), other.sort_key());
        a.iter()
            .zip(&b)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }

    /// True when every field set in `fixed` has the same value here.
    pub fn matches(&self, fixed: &Setting) -> bool {
        fn same<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
            want.is_none() || want == have
        }
        same(&fixed.eps, &self.eps)
            && same(&fixed.scale, &self.scale)
            && same(&fixed.iterations, &self.iterations)
            && same(&fixed.population, &self.population)
            && same(&fixed.c, &self.c)
    }
}

/// One line of a sweep's results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRecord {
    /// Zoo entry name, e.g. `"resnet20-xnor"`.
    pub variant: String,
    /// Compression kind, e.g. `"vanilla"`, `"kd-kl"`, `"ch-prune"`, `"xnor"`, `"abc3"`.
    pub variant_kind: String,
    /// Base model, e.g. `"resnet20"`.
    pub model: String,
    /// Attack name (see [`canonical_attack`]).
    pub attack: String,
    pub setting: Setting,
    /// Rerun index (0-based); attacks run once have only rerun 0.
    #[serde(default)]
    pub rerun: usize,
    pub result: ImageResult,
}

impl SweepRecord {
    /// Reject records that would silently corrupt aggregates.
    pub fn validate(&self, context: &str) -> Result<()> {
        for (field, v) in [
            ("variant", &self.variant),
            ("variant_kind", &self.variant_kind),
            ("model", &self.model),
            ("attack", &self.attack),
        ] {
            if v.trim().is_empty() {
                return Err(Error::input(context, format!("field `{field}` is empty")));
            }
        }
        if canonical_attack(&self.attack).is_empty() {
            return Err(Error::input(
                context,
                format!(
                    "field `attack` ({:?}) has no letters or digits",
                    self.attack
                ),
            ));
        }
        let s = &self.setting;
        for (field, v) in [("setting.eps", s.eps), ("setting.c", s.c)] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(Error::input(
                        context,
                        format!("field `{field}` must be finite and >= 0, got {v}"),
                    ));
                }
            }
        }
        if let Some(l) = self.result.loss {
            if l.is_nan() {
                return Err(Error::input(context, "field `result.loss` is NaN"));
            }
        }
        Ok(())
    }
}

/// Attack name for comparisons: lower case, ASCII letters and digits only
/// (`"Local_Search"` -> `"localsearch"`, `"C&W"` -> `"cw"`).
pub fn canonical_attack(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Load a results file. A line that is not JSON or not a valid [`SweepRecord`] is an error naming
/// `file:line`, or, with `skip_corrupt`, is skipped with a warning on stderr. A torn last line
/// (a killed writer) is ignored with a warning (see [`crate::io::jsonl`]).
pub fn load_records(path: impl AsRef<Path>, skip_corrupt: bool) -> Result<Vec<SweepRecord>> {
    let path = path.as_ref();
    let contents = read_jsonl(path, skip_corrupt)?;
    let mut out = Vec::with_capacity(contents.records.len());
    for (line, value) in contents.records {
        let context = format!("{}:{line}", path.display());
        let parsed = SweepRecord::deserialize(&value)
            .map_err(|e| {
                Error::input(
                    &context,
                    format!("not a sweep record: {}", explain(&value, e)),
                )
            })
            .and_then(|r| r.validate(&context).map(|()| r));
        match parsed {
            Ok(r) => out.push(r),
            Err(e) if skip_corrupt => eprintln!("warning: skipping corrupt line: {e}"),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reject record sets that would aggregate silently wrong: a variant listed under two kinds or
/// models, or the same (variant, attack, setting, rerun, image) twice (e.g. a shard merged
/// twice). Errors name the offending variant and key.
pub fn check_consistent(records: &[SweepRecord]) -> Result<()> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut identity: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in records {
        let id = (r.variant_kind.as_str(), r.model.as_str());
        let first = *identity.entry(&r.variant).or_insert(id);
        if first != id {
            return Err(Error::input(
                format!("variant {}", r.variant),
                format!(
                    "listed as kind {:?} / model {:?} and as kind {:?} / model {:?}",
                    first.0, first.1, id.0, id.1
                ),
            ));
        }
        let key = (
            r.variant.as_str(),
            canonical_attack(&r.attack),
            r.setting.label(),
            r.rerun,
            r.result.index,
        );
        if !seen.insert(key) {
            return Err(Error::input(
                format!("variant {}", r.variant),
                format!(
                    "duplicate result for attack {}, setting {}, rerun {}, image {} \
                     (were results merged twice?)",
                    r.attack,
                    r.setting.label(),
                    r.rerun,
                    r.result.index
                ),
            ));
        }
    }
    Ok(())
}

/// serde_json's error for a whole record does not say which field failed; find it by parsing
/// each field on its own.
fn explain(value: &serde_json::Value, whole: serde_json::Error) -> String {
    use serde_json::Value;
    fn check<T: serde::de::DeserializeOwned>(v: &Value) -> Option<String> {
        serde_json::from_value::<T>(v.clone())
            .err()
            .map(|e| e.to_string())
    }
    let Some(obj) = value.as_object() else {
        return format!("expected a JSON object ({whole})");
    };
    for (field, v) in obj {
        let err = match field.as_str() {
            "variant" | "variant_kind" | "model" | "attack" => check::<String>(v),
            "setting" => check::<Setting>(v),
            "rerun" => check::<usize>(v),
            "result" => check::<ImageResult>(v),
            _ => Some("unknown field".to_string()),
        };
        if let Some(e) = err {
            return format!("field `{field}`: {e}");
        }
    }
    whole.to_string()
}

/// Load and concatenate several results files (e.g. shard outputs), in the given order.
pub fn load_many(paths: &[impl AsRef<Path>], skip_corrupt: bool) -> Result<Vec<SweepRecord>> {
    let mut all = Vec::new();
    for p in paths {
        all.extend(load_records(p, skip_corrupt)?);
    }
    Ok(all)
}

/// Expand results locations: a file is taken as is, a directory contributes its `*.jsonl` files
/// (sorted by name, not recursive). A directory without any, or a missing path, is an error.
pub fn results_files(paths: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            if found.is_empty() {
                return Err(Error::input(
                    p.display().to_string(),
                    "directory holds no *.jsonl results files",
                ));
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.to_path_buf());
        }
    }
    Ok(out)
}
