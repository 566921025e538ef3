//! ONNX and QONNX interchange: reading a user's network (description + trained weights) from an
//! ONNX file, and writing a variant back out for onnxruntime / FINN.
//!
//! - [`proto`]: the generated protobuf messages, decode / encode.
//! - [`import`]: ONNX / QONNX file -> [`crate::model::Network`] + parameters (+ binarized layers).
//! - [`export`]: a variant with its weights as ONNX (float) or QONNX (binarized) graph.

pub mod export;
pub mod import;
pub mod proto;
