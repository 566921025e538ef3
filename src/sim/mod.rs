//! Cycle-level DSP48 array simulator.
