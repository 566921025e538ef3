//! The batch a white-box attack runs on: images (NCHW, unit scale), their true labels and their
//! resolved targets. The attacks send a batch through the model in one call per gradient step
//! and keep every other piece of state per image, so an image's result never depends on which
//! images share its batch (the engines' rows are independent of each other, see
//! [`super::WhiteBox::logits_and_vjps`]).

use ndarray::{Array4, ArrayView3, ArrayView4, Axis};

/// Images with their labels and targets (`None`: untargeted), one entry per image.
#[derive(Clone, Copy)]
pub struct WhiteBatch<'a> {
    pub x: ArrayView4<'a, f32>,
    pub labels: &'a [usize],
    pub targets: &'a [Option<usize>],
}

impl<'a> WhiteBatch<'a> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Channels of one image.
    pub fn channels(&self) -> usize {
        self.x.len_of(Axis(1))
    }

    /// Image `i` (CHW).
    pub fn image(&self, i: usize) -> ArrayView3<'_, f32> {
        self.x.index_axis(Axis(0), i)
    }

    /// The class the cross-entropy of image `i` is taken towards (target, else label) and the
    /// sign of the step on it (`-1` descends towards a target, `+1` ascends away from a label).
    pub fn towards(&self, i: usize) -> (usize, f32) {
        match self.targets[i] {
            Some(t) => (t, -1.0),
            None => (self.labels[i], 1.0),
        }
    }

    /// The images at `positions`, stacked (NCHW).
    pub fn gather(&self, positions: &[usize]) -> Array4<f32> {
        stack(positions.iter().map(|&i| self.image(i)))
    }
}

/// Stacks CHW images into one NCHW batch.
pub fn stack<'a>(images: impl IntoIterator<Item = ArrayView3<'a, f32>>) -> Array4<f32> {
    let views: Vec<ArrayView3<f32>> = images.into_iter().collect();
    ndarray::stack(Axis(0), &views).expect("images of one shape")
}
