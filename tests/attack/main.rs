//! Integration tests: attack. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;

mod attack_batch;
mod attack_black;
mod attack_cli;
mod attack_counts;
mod attack_engine;
mod attack_flags;
mod attack_genattack_failure;
mod attack_run_guards;
mod attack_run_identity;
mod attack_save;
mod attack_white_analytic;
mod attack_white_mlp;
mod attack_white_props;
mod attack_white_spec;
