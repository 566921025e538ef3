//! Slow, obviously-correct f64 reference implementations that the fast f32 operators are
//! tested against. Nested loops only; no cleverness, no parallelism.

pub mod conv;
