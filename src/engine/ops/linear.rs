//! Fully connected layer `y = x W^T + b` (PyTorch `nn.Linear` layout: `W [out, in]`) on
//! `x [N, in]`, forward and backward, through the crate's GEMM.

use super::gemm::{sgemm, MatRef, DEFAULT_BACKEND};
use crate::{Error, Result};
use ndarray::{Array1, Array2, Axis};

fn check(x: &Array2<f32>, w: &Array2<f32>) -> Result<()> {
    if x.ncols() != w.ncols() {
        return Err(Error::input(
            "linear weight",
            format!(
                "weight expects {} inputs, input has {} features",
                w.ncols(),
                x.ncols()
            ),
        ));
    }
    Ok(())
}

/// Forward: `x [N, in]`, `w [out, in]`, `b [out]` -> `[N, out]`.
pub fn linear(x: &Array2<f32>, w: &Array2<f32>, b: Option<&Array1<f32>>) -> Result<Array2<f32>> {
    check(x, w)?;
    let (n, i, o) = (x.nrows(), x.ncols(), w.nrows());
    if let Some(b) = b {
        if b.len() != o {
            return Err(Error::input(
                "linear bias",
                format!("bias has {} entries, weight has {o} outputs", b.len()),
            ));
        }
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let mut y = vec![0.0f32; n * o];
    sgemm(
        DEFAULT_BACKEND,
        MatRef::row_major(x.as_slice().expect("standard"), n, i),
        MatRef::row_major(w.as_slice().expect("standard"), o, i).t(),
        &mut y,
        false,
        true,
    );
    let mut y = Array2::from_shape_vec((n, o), y).expect("shape");
    if let Some(b) = b {
        y += b;
    }
    Ok(y)
}

/// Backward: returns `(dx = dy W, dW = dy^T x, db = sum_n dy)`.
pub fn linear_backward(
    x: &Array2<f32>,
    w: &Array2<f32>,
    dy: &Array2<f32>,
) -> Result<(Array2<f32>, Array2<f32>, Array1<f32>)> {
    check(x, w)?;
    let (n, i, o) = (x.nrows(), x.ncols(), w.nrows());
    if dy.dim() != (n, o) {
        return Err(Error::input(
            "linear_backward dy",
            format!("gradient shape {:?}, expected {:?}", dy.dim(), (n, o)),
        ));
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let dys = dy.as_standard_layout();
    let (xs, ws, ds) = (
        x.as_slice().expect("standard"),
        w.as_slice().expect("standard"),
        dys.as_slice().expect("standard"),
    );
    let mut dx = vec![0.0f32; n * i];
    sgemm(
        DEFAULT_BACKEND,
        MatRef::row_major(ds, n, o),
        MatRef::row_major(ws, o, i),
        &mut dx,
        false,
        true,
    );
    let mut dw = vec![0.0f32; o * i];
    sgemm(
        DEFAULT_BACKEND,
        MatRef::row_major(ds, n, o).t(),
        MatRef::row_major(xs, n, i),
        &mut dw,
        false,
        true,
    );
    let db = dy.map_axis(Axis(0), |col| {
        col.iter().map(|&v| v as f64).sum::<f64>() as f32
    });
    Ok((
        Array2::from_shape_vec((n, i), dx).expect("shape"),
        Array2::from_shape_vec((o, i), dw).expect("shape"),
        db,
    ))
}
