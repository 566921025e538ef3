//! Binary GEMM: XOR-popcount counts between packed rows and packed output filters, the one hot
//! loop under binary conv and linear layers.
//!
//! `counts[r][o] = sum_k popcount(a[r][k] XOR w[o][k])`. Two kernels share that definition:
//!
//! - [`gemm`](fn@gemm) (linear layers): rows `[rows][row_words]`, counts `[rows][outputs]`; the caller
//!   turns counts into +/-1 dot products. Filters are stored in *panels* of [`PANEL`] = 8
//!   outputs: panel `p`, word `k` holds the 8 words `w[8p + l][k]`, `l = 0..8`, contiguously
//!   (missing outputs in the last panel are zero words, their counts ignored). Eight `u64` are
//!   one AVX-512 register, so the AVX-512 kernel broadcasts one input word and XORs it with a
//!   whole panel per instruction; the scalar kernels use eight independent accumulators.
//! - [`gemm_cols`] (convs): input word-major `[row_words][cols8]` (see [`super::im2col`]), plain
//!   filter rows `[O][row_words]`, and it writes `K - 2*count` as `i32` straight into `[O][cols]`
//!   (one NCHW image): the kernel broadcasts one filter word against the same word of 8 pixels.
//! - [`dots_windows`] (the channel-last convs of the inference path): panels as [`gemm`](fn@gemm), the
//!   input words read in place from a byte-packed frame ([`WindowRows`], no im2col copy), and
//!   `K - 2*count` written as `i32` pixel-major (`[windows][ld]`). The AVX-512 kernel works on
//!   tiles of up to 8 windows x 8 panels with the accumulators in registers.

use super::popcount::PopcountPath;

/// Outputs per panel.
pub(crate) const PANEL: usize = 8;

/// Filters (`[outputs][row_words]`) rearranged into panels.
#[derive(Clone, Debug)]
pub(crate) struct Panels {
    outputs: usize,
    row_words: usize,
    npanels: usize,
    data: Vec<u64>,
}

impl Panels {
    pub(crate) fn from_rows(rows: &[u64], outputs: usize, row_words: usize) -> Self {
        assert_eq!(rows.len(), outputs * row_words, "filter rows");
        let npanels = outputs.div_ceil(PANEL);
        let mut data = vec![0u64; npanels * row_words * PANEL];
        for (o, row) in rows.chunks_exact(row_words.max(1)).enumerate() {
            let (p, l) = (o / PANEL, o % PANEL);
            for (k, &v) in row.iter().enumerate() {
                data[(p * row_words + k) * PANEL + l] = v;
            }
        }
        Panels {
            outputs,
            row_words,
            npanels,
            data,
        }
    }

    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// Row stride of the counts matrix: outputs rounded up to a multiple of [`PANEL`].
    pub(crate) fn padded_outputs(&self) -> usize {
        self.npanels * PANEL
    }
}

#[inline(always)]
fn gemm_body(a: &[u64], panels: &Panels, counts: &mut [u32]) {
    let rw = panels.row_words;
    let ld = panels.padded_outputs();
    for (x, out) in a.chunks_exact(rw).zip(counts.chunks_exact_mut(ld)) {
        for (w, out) in panels
            .data
            .chunks_exact(rw * PANEL)
            .zip(out.chunks_exact_mut(PANEL))
        {
            let mut acc = [0u32; PANEL];
            for (&xv, wk) in x.iter().zip(w.chunks_exact(PANEL)) {
                for l in 0..PANEL {
                    acc[l] += (xv ^ wk[l]).count_ones();
                }
            }
            out.copy_from_slice(&acc);
        }
    }
}

/// [`gemm_body`] with `count_ones` as one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn gemm_popcnt(a: &[u64], panels: &Panels, counts: &mut [u32]) {
    gemm_body(a, panels, counts)
}

/// [`gemm_body`] on AVX-512: one panel (8 outputs) per vector, four panels per pass.
/// Reads rows of `a` and panel data only within their lengths; panics unless `counts` holds
/// every row's `padded_outputs` counts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn gemm_avx512(a: &[u64], panels: &Panels, counts: &mut [u32]) {
    use std::arch::x86_64::*;
    let rw = panels.row_words;
    let ld = panels.padded_outputs();
    let np = panels.npanels;
    let rows = a.len() / rw;
    assert!(counts.len() >= rows * ld && panels.data.len() == np * rw * PANEL);
    let wbase = panels.data.as_ptr();
    let panel_len = rw * PANEL;
    for r in 0..rows {
        // SAFETY: row `r < rows` of `a` is `a[r * rw..][..rw]` and of `counts`
        // `counts[r * ld..][..ld]` (lengths asserted above); panel `p < np` is `panel_len`
        // words from `p * panel_len` in the panel data, and each pass reads word `k < rw` of
        // panels `p..p + 4 <= np` (or `p < np`) and writes their 8 counts each inside the row.
        unsafe {
            let x = a.as_ptr().add(r * rw);
            let out = counts.as_mut_ptr().add(r * ld);
            let mut p = 0;
            // Four panels (32 outputs) per pass: one broadcast feeds four XOR+popcount+add chains.
            while p + 4 <= np {
                let w0 = wbase.add(p * panel_len);
                let (w1, w2, w3) = (
                    w0.add(panel_len),
                    w0.add(2 * panel_len),
                    w0.add(3 * panel_len),
                );
                let mut c0 = _mm512_setzero_si512();
                let mut c1 = _mm512_setzero_si512();
                let mut c2 = _mm512_setzero_si512();
                let mut c3 = _mm512_setzero_si512();
                for k in 0..rw {
                    let xv = _mm512_set1_epi64(*x.add(k) as i64);
                    let o = k * PANEL;
                    let l0 = _mm512_loadu_si512(w0.add(o) as *const __m512i);
                    let l1 = _mm512_loadu_si512(w1.add(o) as *const __m512i);
                    let l2 = _mm512_loadu_si512(w2.add(o) as *const __m512i);
                    let l3 = _mm512_loadu_si512(w3.add(o) as *const __m512i);
                    c0 = _mm512_add_epi64(c0, _mm512_popcnt_epi64(_mm512_xor_si512(xv, l0)));
                    c1 = _mm512_add_epi64(c1, _mm512_popcnt_epi64(_mm512_xor_si512(xv, l1)));
                    c2 = _mm512_add_epi64(c2, _mm512_popcnt_epi64(_mm512_xor_si512(xv, l2)));
                    c3 = _mm512_add_epi64(c3, _mm512_popcnt_epi64(_mm512_xor_si512(xv, l3)));
                }
                for (j, c) in [c0, c1, c2, c3].into_iter().enumerate() {
                    _mm256_storeu_si256(
                        out.add((p + j) * PANEL) as *mut __m256i,
                        _mm512_cvtepi64_epi32(c),
                    );
                }
                p += 4;
            }
            while p < np {
                let w0 = wbase.add(p * panel_len);
                let mut c0 = _mm512_setzero_si512();
                for k in 0..rw {
                    let xv = _mm512_set1_epi64(*x.add(k) as i64);
                    let l0 = _mm512_loadu_si512(w0.add(k * PANEL) as *const __m512i);
                    c0 = _mm512_add_epi64(c0, _mm512_popcnt_epi64(_mm512_xor_si512(xv, l0)));
                }
                _mm256_storeu_si256(
                    out.add(p * PANEL) as *mut __m256i,
                    _mm512_cvtepi64_epi32(c0),
                );
                p += 1;
            }
        }
    }
}

/// Fills `counts` (`[rows][padded_outputs]`) for the rows of `a` (`[rows][row_words]`).
/// `path` must be available; callers check with [`PopcountPath::checked`].
pub(crate) fn gemm(path: PopcountPath, a: &[u64], panels: &Panels, counts: &mut [u32]) {
    assert!(path.is_available(), "{path:?} popcount on a CPU without it");
    debug_assert_eq!(a.len() % panels.row_words.max(1), 0);
    if panels.row_words == 0 {
        counts.fill(0);
        return;
    }
    match path {
        PopcountPath::Portable => gemm_body(a, panels, counts),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted): the CPU has popcnt.
        PopcountPath::Popcnt => unsafe { gemm_popcnt(a, panels, counts) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted): the CPU has avx512f + vpopcntdq.
        PopcountPath::Avx512 => unsafe { gemm_avx512(a, panels, counts) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => gemm_body(a, panels, counts),
    }
}

/// The input side of [`dots_windows`]: `rows` windows of a byte-packed frame, window `r`'s
/// row word `kk` being the little-endian `u64` at byte `base + r * step + off[kk]`, masked
/// by `mask[kk]` (see [`super::im2col::Windows`]).
pub(crate) struct WindowRows<'a> {
    pub frame: &'a [u8],
    pub base: usize,
    pub step: usize,
    pub off: &'a [usize],
    pub mask: &'a [u64],
    pub rows: usize,
}

impl WindowRows<'_> {
    /// Panics unless every word the kernels read lies inside the frame.
    fn check(&self, row_words: usize) {
        assert!(self.off.len() == row_words && self.mask.len() == row_words);
        if self.rows > 0 {
            let last = self.base + (self.rows - 1) * self.step;
            let max_off = self.off.iter().copied().max().unwrap_or(0);
            assert!(
                last + max_off + 8 <= self.frame.len(),
                "window reads past the frame"
            );
        }
    }

    /// Row word `kk` of window `r`.
    ///
    /// # Safety
    /// `r < rows`, `kk < row_words`, and [`WindowRows::check`] passed.
    #[inline(always)]
    unsafe fn word(&self, r: usize, kk: usize) -> u64 {
        // SAFETY: `kk < row_words` indexes `off` and `mask` (both `row_words` long, checked),
        // and `check` showed that word `kk` of every window `r < rows` lies in the frame.
        unsafe {
            let at = self.base + r * self.step + *self.off.get_unchecked(kk);
            let v = std::ptr::read_unaligned(self.frame.as_ptr().add(at) as *const u64);
            u64::from_le(v) & *self.mask.get_unchecked(kk)
        }
    }
}

#[inline(always)]
fn dots_windows_body(x: &WindowRows, panels: &Panels, k: i32, out: &mut [i32], ld: usize) {
    let rw = panels.row_words;
    let o = panels.outputs;
    let mut words = vec![0u64; rw];
    for (r, dst) in out.chunks_mut(ld).take(x.rows).enumerate() {
        for (kk, v) in words.iter_mut().enumerate() {
            // SAFETY: r < rows, kk < row_words, `check` ran in `dots_windows`.
            *v = unsafe { x.word(r, kk) };
        }
        for (p, w) in panels.data.chunks_exact(rw * PANEL).enumerate() {
            let mut acc = [0u32; PANEL];
            for (&xv, wk) in words.iter().zip(w.chunks_exact(PANEL)) {
                for l in 0..PANEL {
                    acc[l] += (xv ^ wk[l]).count_ones();
                }
            }
            let n = (o - p * PANEL).min(PANEL);
            for (d, &c) in dst[p * PANEL..p * PANEL + n].iter_mut().zip(&acc) {
                *d = k - 2 * c as i32;
            }
        }
    }
}

/// [`dots_windows_body`] with `count_ones` as one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn dots_windows_popcnt(x: &WindowRows, panels: &Panels, k: i32, out: &mut [i32], ld: usize) {
    dots_windows_body(x, panels, k, out, ld)
}

/// `R` windows from `r0` times `B` consecutive panels from `p0`: `R * B` accumulators stay
/// in registers, each weight vector is loaded once per `R` windows and each input word
/// broadcast once per `B` panels.
///
/// # Safety
/// The CPU has avx512f + vpopcntdq; [`WindowRows::check`] passed for `panels.row_words`;
/// `r0 + R <= x.rows`, `p0 + B <= panels.npanels`; `dst` points to an `i32` buffer holding
/// `(x.rows - 1) * ld + panels.outputs` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
#[inline]
unsafe fn dots_tile<const R: usize, const B: usize>(
    x: &WindowRows,
    r0: usize,
    panels: &Panels,
    p0: usize,
    k: i32,
    dst: *mut i32,
    ld: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the contract above: panel words of panels `p0..p0 + B`, window words of windows
    // `r0..r0 + R` (checked frame reads), outputs `< panels.outputs` of those windows in `dst`.
    unsafe {
        let rw = panels.row_words;
        let w = panels.data.as_ptr().add(p0 * rw * PANEL);
        let mut acc = [[_mm512_setzero_si512(); B]; R];
        for kk in 0..rw {
            let mut wv = [_mm512_setzero_si512(); B];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(w.add((j * rw + kk) * PANEL) as *const __m512i);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_epi64(x.word(r0 + r, kk) as i64);
                for (a, &v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(_mm512_xor_si512(xv, v)));
                }
            }
        }
        let kv = _mm512_set1_epi64(k as i64);
        for (r, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                // K - 2*count, narrowed to i32 (|K| < 2^31 by construction of the layer).
                let d = _mm512_cvtepi64_epi32(_mm512_sub_epi64(kv, _mm512_slli_epi64(*a, 1)));
                let at = dst.add((r0 + r) * ld + (p0 + j) * PANEL);
                let n = (panels.outputs - (p0 + j) * PANEL).min(PANEL);
                if n == PANEL {
                    _mm256_storeu_si256(at as *mut __m256i, d);
                } else {
                    let mut tmp = [0i32; PANEL];
                    _mm256_storeu_si256(tmp.as_mut_ptr() as *mut __m256i, d);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), at, n);
                }
            }
        }
    }
}

/// All windows for the `B` panels from `p0`, `R` at a time, then one at a time.
///
/// # Safety
/// As [`dots_tile`], for every window: `p0 + B <= panels.npanels` and `out` holds
/// `(x.rows - 1) * ld + panels.outputs` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
#[inline]
unsafe fn dots_panels<const R: usize, const B: usize>(
    x: &WindowRows,
    panels: &Panels,
    p0: usize,
    k: i32,
    out: &mut [i32],
    ld: usize,
) {
    let mut r = 0;
    while r + R <= x.rows {
        // SAFETY: windows r..r + R <= rows; the rest by this function's contract.
        unsafe { dots_tile::<R, B>(x, r, panels, p0, k, out.as_mut_ptr(), ld) };
        r += R;
    }
    while r < x.rows {
        // SAFETY: window r < rows; the rest by this function's contract.
        unsafe { dots_tile::<1, B>(x, r, panels, p0, k, out.as_mut_ptr(), ld) };
        r += 1;
    }
}

/// [`dots_windows_body`] on AVX-512, in register tiles of windows x panels.
///
/// # Safety
/// The CPU has avx512f + vpopcntdq, and the checks of [`dots_windows`] passed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn dots_windows_avx512(x: &WindowRows, panels: &Panels, k: i32, out: &mut [i32], ld: usize) {
    let np = panels.npanels;
    // SAFETY: every block of panels below ends at or before `np`; the rest is this function's
    // contract.
    unsafe {
        // Panel blocks of up to 8 (64 outputs); windows per tile so that about 16
        // accumulators are live.
        let mut p = 0;
        while p + 8 <= np {
            dots_panels::<2, 8>(x, panels, p, k, out, ld);
            p += 8;
        }
        match np - p {
            0 => {}
            1 => dots_panels::<8, 1>(x, panels, p, k, out, ld),
            2 => dots_panels::<8, 2>(x, panels, p, k, out, ld),
            3 => dots_panels::<5, 3>(x, panels, p, k, out, ld),
            4 => dots_panels::<4, 4>(x, panels, p, k, out, ld),
            5 => dots_panels::<3, 5>(x, panels, p, k, out, ld),
            6 => dots_panels::<2, 6>(x, panels, p, k, out, ld),
            _ => dots_panels::<2, 7>(x, panels, p, k, out, ld),
        }
    }
}

/// `out[r * ld + o] = k - 2 * popcount(x[r] XOR w[o])` for every window `r` of `x` and output
/// `o < outputs` (`ld >= outputs`; entries past `outputs` are not written). `path` must be
/// available.
pub(crate) fn dots_windows(
    path: PopcountPath,
    x: &WindowRows,
    panels: &Panels,
    k: i32,
    out: &mut [i32],
    ld: usize,
) {
    assert!(path.is_available(), "{path:?} popcount on a CPU without it");
    x.check(panels.row_words);
    assert!(ld >= panels.outputs);
    assert!(x.rows == 0 || out.len() >= (x.rows - 1) * ld + panels.outputs);
    match path {
        PopcountPath::Portable => dots_windows_body(x, panels, k, out, ld),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted): the CPU has popcnt.
        PopcountPath::Popcnt => unsafe { dots_windows_popcnt(x, panels, k, out, ld) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted): avx512f + vpopcntdq; frame reads checked
        // by `check`, `out` holds every window's outputs (asserted).
        PopcountPath::Avx512 => unsafe { dots_windows_avx512(x, panels, k, out, ld) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => dots_windows_body(x, panels, k, out, ld),
    }
}

#[inline(always)]
fn gemm_cols_body(
    a_t: &[u64],
    cols: usize,
    cols8: usize,
    filters: &[u64],
    rw: usize,
    k: i32,
    out: &mut [i32],
) {
    for (w, dst) in filters.chunks_exact(rw).zip(out.chunks_exact_mut(cols)) {
        for b in 0..cols8 / 8 {
            let mut acc = [0u32; 8];
            for (kk, &wv) in w.iter().enumerate() {
                let a = &a_t[kk * cols8 + b * 8..kk * cols8 + b * 8 + 8];
                for l in 0..8 {
                    acc[l] += (a[l] ^ wv).count_ones();
                }
            }
            let n = (cols - b * 8).min(8);
            for (d, &c) in dst[b * 8..b * 8 + n].iter_mut().zip(&acc) {
                *d = k - 2 * c as i32;
            }
        }
    }
}

/// [`gemm_cols_body`] with `count_ones` as one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn gemm_cols_popcnt(
    a_t: &[u64],
    cols: usize,
    cols8: usize,
    filters: &[u64],
    rw: usize,
    k: i32,
    out: &mut [i32],
) {
    gemm_cols_body(a_t, cols, cols8, filters, rw, k, out)
}

/// [`gemm_cols_body`] on AVX-512: 8 pixels per vector, 32 per pass. Panics unless the
/// buffers hold what [`gemm_cols`] states.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn gemm_cols_avx512(
    a_t: &[u64],
    cols: usize,
    cols8: usize,
    filters: &[u64],
    rw: usize,
    k: i32,
    out: &mut [i32],
) {
    use std::arch::x86_64::*;
    let outputs = filters.len() / rw;
    assert!(a_t.len() >= rw * cols8 && out.len() >= outputs * cols && cols <= cols8);
    let kv = _mm512_set1_epi64(k as i64);
    // K - 2*count, narrowed to i32 (|K| < 2^31 by construction of the layer).
    let finish = |c: __m512i| _mm512_cvtepi64_epi32(_mm512_sub_epi64(kv, _mm512_slli_epi64(c, 1)));
    let a = a_t.as_ptr();
    for o in 0..outputs {
        // SAFETY: buffer sizes asserted above: filter `o < outputs` is `rw` words at `o * rw`,
        // output row `o` is `cols` values at `o * cols`, and every vector load reads pixel
        // columns `b..b + 8 <= cols8` of a row `kk < rw` of `a_t`; partial blocks store only
        // `n` values.
        unsafe {
            let w = filters.as_ptr().add(o * rw);
            let dst = out.as_mut_ptr().add(o * cols);
            let mut b = 0;
            // 32 pixels per pass: one filter-word broadcast feeds four XOR+popcount+add chains.
            while b + 32 <= cols {
                let mut c0 = _mm512_setzero_si512();
                let mut c1 = _mm512_setzero_si512();
                let mut c2 = _mm512_setzero_si512();
                let mut c3 = _mm512_setzero_si512();
                for kk in 0..rw {
                    let wv = _mm512_set1_epi64(*w.add(kk) as i64);
                    let p = a.add(kk * cols8 + b) as *const __m512i;
                    c0 = _mm512_add_epi64(
                        c0,
                        _mm512_popcnt_epi64(_mm512_xor_si512(wv, _mm512_loadu_si512(p))),
                    );
                    c1 = _mm512_add_epi64(
                        c1,
                        _mm512_popcnt_epi64(_mm512_xor_si512(wv, _mm512_loadu_si512(p.add(1)))),
                    );
                    c2 = _mm512_add_epi64(
                        c2,
                        _mm512_popcnt_epi64(_mm512_xor_si512(wv, _mm512_loadu_si512(p.add(2)))),
                    );
                    c3 = _mm512_add_epi64(
                        c3,
                        _mm512_popcnt_epi64(_mm512_xor_si512(wv, _mm512_loadu_si512(p.add(3)))),
                    );
                }
                for (j, c) in [c0, c1, c2, c3].into_iter().enumerate() {
                    _mm256_storeu_si256(dst.add(b + 8 * j) as *mut __m256i, finish(c));
                }
                b += 32;
            }
            while b < cols {
                let mut c0 = _mm512_setzero_si512();
                for kk in 0..rw {
                    let wv = _mm512_set1_epi64(*w.add(kk) as i64);
                    let p = a.add(kk * cols8 + b) as *const __m512i;
                    c0 = _mm512_add_epi64(
                        c0,
                        _mm512_popcnt_epi64(_mm512_xor_si512(wv, _mm512_loadu_si512(p))),
                    );
                }
                let r = finish(c0);
                let n = (cols - b).min(8);
                if n == 8 {
                    _mm256_storeu_si256(dst.add(b) as *mut __m256i, r);
                } else {
                    // Partial block: the padded pixel columns are not outputs.
                    let mut tmp = [0i32; 8];
                    _mm256_storeu_si256(tmp.as_mut_ptr() as *mut __m256i, r);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst.add(b), n);
                }
                b += 8;
            }
        }
    }
}

/// Conv kernel: `out[o * cols + p] = k - 2 * sum_j popcount(a_t[j * cols8 + p] XOR w[o][j])`
/// for `p < cols`. `a_t` is `[row_words][cols8]` (`cols8` a multiple of 8 and >= `cols`),
/// `filters` `[O][row_words]`, `out` `[O][cols]`. `path` must be available.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_cols(
    path: PopcountPath,
    a_t: &[u64],
    cols: usize,
    cols8: usize,
    filters: &[u64],
    row_words: usize,
    k: i32,
    out: &mut [i32],
) {
    assert!(path.is_available(), "{path:?} popcount on a CPU without it");
    assert!(row_words > 0 && cols8.is_multiple_of(8) && cols <= cols8);
    assert!(a_t.len() >= row_words * cols8 && out.len() >= filters.len() / row_words * cols);
    match path {
        PopcountPath::Portable => gemm_cols_body(a_t, cols, cols8, filters, row_words, k, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted): the CPU has popcnt.
        PopcountPath::Popcnt => unsafe {
            gemm_cols_popcnt(a_t, cols, cols8, filters, row_words, k, out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (asserted): the CPU has avx512f + vpopcntdq.
        PopcountPath::Avx512 => unsafe {
            gemm_cols_avx512(a_t, cols, cols8, filters, row_words, k, out)
        },
        #[cfg(not(target_arch = "x86_64"))]
        _ => gemm_cols_body(a_t, cols, cols8, filters, row_words, k, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every path against the definition, for output counts around panel and 4-panel boundaries.
    #[test]
    fn gemm_equals_naive_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &(rows, outputs, rw) in &[(3, 1, 1), (2, 8, 3), (5, 33, 2), (1, 40, 9), (4, 17, 5)] {
            let a: Vec<u64> = (0..rows * rw).map(|_| rng.gen()).collect();
            let w: Vec<u64> = (0..outputs * rw).map(|_| rng.gen()).collect();
            let panels = Panels::from_rows(&w, outputs, rw);
            let ld = panels.padded_outputs();
            for path in PopcountPath::available() {
                let mut counts = vec![u32::MAX; rows * ld];
                gemm(path, &a, &panels, &mut counts);
                for r in 0..rows {
                    for o in 0..outputs {
                        let naive: u32 = (0..rw)
                            .map(|k| (a[r * rw + k] ^ w[o * rw + k]).count_ones())
                            .sum();
                        assert_eq!(counts[r * ld + o], naive, "{path:?} r{r} o{o}");
                    }
                }
            }
        }
    }

    /// Every path against the definition (masked little-endian loads at the given offsets),
    /// around the 8-panel blocks, partial panels and row tiles.
    #[test]
    fn dots_windows_equals_naive() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for &(rows, outputs, rw) in &[(3, 1, 1), (9, 16, 3), (5, 33, 2), (1, 64, 9), (11, 70, 5)] {
            let frame: Vec<u8> = (0..rows * 7 + rw * 5 + 64).map(|_| rng.gen()).collect();
            let off: Vec<usize> = (0..rw).map(|j| j * 5 + (j % 2)).collect();
            let mask: Vec<u64> = (0..rw)
                .map(|j| if j % 2 == 0 { !0 } else { (1 << 37) - 1 })
                .collect();
            let x = WindowRows {
                frame: &frame,
                base: 3,
                step: 7,
                off: &off,
                mask: &mask,
                rows,
            };
            let word = |r: usize, j: usize| {
                let at = 3 + r * 7 + off[j];
                u64::from_le_bytes(frame[at..at + 8].try_into().unwrap()) & mask[j]
            };
            let w: Vec<u64> = (0..outputs * rw).map(|_| rng.gen()).collect();
            let panels = Panels::from_rows(&w, outputs, rw);
            let (k, ld) = ((rw * 64) as i32 - 3, outputs + 2);
            for path in PopcountPath::available() {
                let mut out = vec![i32::MIN; rows * ld];
                dots_windows(path, &x, &panels, k, &mut out, ld);
                for r in 0..rows {
                    for o in 0..ld {
                        let want = if o < outputs {
                            let c: u32 = (0..rw)
                                .map(|j| (word(r, j) ^ w[o * rw + j]).count_ones())
                                .sum();
                            k - 2 * c as i32
                        } else {
                            i32::MIN
                        };
                        assert_eq!(out[r * ld + o], want, "{path:?} r{r} o{o}");
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_cols_equals_naive() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for &(cols, outputs, rw) in &[
            (1usize, 1usize, 1usize),
            (8, 3, 2),
            (33, 5, 3),
            (64, 2, 9),
            (71, 4, 1),
        ] {
            let cols8 = cols.div_ceil(8) * 8;
            let a: Vec<u64> = (0..rw * cols8).map(|_| rng.gen()).collect();
            let w: Vec<u64> = (0..outputs * rw).map(|_| rng.gen()).collect();
            let k = 64 * rw as i32;
            for path in PopcountPath::available() {
                let mut out = vec![i32::MIN; outputs * cols];
                gemm_cols(path, &a, cols, cols8, &w, rw, k, &mut out);
                for o in 0..outputs {
                    for p in 0..cols {
                        let cnt: u32 = (0..rw)
                            .map(|j| (a[j * cols8 + p] ^ w[o * rw + j]).count_ones())
                            .sum();
                        assert_eq!(out[o * cols + p], k - 2 * cnt as i32, "{path:?} o{o} p{p}");
                    }
                }
            }
        }
    }
}
