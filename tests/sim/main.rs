//! Integration tests: sim. One binary per area (linked once); each module was one test file.

mod sim_cli;
mod sim_cli_props;
mod sim_cli_vectors;
mod sim_fold;
mod sim_functional;
mod sim_hw;
mod sim_resources;
mod sim_schedule;
mod sim_slice;
mod sim_vectors;
