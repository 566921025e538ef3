//! Reproduction of the paper's Table 1 (memory demand and NCC of every variant) from a TOML
//! config (`configs/table1.toml`, embedded as the default). Paper values are strings so their
//! printed precision is known: a cell is "within rounding" when
//! `|ours - paper| <= 0.5 * 10^-decimals` (plus 1e-9 for float noise). Cells outside that get
//! the row's `memory_note` / `ncc_note` (the accounting assumption behind the gap).

use serde::{Deserialize, Serialize};

use super::{cost, NccParams};
use crate::model::builtin;
use crate::variant::{apply, VariantKind, VariantOptions, VariantSpec};
use crate::{Error, Result};

/// The embedded default config.
pub const TABLE1_TOML: &str = include_str!("../../configs/table1.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    accounting: toml::Table,
    rows: Vec<RowSpec>,
}

/// One row of the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    pub dataset: String,
    /// Built-in model name.
    pub model: String,
    /// Row label as printed in the paper.
    pub label: String,
    pub variant: String,
    /// Variant options; merged over the file's `[accounting]` table.
    #[serde(default)]
    pub options: toml::Table,
    pub paper_acc: f64,
    pub paper_memory_mb: String,
    pub paper_ncc: String,
    #[serde(default)]
    pub memory_note: String,
    #[serde(default)]
    pub ncc_note: String,
}

/// One evaluated row (JSON output of `bbed table1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table1Row {
    pub dataset: String,
    pub model: String,
    pub label: String,
    pub variant: String,
    pub paper_acc: f64,
    pub paper_memory_mb: f64,
    pub memory_mb: f64,
    pub memory_rel_diff: f64,
    pub memory_within_rounding: bool,
    /// Digits after the decimal point the paper printed.
    pub memory_decimals: usize,
    pub paper_ncc: f64,
    pub ncc: f64,
    pub ncc_rel_diff: f64,
    pub ncc_within_rounding: bool,
    pub ncc_decimals: usize,
    /// Explanations for cells outside the paper's rounding (empty if none).
    pub note: String,
}

/// Parses a printed decimal ("1.07", "41") into (value, digits after the point).
fn printed(s: &str, field: &str) -> Result<(f64, usize)> {
    let v: f64 = s.trim().parse().map_err(|_| {
        Error::input(
            field,
            format!("expected a number as printed in the paper, got '{s}'"),
        )
    })?;
    if !v.is_finite() || v <= 0.0 {
        return Err(Error::input(
            field,
            format!("must be a positive number, got '{s}'"),
        ));
    }
    let decimals = s.trim().split_once('.').map_or(0, |(_, f)| f.len());
    Ok((v, decimals))
}

/// Parses the config and resolves every row's variant spec (errors name `rows[i].field`).
pub fn parse(text: &str, origin: &str) -> Result<Vec<(RowSpec, VariantSpec)>> {
    let file: File = toml::from_str(text)
        .map_err(|e| Error::input(origin, format!("malformed Table 1 TOML: {e}")))?;
    let mut out = Vec::new();
    for (i, row) in file.rows.into_iter().enumerate() {
        let ctx = |f: &str| format!("{origin}: rows[{i}].{f}");
        let kind = VariantKind::parse(&row.variant)
            .map_err(|e| Error::input(ctx("variant"), e.to_string()))?;
        let mut merged = file.accounting.clone();
        merged.extend(row.options.clone());
        let options: VariantOptions = toml::Value::Table(merged)
            .try_into()
            .map_err(|e| Error::input(ctx("options"), format!("{e}")))?;
        let spec = VariantSpec { kind, options };
        spec.validate()
            .map_err(|e| Error::input(ctx("options"), e.to_string()))?;
        printed(&row.paper_memory_mb, &ctx("paper_memory_mb"))?;
        printed(&row.paper_ncc, &ctx("paper_ncc"))?;
        out.push((row, spec));
    }
    Ok(out)
}

fn within(ours: f64, paper: f64, decimals: usize) -> bool {
    (ours - paper).abs() <= 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9
}

/// Evaluates every row of a Table 1 config.
pub fn evaluate(text: &str, origin: &str, ncc: &NccParams) -> Result<Vec<Table1Row>> {
    let mut rows = Vec::new();
    for (i, (row, spec)) in parse(text, origin)?.into_iter().enumerate() {
        let ctx = |f: &str| format!("{origin}: rows[{i}].{f}");
        let net = builtin(&row.model, None, None)
            .map_err(|e| Error::input(ctx("model"), e.to_string()))?;
        let c = apply(&net, &spec).map_err(|e| Error::input(ctx("options"), e.to_string()))?;
        let r = cost(&c, ncc);
        let (pm, md) = printed(&row.paper_memory_mb, "")?;
        let (pn, nd) = printed(&row.paper_ncc, "")?;
        let (m_ok, n_ok) = (
            within(r.total.memory_mb, pm, md),
            within(r.total.ncc, pn, nd),
        );
        let mut notes = Vec::new();
        let unexplained = "no accounting assumption recorded for this gap";
        if !m_ok {
            notes.push(format!(
                "memory: {}",
                if row.memory_note.is_empty() {
                    unexplained
                } else {
                    &row.memory_note
                }
            ));
        }
        if !n_ok {
            notes.push(format!(
                "NCC: {}",
                if row.ncc_note.is_empty() {
                    unexplained
                } else {
                    &row.ncc_note
                }
            ));
        }
        rows.push(Table1Row {
            dataset: row.dataset.clone(),
            model: row.model.clone(),
            label: row.label.clone(),
            variant: spec.label(),
            paper_acc: row.paper_acc,
            paper_memory_mb: pm,
            memory_mb: r.total.memory_mb,
            memory_rel_diff: r.total.memory_mb / pm - 1.0,
            memory_within_rounding: m_ok,
            memory_decimals: md,
            paper_ncc: pn,
            ncc: r.total.ncc,
            ncc_rel_diff: r.total.ncc / pn - 1.0,
            ncc_within_rounding: n_ok,
            ncc_decimals: nd,
            note: notes.join("; "),
        });
    }
    Ok(rows)
}
