//! Parsing and validation of one hardware description file (see the module doc of [`crate::hw`]).
//!
//! Units: widths in bits, latencies in clock cycles, clock in MHz, memory bandwidth in bytes per
//! clock cycle. A MAC lane multiplies two signed `width`-bit operands; lane `l` accumulates in the
//! P-register field starting at bit `l * spacing`; each field holds a `2*width`-bit product plus
//! `guard_bits`, so up to `2^guard_bits` products can be accumulated before the field must be
//! drained (read out and reset) into a fabric accumulator.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How the lanes of a packed MAC get their operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packing {
    /// Physical: the lanes' weights are packed into one A/pre-adder operand and multiplied by one
    /// shared B operand in the single multiplier (Xilinx INT8 technique).
    SharedOperand,
    /// Abstract (the paper's): each lane multiplies its own operand pair; the products are added
    /// into their fields of the (possibly virtual) P register.
    Independent,
}

/// `[device]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub name: String,
    pub dsp_count: u32,
    pub clock_mhz: f64,
    /// Bytes per clock cycle that memory can deliver to the array; absent = unlimited.
    #[serde(default)]
    pub mem_bytes_per_cycle: Option<u32>,
}

/// `[slice.mac]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacLanes {
    pub lanes: u32,
    /// Operand width in bits (both operands, signed two's complement).
    pub width: u32,
    /// Bit distance between lane fields in P; absent = `acc_width / lanes`.
    #[serde(default)]
    pub spacing: Option<u32>,
    pub guard_bits: u32,
    pub packing: Packing,
}

/// `[slice.xnor]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XnorLanes {
    pub lanes: u32,
}

/// `[slice]` table: one DSP48.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceSpec {
    pub family: String,
    /// Multiplier A-side width (after the pre-adder), bits.
    pub a_width: u32,
    /// Multiplier B-side width, bits.
    pub b_width: u32,
    /// P register / accumulator width, bits (48 on DSP48E1/E2; larger only for virtual slices).
    pub acc_width: u32,
    /// Cycles from operand issue to the result being in P (register stages A/B, AD, M, P).
    pub latency: u32,
    pub mac: MacLanes,
    pub xnor: XnorLanes,
}

/// `[popcount]` table: the LUT adder tree counting ones of an XNOR word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopcountSpec {
    pub inputs: u32,
    /// Pipeline stages of the tree including the final accumulate, cycles.
    pub latency: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HwFile {
    device: DeviceSpec,
    slice: SliceSpec,
    popcount: PopcountSpec,
}

/// A validated hardware description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Where it was read from (file path or a caller-given label).
    pub source: String,
    pub device: DeviceSpec,
    pub slice: SliceSpec,
    pub popcount: PopcountSpec,
}

/// Largest P register we model (the register is simulated in a `u128`).
pub const MAX_ACC_WIDTH: u32 = 127;

impl Device {
    /// Reads and validates a TOML hardware description.
    pub fn load(path: impl AsRef<Path>) -> Result<Device> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Device::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &str) -> Result<Device> {
        let file: HwFile = toml::from_str(text).map_err(|e| Error::input(source, e.to_string()))?;
        let dev = Device {
            source: source.to_string(),
            device: file.device,
            slice: file.slice,
            popcount: file.popcount,
        };
        dev.validate()?;
        Ok(dev)
    }

    /// Bit distance between MAC lane fields in P.
    pub fn mac_spacing(&self) -> u32 {
        let m = &self.slice.mac;
        m.spacing.unwrap_or(self.slice.acc_width / m.lanes.max(1))
    }

    /// Products a lane field can accumulate before it must be drained.
    pub fn max_accumulations(&self) -> u64 {
        1u64 << self.slice.mac.guard_bits
    }

    /// Cycles from issue to a MAC result being final in P.
    pub fn mac_latency(&self) -> u32 {
        self.slice.latency
    }

    /// Cycles from issue to an XNOR word's popcount being accumulated in fabric.
    pub fn xnor_latency(&self) -> u32 {
        self.slice.latency + self.popcount.latency
    }

    fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::input(format!("{}: {field}", self.source), msg)
    }

    fn validate(&self) -> Result<()> {
        let d = &self.device;
        if d.dsp_count == 0 {
            return Err(self.err("device.dsp_count", "must be at least 1"));
        }
        if !(d.clock_mhz.is_finite() && d.clock_mhz > 0.0) {
            return Err(self.err("device.clock_mhz", "must be a positive number"));
        }
        if d.mem_bytes_per_cycle == Some(0) {
            return Err(self.err(
                "device.mem_bytes_per_cycle",
                "must be at least 1 (omit the field for unlimited bandwidth)",
            ));
        }
        let s = &self.slice;
        if s.acc_width == 0 || s.acc_width > MAX_ACC_WIDTH {
            return Err(self.err(
                "slice.acc_width",
                format!("must be in 1..={MAX_ACC_WIDTH}, got {}", s.acc_width),
            ));
        }
        if s.a_width == 0 {
            return Err(self.err("slice.a_width", "must be at least 1"));
        }
        if s.b_width == 0 {
            return Err(self.err("slice.b_width", "must be at least 1"));
        }
        if s.latency == 0 {
            return Err(self.err("slice.latency", "must be at least 1 cycle"));
        }
        let m = &s.mac;
        if m.lanes == 0 {
            return Err(self.err("slice.mac.lanes", "must be at least 1"));
        }
        if !(2..=32).contains(&m.width) {
            return Err(self.err(
                "slice.mac.width",
                format!("must be in 2..=32 bits, got {}", m.width),
            ));
        }
        if m.guard_bits > 32 {
            return Err(self.err("slice.mac.guard_bits", "must be at most 32"));
        }
        let field = 2 * m.width + m.guard_bits;
        let spacing = self.mac_spacing();
        if m.lanes > 1 && spacing < field {
            return Err(self.err(
                "slice.mac.spacing",
                format!(
                    "lane fields are {spacing} bits apart but each needs 2*{} + {} guard bits = {field}",
                    m.width, m.guard_bits
                ),
            ));
        }
        let needed = (m.lanes as u64 - 1) * spacing as u64 + field as u64;
        if needed > s.acc_width as u64 {
            return Err(self.err(
                "slice.mac",
                format!(
                    "{} lanes x (2*{} + {} guard bits) need {needed} bits, more than slice.acc_width = {}",
                    m.lanes, m.width, m.guard_bits, s.acc_width
                ),
            ));
        }
        match m.packing {
            Packing::SharedOperand => {
                let packed = (m.lanes as u64 - 1) * spacing as u64 + m.width as u64;
                if packed > s.a_width as u64 {
                    return Err(self.err(
                        "slice.mac.packing",
                        format!(
                            "shared_operand packs {} lanes of {} bits {spacing} apart into {packed} bits, more than slice.a_width = {}",
                            m.lanes, m.width, s.a_width
                        ),
                    ));
                }
                if m.width > s.b_width {
                    return Err(self.err(
                        "slice.mac.width",
                        format!("{} bits do not fit slice.b_width = {}", m.width, s.b_width),
                    ));
                }
            }
            Packing::Independent => {
                if m.width > s.a_width.max(s.b_width) {
                    return Err(self.err(
                        "slice.mac.width",
                        format!(
                            "{} bits exceed both multiplier ports ({} x {})",
                            m.width, s.a_width, s.b_width
                        ),
                    ));
                }
            }
        }
        let x = s.xnor.lanes;
        if x == 0 || x > 64 || x > s.acc_width {
            return Err(self.err(
                "slice.xnor.lanes",
                format!(
                    "must be in 1..=min(64, slice.acc_width = {}), got {x}",
                    s.acc_width
                ),
            ));
        }
        if self.popcount.inputs < x {
            return Err(self.err(
                "popcount.inputs",
                format!(
                    "{} inputs cannot reduce {x} XNOR lanes",
                    self.popcount.inputs
                ),
            ));
        }
        Ok(())
    }
}
