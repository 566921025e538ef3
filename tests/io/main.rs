//! Integration tests: io. One binary per area (linked once); each module was one test file.

#[path = "../support/common.rs"]
mod common;

mod io_augment;
mod io_cifar;
mod io_dataset;
mod io_folder;
mod io_fuzz;
mod io_idx;
mod io_jsonl;
mod io_output;
mod io_weights;
mod io_weights_variant;
mod onnx_import;
