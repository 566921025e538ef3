//! Integration tests: sim. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;

mod sim_cli;
mod sim_cli_props;
mod sim_cli_vectors;
mod sim_fold;
mod sim_functional;
mod sim_hw;
mod sim_resources;
mod sim_schedule;
mod sim_slice;
mod sim_testbench;
mod sim_vectors;
mod sim_vectors_real;
mod sim_vectors_stress;
