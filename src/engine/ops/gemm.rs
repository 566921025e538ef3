//! Row-major f32 matrix products for the float engine, behind one safe function.
//!
//! Two backends are kept so `benches/float_conv.rs` can compare them: the `gemm` crate (runtime
//! dispatch to AVX-512 / AVX2 micro-kernels) and `matrixmultiply`. [`DEFAULT_BACKEND`] is `gemm`:
//! on this machine's AVX-512 cores it ran the ResNet20 conv GEMM shapes 1.3-2.3x faster
//! (e.g. \[64x576\]x\[576x256\]: ~104 vs ~70 GMAC/s on one thread; \[16x144\]x\[144x1024\]: ~80 vs
//! ~35). Either backend gives results within f32 rounding of the f64 reference.
//!
//! Convention: every matrix is described by (rows, cols, row stride, column stride) in elements,
//! so a transpose is just swapped strides, never a copy.
//!
//! One shape goes to a kernel of our own, [`inner_product`]: both operands contiguous along a
//! long inner dimension and one side of the output at most [`SMALL_SIDE`] wide, e.g. the weight
//! gradient `dW^T = col dy^T` of a 16-filter convolution (`[144 x 1024] x [1024 x 16]`). The
//! `gemm` crate packs both operands there and runs a 16-row micro-kernel at about half its
//! usual rate (58 vs 105 GMAC/s on this machine); neither crate has a dot-product form for
//! it. The kernel keeps 24 running sums of 16 lanes in registers and reads both operands as
//! they lie; its general form [`dot_products`] takes rows by their start, so the im2col-free
//! weight gradient (`super::weight_grad`) reads nine overlapping views of one padded plane.
//! Every instruction-set level (AVX-512, AVX2, portable; chosen by `cpu::vector_level`) sums
//! in one fixed order with fused multiply-adds, so all give the same bits.

/// Which GEMM implementation to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GemmBackend {
    /// The `gemm` crate (AVX-512 kernels when the CPU has them).
    Gemm,
    /// The `matrixmultiply` crate.
    MatrixMultiply,
}

/// Backend used by the conv and linear operators.
pub const DEFAULT_BACKEND: GemmBackend = GemmBackend::Gemm;

/// A read-only strided view of a matrix stored in a slice.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn last_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
        }
    }
}

/// `c = a * b` (or `c += a * b` when `accumulate`), with `c` dense row-major `a.rows x b.cols`.
///
/// `threads_inside` lets the GEMM spread over the rayon pool; callers that already run in
/// parallel over the batch pass `false`.
///
/// Panics if the views do not fit their slices: shapes are checked by the operators before
/// they get here, so a mismatch is a bug, not user input.
pub fn sgemm(
    backend: GemmBackend,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    threads_inside: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "sgemm: inner dimensions differ");
    assert!(c.len() >= m * n, "sgemm: output slice too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        a.last_index() < a.data.len(),
        "sgemm: lhs view out of bounds"
    );
    assert!(
        b.last_index() < b.data.len(),
        "sgemm: rhs view out of bounds"
    );
    if backend == GemmBackend::Gemm && inner_product_fits(&a, &b) {
        inner_product(a, b, c, accumulate, threads_inside);
        return;
    }
    match backend {
        GemmBackend::Gemm => {
            let par = if threads_inside && rayon::current_num_threads() > 1 {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: bounds of all three views were checked above; `c` is exclusively borrowed.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    accumulate,
                    a.data.as_ptr(),
                    a.col_stride as isize,
                    a.row_stride as isize,
                    b.data.as_ptr(),
                    b.col_stride as isize,
                    b.row_stride as isize,
                    if accumulate { 1.0 } else { 0.0 },
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }
        GemmBackend::MatrixMultiply => {
            // SAFETY: as above.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.data.as_ptr(),
                    a.row_stride as isize,
                    a.col_stride as isize,
                    b.data.as_ptr(),
                    b.row_stride as isize,
                    b.col_stride as isize,
                    if accumulate { 1.0 } else { 0.0 },
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        }
    }
}

/// Output side at or below which [`inner_product`] takes a product (see the module doc).
pub const SMALL_SIDE: usize = 16;

/// Inner dimension from which [`inner_product`] takes a product.
const LONG_INNER: usize = 256;

/// Whether `a b` has the shape [`inner_product`] serves: both operands contiguous along the
/// inner dimension, that dimension long, one output side narrow.
fn inner_product_fits(a: &MatRef<'_>, b: &MatRef<'_>) -> bool {
    a.col_stride == 1
        && b.row_stride == 1
        && a.cols >= LONG_INNER
        && a.rows.min(b.cols) <= SMALL_SIDE
}

/// Rows of `a` and columns of `b` per register block: 6 x 4 sums of 16 lanes are 24 of the
/// 32 AVX-512 registers, and each 16-element step loads 10 vectors for 24 FMAs.
const BI: usize = 6;
const BJ: usize = 4;
const LANES: usize = 16;

/// `c (+)= a b` as dot products along the inner dimension (see the module doc), through
/// [`dot_products`].
fn inner_product(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    threads_inside: bool,
) {
    let rows: Vec<usize> = (0..a.rows).map(|i| i * a.row_stride).collect();
    let cols: Vec<usize> = (0..b.cols).map(|j| j * b.col_stride).collect();
    dot_products(
        a.data,
        &rows,
        b.data,
        &cols,
        a.cols,
        c,
        accumulate,
        threads_inside,
    );
}

/// `c[i * cols.len() + j] (+)= a[rows[i]..][..k] . b[cols[j]..][..k]`: every dot product of
/// a set of `k`-long rows of `a` with a set of `k`-long columns of `b`, each named by where it
/// starts. Rows may overlap (the weight gradient reads one padded input plane at nine
/// offsets, see `conv`). Each output is summed in a fixed order (lane `t` takes every element
/// `k` with `k % 16 == t` up to the last full step, the lanes meet in a fixed tree, then the
/// tail in order), so the result depends neither on the thread count nor on the blocking.
///
/// Panics if a row or column runs past its slice or `c` is shorter than the product.
#[allow(clippy::too_many_arguments)]
pub fn dot_products(
    a: &[f32],
    rows: &[usize],
    b: &[f32],
    cols: &[usize],
    k: usize,
    c: &mut [f32],
    accumulate: bool,
    threads_inside: bool,
) {
    let (m, n) = (rows.len(), cols.len());
    if m == 0 || n == 0 {
        return;
    }
    let isa = crate::engine::cpu::isa();
    let run = |(bi, cblock): (usize, &mut [f32])| {
        let i0 = bi * BI;
        for j0 in (0..n).step_by(BJ) {
            // Edge blocks repeat their last row / column; the repeats are not stored.
            let ar: [usize; BI] = std::array::from_fn(|t| rows[(i0 + t).min(m - 1)]);
            let bc: [usize; BJ] = std::array::from_fn(|t| cols[(j0 + t).min(n - 1)]);
            let sums = block_at(isa, a, ar, b, bc, k);
            for (t, row) in cblock.chunks_mut(n).enumerate() {
                for u in 0..BJ.min(n - j0) {
                    let v = &mut row[j0 + u];
                    *v = if accumulate {
                        *v + sums[t][u]
                    } else {
                        sums[t][u]
                    };
                }
            }
        }
    };
    let c = &mut c[..m * n];
    if threads_inside && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        c.par_chunks_mut(BI * n).enumerate().for_each(run);
    } else {
        c.chunks_mut(BI * n).enumerate().for_each(run);
    }
}

/// The `BI x BJ` dot products of rows `a[ar[t]..][..k]` with columns `b[bc[u]..][..k]`, by the
/// kernel of `isa`'s vector level; every level gives the same bits.
fn block_at(
    isa: crate::engine::cpu::Isa,
    a: &[f32],
    ar: [usize; BI],
    b: &[f32],
    bc: [usize; BJ],
    k: usize,
) -> [[f32; BJ]; BI] {
    use crate::engine::cpu::{vector_level, Isa};
    assert!(
        ar.iter().all(|&t| t + k <= a.len()) && bc.iter().all(|&u| u + k <= b.len()),
        "inner product: operand out of bounds"
    );
    #[cfg(target_arch = "x86_64")]
    match vector_level(isa) {
        // SAFETY: the level's features are present (`vector_level`) and the bounds of every
        // row and column were asserted above.
        Isa::Avx512 => return unsafe { block_avx512(a, ar, b, bc, k) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { block_avx2(a, ar, b, bc, k) },
        Isa::Portable => {}
    }
    let _ = (isa, vector_level);
    block_body(a, ar, b, bc, k)
}

/// Portable form of the kernel, and the definition of its arithmetic: lane `l` of each sum
/// takes `mul_add` of the elements `k0 + l` of every 16-element step in order, the last step
/// partial (its `k % 16` elements in lanes `0..k % 16`, the other lanes untouched); then the
/// lanes meet in a fixed tree (lane `l` plus lane `l + w` for `w` = 8, 4, 2, 1).
#[allow(clippy::needless_range_loop)] // index loops name the register block
fn block_body(a: &[f32], ar: [usize; BI], b: &[f32], bc: [usize; BJ], k: usize) -> [[f32; BJ]; BI] {
    let mut acc = [[[0.0f32; LANES]; BJ]; BI];
    for k0 in (0..k / LANES * LANES).step_by(LANES) {
        for t in 0..BI {
            for u in 0..BJ {
                for l in 0..LANES {
                    acc[t][u][l] = a[ar[t] + k0 + l].mul_add(b[bc[u] + k0 + l], acc[t][u][l]);
                }
            }
        }
    }
    tail_and_tree(&mut acc, a, ar, b, bc, k)
}

/// The partial last step and the lane tree of [`block_body`], on lanes already summed over
/// the full steps (inlined into each kernel, so `mul_add` is that level's FMA).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // index loops name the register block
fn tail_and_tree(
    acc: &mut [[[f32; LANES]; BJ]; BI],
    a: &[f32],
    ar: [usize; BI],
    b: &[f32],
    bc: [usize; BJ],
    k: usize,
) -> [[f32; BJ]; BI] {
    let full = k / LANES * LANES;
    let mut out = [[0.0f32; BJ]; BI];
    for t in 0..BI {
        for u in 0..BJ {
            let v = &mut acc[t][u];
            for l in 0..k - full {
                v[l] = a[ar[t] + full + l].mul_add(b[bc[u] + full + l], v[l]);
            }
            let mut width = LANES;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    v[l] += v[l + width];
                }
            }
            out[t][u] = v[0];
        }
    }
    out
}

/// [`block_body`] on AVX-512: the 24 sums are one register each.
///
/// # Safety
/// The CPU has AVX-512F; `ar[t] + k <= a.len()` and `bc[u] + k <= b.len()` for all `t`, `u`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::needless_range_loop)] // index loops name the register block
unsafe fn block_avx512(
    a: &[f32],
    ar: [usize; BI],
    b: &[f32],
    bc: [usize; BJ],
    k: usize,
) -> [[f32; BJ]; BI] {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the features and that every row `ar[t]` and column
    // `bc[u]` has `k` elements; loads stay below `k` (the last one masked).
    unsafe {
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); BJ]; BI];
        let mut x = [_mm512_setzero_ps(); BI];
        let mut y = [_mm512_setzero_ps(); BJ];
        let mut k0 = 0;
        while k0 + LANES <= k {
            for t in 0..BI {
                x[t] = _mm512_loadu_ps(pa.add(ar[t] + k0));
            }
            for u in 0..BJ {
                y[u] = _mm512_loadu_ps(pb.add(bc[u] + k0));
            }
            for t in 0..BI {
                for u in 0..BJ {
                    acc[t][u] = _mm512_fmadd_ps(x[t], y[u], acc[t][u]);
                }
            }
            k0 += LANES;
        }
        // The partial last step: masked loads read nothing past `k`, and the masked FMA
        // leaves the lanes past the tail as they are, as `block_body` does.
        if k0 < k {
            let m: __mmask16 = ((1u32 << (k - k0)) - 1) as __mmask16;
            for t in 0..BI {
                x[t] = _mm512_maskz_loadu_ps(m, pa.add(ar[t] + k0));
            }
            for u in 0..BJ {
                y[u] = _mm512_maskz_loadu_ps(m, pb.add(bc[u] + k0));
            }
            for t in 0..BI {
                for u in 0..BJ {
                    acc[t][u] = _mm512_mask3_fmadd_ps(x[t], y[u], acc[t][u], m);
                }
            }
        }
        // The lane tree of `block_body`: lane l + 8 onto l, then + 4, + 2, + 1.
        let mut out = [[0.0f32; BJ]; BI];
        for t in 0..BI {
            for u in 0..BJ {
                let v = acc[t][u];
                let v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b11_10_11_10>(v, v));
                let v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b00_00_00_01>(v, v));
                let v = _mm512_add_ps(v, _mm512_permute_ps::<0b11_10_11_10>(v));
                let v = _mm512_add_ps(v, _mm512_permute_ps::<0b00_00_00_01>(v));
                out[t][u] = _mm512_cvtss_f32(v);
            }
        }
        out
    }
}

/// [`block_body`] on AVX2: each sum is two registers (lanes 0-7, 8-15), so the block is run
/// as four 3 x 2 sub-blocks (12 registers of sums).
///
/// # Safety
/// The CPU has AVX2 and FMA; bounds as [`block_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // index loops name the register block
unsafe fn block_avx2(
    a: &[f32],
    ar: [usize; BI],
    b: &[f32],
    bc: [usize; BJ],
    k: usize,
) -> [[f32; BJ]; BI] {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the features and that every row `ar[t]` and column
    // `bc[u]` has `k` elements; loads stay below `k`, stores go to the local lane arrays.
    let mut lanes = unsafe {
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut lanes = [[[0.0f32; LANES]; BJ]; BI];
        for t0 in (0..BI).step_by(3) {
            for u0 in (0..BJ).step_by(2) {
                let mut acc = [[[_mm256_setzero_ps(); 2]; 2]; 3];
                let mut k0 = 0;
                while k0 + LANES <= k {
                    for h in 0..2 {
                        let y0 = _mm256_loadu_ps(pb.add(bc[u0] + k0 + 8 * h));
                        let y1 = _mm256_loadu_ps(pb.add(bc[u0 + 1] + k0 + 8 * h));
                        for t in 0..3 {
                            let xv = _mm256_loadu_ps(pa.add(ar[t0 + t] + k0 + 8 * h));
                            acc[t][0][h] = _mm256_fmadd_ps(xv, y0, acc[t][0][h]);
                            acc[t][1][h] = _mm256_fmadd_ps(xv, y1, acc[t][1][h]);
                        }
                    }
                    k0 += LANES;
                }
                for t in 0..3 {
                    for u in 0..2 {
                        for h in 0..2 {
                            _mm256_storeu_ps(
                                lanes[t0 + t][u0 + u][8 * h..].as_mut_ptr(),
                                acc[t][u][h],
                            );
                        }
                    }
                }
            }
        }
        lanes
    };
    tail_and_tree(&mut lanes, a, ar, b, bc, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef, b: MatRef) -> Vec<f32> {
        let mut c = vec![0.0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
                c[i * b.cols + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn both_backends_match_naive_product_with_transposes_and_accumulation() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| ((i * 17 % 7) as f32) - 3.0).collect();
        let av = MatRef::row_major(&a, m, k);
        let bv = MatRef::row_major(&bt, n, k).t();
        let want = naive(av, bv);
        for backend in [GemmBackend::Gemm, GemmBackend::MatrixMultiply] {
            for threads in [false, true] {
                let mut c = vec![1.0f32; m * n];
                sgemm(backend, av, bv, &mut c, false, threads);
                assert_eq!(c, want, "{backend:?}");
                sgemm(backend, av, bv, &mut c, true, threads);
                let doubled: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
                assert_eq!(c, doubled, "{backend:?} accumulate");
            }
        }
    }

    /// The inner-product kernel against the f64 product: integer data (exact in f32), shapes
    /// with edge blocks on both sides and an inner tail, with and without accumulation and
    /// threads; then real-valued data at every instruction-set level, which must agree bit
    /// for bit (the kernel's sums have one fixed order).
    #[test]
    fn inner_product_kernel_matches_naive_product_and_is_level_independent() {
        for (m, k, n) in [(144, 1024, 16), (7, 300, 37), (16, 257, 5), (1, 256, 1)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| ((i * 17 % 7) as f32) - 3.0).collect();
            let av = MatRef::row_major(&a, m, k);
            let bv = MatRef::row_major(&bt, n, k).t();
            assert!(inner_product_fits(&av, &bv), "{m}x{k}x{n}");
            let want = naive(av, bv);
            for threads in [false, true] {
                let mut c = vec![1.0f32; m * n];
                sgemm(GemmBackend::Gemm, av, bv, &mut c, false, threads);
                assert_eq!(c, want, "{m}x{k}x{n}");
                sgemm(GemmBackend::Gemm, av, bv, &mut c, true, threads);
                let doubled: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
                assert_eq!(c, doubled, "{m}x{k}x{n} accumulate");
            }
        }
        let k = 1000;
        let a: Vec<f32> = (0..BI * k).map(|i| (i as f32 * 0.731).sin()).collect();
        let b: Vec<f32> = (0..BJ * k).map(|i| (i as f32 * 0.377).cos()).collect();
        let ar = std::array::from_fn(|t| t * k);
        let bc = std::array::from_fn(|u| u * k);
        let want = block_body(&a, ar, &b, bc, k);
        for isa in crate::engine::cpu::test_levels() {
            let got = block_at(isa, &a, ar, &b, bc, k);
            assert_eq!(got, want, "{isa:?}");
        }
        for t in 0..BI {
            for u in 0..BJ {
                let exact: f64 = (0..k)
                    .map(|i| a[t * k + i] as f64 * b[u * k + i] as f64)
                    .sum();
                assert!((want[t][u] as f64 - exact).abs() < 1e-4, "{t},{u}");
            }
        }
    }
}
