//! The geometry of one 2-D convolution on one image, shared by the float engine
//! (`engine::ops::conv`), the bit-exact engine (`engine::binary`) and the simulator
//! (`sim::layer`): input size, kernel, stride, symmetric zero padding and the output size they
//! give.
//!
//! Conventions (PyTorch `conv2d`, no dilation, no groups): input `C x H x W`, `O` filters of
//! `C x KH x KW`, the same stride and zero padding on both axes, output
//! `HO = floor((H + 2*pad - KH) / stride) + 1` ([`out_len`]; the same for `WO`). It lives in
//! [`crate::model`] because the network description fixes these numbers and both the engines
//! and the simulator read it, while neither should depend on the other's internals. Callers
//! validate their own inputs first, so their errors name their own fields; the constructor
//! only refuses what has no output size.

/// Output length of one axis: `floor((len + 2*pad - kernel) / stride) + 1`, or `None` when the
/// stride or kernel is zero or the padded input is shorter than the kernel.
pub fn out_len(len: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    if kernel == 0 || stride == 0 || len + 2 * pad < kernel {
        return None;
    }
    Some((len + 2 * pad - kernel) / stride + 1)
}

/// One convolution's geometry with the output size resolved (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output channels.
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// The geometry of `O x C x KH x KW` filters on a `C x H x W` input, or `None` when an
    /// axis has no output size ([`out_len`]).
    pub fn new(
        (c, h, w): (usize, usize, usize),
        (o, kh, kw): (usize, usize, usize),
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        Some(ConvGeom {
            c,
            h,
            w,
            o,
            kh,
            kw,
            stride,
            pad,
            ho: out_len(h, kh, stride, pad)?,
            wo: out_len(w, kw, stride, pad)?,
        })
    }

    /// Output positions (`HO * WO`).
    pub fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// Reduction length of one output (`C * KH * KW`, padded taps included).
    pub fn reduction(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Multiply-accumulates of one image, padded taps included (the usual MAC convention).
    pub fn macs(&self) -> u64 {
        (self.o * self.pixels()) as u64 * self.reduction() as u64
    }

    /// Input coordinate of tap `(ky, kx)` for output `(oy, ox)`, or `None` on padding.
    pub fn input_at(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride + ky).checked_sub(self.pad)?;
        let x = (ox * self.stride + kx).checked_sub(self.pad)?;
        (y < self.h && x < self.w).then_some((y, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Output positions by enumeration: window starts `0, s, 2s, ...` in the padded axis of
    /// `len + 2*pad` cells whose `k` cells all lie inside it.
    fn enumerated(len: usize, k: usize, s: usize, pad: usize) -> usize {
        (0..len + 2 * pad)
            .step_by(s)
            .filter(|&start| start + k <= len + 2 * pad)
            .count()
    }

    proptest! {
        /// The output size equals the number of windows that fit, and there is one exactly
        /// when some window fits.
        #[test]
        fn out_len_counts_the_windows(len in 0usize..40, k in 1usize..8, s in 1usize..6, pad in 0usize..5) {
            let n = enumerated(len, k, s, pad);
            prop_assert_eq!(out_len(len, k, s, pad), (n > 0).then_some(n));
        }

        /// `input_at` agrees with the definition `i = o*s + t - pad` inside the image, for
        /// every output and tap of a geometry.
        #[test]
        fn input_at_follows_the_definition(h in 1usize..9, w in 1usize..9, k in 1usize..4, s in 1usize..4, pad in 0usize..3) {
            prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
            let g = ConvGeom::new((2, h, w), (3, k, k), s, pad).unwrap();
            let mut real = 0;
            for (oy, ox, ky, kx) in (0..g.ho).flat_map(|oy| (0..g.wo).flat_map(move |ox| {
                (0..k).flat_map(move |ky| (0..k).map(move |kx| (oy, ox, ky, kx)))
            })) {
                let (y, x) = ((oy * s + ky) as isize - pad as isize, (ox * s + kx) as isize - pad as isize);
                let inside = (0..h as isize).contains(&y) && (0..w as isize).contains(&x);
                prop_assert_eq!(g.input_at(oy, ox, ky, kx), inside.then_some((y as usize, x as usize)));
                real += usize::from(inside);
            }
            prop_assert!(real <= g.pixels() * k * k);
            prop_assert_eq!(g.macs(), (3 * g.pixels() * 2 * k * k) as u64);
        }
    }

    #[test]
    fn no_output_size_without_a_window() {
        assert_eq!(out_len(3, 5, 1, 0), None);
        assert_eq!(out_len(3, 5, 1, 1), Some(1));
        assert_eq!(out_len(4, 3, 0, 1), None);
        assert_eq!(out_len(4, 0, 1, 1), None);
        assert!(ConvGeom::new((1, 2, 9), (1, 3, 3), 1, 0).is_none());
    }
}
