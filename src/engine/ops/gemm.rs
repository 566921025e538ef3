//! Row-major f32 matrix products for the float engine, behind one safe function.
//!
//! Two backends are kept so `benches/float_conv.rs` can compare them: the `gemm` crate (runtime
//! dispatch to AVX-512 / AVX2 micro-kernels) and `matrixmultiply`. [`DEFAULT_BACKEND`] is `gemm`:
//! on this machine's AVX-512 cores it ran the ResNet20 conv GEMM shapes 1.3-2.3x faster
//! (e.g. [64x576]x[576x256]: ~104 vs ~70 GMAC/s on one thread; [16x144]x[144x1024]: ~80 vs
//! ~35). Either backend gives results within f32 rounding of the f64 reference.
//!
//! Convention: every matrix is described by (rows, cols, row stride, column stride) in elements,
//! so a transpose is just swapped strides, never a copy.

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
}
