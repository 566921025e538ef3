//! NCC constants of the DSP48 reference unit, read from the `[ncc]` table of a hardware TOML
//! (default: the embedded `hw/reference.toml`). NCC of a layer, in operations:
//! `fp_macs / d + binary_ops / xnor_lanes` with `d = mac_lanes` if `divide_macs_by_lanes`, else 1.
//! Reported NCC is that sum over all layers divided by 10^6.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The embedded reference hardware file.
pub const REFERENCE_TOML: &str = include_str!("../../hw/reference.toml");

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NccParams {
    pub mac_lanes: u32,
    pub xnor_lanes: u32,
    pub divide_macs_by_lanes: bool,
}

#[derive(Deserialize)]
struct HwFile {
    ncc: Option<NccParams>,
}

impl NccParams {
    /// Parses the `[ncc]` table of a hardware TOML; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let f: HwFile = toml::from_str(text)
            .map_err(|e| Error::input(origin, format!("malformed hardware TOML: {e}")))?;
        let p = f.ncc.ok_or_else(|| {
            Error::input(
                origin,
                "missing [ncc] table (mac_lanes, xnor_lanes, divide_macs_by_lanes)",
            )
        })?;
        if p.mac_lanes == 0 {
            return Err(Error::input(
                format!("{origin}: ncc.mac_lanes"),
                "must be > 0",
            ));
        }
        if p.xnor_lanes == 0 {
            return Err(Error::input(
                format!("{origin}: ncc.xnor_lanes"),
                "must be > 0",
            ));
        }
        Ok(p)
    }

    /// The embedded DSP48 reference (`hw/reference.toml`).
    pub fn reference() -> Self {
        Self::from_toml_str(REFERENCE_TOML, "hw/reference.toml")
            .expect("embedded hw/reference.toml is valid")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// NCC (in operations, not 10^6) of `fp_macs` full-precision MACs and `binary_ops` XNOR ops.
    pub fn ncc(&self, fp_macs: u64, binary_ops: u64) -> f64 {
        let d = if self.divide_macs_by_lanes {
            self.mac_lanes as f64
        } else {
            1.0
        };
        fp_macs as f64 / d + binary_ops as f64 / self.xnor_lanes as f64
    }
}
