//! `bbed table1`: the paper's Table 1 reproduced from `configs/table1.toml` (embedded default).

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::Args;

use super::format::{render, Format, Tabular};
use crate::cost::table1::{evaluate, TABLE1_TOML};
use crate::cost::NccParams;
use crate::{Error, Result};

const AFTER: &str = "\
Columns: paper accuracy [%]; memory demand in MB = 10^6 bytes; NCC in 10^6 operations
(fp MACs + binary ops / 48, DSP48 lanes from hw/reference.toml); rel = ours / paper - 1.
A cell marked '*' differs by more than the paper's printed rounding; the note says why.";

#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct Table1Args {
    /// Table 1 config (default: the embedded configs/table1.toml)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Hardware TOML with an [ncc] table (default: embedded hw/reference.toml)
    #[arg(long)]
    pub hw: Option<PathBuf>,
    /// Output format (json carries full-precision numbers)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(a: Table1Args) -> Result<String> {
    let (text, origin) = match &a.config {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            p.display().to_string(),
        ),
        None => (TABLE1_TOML.to_string(), "configs/table1.toml".to_string()),
    };
    let ncc = match &a.hw {
        Some(p) => NccParams::load(p)?,
        None => NccParams::reference(),
    };
    let rows = evaluate(&text, &origin, &ncc)?;
    let mut t = Tabular::new(&[
        "dataset",
        "model",
        "variant",
        "acc_%",
        "paper_mem_mb",
        "mem_mb",
        "mem_rel",
        "paper_ncc",
        "ncc",
        "ncc_rel",
        "note",
    ]);
    for r in &rows {
        let mark = |ok: bool| if ok { "" } else { "*" };
        t.push(vec![
            r.dataset.clone(),
            r.label.clone(),
            r.variant.clone(),
            format!("{:.2}", r.paper_acc),
            format!("{:.*}", r.memory_decimals, r.paper_memory_mb),
            format!(
                "{:.*}{}",
                r.memory_decimals + 2,
                r.memory_mb,
                mark(r.memory_within_rounding)
            ),
            format!("{:+.1}%", 100.0 * r.memory_rel_diff),
            format!("{:.*}", r.ncc_decimals, r.paper_ncc),
            format!(
                "{:.*}{}",
                r.ncc_decimals + 2,
                r.ncc,
                mark(r.ncc_within_rounding)
            ),
            format!("{:+.1}%", 100.0 * r.ncc_rel_diff),
            r.note.clone(),
        ]);
    }
    Ok(render(a.format, &t, &rows))
}
