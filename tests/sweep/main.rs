//! Integration tests: sweep. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;
#[path = "../support/report.rs"]
mod report_support;
#[path = "../support/sweep.rs"]
mod sweep_support;

mod sweep_driver;
mod sweep_errors;
mod sweep_progress;
mod sweep_report;
mod sweep_resume;
