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
//!
//! ## One schema, validated against the DSP family
//! Every file (for `cost` and for `simulate`/`vectors`) has `[device]` (DSP count, clock,
//! fabric capacity `lut`/`ff`/`bram18`/`uram` and board DDR bandwidth, all optional except DSPs
//! and clock), `[slice]`, `[popcount]` and `[ncc]` (the paper's NCC reference unit; absent =
//! the paper's 2 MAC / 48 XNOR lanes). A slice whose `family` is `DSP48E1` (25x18 multiplier) or
//! `DSP48E2` (27x18) is checked against that datasheet (48-bit P, one multiplier, lane widths
//! plus guard bits inside P) unless `[slice]` declares `abstract = true` (only `hw/paper.toml`
//! and `hw/reference.toml` do). Latencies are bounded ([`device::MAX_LATENCY`]) so cycle sums
//! never wrap. An old `[ncc]`-only file still loads for `cost` (NCC only) and is refused with a
//! clear error by the hardware model.
//!
//! ## Built-in parts
//! `--hw NAME` accepts the embedded files by name ([`BUILTIN`]); the default part is
//! [`DEFAULT_PART`] (ZCU102's XCZU9EG, physical INT8 packing).

pub mod device;

pub use device::{
    Device, DeviceSpec, MacLanes, NccParams, Packing, PopcountSpec, SliceSpec, XnorLanes,
};

use crate::Result;
use std::path::Path;

/// The embedded `hw/paper.toml` (the paper's abstract 2 x 16-bit / 48-XNOR slice).
pub const PAPER_TOML: &str = include_str!("../../hw/paper.toml");

/// The part `simulate` and `vectors` use without `--hw`.
pub const DEFAULT_PART: &str = "zcu102";

/// Hardware files compiled into the binary: `(name, file name, text)`.
pub const BUILTIN: [(&str, &str, &str); 5] = [
    (
        "zcu102",
        "hw/zcu102.toml",
        include_str!("../../hw/zcu102.toml"),
    ),
    (
        "zu3eg",
        "hw/zu3eg.toml",
        include_str!("../../hw/zu3eg.toml"),
    ),
    (
        "zynq7020",
        "hw/zynq7020.toml",
        include_str!("../../hw/zynq7020.toml"),
    ),
    ("paper", "hw/paper.toml", PAPER_TOML),
    (
        "reference",
        "hw/reference.toml",
        include_str!("../../hw/reference.toml"),
    ),
];

/// The text and label of a built-in file by name (`zcu102`, `paper`, ...).
pub fn builtin(name: &str) -> Option<(&'static str, &'static str)> {
    BUILTIN
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, label, text)| (*text, *label))
}

/// `--hw` as given: a built-in name, else a file path; `None` = [`DEFAULT_PART`].
pub fn resolve(hw: Option<&Path>) -> Result<Device> {
    let name = match hw {
        None => DEFAULT_PART,
        Some(p) => match p.to_str().and_then(builtin) {
            Some(_) => p.to_str().unwrap_or_default(),
            None => return Device::load(p),
        },
    };
    let (text, label) = builtin(name).expect("DEFAULT_PART and names checked above are built in");
    Device::from_toml_str(text, label)
}
