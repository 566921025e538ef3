//! Fabric resources of a mapped network: DSP48 slices, LUTs, flip-flops, 18 Kb block RAMs and
//! UltraRAMs, per layer and in total, against the device's capacity.
//!
//! - [`memory`]: how a memory of `width x depth` bits maps onto RAMB18 / URAM, and where weight
//!   memories go when block RAM runs out.
//! - [`logic`]: LUT/FF counts of the XNOR-popcount tree, of accumulators and of the fabric adders
//!   behind packed DSP lanes (our own derivation, stated there).
//! - [`finn`]: FINN's MVAU estimates (`lut_estimation`, `dsp_estimation`, `bram_estimation`,
//!   `get_exp_cycles`), re-derived so our numbers can be compared with them.
//! - [`sequential`]: resources of the layer-sequential DSP array (today's schedule) and its DDR
//!   traffic per frame.
//!
//! Conventions: counts are whole primitives; a resource the device file does not declare has
//! capacity `None` (JSON null) and never binds. Activation bits per element: a full-precision
//! layer's input uses the MAC lane width, a binary layer's one bit per activation base; weights
//! likewise (lane width, or one bit per weight base). BN, pooling, adds and thresholds are not
//! counted (they run in fabric beside the array and are small next to the layers).

pub mod finn;
pub mod logic;
pub mod memory;
pub mod sequential;

use serde::{Deserialize, Serialize};

use crate::hw::Device;

/// Counts of each fabric primitive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub dsp: u64,
    pub lut: u64,
    pub ff: u64,
    pub bram18: u64,
    pub uram: u64,
}

/// The resource names, in report order.
pub const NAMES: [&str; 5] = ["dsp", "lut", "ff", "bram18", "uram"];

impl Resources {
    /// The counts in [`NAMES`] order.
    pub fn values(&self) -> [u64; 5] {
        [self.dsp, self.lut, self.ff, self.bram18, self.uram]
    }

    /// Element-wise sum.
    pub fn plus(&self, o: &Resources) -> Resources {
        Resources {
            dsp: self.dsp + o.dsp,
            lut: self.lut + o.lut,
            ff: self.ff + o.ff,
            bram18: self.bram18 + o.bram18,
            uram: self.uram + o.uram,
        }
    }

    /// Element-wise maximum (hardware shared in time must hold the largest demand).
    pub fn max_each(&self, o: &Resources) -> Resources {
        Resources {
            dsp: self.dsp.max(o.dsp),
            lut: self.lut.max(o.lut),
            ff: self.ff.max(o.ff),
            bram18: self.bram18.max(o.bram18),
            uram: self.uram.max(o.uram),
        }
    }
}

/// Device capacity with the same keys; `None` = not declared in the hardware file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub dsp: Option<u64>,
    pub lut: Option<u64>,
    pub ff: Option<u64>,
    pub bram18: Option<u64>,
    pub uram: Option<u64>,
}

impl Capacity {
    pub fn of(dev: &Device) -> Capacity {
        let d = &dev.device;
        Capacity {
            dsp: Some(d.dsp_count as u64),
            lut: d.lut,
            ff: d.ff,
            bram18: d.bram18,
            uram: d.uram,
        }
    }

    fn values(&self) -> [Option<u64>; 5] {
        [self.dsp, self.lut, self.ff, self.bram18, self.uram]
    }
}

/// Whether `used` fits `cap`, and which resource binds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub fits: bool,
    /// The declared resource with the highest used / capacity share (None if nothing is used
    /// of a declared resource).
    pub binding: Option<String>,
    /// used / capacity of the binding resource (may exceed 1; infinite when the capacity is 0).
    pub binding_share: Option<f64>,
}

/// Compares `used` with `cap`.
pub fn fit(used: &Resources, cap: &Capacity) -> Fit {
    let mut best: Option<(f64, &str)> = None;
    let mut fits = true;
    for ((u, c), name) in used.values().into_iter().zip(cap.values()).zip(NAMES) {
        let Some(c) = c else { continue };
        if u > c {
            fits = false;
        }
        if u == 0 {
            continue;
        }
        let share = if c == 0 {
            f64::INFINITY
        } else {
            u as f64 / c as f64
        };
        if best.is_none_or(|(b, _)| share > b) {
            best = Some((share, name));
        }
    }
    Fit {
        fits,
        binding: best.map(|(_, n)| n.to_string()),
        binding_share: best.map(|(s, _)| s),
    }
}

/// DDR traffic of one frame against the board's bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DdrTraffic {
    /// Bytes read and written per frame (see the execution mode for what they are).
    pub bytes_per_frame: u64,
    /// Board bandwidth, 10^9 bytes/s (None = not declared).
    pub gbytes_per_s: Option<f64>,
    /// Frames/s the bandwidth alone allows (None without a bandwidth).
    pub bound_frames_per_s: Option<f64>,
}

impl DdrTraffic {
    pub fn new(bytes_per_frame: u64, dev: &Device) -> DdrTraffic {
        let bw = dev.device.ddr_gbytes_per_s;
        DdrTraffic {
            bytes_per_frame,
            gbytes_per_s: bw,
            bound_frames_per_s: bw.map(|b| {
                if bytes_per_frame == 0 {
                    f64::INFINITY
                } else {
                    b * 1e9 / bytes_per_frame as f64
                }
            }),
        }
    }
}

/// Bits that hold one weight of a layer: the lane width (full precision) or 1 per base (binary;
/// the `m` bases are separate weight words).
pub fn weight_bits(precision: crate::sim::Precision, dev: &Device) -> u64 {
    match precision {
        crate::sim::Precision::Full => dev.slice.mac.width as u64,
        crate::sim::Precision::Binary { .. } => 1,
    }
}

/// Bits that hold one input activation of a layer: the lane width, or one per activation base.
pub fn act_bits(precision: crate::sim::Precision, dev: &Device) -> u64 {
    match precision {
        crate::sim::Precision::Full => dev.slice.mac.width as u64,
        crate::sim::Precision::Binary { n, .. } => n as u64,
    }
}

/// `ceil(log2(x))` for x >= 1 (0 for x <= 1).
pub fn clog2(x: u64) -> u64 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros() as u64
    }
}
