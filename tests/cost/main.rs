//! Integration tests: cost. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;

mod cost_counts;
mod cost_hw;
mod cost_model;
mod cost_props;
mod cost_table1;
