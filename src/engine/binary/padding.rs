//! Exact zero padding for binary convs (the role of LCE's `zero_padding_correction`).
//!
//! A zero-padded tap contributes 0 to a real conv, but the packed domain has no zero: im2col
//! leaves padded taps as bit 0 (+1). With `count` = popcount over the whole row, and `T_pad` the
//! padded taps of an output pixel,
//!
//! ```text
//! count    = count_real + sum_{t in T_pad} popcount(w[o][t])      (x bits are 0 there)
//! dot_real = K_real - 2 * count_real
//!          = (K_real + 2 * sum_{t in T_pad} popcount(w[o][t])) - 2 * count
//!          =: bias[pixel class][o] - 2 * count
//! ```
//!
//! where `K_real = C * |real taps|`. Along each axis the real taps of an output position are one
//! contiguous range `[lo, hi)`, so a pixel's class is (row range, column range): a handful of
//! classes (interior + borders), each with one bias vector over output channels.

use super::im2col::valid_taps;
use crate::model::geom::ConvGeom;

/// Valid tap range `[lo, hi)` along one axis for every output position, deduplicated.
fn axis_classes(
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    len: usize,
) -> (Vec<u32>, Vec<(usize, usize)>) {
    let mut classes: Vec<(usize, usize)> = Vec::new();
    let mut of_pos = Vec::with_capacity(out);
    for o in 0..out {
        let (lo, hi) = valid_taps(o, k, stride, pad, len);
        let id = match classes.iter().position(|&c| c == (lo, hi)) {
            Some(i) => i,
            None => {
                classes.push((lo, hi));
                classes.len() - 1
            }
        };
        of_pos.push(id as u32);
    }
    (of_pos, classes)
}

/// Per-pixel-class bias turning XOR-popcount counts into exact zero-padded +/-1 sums.
#[derive(Clone, Debug)]
pub(crate) struct PaddingBias {
    row_class: Vec<u32>,
    col_class: Vec<u32>,
    ncols: usize,
    outputs: usize,
    bias: Vec<i32>,
    /// Whether a class has any padded tap (else its bias is K for every output).
    padded: Vec<bool>,
}

impl PaddingBias {
    /// `tap_pop[o * kh*kw + t]` = popcount of filter `o` at tap `t` (im2col tap order).
    pub(crate) fn new(g: &ConvGeom, outputs: usize, tap_pop: &[u32]) -> Self {
        let (row_class, rows) = axis_classes(g.ho, g.kh, g.stride, g.pad, g.h);
        let (col_class, cols) = axis_classes(g.wo, g.kw, g.stride, g.pad, g.w);
        let taps = g.kh * g.kw;
        let mut bias = Vec::with_capacity(rows.len() * cols.len() * outputs);
        let mut padded = Vec::with_capacity(rows.len() * cols.len());
        for &(ylo, yhi) in &rows {
            for &(xlo, xhi) in &cols {
                padded.push((yhi - ylo) * (xhi - xlo) != taps);
                let k_real = ((yhi - ylo) * (xhi - xlo) * g.c) as i32;
                for o in 0..outputs {
                    let pops = &tap_pop[o * taps..(o + 1) * taps];
                    let mut padded_pop = 0i32;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let real = (ylo..yhi).contains(&ky) && (xlo..xhi).contains(&kx);
                            if !real {
                                padded_pop += pops[ky * g.kw + kx] as i32;
                            }
                        }
                    }
                    bias.push(k_real + 2 * padded_pop);
                }
            }
        }
        PaddingBias {
            row_class,
            col_class,
            ncols: cols.len(),
            outputs,
            bias,
            padded,
        }
    }

    /// `(pixel, class)` of every output pixel (row-major index) that has a padded tap; all
    /// others have bias K.
    pub(crate) fn border_pixels(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (oy, &r) in self.row_class.iter().enumerate() {
            for (ox, &c) in self.col_class.iter().enumerate() {
                let class = r * self.ncols as u32 + c;
                if self.padded[class as usize] {
                    out.push(((oy * self.col_class.len() + ox) as u32, class));
                }
            }
        }
        out
    }

    /// The bias table, `[class][outputs]`.
    pub(crate) fn table(&self) -> &[i32] {
        &self.bias
    }

    /// The class of every output pixel, row-major `[oh][ow]`.
    pub(crate) fn pixel_classes(&self) -> Vec<u32> {
        let n = self.ncols as u32;
        self.row_class
            .iter()
            .flat_map(|&r| self.col_class.iter().map(move |&c| r * n + c))
            .collect()
    }

    /// Bias of output channel `o` for pixel class `class`.
    #[inline]
    pub(crate) fn bias(&self, class: u32, o: usize) -> i32 {
        self.bias[class as usize * self.outputs + o]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ranges_by_hand() {
        // len 4, k 3, stride 1, pad 1: out 4; first position misses tap 0, last misses tap 2.
        let (of, cl) = axis_classes(4, 3, 1, 1, 4);
        let ranges: Vec<_> = of.iter().map(|&i| cl[i as usize]).collect();
        assert_eq!(ranges, vec![(1, 3), (0, 3), (0, 3), (0, 2)]);
        // len 2, k 5, stride 1, pad 2: out 2; taps 2..4 at position 0, 1..3 at position 1.
        let (of, cl) = axis_classes(2, 5, 1, 2, 2);
        let ranges: Vec<_> = of.iter().map(|&i| cl[i as usize]).collect();
        assert_eq!(ranges, vec![(2, 4), (1, 3)]);
        // len 5, k 1, stride 2, pad 0: all taps real.
        let (of, cl) = axis_classes(3, 1, 2, 0, 5);
        assert!(of.iter().all(|&i| cl[i as usize] == (0, 1)));
    }
}
