//! The channel-last window kernel for 16-, 32- and 64-channel inputs: one SIMD lane per output
//! channel and *tap*, so no lane bit is padding.
//!
//! [`super::bgemm::dots_windows`] reads each kernel row of a window as whole `u64`s. A 3-tap
//! row is 48 bits at C = 16 (one word) and 96 bits at C = 32 (two words), so a quarter of every
//! XOR-popcount there counts masked-off zeros. Here a window is its `kh * kw` taps, each one
//! C-bit *unit* of the frame ([`super::frame`]), and the filters are stored per tap in blocks of
//! 16 outputs ([`TapPanels`]); the input unit is broadcast straight from the frame:
//! - C = 64: one window per pair of vectors, `u64` lanes (`vpopcntq`). The windows' rows are
//!   whole words here too, but `dots_windows` reads them as masked scalar loads, and its sums
//!   still need the padding and sign passes this kernel's store makes unnecessary.
//! - C = 32: one window per vector, `u32` lanes (`vpopcntd`).
//! - C = 16: two horizontally neighbouring windows per vector, `u16` lanes (`vpopcntw`, AVX-512
//!   BITALG). At stride 1 the 32 bits at a tap of window `p` are that tap of `p` (low half) and
//!   the same tap of `p + 1` (high half), because the frame stores neighbouring pixels'
//!   units back to back; each filter unit is stored twice (`w | w << 16`), so `u16` lane
//!   `2o + q` counts window `p + q`. At other strides the two windows' units are read
//!   separately and combined.
//!
//! The counts are the integers `dots_windows` computes (every tap, frame zeros included). The
//! exact zero-padding correction is applied in the kernel's store: each window takes its row of
//! a per-pixel-class bias table ([`super::padding`]), `sum = bias[class][o] - 2 * count`, so
//! border pixels need no second pass. The store writes either those sums ([`TapOut::Sums`]) or
//! straight away the sign bits the next conv reads ([`TapOut::Bits`]: one compare of the
//! count against a per-class threshold, [`super::output_transform`]). AVX-512 only, chosen per layer by
//! [`TapPanels::usable`]; every other case runs `dots_windows`, and the tests check this
//! kernel against the definition.

use super::output_transform::SignTable;
use super::pack::PackedWeights;
use crate::engine::cpu::{self, Features};

/// Outputs per block: one 512-bit vector of `u32` lanes.
const BLOCK: usize = 16;

/// Filters per tap for [`dots_taps`]: `data[(block * taps + t) * LW ..]` holds the 16 units of
/// outputs `16 * block ..` at tap `t` (im2col tap order `ky * kw + kx`), `LW` = [`lane_words`]
/// `u32`s: one `u32` lane each, doubled into both halves when the unit is 16 bits, or two
/// (one little-endian `u64`) when it is 64 bits.
#[derive(Clone, Debug)]
pub(crate) struct TapPanels {
    /// Bits per unit: the input channel count, 16, 32 or 64.
    pub unit: usize,
    pub outputs: usize,
    pub taps: usize,
    data: Vec<u32>,
}

impl TapPanels {
    /// `None` unless the layer has 16, 32 or 64 input channels and a multiple of 16 outputs.
    pub(crate) fn new(w: &PackedWeights) -> Option<Self> {
        let (o, c, kh, kw) = w.dim();
        if !(c == 16 || c == 32 || c == 64) || o == 0 || !o.is_multiple_of(BLOCK) {
            return None;
        }
        let (taps, lw) = (kh * kw, lane_words(c));
        let mut data = vec![0u32; o / BLOCK * taps * lw];
        for oc in 0..o {
            for t in 0..taps {
                // C <= 64, so the tap is (the low C bits of) its first word.
                let u = w.tap(oc, t / kw, t % kw)[0];
                let at = ((oc / BLOCK) * taps + t) * lw + (oc % BLOCK) * (lw / BLOCK);
                match c {
                    16 => data[at] = (u as u32) | ((u as u32) << 16),
                    32 => data[at] = u as u32,
                    _ => (data[at], data[at + 1]) = (u as u32, (u >> 32) as u32),
                }
            }
        }
        Some(TapPanels {
            unit: c,
            outputs: o,
            taps,
            data,
        })
    }

    /// Whether [`dots_taps`] runs this layer in this process (at any stride).
    pub(crate) fn usable(&self) -> bool {
        available(self.unit)
    }
}

/// `u32`s per block of 16 outputs and one tap.
fn lane_words(unit: usize) -> usize {
    BLOCK * unit.max(32) / 32
}

/// The features the kernel for `unit`-bit units is compiled with.
fn needs(unit: usize) -> Features {
    let base = Features::AVX512F.with(Features::AVX512VPOPCNTDQ);
    match unit {
        16 => base
            .with(Features::AVX512BITALG)
            .with(Features::AVX512BW)
            .with(Features::BMI2),
        _ => base,
    }
}

/// Whether this process runs the kernel for `unit`-bit units ([`cpu::allows`]).
fn available(unit: usize) -> bool {
    cpu::allows(needs(unit))
}

/// The input side of [`dots_taps`]: `rows` windows of a byte-packed frame, window `r`'s tap
/// `t` being the little-endian unit at byte `base + r * step + tap_off[t]`.
pub(crate) struct TapRows<'a> {
    pub frame: &'a [u8],
    pub base: usize,
    pub step: usize,
    pub tap_off: &'a [usize],
    pub rows: usize,
}

impl TapRows<'_> {
    /// Panics unless every load of the kernels (`bytes` wide) lies inside the frame.
    fn check(&self, taps: usize, bytes: usize) {
        assert_eq!(self.tap_off.len(), taps);
        if self.rows > 0 {
            let last = self.base + (self.rows - 1) * self.step;
            let max_off = self.tap_off.iter().copied().max().unwrap_or(0);
            assert!(
                last + max_off + bytes <= self.frame.len(),
                "window reads past the frame"
            );
        }
    }

    /// Tap `t`'s 16-bit units of windows `r` (low half) and `r + 1` (high half).
    ///
    /// # Safety
    /// `r < rows`, `t < taps`, and [`TapRows::check`] passed for `max(4, step + 2)` bytes.
    #[inline(always)]
    unsafe fn pair16<const ADJ: bool>(&self, r: usize, t: usize) -> u32 {
        // SAFETY: `t < taps` indexes `tap_off` (checked `taps` long); `check` showed the
        // `max(4, step + 2)` bytes from window `r < rows`'s tap `t` lie in the frame.
        unsafe {
            if ADJ {
                // Stride 1: the next window's unit follows in the frame.
                return self.unit32(r, t);
            }
            let at = self.base + r * self.step + *self.tap_off.get_unchecked(t);
            let p = self.frame.as_ptr().add(at);
            let lo = u16::from_le(std::ptr::read_unaligned(p as *const u16)) as u32;
            let hi = u16::from_le(std::ptr::read_unaligned(p.add(self.step) as *const u16)) as u32;
            lo | (hi << 16)
        }
    }

    /// The 64 bits at tap `t` of window `r`.
    ///
    /// # Safety
    /// `r < rows`, `t < taps`, and [`TapRows::check`] passed for 8 bytes.
    #[inline(always)]
    unsafe fn unit64(&self, r: usize, t: usize) -> u64 {
        // SAFETY: `t < taps` indexes `tap_off` (checked `taps` long); `check` showed the
        // bytes read at window `r < rows`'s tap `t` lie in the frame.
        unsafe {
            let at = self.base + r * self.step + *self.tap_off.get_unchecked(t);
            u64::from_le(std::ptr::read_unaligned(
                self.frame.as_ptr().add(at) as *const u64
            ))
        }
    }

    /// The 32 bits at tap `t` of window `r`.
    ///
    /// # Safety
    /// `r < rows`, `t < taps`, and [`TapRows::check`] passed for 4 bytes.
    #[inline(always)]
    unsafe fn unit32(&self, r: usize, t: usize) -> u32 {
        // SAFETY: `t < taps` indexes `tap_off` (checked `taps` long); `check` showed the
        // bytes read at window `r < rows`'s tap `t` lie in the frame.
        unsafe {
            let at = self.base + r * self.step + *self.tap_off.get_unchecked(t);
            u32::from_le(std::ptr::read_unaligned(
                self.frame.as_ptr().add(at) as *const u32
            ))
        }
    }
}

/// The padding bias of a whole output map for [`dots_taps`]: a table `[class][O]` and each
/// output pixel's class, `[rows][width]`, checked once here so the kernel's per-row view
/// ([`ClassBias::row`]) needs no check.
#[derive(Clone, Debug)]
pub(crate) struct ClassBias {
    table: Vec<i32>,
    cls: Vec<u32>,
    width: usize,
    outputs: usize,
}

impl ClassBias {
    /// Panics unless every class has a row of `outputs` entries in `table`.
    pub(crate) fn new(table: Vec<i32>, cls: Vec<u32>, width: usize, outputs: usize) -> Self {
        let classes = table.len() / outputs.max(1);
        assert!(table.len() == classes * outputs && cls.iter().all(|&c| (c as usize) < classes));
        assert!(width > 0 && cls.len().is_multiple_of(width));
        ClassBias {
            table,
            cls,
            width,
            outputs,
        }
    }

    /// The table `[class][O]`, each pixel's class `[rows][width]`, and the width.
    pub(crate) fn parts(&self) -> (&[i32], &[u32], usize) {
        (&self.table, &self.cls, self.width)
    }

    /// Output row `oy`: window `r`'s sums are `table[cls[r] * O + o] - 2 * count`.
    #[inline]
    pub(crate) fn row(&self, oy: usize) -> TapBias<'_> {
        TapBias {
            table: &self.table,
            cls: &self.cls[oy * self.width..(oy + 1) * self.width],
            outputs: self.outputs,
        }
    }
}

/// One output row's view of a [`ClassBias`] (only made by [`ClassBias::row`], so every class
/// indexes a whole table row).
pub(crate) struct TapBias<'a> {
    table: &'a [i32],
    cls: &'a [u32],
    /// The table's row length.
    outputs: usize,
}

/// What [`dots_taps`] computes and where it stores it.
pub(crate) enum TapOut<'a> {
    /// The windows of `x` (one output row): `out[r * ld + o] = s`, with the padding-class
    /// bias of `bias` (entries past the outputs are not written).
    Sums {
        bias: TapBias<'a>,
        out: &'a mut [i32],
        ld: usize,
    },
    /// Every output row `oy` of `signs` (its windows are those of `x` moved `oy * row_step`
    /// bytes on): bit `o % 8` of byte `base + oy * step + r * O / 8 + o / 8` of `out` is the
    /// sign bit `signs` gives window `r`'s sum ([`super::output_transform`]), so `out` is the next conv's
    /// frame ([`super::frame`]). One call per map, so bounds are checked once, not per row.
    Bits {
        signs: &'a SignTable,
        row_step: usize,
        out: &'a mut [u8],
        base: usize,
        step: usize,
    },
}

/// Raw form of [`TapOut`] for the kernels (lengths checked by [`dots_taps`]); which fields
/// are used is the kernels' `BITS` parameter, so the store has no branch.
#[derive(Clone, Copy)]
struct Store {
    sums: *mut i32,
    ld: usize,
    bits: *mut u8,
    /// The tables of a [`super::output_transform::SignRow`].
    flip: *const u16,
    by_class: *const i32,
    cls: *const u32,
    by_pair: *const u16,
}

/// `s = bias - 2 * sum_t popcount(unit(r, t) XOR w[o][t])` for every window `r` and output `o`,
/// with `unit` the low `p.unit` bits, stored as `out` says. Needs [`TapPanels::usable`].
// Inlined into its two callers, so the `TapOut` they build is never copied through memory
// (a store-forwarding stall per output row, 4% of inference).
#[inline(always)]
pub(crate) fn dots_taps(x: &TapRows, p: &TapPanels, out: TapOut) {
    assert!(
        cpu::has(needs(p.unit)),
        "dots_taps needs AVX-512 (BITALG and BMI2 for 16-bit units)"
    );
    // 16-bit units read 4 bytes at a window (its unit and, at stride 1, the next one's), or
    // at other strides 2 bytes at the next window too.
    let bytes = match p.unit {
        16 => 4.max(x.step + 2),
        u => u.max(32) / 8,
    };
    let o = p.outputs;
    let mut st = Store {
        sums: std::ptr::null_mut(),
        ld: 0,
        bits: std::ptr::null_mut(),
        flip: std::ptr::null(),
        by_class: std::ptr::null(),
        cls: std::ptr::null(),
        by_pair: std::ptr::null(),
    };
    match out {
        TapOut::Sums { bias, out, ld } => {
            x.check(p.taps, bytes);
            // Classes were checked against the table by `ClassBias::new`; rows are `O` wide.
            assert!(bias.cls.len() >= x.rows && bias.outputs == o);
            assert!(ld >= o);
            assert!(x.rows == 0 || out.len() >= (x.rows - 1) * ld + o);
            (st.sums, st.ld) = (out.as_mut_ptr(), ld);
            // SAFETY: as `run`'s contract, checked above.
            unsafe { run::<false>(x, p, &bias, st) }
        }
        TapOut::Bits {
            signs,
            row_step,
            out,
            base,
            step,
        } => {
            let rows = signs.rows();
            assert!(signs.unit() == p.unit && signs.outputs() == o && x.rows <= signs.width());
            if rows == 0 || x.rows == 0 {
                return;
            }
            // The last row's windows are the furthest into the frame.
            let last = TapRows {
                base: x.base + (rows - 1) * row_step,
                ..*x
            };
            last.check(p.taps, bytes);
            assert!(base + (rows - 1) * step + x.rows * o / 8 <= out.len());
            let none = TapBias {
                table: &[],
                cls: &[],
                outputs: o,
            };
            for oy in 0..rows {
                // A row view covers its `width >= x.rows` windows (`SignTable::row`).
                let row = signs.row(oy);
                (st.flip, st.by_class) = (row.flip.as_ptr(), row.by_class.as_ptr());
                (st.cls, st.by_pair) = (row.cls.as_ptr(), row.by_pair.as_ptr());
                // SAFETY: `base + oy * step` plus the row's bytes is inside `out` (asserted).
                st.bits = unsafe { out.as_mut_ptr().add(base + oy * step) };
                let xr = TapRows {
                    base: x.base + oy * row_step,
                    ..*x
                };
                // SAFETY: as `run`'s contract: row `oy`'s windows lie before the last row's.
                unsafe { run::<true>(&xr, p, &none, st) }
            }
        }
    }
}

/// The kernel for the unit width and stride, storing sums or bits.
///
/// # Safety
/// The CPU has the features of [`needs`] for `p.unit`; `x` passed [`TapRows::check`] for the
/// kernel's read width; `bias` covers `x.rows` windows (sums) or `st`'s sign tables do (bits);
/// the stores of `x.rows` windows stay inside the buffers of `st`.
unsafe fn run<const BITS: bool>(x: &TapRows, p: &TapPanels, bias: &TapBias, st: Store) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: this function's contract is each kernel's.
    unsafe {
        match p.unit {
            64 => avx512::run64::<BITS>(x, p, bias, st),
            32 => avx512::run32::<BITS>(x, p, bias, st),
            _ if x.step == 2 => avx512::run16::<BITS, true>(x, p, bias, st),
            _ => avx512::run16::<BITS, false>(x, p, bias, st),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!(
        "no tap kernel off x86-64: {x:p} {p:p} {bias:p} {:p}",
        st.bits
    )
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Store, TapBias, TapPanels, TapRows, BLOCK};
    use std::arch::x86_64::*;

    /// Stores block `blk` of window `r` (`u32` counts): the sums `bias[cls] - 2 * count`, or
    /// if `BITS` the sign bits `(count >= T[cls]) ^ flip` ([`super::super::output_transform`]).
    ///
    /// # Safety
    /// [`super::run`]'s contract for the windows and blocks named.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store<const BITS: bool>(
        st: Store,
        bias: &TapBias,
        o: usize,
        r: usize,
        blk: usize,
        count: __m512i,
    ) {
        // SAFETY: this function's contract (the caller's checks of `run`).
        unsafe {
            if BITS {
                let t = st.by_class.add(*st.cls.add(r) as usize * o + blk * BLOCK);
                let m = _mm512_cmpge_epi32_mask(count, _mm512_loadu_si512(t as *const __m512i));
                let at = st.bits.add(r * (o / 8) + blk * 2);
                std::ptr::write_unaligned(at as *mut u16, (m ^ *st.flip.add(blk)).to_le());
                return;
            }
            let row = bias
                .table
                .as_ptr()
                .add(*bias.cls.get_unchecked(r) as usize * o);
            let b = _mm512_loadu_si512(row.add(blk * BLOCK) as *const __m512i);
            let s = _mm512_sub_epi32(b, _mm512_slli_epi32(count, 1));
            _mm512_storeu_si512(st.sums.add(r * st.ld + blk * BLOCK) as *mut __m512i, s)
        }
    }

    /// Stores block `blk` of the window pair `win`, `win + 1` (`win` even; the second only
    /// if it is below `rows`) as sign bits from the pair's 16-bit counts (lane `2i + q` =
    /// output `16 * blk + i` of window `win + q`): one compare, then the even and odd mask
    /// bits taken apart.
    ///
    /// # Safety
    /// [`super::run`]'s contract for the windows and blocks named.
    #[target_feature(enable = "avx512f,avx512bw,bmi2")]
    #[inline]
    unsafe fn store_pair_bits(
        st: Store,
        o: usize,
        rows: usize,
        win: usize,
        blk: usize,
        a: __m512i,
    ) {
        // SAFETY: this function's contract (the caller's checks of `run`).
        unsafe {
            let t = st.by_pair.add(((win / 2) * (o / BLOCK) + blk) * 2 * BLOCK);
            let m = _mm512_cmpge_epu16_mask(a, _mm512_loadu_si512(t as *const __m512i));
            let flip = *st.flip.add(blk);
            let at = st.bits.add(win * (o / 8) + blk * 2);
            let even = _pext_u32(m, 0x5555_5555) as u16 ^ flip;
            std::ptr::write_unaligned(at as *mut u16, even.to_le());
            if win + 1 < rows {
                let odd = _pext_u32(m, 0xAAAA_AAAA) as u16 ^ flip;
                std::ptr::write_unaligned(at.add(o / 8) as *mut u16, odd.to_le());
            }
        }
    }

    /// `R` windows from `r0` times `B` blocks from `b0`, 32-bit units.
    ///
    /// # Safety
    /// [`super::run`]'s contract for the windows and blocks named.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    #[inline]
    unsafe fn tile32<const R: usize, const B: usize, const BITS: bool>(
        x: &TapRows,
        r0: usize,
        p: &TapPanels,
        b0: usize,
        bias: &TapBias,
        st: Store,
    ) {
        // SAFETY: this function's contract (the caller's checks of `run`).
        unsafe {
            let w = p.data.as_ptr();
            let mut acc = [[_mm512_setzero_si512(); B]; R];
            for t in 0..p.taps {
                let mut wv = [_mm512_setzero_si512(); B];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(
                        w.add(((b0 + j) * p.taps + t) * BLOCK) as *const __m512i
                    );
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_epi32(x.unit32(r0 + r, t) as i32);
                    for (a, &v) in row.iter_mut().zip(&wv) {
                        *a = _mm512_add_epi32(*a, _mm512_popcnt_epi32(_mm512_xor_si512(xv, v)));
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (j, a) in row.iter().enumerate() {
                    store::<BITS>(st, bias, p.outputs, r0 + r, b0 + j, *a);
                }
            }
        }
    }

    /// `R` windows from `r0` times `B` blocks from `b0`, 64-bit units: each block is two
    /// vectors of 8 `u64` counts, narrowed to 16 `i32` for the store.
    ///
    /// # Safety
    /// [`super::run`]'s contract for the windows and blocks named.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    #[inline]
    unsafe fn tile64<const R: usize, const B: usize, const BITS: bool>(
        x: &TapRows,
        r0: usize,
        p: &TapPanels,
        b0: usize,
        bias: &TapBias,
        st: Store,
    ) {
        // SAFETY: this function's contract (the caller's checks of `run`).
        unsafe {
            let w = p.data.as_ptr();
            let lw = 2 * BLOCK;
            let mut acc = [[[_mm512_setzero_si512(); 2]; B]; R];
            for t in 0..p.taps {
                let mut wv = [[_mm512_setzero_si512(); 2]; B];
                for (j, v) in wv.iter_mut().enumerate() {
                    let at = w.add(((b0 + j) * p.taps + t) * lw);
                    v[0] = _mm512_loadu_si512(at as *const __m512i);
                    v[1] = _mm512_loadu_si512(at.add(BLOCK) as *const __m512i);
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_epi64(x.unit64(r0 + r, t) as i64);
                    for (a, v) in row.iter_mut().zip(&wv) {
                        for h in 0..2 {
                            let c = _mm512_popcnt_epi64(_mm512_xor_si512(xv, v[h]));
                            a[h] = _mm512_add_epi64(a[h], c);
                        }
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (j, a) in row.iter().enumerate() {
                    let lo = _mm512_castsi256_si512(_mm512_cvtepi64_epi32(a[0]));
                    let count = _mm512_inserti64x4::<1>(lo, _mm512_cvtepi64_epi32(a[1]));
                    store::<BITS>(st, bias, p.outputs, r0 + r, b0 + j, count);
                }
            }
        }
    }

    /// `R` window pairs from `r0` (windows `r0 + 2i` and `r0 + 2i + 1`; a second window at or
    /// past `x.rows` is computed from frame bytes and not stored) times `B` blocks from `b0`,
    /// 16-bit units.
    ///
    /// # Safety
    /// [`super::run`]'s contract for the windows and blocks named.
    #[target_feature(enable = "avx512f,avx512vpopcntdq,avx512bitalg,avx512bw,bmi2")]
    #[inline]
    unsafe fn tile16<const R: usize, const B: usize, const BITS: bool, const ADJ: bool>(
        x: &TapRows,
        r0: usize,
        p: &TapPanels,
        b0: usize,
        bias: &TapBias,
        st: Store,
    ) {
        // SAFETY: this function's contract (the caller's checks of `run`).
        unsafe {
            let w = p.data.as_ptr();
            let mut acc = [[_mm512_setzero_si512(); B]; R];
            for t in 0..p.taps {
                let mut wv = [_mm512_setzero_si512(); B];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(
                        w.add(((b0 + j) * p.taps + t) * BLOCK) as *const __m512i
                    );
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_epi32(x.pair16::<ADJ>(r0 + 2 * r, t) as i32);
                    for (a, &v) in row.iter_mut().zip(&wv) {
                        *a = _mm512_add_epi16(*a, _mm512_popcnt_epi16(_mm512_xor_si512(xv, v)));
                    }
                }
            }
            let low = _mm512_set1_epi32(0xffff);
            for (r, row) in acc.iter().enumerate() {
                let win = r0 + 2 * r;
                for (j, a) in row.iter().enumerate() {
                    if BITS {
                        store_pair_bits(st, p.outputs, x.rows, win, b0 + j, *a);
                        continue;
                    }
                    // u32 lane o holds window `win`'s count in its low half, `win + 1`'s in its high.
                    store::<false>(st, bias, p.outputs, win, b0 + j, _mm512_and_si512(*a, low));
                    if win + 1 < x.rows {
                        store::<false>(
                            st,
                            bias,
                            p.outputs,
                            win + 1,
                            b0 + j,
                            _mm512_srli_epi32(*a, 16),
                        );
                    }
                }
            }
        }
    }

    /// The drivers of one kernel. `$blocks` runs every window for the `B` blocks from `b0`,
    /// `R` tiles at a time (a tile spans `$win` windows), then one tile at a time. `$run` walks
    /// the blocks 4 at a time, then the rest, with the tiles per call given for 4, 1, 2 and 3
    /// blocks (about 16 accumulators live).
    macro_rules! drivers {
        ($blocks:ident, $run:ident, $tile:ident, $feat:literal, $win:literal, [$($extra:ident)?],
         $r4:literal, $r1:literal, $r2:literal, $r3:literal) => {
            /// # Safety
            /// [`super::run`]'s contract for the blocks from `b0`.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn $blocks<
                const R: usize,
                const B: usize,
                const BITS: bool
                $(, const $extra: bool)?
            >(
                x: &TapRows,
                p: &TapPanels,
                b0: usize,
                bias: &TapBias,
                st: Store,
            ) {
                let mut r = 0;
                while r + $win * R <= x.rows {
                    // SAFETY: windows below `rows`; the rest is this function's contract.
                    unsafe { $tile::<R, B, BITS $(, $extra)?>(x, r, p, b0, bias, st) };
                    r += $win * R;
                }
                while r < x.rows {
                    // SAFETY: as above, one tile.
                    unsafe { $tile::<1, B, BITS $(, $extra)?>(x, r, p, b0, bias, st) };
                    r += $win;
                }
            }

            /// # Safety
            /// [`super::run`]'s contract.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $run<const BITS: bool $(, const $extra: bool)?>(
                x: &TapRows,
                p: &TapPanels,
                bias: &TapBias,
                st: Store,
            ) {
                let nb = p.outputs / BLOCK;
                let mut b = 0;
                // SAFETY: every block run ends at or before `nb`; the rest is this function's
                // contract.
                unsafe {
                    while b + 4 <= nb {
                        $blocks::<$r4, 4, BITS $(, $extra)?>(x, p, b, bias, st);
                        b += 4;
                    }
                    match nb - b {
                        0 => {}
                        1 => $blocks::<$r1, 1, BITS $(, $extra)?>(x, p, b, bias, st),
                        2 => $blocks::<$r2, 2, BITS $(, $extra)?>(x, p, b, bias, st),
                        _ => $blocks::<$r3, 3, BITS $(, $extra)?>(x, p, b, bias, st),
                    }
                }
            }
        };
    }

    drivers!(
        blocks32,
        run32,
        tile32,
        "avx512f,avx512vpopcntdq",
        1,
        [],
        4,
        12,
        8,
        5
    );
    drivers!(
        blocks64,
        run64,
        tile64,
        "avx512f,avx512vpopcntdq",
        1,
        [],
        2,
        6,
        4,
        2
    );
    drivers!(
        blocks16,
        run16,
        tile16,
        "avx512f,avx512vpopcntdq,avx512bitalg,avx512bw,bmi2",
        2,
        [ADJ],
        4,
        8,
        6,
        4
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::binary::output_transform::SignTable;
    use crate::engine::binary::pack::pack_weights_i8;
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Against the definition: each tap's unit read byte by byte from the frame, XORed with the
    /// filter's bits taken from the i8 weights (bit c = -1), for every unit width, several block
    /// counts, an odd number of windows (the 16-bit kernel's unpaired last window), random
    /// frame bytes and offsets.
    #[test]
    fn dots_taps_equals_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for &(c, o, taps, rows) in &[
            (16, 16, 9, 33),
            (16, 32, 9, 8),
            (16, 48, 4, 5),
            (16, 80, 1, 17),
            (32, 16, 9, 13),
            (32, 32, 9, 32),
            (32, 64, 9, 7),
            (32, 112, 25, 3),
            (64, 16, 9, 7),
            (64, 64, 9, 9),
            (64, 48, 1, 5),
            (64, 32, 4, 3),
            (64, 80, 9, 4),
        ] {
            let (kh, kw) = if taps == 25 {
                (5, 5)
            } else if taps == 4 {
                (2, 2)
            } else if taps == 9 {
                (3, 3)
            } else {
                (1, 1)
            };
            let w = Array4::from_shape_fn((o, c, kh, kw), |_| if rng.gen() { 1i8 } else { -1 });
            let p = TapPanels::new(&pack_weights_i8(&w).unwrap()).unwrap();
            // Fails under CI if the CPU lacks a feature; elsewhere a skip notice.
            cpu::test_levels();
            if !cpu::has(needs(c)) {
                continue;
            }
            let bpp = c / 8;
            // Strides 1 and 2 for every width (16-bit units pair windows differently).
            let step = bpp * (1 + o / 16 % 2);
            let frame: Vec<u8> = (0..rows * step + taps * 4 * bpp + 64)
                .map(|_| rng.gen())
                .collect();
            let tap_off: Vec<usize> = (0..taps).map(|t| t * 3 * bpp + (t % 2) * bpp).collect();
            let x = TapRows {
                frame: &frame,
                base: 5,
                step,
                tap_off: &tap_off,
                rows,
            };
            let unit = |r: usize, t: usize| -> u64 {
                let at = 5 + r * step + tap_off[t];
                (0..bpp).map(|b| (frame[at + b] as u64) << (8 * b)).sum()
            };
            let filt = |oc: usize, t: usize| -> u64 {
                (0..c)
                    .filter(|&ch| w[[oc, ch, t / kw, t % kw]] < 0)
                    .map(|ch| 1u64 << ch)
                    .sum()
            };
            // Three bias classes picked per window at random, as the padding classes would be.
            let k = (taps * c) as i32;
            let table: Vec<i32> = (0..3 * o).map(|_| k + rng.gen_range(-40..40)).collect();
            let cls: Vec<u32> = (0..rows).map(|_| rng.gen_range(0..3)).collect();
            let classes = ClassBias::new(table.clone(), cls.clone(), rows, o);
            let want = |r: usize, oc: usize| -> i32 {
                let cnt: u32 = (0..taps)
                    .map(|t| (unit(r, t) ^ filt(oc, t)).count_ones())
                    .sum();
                table[cls[r] as usize * o + oc] - 2 * cnt as i32
            };
            let ld = o + 3;
            let mut out = vec![i32::MIN; rows * ld];
            let sums = TapOut::Sums {
                bias: classes.row(0),
                out: &mut out,
                ld,
            };
            dots_taps(&x, &p, sums);
            for r in 0..rows {
                for oc in 0..ld {
                    let want = if oc < o { want(r, oc) } else { i32::MIN };
                    assert_eq!(out[r * ld + oc], want, "C{c} O{o} r{r} o{oc}");
                }
            }
            // Sign bits: for each channel a prefix, a suffix, an empty or a full interval of
            // `-k..=k`, which the table turns into one side each ([`super::super::output_transform`]);
            // the tables' biases here let `s` leave `-k..=k`, which shows the one side.
            let kinds: Vec<(i32, i32)> = (0..o)
                .map(|oc| match oc % 4 {
                    0 => (-k - rng.gen_range(0..3), rng.gen_range(-k..k)),
                    1 => (rng.gen_range(-k + 1..k), k + rng.gen_range(0..3)),
                    2 => (5, 4),
                    _ => (-k, k),
                })
                .collect();
            let (lo, hi): (Vec<i32>, Vec<i32>) = kinds.iter().copied().unzip();
            let one_side = |oc: usize, s: i32| match oc % 4 {
                0 => s <= hi[oc],
                1 => s >= lo[oc],
                2 => false,
                _ => s <= k,
            };
            let table = SignTable::new(classes.parts(), c, o, (&lo, &hi), k as usize).unwrap();
            let mut bits = vec![0x5Au8; rows * o / 8 + 3];
            let out = TapOut::Bits {
                signs: &table,
                row_step: 0,
                out: &mut bits,
                base: 0,
                step: 0,
            };
            dots_taps(&x, &p, out);
            for r in 0..rows {
                for oc in 0..o {
                    let s = want(r, oc);
                    let bit = bits[r * o / 8 + oc / 8] >> (oc % 8) & 1 == 1;
                    assert_eq!(bit, one_side(oc, s), "bits C{c} O{o} r{r} o{oc} s{s}");
                }
            }
            assert_eq!(
                &bits[rows * o / 8..],
                &[0x5A; 3],
                "nothing written past the row"
            );
        }
    }

    #[test]
    fn other_widths_and_output_counts_are_not_taken() {
        let mk =
            |o: usize, c: usize| pack_weights_i8(&Array4::from_elem((o, c, 3, 3), 1i8)).unwrap();
        assert!(TapPanels::new(&mk(16, 8)).is_none());
        assert!(TapPanels::new(&mk(16, 128)).is_none());
        assert!(TapPanels::new(&mk(24, 16)).is_none());
        assert!(TapPanels::new(&mk(32, 16)).is_some());
    }
}
