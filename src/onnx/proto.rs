//! The ONNX protobuf messages (`ModelProto`, `GraphProto`, `NodeProto`, `TensorProto`, ...),
//! generated at build time by prost from the vendored schema `src/onnx/onnx.proto` (ONNX 1.23.2,
//! package `onnx`, proto2 syntax; see `src/onnx/build.rs`).
//!
//! Why prost + protox and not a hand-written reader or a whole runtime: prost is the maintained
//! protobuf implementation of the Rust ecosystem (decode and encode from one schema, so import and
//! export cannot disagree on the wire format); protox compiles the schema in pure Rust, so the
//! build needs no `protoc`. A runtime such as tract-onnx would bring its own graph IR, kernels and
//! ~100 crates to parse a file whose ops we map onto our own network description anyway.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));

/// Decodes a serialized `ModelProto`; `what` names the file in the error.
pub fn decode_model(bytes: &[u8], what: &str) -> crate::Result<ModelProto> {
    use prost::Message;
    ModelProto::decode(bytes)
        .map_err(|e| crate::Error::input(what, format!("not an ONNX model (protobuf decode: {e})")))
}

/// Serializes a `ModelProto` to bytes (what `.onnx` files hold).
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    use prost::Message;
    model.encode_to_vec()
}
