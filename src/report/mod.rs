//! From sweep records to the paper's Section 4 figures and tables: [`record`] (the JSONL line the
//! sweep writes), [`metrics`] (accuracy, strain, breaking iteration, classification, box-plots,
//! OA/TA), [`cam`] (class activation maps), [`plots`] (SVG figures), [`tables`] (Tables 4-6 as
//! Markdown/CSV/HTML) and [`html`] ([`write_report`]: the whole report folder).
//!
//! Accuracies inside the metrics are fractions in [0,1]; figures and tables show percent.

pub mod cam;
pub mod html;
pub mod metrics;
pub mod plots;
pub mod png;
pub mod record;
pub mod tables;

pub use html::{write_report, ReportInputs, ReportMetrics, ReportSummary};
pub use record::{canonical_attack, load_records, Setting, SweepRecord};
