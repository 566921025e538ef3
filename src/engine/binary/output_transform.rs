//! The output transform of a binary conv, in one place (as Larq Compute Engine's
//! `output_transform`): what turns its exact integer sums into what the next layer reads.
//!
//! - Floats: `act(bn(0 + k*s + b) + r)` per value, the epilogue of the float path
//!   (`ops::epilogue`, pixel-major rows `PixelRows`), which can also emit the sign bits of
//!   those floats for a binary conv that reads them (`PixelRows::apply_signs`).
//! - Sign bits only, when the next binary conv is the sole reader: that conv takes
//!   `sign(v)` of each value, and `v` is a monotone function of the sum `s`, so each channel's
//!   bit is `lo <= s <= hi` for one interval of sums ([`BitsOut::tabulate`], computed from the
//!   float epilogue itself, so exact by construction).
//!
//! Sign rule everywhere: bit 1 iff `v < 0` (sign(0) = sign(-0) = +1), as the packer's.

/// How a binary conv writes its output as sign bits: into frames with the reading conv's
/// padding `pad`, bit 1 iff the integer sum of channel `o` lies in `lo[o]..=hi[o]` (an empty
/// interval, `lo > hi`, for a channel that is never negative).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BitsOut {
    pub(crate) pad: usize,
    pub(crate) lo: Vec<i32>,
    pub(crate) hi: Vec<i32>,
}

impl BitsOut {
    /// The intervals of `channels` channels whose sums lie in `-kmax..=kmax`: `value(o, sums)`
    /// returns channel `o`'s output value for each of `sums` (the float epilogue). `None` if a
    /// value is NaN or a channel's negative values do not form one interval of sums (then the
    /// layer keeps its float output).
    pub(crate) fn tabulate(
        pad: usize,
        kmax: usize,
        channels: usize,
        mut value: impl FnMut(usize, &[i32]) -> Vec<f32>,
    ) -> Option<BitsOut> {
        let kmax = kmax as i32;
        let sums: Vec<i32> = (-kmax..=kmax).collect();
        let (mut lo, mut hi) = (Vec::with_capacity(channels), Vec::with_capacity(channels));
        for ch in 0..channels {
            let v = value(ch, &sums);
            assert_eq!(v.len(), sums.len(), "one value per sum");
            if v.iter().any(|x| x.is_nan()) {
                return None;
            }
            let neg: Vec<i32> = (0..sums.len())
                .filter(|&t| v[t] < 0.0)
                .map(|t| sums[t])
                .collect();
            let (l, h) = match (neg.first(), neg.last()) {
                (Some(&l), Some(&h)) if (h - l + 1) as usize == neg.len() => (l, h),
                (None, None) => (1, 0),
                _ => return None,
            };
            lo.push(l);
            hi.push(h);
        }
        Some(BitsOut { pad, lo, hi })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sum's bit is the sign of its value, for increasing, decreasing, never and always
    /// negative channels with zeros among the values (sign(0) = +1); non-intervals and NaN
    /// refuse.
    #[test]
    fn tabulated_bits_are_the_signs_of_the_values() {
        let kmax = 9usize;
        let chans: [fn(i32) -> f32; 6] = [
            |s| (0.5 * s as f32 - 1.0).clamp(-1.0, 1.0),
            |s| -0.25 * s as f32,
            |s| 3.0 + 0.0 * s as f32,
            |s| -1.0 - (s * s) as f32,
            |s| 0.0 * s as f32,
            |s| (s * s) as f32 - 4.0,
        ];
        let bits = BitsOut::tabulate(2, kmax, chans.len(), |ch, sums| {
            sums.iter().map(|&s| chans[ch](s)).collect()
        })
        .unwrap();
        assert_eq!(bits.pad, 2);
        for (ch, f) in chans.iter().enumerate() {
            for s in -(kmax as i32)..=kmax as i32 {
                let bit = bits.lo[ch] <= s && s <= bits.hi[ch];
                assert_eq!(bit, f(s) < 0.0, "channel {ch} sum {s}");
            }
        }
        let split = BitsOut::tabulate(0, kmax, 1, |_, sums| {
            sums.iter().map(|&s| 4.0 - (s * s) as f32).collect()
        });
        assert_eq!(split, None, "negatives at both ends are not one interval");
        let nan = BitsOut::tabulate(0, kmax, 1, |_, sums| {
            sums.iter()
                .map(|&s| if s == 3 { f32::NAN } else { 1.0 })
                .collect()
        });
        assert_eq!(nan, None, "NaN keeps the float output");
    }
}
