//! Hardware descriptions (DSP48 slices, popcount trees, devices) read from `hw/*.toml`.
//!
//! A description has three tables: `[device]` (DSP count, clock, optional memory bandwidth),
//! `[slice]` (one DSP48: multiplier ports, P-register width, pipeline latency, and the lane
//! abstraction used for MACs and XNORs) and `[popcount]` (the LUT-fabric adder tree that reduces
//! XNOR words). [`Device::load`] parses and validates; every rejection is an
//! [`crate::Error::Input`] naming the file and the field.
//!
//! ## Where the paper's abstraction differs from the physical slice
//! The paper (Sec. 4.1) counts "two 16-bit fixed-point multiplications or 48 XNOR operations" per
//! DSP48 per cycle. The XNOR half is physical: the ALU logic unit of DSP48E1/E2 computes a 48-bit
//! bitwise XNOR per cycle. The MAC half is not: a DSP48E2 has one 27x18 multiplier (DSP48E1:
//! 25x18) and a 48-bit P register. Two products per cycle are physical only for narrow operands
//! that share one input (Xilinx INT8 white paper: two 8-bit weights packed into the 27-bit
//! pre-adder/A path, times one shared 8-bit activation on B, products 18 bits apart in P). Two
//! independent 16x16 products need 2 x 32 bits before any guard bit, more than 48. So lanes, lane width,
//! lane spacing and guard bits are parameters: `hw/paper.toml` models the paper's 2 x 16-bit
//! abstraction as a *virtual* 96-bit P register with independent operands; the physical files
//! model INT8 shared-operand packing (2 x 8) or one INT16 lane (1 x 16).

pub mod device;

pub use device::{Device, DeviceSpec, MacLanes, Packing, PopcountSpec, SliceSpec, XnorLanes};
