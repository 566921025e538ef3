//! The standard CIFAR training augmentation (as in the usual PyTorch recipe `RandomCrop(32,
//! padding=4)` + `RandomHorizontalFlip()`): pad each image with `pad` zero pixels on every side,
//! crop a window of the original size at a uniformly random offset in `0..=2*pad` per axis, then
//! mirror left-right with probability 1/2.
//!
//! Zero padding is applied to whatever scale the batch is in; callers pass unit-scale (or raw u8)
//! pixels so the padding is black, as torchvision pads the PIL image before normalisation.
//! Randomness: all per-image parameters are drawn first, serially, from one ChaCha8 stream
//! (offset_y, offset_x, flip for image 0, then image 1, ...), so results do not depend on how the
//! work is split across threads.

use ndarray::{Array3, Array4, ArrayView3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What happens to one image: crop window origin in the padded image, and whether it is mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AugmentParams {
    pub offset_y: usize,
    pub offset_x: usize,
    pub flip: bool,
}

impl AugmentParams {
    /// The parameters that leave an image unchanged for padding `pad`.
    pub fn identity(pad: usize) -> Self {
        AugmentParams {
            offset_y: pad,
            offset_x: pad,
            flip: false,
        }
    }
}

/// Draw parameters for `n` images.
pub fn draw_params(n: usize, pad: usize, rng: &mut ChaCha8Rng) -> Vec<AugmentParams> {
    (0..n)
        .map(|_| AugmentParams {
            offset_y: rng.gen_range(0..=2 * pad),
            offset_x: rng.gen_range(0..=2 * pad),
            flip: rng.gen_bool(0.5),
        })
        .collect()
}

/// Zero-pad `img` (C, H, W) by `pad` and crop an H x W window whose top-left corner is at
/// (`oy`, `ox`) in the padded image. Offsets beyond `2*pad` are clamped, so the window always fits.
pub fn pad_crop<T: Clone + Default>(
    img: ArrayView3<T>,
    pad: usize,
    oy: usize,
    ox: usize,
) -> Array3<T> {
    let (c, h, w) = img.dim();
    let (oy, ox) = (oy.min(2 * pad), ox.min(2 * pad));
    let mut out = Array3::<T>::default((c, h, w));
    // Output pixel (y, x) is padded pixel (y+oy, x+ox) = source (y+oy-pad, x+ox-pad) when in range.
    let y0 = pad.saturating_sub(oy);
    let y1 = (h + pad).saturating_sub(oy).min(h);
    let x0 = pad.saturating_sub(ox);
    let x1 = (w + pad).saturating_sub(ox).min(w);
    if y0 < y1 && x0 < x1 {
        let src = img.slice(ndarray::s![
            ..,
            y0 + oy - pad..y1 + oy - pad,
            x0 + ox - pad..x1 + ox - pad
        ]);
        out.slice_mut(ndarray::s![.., y0..y1, x0..x1]).assign(&src);
    }
    out
}

/// Mirror `img` (C, H, W) left-right. The result is in standard (C-contiguous) layout: a plain
/// `to_owned` of the reversed view would keep the negative stride and break `as_slice` users.
pub fn hflip<T: Clone + Default>(img: ArrayView3<T>) -> Array3<T> {
    let mut out = Array3::<T>::default(img.dim());
    out.assign(&img.slice(ndarray::s![.., .., ..;-1]));
    out
}

/// Apply `params[i]` to image `i` of an NCHW batch.
pub fn apply<T: Clone + Default>(
    batch: &Array4<T>,
    pad: usize,
    params: &[AugmentParams],
) -> Array4<T> {
    assert_eq!(
        batch.len_of(Axis(0)),
        params.len(),
        "one AugmentParams per image"
    );
    let mut out = batch.clone();
    for ((src, mut dst), p) in batch.outer_iter().zip(out.outer_iter_mut()).zip(params) {
        let cropped = pad_crop(src, pad, p.offset_y, p.offset_x);
        if p.flip {
            dst.assign(&hflip(cropped.view()));
        } else {
            dst.assign(&cropped);
        }
    }
    out
}

/// Pad-crop-flip a batch, drawing the parameters from `rng` (continue one stream across batches).
pub fn augment_with<T: Clone + Default>(
    batch: &Array4<T>,
    pad: usize,
    rng: &mut ChaCha8Rng,
) -> Array4<T> {
    let params = draw_params(batch.len_of(Axis(0)), pad, rng);
    apply(batch, pad, &params)
}

/// Pad-crop-flip a batch with a fresh ChaCha8 stream seeded by `seed` (callers derive one seed per
/// epoch and batch so a resumed run reproduces the same augmentation).
pub fn augment<T: Clone + Default>(batch: &Array4<T>, pad: usize, seed: u64) -> Array4<T> {
    augment_with(batch, pad, &mut ChaCha8Rng::seed_from_u64(seed))
}
