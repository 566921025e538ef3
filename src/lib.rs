//! breakingbed: what a compressed CNN costs on DSP48 slices, whether its binary kernels are
//! bit-exact, and how easily it breaks under adversarial attack.
//!
//! Data flows one way: [`model`] (description) -> [`variant`] -> ([`cost`] | [`sim`] |
//! [`engine`]) -> [`attack`] -> report. Stages exchange plain serde data types.
//!
//! Conventions fixed crate-wide:
//! - Tensors are NCHW, `f32`.
//! - `sign(x) = +1 for x >= 0, -1 for x < 0` (sign(0) = +1, as larq's `ste_sign`).
//! - Binary packing: +1 -> bit 0, -1 -> bit 1 (as Larq Compute Engine), so a +/-1 dot product of
//!   length K is `K - 2 * popcount(a XOR b)` over real (non-padded) positions.
//! - Images handed to classifiers are in *unit* scale (\[0,1\]); normalisation (mean/std per
//!   channel) happens inside the model.
//! - MB = 10^6 bytes; NCC is reported in units of 10^6.

// The docs are written for people working on the crate and link its internals; build them
// with `cargo doc --document-private-items` to follow those links.
#![allow(rustdoc::private_intra_doc_links)]

pub mod attack;
pub mod cli;
pub mod cost;
pub mod engine;
pub mod error;
pub mod hw;
pub mod io;
pub mod model;
pub mod onnx;
pub mod report;
pub mod sim;
pub mod sweep;
pub mod train;
pub mod variant;
pub mod zoo;

pub use error::{Error, Result};
