//! Slow, obvious reference implementations on unpacked +/-1 `i8` values with `i32` sums. They
//! share no code with the packed kernels and are the truth those kernels are tested against.
//! Zero padding: an out-of-range input position contributes 0.

use ndarray::{Array2, Array4};

use crate::{Error, Result};

/// `sum_i a[i] * b[i]`.
pub fn dot_i8(a: &[i8], b: &[i8]) -> Result<i32> {
    if a.len() != b.len() {
        return Err(Error::input(
            "reference dot",
            format!("lengths {} and {} differ", a.len(), b.len()),
        ));
    }
    Ok(a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum())
}

/// Direct conv2d, NCHW input `[N][C][H][W]`, OIHW weights, symmetric zero padding.
pub fn conv2d_i8(x: &Array4<i8>, w: &Array4<i8>, stride: usize, pad: usize) -> Result<Array4<i32>> {
    let (n, c, h, wd) = x.dim();
    let (o, wc, kh, kw) = w.dim();
    if c != wc || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
        return Err(Error::input(
            "reference conv2d",
            format!(
                "input {:?}, weights {:?}, stride {stride}, pad {pad} do not fit",
                x.dim(),
                w.dim()
            ),
        ));
    }
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (wd + 2 * pad - kw) / stride + 1;
    let mut out = Array4::<i32>::zeros((n, o, oh, ow));
    for b in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0i32;
                    for ic in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                s += x[[b, ic, iy as usize, ix as usize]] as i32
                                    * w[[oc, ic, ky, kx]] as i32;
                            }
                        }
                    }
                    out[[b, oc, oy, ox]] = s;
                }
            }
        }
    }
    Ok(out)
}

/// `x · wᵀ` for `x` `[N][K]`, `w` `[O][K]`.
pub fn linear_i8(x: &Array2<i8>, w: &Array2<i8>) -> Result<Array2<i32>> {
    if x.ncols() != w.ncols() {
        return Err(Error::input(
            "reference linear",
            format!("input has {} features, weights {}", x.ncols(), w.ncols()),
        ));
    }
    Ok(Array2::from_shape_fn((x.nrows(), w.nrows()), |(i, o)| {
        x.row(i)
            .iter()
            .zip(w.row(o))
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum()
    }))
}
