//! The sign-bit output transform of the tap kernel ([`super::taps`], `TapOut::Bits`): which
//! popcounts give a set bit, as one compare per lane.
//!
//! A conv whose only reader is the next binary conv hands over `sign(v)` bits, `v` the
//! epilogue of its exact sum `s`. The plan tabulates that as an interval `lo <= s <= hi` per
//! channel over `s` in `-K..=K`; the epilogue is monotone in `s`, so the interval is a prefix
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

use super::taps::ClassBias;

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
    /// and padding classes of `classes`, for `unit`-bit units and `outputs` outputs (a
    /// multiple of 16). `None` if a channel's interval is neither a prefix, a suffix nor empty
    /// (the caller then compares sums), or a count could exceed the 16-bit lanes.
    pub(crate) fn new(
        classes: &ClassBias,
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
        let (table, cls, width) = classes.parts();
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
    use super::*;

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
            let st = SignTable::new(&classes, unit, o, (&lo, &hi), kmax as usize).unwrap();
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
        assert!(SignTable::new(&classes, 32, o, (&inner, &hi), kmax as usize).is_none());
    }
}
