//! The NCC formula and where its reference unit comes from. The unit is the `[ncc]` table of a
//! hardware TOML ([`crate::hw::NccParams`], default: the embedded `hw/reference.toml`); any
//! hardware file of the one schema works, and so does an old file holding only `[ncc]`.
//! NCC of a layer, in operations: `fp_macs / d + binary_ops / xnor_lanes` with
//! `d = mac_lanes` if `divide_macs_by_lanes`, else 1. Reported NCC is that sum over all layers
//! divided by 10^6.

use std::path::Path;

use serde::Deserialize;

use crate::hw::Device;
pub use crate::hw::NccParams;
use crate::{Error, Result};

/// The embedded reference hardware file.
pub const REFERENCE_TOML: &str = include_str!("../../hw/reference.toml");

/// An old cost-only file: just `[ncc]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NccOnly {
    ncc: NccParams,
}

impl NccParams {
    /// The `[ncc]` unit of a hardware TOML; `origin` names the file in errors. A file with a
    /// `[device]` table is read (and validated) as a whole hardware description; a file with
    /// only `[ncc]` is the old cost-only format, still accepted.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| Error::input(origin, format!("malformed hardware TOML: {e}")))?;
        if table.contains_key("device") {
            return Ok(Device::from_toml_str(text, origin)?.ncc);
        }
        if !table.contains_key("ncc") {
            return Err(Error::input(
                origin,
                "missing [device] and [ncc] tables: a hardware file has [device], [slice], \
                 [popcount] and [ncc] (mac_lanes, xnor_lanes, divide_macs_by_lanes)",
            ));
        }
        let f: NccOnly = toml::from_str(text)
            .map_err(|e| Error::input(origin, format!("malformed hardware TOML: {e}")))?;
        f.ncc.validate(origin)?;
        Ok(f.ncc)
    }

    /// The embedded DSP48 reference (`hw/reference.toml`).
    pub fn reference() -> Self {
        Self::from_toml_str(REFERENCE_TOML, "hw/reference.toml")
            .expect("embedded hw/reference.toml is valid")
    }

    /// `--hw` as given: a built-in hardware name (`zcu102`, `paper`, ...), else a file; `None` =
    /// the embedded `hw/reference.toml`.
    pub fn resolve(hw: Option<&Path>) -> Result<Self> {
        match hw {
            None => Ok(Self::reference()),
            Some(p) => match p.to_str().and_then(crate::hw::builtin) {
                Some((text, label)) => Self::from_toml_str(text, label),
                None => Self::load(p),
            },
        }
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
