//! An in-memory labelled image set, kept as raw pixels.
//!
//! Images are `u8` NCHW (0-255, as the files store them) so a dataset costs one byte per pixel;
//! [`Dataset::to_unit`] converts a slice to unit scale (`x / 255`, exact division in f32) for the
//! classifiers, and [`normalize`] applies a model's per-channel mean/std on that unit scale.
//! Sampling is seeded with ChaCha8: the same seed gives the same indices on every machine.

use crate::model::Normalization;
use crate::{Error, Result};
use ndarray::{Array4, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// Most classes a [`Dataset`] can hold (labels are `u16`).
pub const MAX_CLASSES: usize = 1 << 16;

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// (N, C, H, W) raw pixels 0-255.
    pub images: Array4<u8>,
    /// One class index per image, each `< classes` (`u16`: up to 65,536 classes, enough for
    /// ImageNet's 1,000).
    pub labels: Vec<u16>,
    pub classes: usize,
    /// Where the data came from (file or directory and split), for reports and errors.
    pub source: String,
}

impl Dataset {
    /// Build a dataset, checking that labels match images one to one and lie in `0..classes`.
    pub fn new(
        images: Array4<u8>,
        labels: Vec<u16>,
        classes: usize,
        source: impl Into<String>,
    ) -> Result<Dataset> {
        let source = source.into();
        if images.len_of(Axis(0)) != labels.len() {
            return Err(Error::input(
                &source,
                format!(
                    "{} images but {} labels",
                    images.len_of(Axis(0)),
                    labels.len()
                ),
            ));
        }
        if classes == 0 || classes > MAX_CLASSES {
            return Err(Error::input(
                &source,
                format!("class count {classes} must be in 1..={MAX_CLASSES}"),
            ));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            return Err(Error::input(
                &source,
                format!("image {i}: label {l} is outside 0..{}", classes - 1),
            ));
        }
        Ok(Dataset {
            images,
            labels,
            classes,
            source,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// (C, H, W) of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        let s = self.images.shape();
        [s[1], s[2], s[3]]
    }

    /// Images `range` in unit scale (\[0,1\]) as f32 NCHW.
    pub fn to_unit(&self, range: Range<usize>) -> Result<Array4<f32>> {
        self.check_range(&range)?;
        Ok(self
            .images
            .slice(ndarray::s![range, .., .., ..])
            .mapv(|p| p as f32 / 255.0))
    }

    /// Labels of `range`.
    pub fn labels_of(&self, range: Range<usize>) -> Result<&[u16]> {
        self.check_range(&range)?;
        Ok(&self.labels[range])
    }

    fn check_range(&self, range: &Range<usize>) -> Result<()> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::input(
                &self.source,
                format!(
                    "image range {}..{} is outside the {} images",
                    range.start,
                    range.end,
                    self.len()
                ),
            ));
        }
        Ok(())
    }

    /// The images at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::input(
                &self.source,
                format!("index {bad} is outside the {} images", self.len()),
            ));
        }
        Ok(Dataset {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
            source: format!("{} (subset of {})", self.source, indices.len()),
        })
    }

    /// `n` distinct indices drawn uniformly without replacement with ChaCha8(`seed`), returned in
    /// ascending order (so reports list images in file order).
    pub fn sample_indices(&self, n: usize, seed: u64) -> Result<Vec<usize>> {
        if n > self.len() {
            return Err(Error::input(
                &self.source,
                format!("cannot sample {n} images from {}", self.len()),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx = rand::seq::index::sample(&mut rng, self.len(), n).into_vec();
        idx.sort_unstable();
        Ok(idx)
    }

    /// The subset at [`Dataset::sample_indices`].
    pub fn sample(&self, n: usize, seed: u64) -> Result<Dataset> {
        let idx = self.sample_indices(n, seed)?;
        let mut d = self.subset(&idx)?;
        d.source = format!("{} (sample of {n}, seed {seed})", self.source);
        Ok(d)
    }

    /// All indices in a ChaCha8(`seed`) Fisher-Yates order (derive one seed per epoch so a resumed
    /// run sees the same order).
    pub fn shuffled_indices(&self, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        idx
    }

    /// Consecutive ranges of at most `batch` images covering the dataset (the last may be
    /// shorter); `batch == 0` is an error.
    pub fn batch_ranges(&self, batch: usize) -> Result<Vec<Range<usize>>> {
        if batch == 0 {
            return Err(Error::input("batch size", "must be at least 1"));
        }
        Ok((0..self.len())
            .step_by(batch)
            .map(|s| s..(s + batch).min(self.len()))
            .collect())
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}

/// `(x_unit[c] - mean[c]) / std[c]` per channel of an NCHW batch.
pub fn normalize(x_unit: &Array4<f32>, norm: &Normalization) -> Result<Array4<f32>> {
    let c = x_unit.len_of(Axis(1));
    if norm.mean.len() != c || norm.std.len() != c {
        return Err(Error::input(
            "normalization",
            format!(
                "has {} means and {} stds but the images have {c} channels",
                norm.mean.len(),
                norm.std.len()
            ),
        ));
    }
    if let Some(s) = norm.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::input(
            "normalization.std",
            format!("{s} is not a positive finite number"),
        ));
    }
    let mut out = x_unit.clone();
    for (ch, mut plane) in out.axis_iter_mut(Axis(1)).enumerate() {
        let (m, s) = (norm.mean[ch], norm.std[ch]);
        plane.mapv_inplace(|v| (v - m) / s);
    }
    Ok(out)
}
