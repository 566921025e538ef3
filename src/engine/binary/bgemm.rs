//! Binary GEMM: XOR-popcount counts between packed rows and packed output filters, the one hot
//! loop under binary conv and linear layers.
//!
//! `counts[r][o] = sum_k popcount(a[r][k] XOR w[o][k])`. Converting counts to +/-1 dot products
//! (and correcting for padding) is the caller's job.
//!
//! Filters are stored in *panels* of [`PANEL`] = 8 outputs: panel `p`, word `k` holds the 8 words
//! `w[8p + l][k]`, `l = 0..8`, contiguously (missing outputs in the last panel are zero words, and
//! their counts are ignored). Eight `u64` are one AVX-512 register, so the AVX-512 kernel
//! broadcasts one input word and XORs it with a whole panel per instruction; the scalar kernels use
//! the same layout with eight independent accumulators.

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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn gemm_popcnt(a: &[u64], panels: &Panels, counts: &mut [u32]) {
    gemm_body(a, panels, counts)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn gemm_avx512(a: &[u64], panels: &Panels, counts: &mut [u32]) {
    use std::arch::x86_64::*;
    let rw = panels.row_words;
    let ld = panels.padded_outputs();
    let np = panels.npanels;
    let rows = a.len() / rw;
    assert!(counts.len() >= rows * ld);
    let wbase = panels.data.as_ptr();
    let panel_len = rw * PANEL;
    for r in 0..rows {
        let x = a.as_ptr().add(r * rw);
        let out = counts.as_mut_ptr().add(r * ld);
        let mut p = 0;
        // Four panels (32 outputs) per pass: one broadcast feeds four XOR+popcount+add chains.
        while p + 4 <= np {
            let w0 = wbase.add(p * panel_len);
            let (w1, w2, w3) = (w0.add(panel_len), w0.add(2 * panel_len), w0.add(3 * panel_len));
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

/// Fills `counts` (`[rows][padded_outputs]`) for the rows of `a` (`[rows][row_words]`).
/// `path` must be available; callers check with [`PopcountPath::checked`].
pub(crate) fn gemm(path: PopcountPath, a: &[u64], panels: &Panels, counts: &mut [u32]) {
    debug_assert!(path.is_available());
    debug_assert_eq!(a.len() % panels.row_words.max(1), 0);
    if panels.row_words == 0 {
        counts.fill(0);
        return;
    }
    match path {
        PopcountPath::Portable => gemm_body(a, panels, counts),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path was checked available (CPU has popcnt).
        PopcountPath::Popcnt => unsafe { gemm_popcnt(a, panels, counts) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path was checked available (CPU has avx512f + vpopcntdq); the kernel
        // asserts `counts` is large enough and reads `a`/panel data only within their lengths.
        PopcountPath::Avx512 => unsafe { gemm_avx512(a, panels, counts) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => gemm_body(a, panels, counts),
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
}
