//! Inference engines: a float reference with gradients ([`ops`] and the network executor) and a
//! bit-exact binarized engine ([`binary`]).

pub mod binary;
pub mod classifier;
pub mod cpu;
pub mod exec;
mod fmap;
pub mod heap;
pub mod ops;
pub mod params;
