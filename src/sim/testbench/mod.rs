//! Self-checking Verilog testbenches for one layer's vector sets ([`super::vectors`]), with a
//! behavioural reference PE: `hw/rtl/bbed_xnor_pe.v` (XNOR + masked popcount + accumulator) for
//! binary layers, `hw/rtl/bbed_mac_pe.v` (packed multi-lane MAC on a wrapping P register, drain
//! every `2^guard_bits` taps, borrow-corrected read-out) for full-precision layers.
//!
//! The Verilog lives in `hw/rtl/` as plain files (linted there) and is embedded here; the
//! testbench templates (`tb_xnor.v`, `tb_mac.v`) carry `@NAME@` placeholders that [`testbench`]
//! fills from the layer geometry and the device. A testbench streams the set named by `+dir=`
//! through the PE in the documented schedule (one word / tap per cycle, padded taps included),
//! compares every output with `expected.hex` and ends with `$fatal` (non-zero exit) on a mismatch.
//! Plain Verilog-2005: Icarus Verilog (`iverilog -g2005`) runs it; Verilator 5 lints it with
//! `-Wall --timing` and runs it with `--binary --timing`. `run.sh` compiles once with iverilog
//! and runs every set of the layer.

use super::layer::{LayerSpec, Precision};
use crate::hw::Device;
use crate::{Error, Result};

/// Reference XNOR-popcount PE.
pub const XNOR_PE: &str = include_str!("../../../hw/rtl/bbed_xnor_pe.v");
/// Reference packed-MAC PE.
pub const MAC_PE: &str = include_str!("../../../hw/rtl/bbed_mac_pe.v");
const TB_XNOR: &str = include_str!("../../../hw/rtl/tb_xnor.v");
const TB_MAC: &str = include_str!("../../../hw/rtl/tb_mac.v");

/// The files of one testbench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Testbench {
    /// Top module (`tb_xnor` or `tb_mac`).
    pub top: &'static str,
    /// `(file name, text)`: the testbench, the PE, and `run.sh`.
    pub files: Vec<(String, String)>,
    /// The PE file name among `files`.
    pub pe_file: &'static str,
    /// The testbench file name among `files`.
    pub tb_file: String,
}

/// Names shown in the testbench header.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub model: &'a str,
    pub variant: &'a str,
}

fn fill(template: &str, vars: &[(&str, String)]) -> Result<String> {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    // A placeholder is `@` + capitals/underscores + `@` (Verilog's own `@(` never matches).
    for (i, _) in s.match_indices('@') {
        let name: String = s[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !name.is_empty() && s[i + 1 + name.len()..].starts_with('@') {
            return Err(Error::input(
                "testbench template",
                format!("placeholder @{name}@ has no value"),
            ));
        }
    }
    Ok(s)
}

/// Verilog string-safe text (no quotes, newlines or placeholders).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '@' && c != '"' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The testbench of layer `spec` (one base pair for binary layers) on `dev`, for sets of
/// `images` images in the directories `set_dirs` (relative to the testbench's own directory,
/// which is `DIR/testbench`).
pub fn testbench(
    spec: &LayerSpec,
    dev: &Device,
    images: usize,
    set_dirs: &[String],
    labels: Labels,
) -> Result<Testbench> {
    let g = spec.geometry()?;
    let mut vars = vec![
        ("LAYER", clean(&spec.name)),
        ("MODEL", clean(labels.model)),
        ("VARIANT", clean(labels.variant)),
        ("DEVICE", clean(&dev.device.name)),
        ("IN_C", g.c.to_string()),
        ("IN_H", g.h.to_string()),
        ("IN_W", g.w.to_string()),
        ("OUT_C", g.o.to_string()),
        ("KERNEL", g.kh.to_string()),
        ("STRIDE", g.stride.to_string()),
        ("PAD", g.pad.to_string()),
        ("OUT_H", g.ho.to_string()),
        ("OUT_W", g.wo.to_string()),
        ("IMAGES", images.to_string()),
    ];
    let (top, pe_file, pe, tb) = match spec.precision {
        Precision::Binary { .. } => {
            vars.push(("LANES", dev.slice.xnor.lanes.to_string()));
            ("tb_xnor", "bbed_xnor_pe.v", XNOR_PE, TB_XNOR)
        }
        Precision::Full => {
            let m = &dev.slice.mac;
            vars.extend([
                ("LANES", m.lanes.to_string()),
                ("WIDTH", m.width.to_string()),
                ("SPACING", dev.mac_spacing().to_string()),
                ("ACC_W", dev.slice.acc_width.to_string()),
                ("DRAIN_EVERY", dev.max_accumulations().to_string()),
            ]);
            ("tb_mac", "bbed_mac_pe.v", MAC_PE, TB_MAC)
        }
    };
    let tb_file = format!("{top}.v");
    let mut run = format!(
        "#!/bin/sh\n# Runs every vector set of layer {} through the self-checking testbench \
         (Icarus Verilog);\n# stops with a non-zero exit status at the first failing set.\n\
         set -e\ncd \"$(dirname \"$0\")\"\niverilog -g2005 -o tb.vvp {tb_file} {pe_file}\n",
        clean(&spec.name)
    );
    for d in set_dirs {
        run.push_str(&format!("vvp -n tb.vvp +dir={}\n", clean(d)));
    }
    Ok(Testbench {
        top,
        files: vec![
            (tb_file.clone(), fill(tb, &vars)?),
            (pe_file.to_string(), pe.to_string()),
            ("run.sh".to_string(), run),
        ],
        pe_file,
        tb_file,
    })
}
