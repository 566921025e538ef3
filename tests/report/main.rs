//! Integration tests: report. One binary per area (linked once); each module was one test file.

#[path = "../support/report.rs"]
mod report_support;

mod report_browser;
mod report_cam;
mod report_claims;
mod report_figures;
mod report_html;
mod report_metrics;
