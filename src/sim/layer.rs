//! The simulator's own plain description of a layer ([`LayerSpec`]); the network description is
//! mapped onto it elsewhere.
//!
//! Geometry conventions: square kernels, symmetric zero padding, NCHW. A linear layer is treated
//! as a 1x1 convolution on a 1x1 image with `in_c = in_f`, `out_c = out_f`. Work counts follow
//! the usual MAC convention (as in Table 1 and the anchors' reference counts): every kernel tap
//! counts, including taps that fall on padding.

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

/// Conv geometry with every field resolved (linear layers as 1x1 convs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub in_c: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Geometry {
    pub fn pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Reduction length of one output (taps x input channels).
    pub fn reduction(&self) -> usize {
        self.in_c * self.kernel * self.kernel
    }

    /// MACs of one +/-1 or full-precision pass (padded taps included).
    pub fn macs(&self) -> u64 {
        (self.out_c * self.pixels()) as u64 * self.reduction() as u64
    }

    /// Input coordinate of tap (kh, kw) for output (oy, ox), or `None` when it lies on padding.
    pub fn input_at(&self, oy: usize, ox: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride + kh) as isize - self.padding as isize;
        let x = (ox * self.stride + kw) as isize - self.padding as isize;
        if y < 0 || x < 0 || y as usize >= self.in_h || x as usize >= self.in_w {
            None
        } else {
            Some((y as usize, x as usize))
        }
    }
}

impl LayerSpec {
    /// Resolves and validates the geometry; errors name the layer and field.
    pub fn geometry(&self) -> Result<Geometry> {
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
                Geometry {
                    in_c,
                    out_c,
                    kernel,
                    stride,
                    padding,
                    in_h,
                    in_w,
                    out_h: (in_h + 2 * padding - kernel) / stride + 1,
                    out_w: (in_w + 2 * padding - kernel) / stride + 1,
                }
            }
            LayerKind::Linear { in_f, out_f } => {
                if in_f == 0 {
                    return Err(Error::input(ctx("in_f"), "must be at least 1"));
                }
                if out_f == 0 {
                    return Err(Error::input(ctx("out_f"), "must be at least 1"));
                }
                Geometry {
                    in_c: in_f,
                    out_c: out_f,
                    kernel: 1,
                    stride: 1,
                    padding: 0,
                    in_h: 1,
                    in_w: 1,
                    out_h: 1,
                    out_w: 1,
                }
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
