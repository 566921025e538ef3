//! The simulator's own plain description of a layer ([`LayerSpec`]); the network description is
//! mapped onto it elsewhere.
//!
//! Geometry conventions: square kernels (`kh == kw`), symmetric zero padding, NCHW; a resolved
//! layer is a [`ConvGeom`], the conv geometry the engines share. A linear layer is treated
//! as a 1x1 convolution on a 1x1 image with `c = in_f`, `o = out_f`. Work counts follow
//! the usual MAC convention (as in Table 1 and the anchors' reference counts): every kernel tap
//! counts, including taps that fall on padding.

use crate::model::geom::ConvGeom;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerKind {
    Conv {
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        in_h: usize,
        in_w: usize,
    },
    Linear {
        in_f: usize,
        out_f: usize,
    },
}

/// Arithmetic of a layer on the slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Precision {
    /// Fixed-point MACs on the packed MAC lanes.
    Full,
    /// `m` weight bases x `n` activation bases of +/-1 convolutions on the XNOR lanes
    /// (XNOR-Net: m = n = 1; ABC-Net: M x N), combined with alpha/beta scales in fabric.
    Binary { m: usize, n: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub name: String,
    pub kind: LayerKind,
    pub precision: Precision,
}

impl LayerSpec {
    /// Resolves and validates the geometry (linear layers as 1x1 convs on a 1x1 image); errors
    /// name the layer and field.
    pub fn geometry(&self) -> Result<ConvGeom> {
        let ctx = |f: &str| format!("layer `{}`: {f}", self.name);
        let g = match self.kind {
            LayerKind::Conv {
                in_c,
                out_c,
                kernel,
                stride,
                padding,
                in_h,
                in_w,
            } => {
                for (f, v) in [
                    ("in_c", in_c),
                    ("out_c", out_c),
                    ("kernel", kernel),
                    ("stride", stride),
                    ("in_h", in_h),
                    ("in_w", in_w),
                ] {
                    if v == 0 {
                        return Err(Error::input(ctx(f), "must be at least 1"));
                    }
                }
                if in_h + 2 * padding < kernel || in_w + 2 * padding < kernel {
                    return Err(Error::input(
                        ctx("kernel"),
                        format!(
                            "{kernel}x{kernel} kernel larger than the padded {in_h}x{in_w} input (padding {padding})"
                        ),
                    ));
                }
                if padding >= kernel {
                    return Err(Error::input(
                        ctx("padding"),
                        format!("padding {padding} must be smaller than the kernel {kernel}"),
                    ));
                }
                ConvGeom::new((in_c, in_h, in_w), (out_c, kernel, kernel), stride, padding)
                    .expect("sizes checked above")
            }
            LayerKind::Linear { in_f, out_f } => {
                if in_f == 0 {
                    return Err(Error::input(ctx("in_f"), "must be at least 1"));
                }
                if out_f == 0 {
                    return Err(Error::input(ctx("out_f"), "must be at least 1"));
                }
                ConvGeom::new((in_f, 1, 1), (out_f, 1, 1), 1, 0).expect("1x1 fits")
            }
        };
        if let Precision::Binary { m, n } = self.precision {
            if m == 0 {
                return Err(Error::input(ctx("precision.m"), "must be at least 1"));
            }
            if n == 0 {
                return Err(Error::input(ctx("precision.n"), "must be at least 1"));
            }
        }
        Ok(g)
    }
}
