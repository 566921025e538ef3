//! Float operators (NCHW, f32) with forward and backward passes.
