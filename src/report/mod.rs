//! From sweep records to the paper's Section 4 figures and tables: [`record`] (the JSONL line the
//! sweep writes), [`metrics`] (accuracy, strain, breaking iteration, classification, box-plots,
//! OA/TA), [`claims`] (the paper's claims with bootstrap confidence intervals and verdicts),
//! [`cam`] (class activation maps), [`style`] (series colours, markers, dashes), [`axes`] (ranges, ticks, pixel mapping), [`plots`] (SVG figures), [`raster`] (figures as PNG),
//! [`tables`] (Tables 4-6 as Markdown/CSV/LaTeX/HTML) and [`html`] ([`write_report`]: the whole
//! report folder).
//!
//! Accuracies inside the metrics are fractions in \[0,1\]; figures and tables show percent.

pub mod axes;
pub mod cam;
pub mod claims;
pub mod html;
pub mod metrics;
pub mod plots;
pub mod png;
pub mod raster;
pub mod record;
pub mod style;
pub mod tables;

pub use html::{write_report, ReportInputs, ReportMetrics, ReportSummary};
pub use record::{canonical_attack, load_many, load_records, results_files, Setting, SweepRecord};

use std::path::Path;

/// `bbed report <results...> --out <dir>`: load every results file (files or directories of
/// `*.jsonl`) and write the report. Corrupt lines fail naming `file:line` unless `skip_corrupt`.
pub fn report_from_paths(
    results: &[impl AsRef<Path>],
    skip_corrupt: bool,
    extra: &ReportInputs,
    out: &Path,
) -> crate::Result<ReportSummary> {
    let files = results_files(results)?;
    let records = load_many(&files, skip_corrupt)?;
    write_report(&records, extra, out)
}
