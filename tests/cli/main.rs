//! Integration tests: cli. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;

mod cli_errors;
mod cli_exit_codes;
mod cli_output;
mod cli_safety;
