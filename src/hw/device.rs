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
    /// Fabric capacity (vendor product table): CLB LUTs, CLB flip-flops, 18 Kb block RAMs,
    /// 288 Kb UltraRAMs. Absent = not modelled (reported as null, never binding).
    #[serde(default)]
    pub lut: Option<u64>,
    #[serde(default)]
    pub ff: Option<u64>,
    #[serde(default)]
    pub bram18: Option<u64>,
    #[serde(default)]
    pub uram: Option<u64>,
    /// Off-chip (DDR) bandwidth of the board in 10^9 bytes/s; absent = not modelled.
    #[serde(default)]
    pub ddr_gbytes_per_s: Option<f64>,
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
    /// `true` for a slice that is an abstraction (the paper's 2 x 16-bit DSP48): skips the check
    /// against the DSP48E1/E2 datasheet limits. Physical files omit it.
    #[serde(default, rename = "abstract")]
    pub is_abstract: bool,
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
    #[serde(default)]
    ncc: Option<NccParams>,
}

/// `[ncc]` table: the reference compute unit of the paper's normalised compute complexity
/// (Sec. 4.1). It is a normalisation, not a property of the part, so every shipped file carries
/// the paper's values; a file without `[ncc]` gets them too ([`NccParams::PAPER`]). The NCC
/// formula is in [`crate::cost::ncc`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NccParams {
    /// 16-bit fixed-point MACs one DSP48 issues per cycle (the paper's abstraction).
    pub mac_lanes: u32,
    /// XNOR operations one DSP48 ALU issues per cycle.
    pub xnor_lanes: u32,
    /// NCC divides fp MACs by `mac_lanes` if true (the paper's Table 1 does not).
    pub divide_macs_by_lanes: bool,
}

impl NccParams {
    /// The paper's reference unit: 2 MAC lanes, 48 XNOR lanes, MACs not divided (Table 1).
    pub const PAPER: NccParams = NccParams {
        mac_lanes: 2,
        xnor_lanes: 48,
        divide_macs_by_lanes: false,
    };

    /// Checks the lanes; `origin` names the file in errors.
    pub fn validate(&self, origin: &str) -> Result<()> {
        if self.mac_lanes == 0 {
            return Err(Error::input(
                format!("{origin}: ncc.mac_lanes"),
                "must be > 0",
            ));
        }
        if self.xnor_lanes == 0 {
            return Err(Error::input(
                format!("{origin}: ncc.xnor_lanes"),
                "must be > 0",
            ));
        }
        Ok(())
    }
}

/// Datasheet limits of a DSP48 family: multiplier A-side (after the pre-adder) and B widths,
/// P register width (DSP48E1: UG479; DSP48E2: UG579).
pub fn family_limits(family: &str) -> Option<(u32, u32, u32)> {
    match family {
        "DSP48E1" => Some((25, 18, 48)),
        "DSP48E2" => Some((27, 18, 48)),
        _ => None,
    }
}

/// Largest pipeline latency accepted for the slice or the popcount tree, cycles. Real DSP48
/// pipelines have at most 4 register stages and popcount trees a handful; the bound keeps every
/// cycle sum far from overflow.
pub const MAX_LATENCY: u32 = 1024;

/// Largest DSP count accepted (the largest Versal parts have under 15,000 DSP58s).
pub const MAX_DSP_COUNT: u32 = 1_000_000;

/// A validated hardware description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Where it was read from (file path or a caller-given label).
    pub source: String,
    pub device: DeviceSpec,
    pub slice: SliceSpec,
    pub popcount: PopcountSpec,
    /// The file's `[ncc]` table, or [`NccParams::PAPER`] when it has none.
    pub ncc: NccParams,
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
        if let Ok(table) = text.parse::<toml::Table>() {
            if !table.contains_key("device") && table.contains_key("ncc") {
                return Err(Error::input(
                    format!("{source}: device"),
                    "this file has only an [ncc] table (the old cost-only format), which `cost` \
                     still reads; the hardware model needs [device], [slice] and [popcount] \
                     beside [ncc] (see hw/paper.toml)",
                ));
            }
        }
        let file: HwFile = toml::from_str(text).map_err(|e| Error::input(source, e.to_string()))?;
        let dev = Device {
            source: source.to_string(),
            device: file.device,
            slice: file.slice,
            popcount: file.popcount,
            ncc: file.ncc.unwrap_or(NccParams::PAPER),
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

    /// Cycles from issue to an XNOR word's popcount being accumulated in fabric (both terms are
    /// at most [`MAX_LATENCY`], so the sum cannot overflow).
    pub fn xnor_latency(&self) -> u32 {
        self.slice.latency + self.popcount.latency
    }

    /// Whether the slice is a real DSP48E1/E2 mode (`false` for `abstract = true` files).
    pub fn physical(&self) -> bool {
        !self.slice.is_abstract
    }

    fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::input(format!("{}: {field}", self.source), msg)
    }

    fn validate(&self) -> Result<()> {
        let d = &self.device;
        if d.dsp_count == 0 {
            return Err(self.err("device.dsp_count", "must be at least 1"));
        }
        if d.dsp_count > MAX_DSP_COUNT {
            return Err(self.err(
                "device.dsp_count",
                format!("must be at most {MAX_DSP_COUNT}, got {}", d.dsp_count),
            ));
        }
        if let Some(bw) = d.ddr_gbytes_per_s {
            if !(bw.is_finite() && bw > 0.0) {
                return Err(self.err("device.ddr_gbytes_per_s", "must be a positive number"));
            }
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
        if !(1..=MAX_LATENCY).contains(&s.latency) {
            return Err(self.err(
                "slice.latency",
                format!("must be in 1..={MAX_LATENCY} cycles, got {}", s.latency),
            ));
        }
        if self.popcount.latency > MAX_LATENCY {
            return Err(self.err(
                "popcount.latency",
                format!(
                    "must be in 0..={MAX_LATENCY} cycles, got {}",
                    self.popcount.latency
                ),
            ));
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
        self.ncc.validate(&self.source)?;
        if !s.is_abstract {
            self.validate_family()?;
        }
        Ok(())
    }

    /// A physical slice must respect its family's datasheet: multiplier ports, the 48-bit P
    /// register, one multiplier (so lanes > 1 only as shared-operand packing) and the 48-bit ALU.
    fn validate_family(&self) -> Result<()> {
        let s = &self.slice;
        let Some((a, b, p)) = family_limits(&s.family) else {
            return Err(self.err(
                "slice.family",
                format!(
                    "`{}` is not a DSP family we model (DSP48E1, DSP48E2); declare \
                     `abstract = true` in [slice] for a virtual slice",
                    s.family
                ),
            ));
        };
        let limit = |field: &str, got: u32, max: u32, what: &str| -> Result<()> {
            if got > max {
                return Err(self.err(
                    field,
                    format!(
                        "{got} bits exceed the {} {what} ({max} bits); declare `abstract = true` \
                         in [slice] for a virtual slice",
                        s.family
                    ),
                ));
            }
            Ok(())
        };
        limit(
            "slice.a_width",
            s.a_width,
            a,
            "multiplier A/pre-adder width",
        )?;
        limit("slice.b_width", s.b_width, b, "multiplier B width")?;
        limit("slice.acc_width", s.acc_width, p, "P register")?;
        limit("slice.xnor.lanes", s.xnor.lanes, p, "ALU logic unit")?;
        if s.mac.lanes > 1 && s.mac.packing == Packing::Independent {
            return Err(self.err(
                "slice.mac.packing",
                format!(
                    "{} independent lanes need {} multipliers; a {} has one (use \
                     \"shared_operand\", or `abstract = true` for a virtual slice)",
                    s.mac.lanes, s.mac.lanes, s.family
                ),
            ));
        }
        Ok(())
    }
}
