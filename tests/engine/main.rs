//! Integration tests: engine. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;

mod binary_conv;
mod binary_dot;
mod binary_layers;
mod engine_cli;
mod engine_crosscheck;
mod engine_export;
mod engine_gradcheck;
mod engine_input_grad;
mod engine_isa;
mod engine_known_answer;
mod engine_props;
mod engine_pytorch;
mod ops_conv;
mod ops_gradcheck;
mod ops_known;
