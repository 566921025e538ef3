//! Residual connections: the parameter-free "option A" shortcut of the CIFAR ResNets (He et
//! al. 2016, Sec. 4.2; the widely used PyTorch CIFAR ResNet's `LambdaLayer`) and the residual
//! add.
//!
//! Option A: with stride 2, keep every other row and column starting at 0
//! (`x[:, :, ::2, ::2]`, so odd sizes round up); then zero-pad `(out_c - in_c) / 2` channels
//! before and after. With stride 1 and `out_c == in_c` it is the identity. The 1x1-conv
//! ("option B") shortcut is just [`super::conv::conv2d`] with a 1x1 kernel.
//!
//! Residual add `y = a + b` has backward `(dy, dy)`; no function is needed for it.

use crate::{Error, Result};
use ndarray::{s, Array4, Zip};

/// Checks an option-A shortcut's arguments; returns the zero channels padded on each side.
pub(crate) fn pad_channels(in_c: usize, out_c: usize, stride: usize) -> Result<usize> {
    if stride == 0 || stride > 2 {
        return Err(Error::input(
            "shortcut_a stride",
            format!("must be 1 or 2, got {stride}"),
        ));
    }
    if out_c < in_c || !(out_c - in_c).is_multiple_of(2) {
        return Err(Error::input(
            "shortcut_a out_channels",
            format!("{out_c} output channels cannot be reached from {in_c} by padding equally on both sides"),
        ));
    }
    Ok((out_c - in_c) / 2)
}

/// Option-A shortcut forward: `[N, in_c, H, W] -> [N, out_c, ceil(H/s), ceil(W/s)]`.
pub fn shortcut_a(x: &Array4<f32>, out_c: usize, stride: usize) -> Result<Array4<f32>> {
    let (n, c, h, w) = x.dim();
    let p = pad_channels(c, out_c, stride)?;
    let sub = x.slice(s![.., .., ..;stride, ..;stride]);
    let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
    let mut y = Array4::<f32>::zeros((n, out_c, ho, wo));
    y.slice_mut(s![.., p..p + c, .., ..]).assign(&sub);
    Ok(y)
}

/// Option-A shortcut backward: the gradient of the kept positions, zeros elsewhere.
/// `x_dim` is the forward input's shape.
pub fn shortcut_a_backward(
    x_dim: (usize, usize, usize, usize),
    stride: usize,
    dy: &Array4<f32>,
) -> Result<Array4<f32>> {
    let (n, c, h, w) = x_dim;
    let out_c = dy.dim().1;
    let p = pad_channels(c, out_c, stride)?;
    let want = (n, out_c, h.div_ceil(stride), w.div_ceil(stride));
    if dy.dim() != want {
        return Err(Error::input(
            "shortcut_a_backward dy",
            format!("gradient shape {:?}, expected {want:?}", dy.dim()),
        ));
    }
    let mut dx = Array4::<f32>::zeros(x_dim);
    dx.slice_mut(s![.., .., ..;stride, ..;stride])
        .assign(&dy.slice(s![.., p..p + c, .., ..]));
    Ok(dx)
}

/// `a + b`, element-wise; shapes must match exactly (no broadcasting).
pub fn residual_add(a: &Array4<f32>, b: &Array4<f32>) -> Result<Array4<f32>> {
    if a.dim() != b.dim() {
        return Err(Error::input(
            "residual_add",
            format!("branch shapes differ: {:?} vs {:?}", a.dim(), b.dim()),
        ));
    }
    Ok(Zip::from(a).and(b).par_map_collect(|&x, &y| x + y))
}
