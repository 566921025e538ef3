//! Network descriptions: a layer graph with shapes inferred from the input size.

pub mod norm;

pub use norm::Normalization;
