//! The output transform of a binary conv, in one place (as Larq Compute Engine's
//! `output_transform`): what turns its exact integer sums into what the next layer reads.
//!
//! - Floats: `act(bn(0 + k*s + b) + r)` per value, the epilogue of the float path
//!   (`ops::epilogue`, pixel-major rows `PixelRows`), which can also emit the sign bits of
//!   those floats for a binary conv that reads them (`PixelRows::apply_signs`, in the same
//!   SIMD sweep as the floats).
//! - Sign bits only, when the next binary conv is the sole reader: that conv takes
//!   `sign(v)` of each value, and `v` is a monotone function of the sum `s`, so each channel's
//!   bit is `lo <= s <= hi` for one interval of sums ([`BitsOut::tabulate`], computed from the
//!   float epilogue itself, so exact by construction). The bits are written either by
//!   comparing each sum with its interval ([`write_interval_bits`], after the generic
//!   kernel) or inside the tap kernel as one compare of the popcount against a per-class
//!   threshold ([`SignTable`], below).
//!
//! Sign rule everywhere: bit 1 iff `v < 0` (sign(0) = sign(-0) = +1), as the packer's; bits go
//! into the reading conv's frame (`super::frame`: channel `c` at bit `c % 8` of byte `c / 8`).
//!
//! ## Thresholds of the tap kernel
//!
//! The intervals are over `s` in `-K..=K`; the epilogue is monotone in `s`, so an interval is a prefix
//! (`lo <= -K`: the bit is `s <= hi`), a suffix (`hi >= K`: `s >= lo`) or empty. Real sums
//! never leave `-K..=K`, so one side decides. The kernel holds the window's XOR popcount `c`
//! and `s = B - 2c` with `B` the window's padding-class bias ([`super::padding`]), so per class
//! and channel:
//! - `s <= hi`  iff `c >= ceil((B - hi) / 2)`;
//! - `s >= lo`  iff not `c >= floor((B - lo) / 2) + 1`;
//! - empty: `c >= T` with `T` above any count.
//!
//! That is `bit = (c >= T[class][o]) XOR flip[o]`: no bias add, no shift, one compare, where
//! the sum path needs four vector operations per window. For 16-bit units the kernel holds two
//! neighbouring windows per vector (lane `2o + q` = window `2j + q`, see `taps`), so the
//! thresholds are laid out per window pair, and rows with the same class pattern (all interior
//! rows) share one table row.

use std::collections::HashMap;

use super::frame::supports;
use crate::engine::cpu::{self, Features, Isa};

/// The features of the AVX-512 interval writer.
const AVX512: Features = Features::AVX512F;

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

/// Writes one output row of a binary layer straight into the next layer's frame: pixel `p`,
/// channel `o` gets bit 1 iff `lo[o] <= sums[p * C + o] <= hi[o]`. A layer whose output
/// reaches the next binary conv only through a monotone epilogue (scale, bias, BN,
/// activation) uses this with the interval of sums its epilogue maps below zero, so the
/// float values are never formed. `dst` is the row's pixels in the frame (`ow * C / 8`
/// bytes); `sums` is pixel-major `[ow][C]`.
pub(crate) fn write_interval_bits(sums: &[i32], lo: &[i32], hi: &[i32], dst: &mut [u8]) {
    write_interval_bits_with(cpu::isa(), sums, lo, hi, dst)
}

/// [`write_interval_bits`] at level `isa`.
fn write_interval_bits_with(isa: Isa, sums: &[i32], lo: &[i32], hi: &[i32], dst: &mut [u8]) {
    let c = lo.len();
    assert!(supports(c) && hi.len() == c && sums.len() == dst.len() * 8);
    match isa.allows(AVX512) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level allows AVX-512F, so the CPU has it.
        true if c.is_multiple_of(16) => unsafe { interval_bits_avx512(sums, lo, hi, dst) },
        _ => interval_bits(sums, lo, hi, dst),
    }
}

fn interval_bits(sums: &[i32], lo: &[i32], hi: &[i32], dst: &mut [u8]) {
    let c = lo.len();
    for (px, d) in sums.chunks_exact(c).zip(dst.chunks_exact_mut(c / 8)) {
        for (g, byte) in d.iter_mut().enumerate() {
            let mut bits = 0u8;
            for i in 0..8 {
                let (s, o) = (px[8 * g + i], 8 * g + i);
                bits |= u8::from(lo[o] <= s && s <= hi[o]) << i;
            }
            *byte = bits;
        }
    }
}

/// [`interval_bits`] sixteen channels per pair of compares (`C % 16 == 0`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn interval_bits_avx512(sums: &[i32], lo: &[i32], hi: &[i32], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let c = lo.len();
    assert!(hi.len() == c && c.is_multiple_of(16));
    for (px, d) in sums.chunks_exact(c).zip(dst.chunks_exact_mut(c / 8)) {
        for g in 0..c / 16 {
            // SAFETY: channels 16g..16g + 16 <= c of `px`, `lo` and `hi` (each `c` long).
            let (s, l, h) = unsafe {
                (
                    _mm512_loadu_si512(px.as_ptr().add(16 * g) as *const __m512i),
                    _mm512_loadu_si512(lo.as_ptr().add(16 * g) as *const __m512i),
                    _mm512_loadu_si512(hi.as_ptr().add(16 * g) as *const __m512i),
                )
            };
            let m = _mm512_cmpge_epi32_mask(s, l) & _mm512_cmple_epi32_mask(s, h);
            d[2 * g..2 * g + 2].copy_from_slice(&m.to_le_bytes());
        }
    }
}

/// Outputs per block (one 512-bit vector of 32-bit lanes, or of 16-bit lane pairs).
const BLOCK: usize = 16;

/// A channel's side of its interval (see the module doc).
#[derive(Clone, Copy)]
enum Side {
    /// `s <= hi`.
    AtMost(i64),
    /// `s >= lo`.
    AtLeast(i64),
    Never,
}

impl Side {
    /// The count threshold `T` for padding-class bias `b`, and whether the bit is flipped.
    fn threshold(self, b: i64) -> (i64, bool) {
        match self {
            Side::AtMost(hi) => ((b - hi).div_euclid(2) + (b - hi).rem_euclid(2), false),
            Side::AtLeast(lo) => ((b - lo).div_euclid(2) + 1, true),
            Side::Never => (i64::MAX, false),
        }
    }
}

/// The thresholds of one conv's whole output map, for its unit width (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct SignTable {
    unit: usize,
    outputs: usize,
    /// Per block of 16 outputs, bit `o % 16` set where the bit is flipped.
    flip: Vec<u16>,
    /// 32- and 64-bit units: `[class][O]`, and each pixel's class `[oh][ow]`.
    by_class: Vec<i32>,
    cls: Vec<u32>,
    /// 16-bit units: `[row][pair][block][32]` and each output row's table row.
    by_pair: Vec<u16>,
    row_of: Vec<u32>,
    /// Output width.
    width: usize,
}

impl SignTable {
    /// The table for bit intervals `lo[o]..=hi[o]` of sums in `-kmax..=kmax`, over the windows
    /// and padding classes of `classes` (the parts of the tap kernel's `ClassBias`: bias
    /// table `[class][O]`, each window's class `[oh][ow]`, output width), for `unit`-bit units and `outputs` outputs (a
    /// multiple of 16). `None` if a channel's interval is neither a prefix, a suffix nor empty
    /// (the caller then compares sums), or a count could exceed the 16-bit lanes.
    pub(crate) fn new(
        classes: (&[i32], &[u32], usize),
        unit: usize,
        outputs: usize,
        (lo, hi): (&[i32], &[i32]),
        kmax: usize,
    ) -> Option<SignTable> {
        let o = outputs;
        assert!(o.is_multiple_of(BLOCK) && lo.len() == o && hi.len() == o);
        let k = kmax as i64;
        let sides: Vec<Side> = lo
            .iter()
            .zip(hi)
            .map(|(&l, &h)| match (l as i64, h as i64) {
                (l, h) if l > h => Some(Side::Never),
                (l, h) if l <= -k => Some(Side::AtMost(h)),
                (l, h) if h >= k => Some(Side::AtLeast(l)),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let flip = (0..o / BLOCK)
            .map(|b| {
                (0..BLOCK)
                    .filter(|&i| sides[b * BLOCK + i].threshold(0).1)
                    .fold(0u16, |m, i| m | 1 << i)
            })
            .collect();
        let (table, cls, width) = classes;
        let t =
            |class: u32, ch: usize| sides[ch].threshold(table[class as usize * o + ch] as i64).0;
        let mut st = SignTable {
            unit,
            outputs: o,
            flip,
            by_class: Vec::new(),
            cls: Vec::new(),
            by_pair: Vec::new(),
            row_of: Vec::new(),
            width,
        };
        if unit != 16 {
            let classes = table.len() / o;
            st.by_class = (0..classes * o)
                .map(|i| t((i / o) as u32, i % o).clamp(i32::MIN as i64, i32::MAX as i64) as i32)
                .collect();
            st.cls = cls.to_vec();
            return Some(st);
        }
        // Counts of 16-bit lanes reach `kmax`; a threshold past it is never met.
        if kmax >= u16::MAX as usize {
            return None;
        }
        let pairs = width.div_ceil(2);
        let mut seen: HashMap<&[u32], u32> = HashMap::new();
        for row in cls.chunks(width) {
            let next = seen.len() as u32;
            let id = *seen.entry(row).or_insert(next);
            if id == next {
                for j in 0..pairs {
                    for lane in 0..o * 2 {
                        let (ch, win) = ((lane / 32) * BLOCK + lane % 32 / 2, 2 * j + lane % 2);
                        let v = match row.get(win) {
                            Some(&class) => t(class, ch).clamp(0, u16::MAX as i64) as u16,
                            None => u16::MAX,
                        };
                        st.by_pair.push(v);
                    }
                }
            }
            st.row_of.push(id);
        }
        Some(st)
    }

    pub(crate) fn unit(&self) -> usize {
        self.unit
    }

    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// Windows per output row.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Output rows.
    pub(crate) fn rows(&self) -> usize {
        match self.unit {
            16 => self.row_of.len(),
            _ => self.cls.len() / self.width.max(1),
        }
    }

    /// Output row `oy`'s view.
    #[inline]
    pub(crate) fn row(&self, oy: usize) -> SignRow<'_> {
        let o = self.outputs;
        if self.unit == 16 {
            let len = self.width.div_ceil(2) * 2 * o;
            let at = self.row_of[oy] as usize * len;
            return SignRow {
                flip: &self.flip,
                by_class: &[],
                cls: &[],
                by_pair: &self.by_pair[at..at + len],
            };
        }
        SignRow {
            flip: &self.flip,
            by_class: &self.by_class,
            cls: &self.cls[oy * self.width..(oy + 1) * self.width],
            by_pair: &[],
        }
    }
}

/// One output row of a [`SignTable`] (only made by [`SignTable::row`], so every class indexes
/// a whole table row and every pair has its thresholds).
pub(crate) struct SignRow<'a> {
    pub(super) flip: &'a [u16],
    /// 32/64-bit units: thresholds `[class][O]` and window `r`'s class `cls[r]`.
    pub(super) by_class: &'a [i32],
    pub(super) cls: &'a [u32],
    /// 16-bit units: window pair `j`'s thresholds at `[(j * O / 16 + block) * 32 ..]`, lane
    /// `2i + q` for output `16 * block + i` of window `2j + q`.
    pub(super) by_pair: &'a [u16],
}

#[cfg(test)]
mod tests {
    use super::super::taps::ClassBias;
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

    /// Interval bits: every level's writer against the definition.
    #[test]
    fn interval_bits_by_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        for c in [8usize, 16, 32, 48, 64] {
            let px = 5;
            let sums: Vec<i32> = (0..px * c).map(|_| rng.gen_range(-20..20)).collect();
            let lo: Vec<i32> = (0..c).map(|_| rng.gen_range(-25..10)).collect();
            let hi: Vec<i32> = lo.iter().map(|&l| l + rng.gen_range(-3..30)).collect();
            for isa in cpu::test_levels() {
                let mut a = vec![0xAAu8; px * c / 8];
                write_interval_bits_with(isa, &sums, &lo, &hi, &mut a);
                for p in 0..px {
                    for o in 0..c {
                        let s = sums[p * c + o];
                        let bit = a[p * c / 8 + o / 8] >> (o % 8) & 1;
                        let want = lo[o] <= s && s <= hi[o];
                        assert_eq!(bit == 1, want, "{isa:?} c {c} p {p} o {o}");
                    }
                }
            }
        }
    }

    /// Every threshold against the interval it stands for, for every count a window can
    /// have, every kind of interval and biases of every parity.
    #[test]
    fn one_compare_equals_the_interval() {
        let (o, kmax) = (16usize, 40i64);
        let intervals: Vec<(i32, i32)> = vec![
            (-40, -3),
            (-40, 0),
            (-45, 7),
            (-40, 40),
            (1, 0),
            (5, 40),
            (-2, 50),
            (0, 40),
            (-40, -40),
            (40, 40),
            (-41, -41),
            (9, 3),
            (-40, 39),
            (-39, 40),
            (3, 44),
            (-40, 12),
        ];
        let (lo, hi): (Vec<i32>, Vec<i32>) = intervals.iter().copied().unzip();
        // Four classes: biases from the full K down, odd and even.
        let biases = [40, 39, 30, 27];
        let table: Vec<i32> = biases.iter().flat_map(|&b| vec![b; o]).collect();
        // Rows 0 and 2 alike, so they share a 16-bit table row.
        let cls: Vec<u32> = vec![0, 1, 2, 3, 1, 0, 0, 1, 2];
        let classes = ClassBias::new(table, cls.clone(), 3, o);
        for unit in [16, 32] {
            let st = SignTable::new(classes.parts(), unit, o, (&lo, &hi), kmax as usize).unwrap();
            for oy in 0..3 {
                let row = st.row(oy);
                for ox in 0..3 {
                    let class = cls[oy * 3 + ox] as usize;
                    let b = biases[class] as i64;
                    for (ch, &(l, h)) in intervals.iter().enumerate() {
                        let t = if unit == 16 {
                            let lane = 2 * ch + ox % 2;
                            row.by_pair[(ox / 2) * 2 * o + lane] as i64
                        } else {
                            row.by_class[row.cls[ox] as usize * o + ch] as i64
                        };
                        let flip = row.flip[0] >> ch & 1 == 1;
                        // Counts whose sum is a real one: |s| <= K.
                        for c in (0..=2 * kmax).filter(|c| (b - 2 * c).abs() <= kmax) {
                            let s = b - 2 * c;
                            let want = l as i64 <= s && s <= h as i64;
                            assert_eq!((c >= t) ^ flip, want, "{unit} {l}..={h} B{b} c{c}");
                        }
                    }
                }
            }
            if unit == 16 {
                assert_eq!(st.row_of, [0, 1, 0], "rows with the same classes share");
            }
        }
        // An interval strictly inside -K..=K is not one compare.
        let mut inner = lo.clone();
        inner[0] = -10;
        assert!(SignTable::new(classes.parts(), 32, o, (&inner, &hi), kmax as usize).is_none());
    }
}
