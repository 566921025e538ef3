//! Binary linear (fully connected) layer: `out[n][o] = K - 2 * popcount(x[n] XOR w[o])`, the +/-1
//! matrix product `x · wᵀ` as exact `i32` (no bias; scales and bias belong to the output
//! transform). Inputs and weights are [`PackedRows`] of the same length K.

use ndarray::Array2;
use rayon::prelude::*;

use super::bgemm::{gemm, Panels};
use super::pack::PackedRows;
use super::popcount::PopcountPath;
use crate::{Error, Result};

/// Input rows per parallel task; big enough that rayon overhead is negligible.
const ROWS_PER_TASK: usize = 32;

/// A binary linear layer with its weights prepared in panels.
#[derive(Clone, Debug)]
pub struct BLinear {
    in_features: usize,
    panels: Panels,
}

impl BLinear {
    /// `weights` is `[out_features][in_features]`.
    pub fn new(weights: &PackedRows) -> Self {
        BLinear {
            in_features: weights.len(),
            panels: Panels::from_rows(weights.as_words(), weights.rows(), weights.words_per_row()),
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }
    pub fn out_features(&self) -> usize {
        self.panels.outputs()
    }

    pub fn forward(&self, x: &PackedRows) -> Result<Array2<i32>> {
        self.forward_with(PopcountPath::detect(), x)
    }

    pub fn forward_with(&self, path: PopcountPath, x: &PackedRows) -> Result<Array2<i32>> {
        let path = path.checked()?;
        if x.len() != self.in_features {
            return Err(Error::input(
                "blinear input",
                format!("{} features, weights expect {}", x.len(), self.in_features),
            ));
        }
        let (n, o) = (x.rows(), self.out_features());
        let ld = self.panels.padded_outputs();
        let rw = x.words_per_row();
        let k = self.in_features as i32;
        let mut out = vec![0i32; n * o];
        out.par_chunks_mut(ROWS_PER_TASK * o.max(1))
            .zip(x.as_words().par_chunks(ROWS_PER_TASK * rw))
            .for_each(|(dst, src)| {
                let rows = src.len() / rw;
                let mut counts = vec![0u32; rows * ld];
                gemm(path, src, &self.panels, &mut counts);
                for (d, c) in dst.chunks_exact_mut(o).zip(counts.chunks_exact(ld)) {
                    for (dv, &cv) in d.iter_mut().zip(c) {
                        *dv = k - 2 * cv as i32;
                    }
                }
            });
        Ok(Array2::from_shape_vec((n, o), out).expect("sizes match"))
    }
}

/// Binary linear layer with the fastest popcount path: `x` `[N][K]`, `weights` `[O][K]`,
/// result `[N][O]` +/-1 dot products. Mismatched K is an input error.
pub fn blinear(x: &PackedRows, weights: &PackedRows) -> Result<Array2<i32>> {
    BLinear::new(weights).forward(x)
}

/// [`blinear`] on a given popcount path.
pub fn blinear_with(
    path: PopcountPath,
    x: &PackedRows,
    weights: &PackedRows,
) -> Result<Array2<i32>> {
    BLinear::new(weights).forward_with(path, x)
}
