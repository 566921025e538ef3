//! Class activation maps (Zhou et al., "Learning Deep Features for Discriminative Localization",
//! CVPR 2016) and the paper's Table 3 heat-map metric.
//!
//! Conventions:
//! - `CAM_c(x, y) = sum_k w[c, k] f_k(x, y)` from the last conv feature maps `f` `[K, h, w]`
//!   (after the final activation, before global average pooling) and the classifier weights `w`
//!   `[classes, K]`; the bias is constant over the map and drops out after normalization.
//! - Upsampling is bilinear with half-pixel centres (`align_corners = false`, as OpenCV's
//!   `INTER_LINEAR` and PyTorch's default): output pixel `o` samples source coordinate
//!   `(o + 0.5) * in / out - 0.5`, clamped to the border.
//! - Normalization to 0-255: `round(255 (v - min) / (max - min))`; a constant map becomes 0.
//! - Colormap: MATLAB-style jet, blue (0) -> cyan -> yellow -> red (255):
//!   `r = clamp(1.5 - |4t - 3|)`, `g = clamp(1.5 - |4t - 2|)`, `b = clamp(1.5 - |4t - 1|)`,
//!   `t = v / 255`.
//! - Overlay: `round(alpha * jet + (1 - alpha) * 255 * image)` per channel with
//!   [`OVERLAY_ALPHA`] = 0.5; images are unit scale \[0,1\], CHW, 1 or 3 channels.
//! - Metric: third quartile (type 7 interpolation, as in [`super::metrics`]) of the normalized
//!   0-255 heat-map intensity over all pixels (the paper reports e.g. 184 for ResNet56 vanilla).

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use serde::{Deserialize, Serialize};

use super::metrics::quantile_sorted;
use crate::{Error, Result};

/// Weight of the heat map in the overlay.
pub const OVERLAY_ALPHA: f32 = 0.5;

/// `CAM_c = sum_k w[c,k] f_k` on the feature-map grid `[h, w]`.
pub fn cam(
    features: ArrayView3<f32>,
    weights: ArrayView2<f32>,
    class: usize,
) -> Result<Array2<f32>> {
    let (k, h, w) = features.dim();
    let (classes, wk) = weights.dim();
    if wk != k {
        return Err(Error::input(
            "cam weights",
            format!("classifier weights have {wk} inputs but the feature maps have {k} channels"),
        ));
    }
    if class >= classes {
        return Err(Error::input(
            "cam class",
            format!("class {class} out of range (classifier has {classes} classes)"),
        ));
    }
    if h == 0 || w == 0 || k == 0 {
        return Err(Error::input("cam features", "feature maps are empty"));
    }
    let mut out = Array2::<f32>::zeros((h, w));
    for (kk, f) in features.outer_iter().enumerate() {
        out.scaled_add(weights[[class, kk]], &f);
    }
    Ok(out)
}

/// Bilinear resize with half-pixel centres (module doc).
pub fn upsample_bilinear(map: ArrayView2<f32>, out_h: usize, out_w: usize) -> Array2<f32> {
    let (ih, iw) = map.dim();
    let coords = |o: usize, n_in: usize, n_out: usize| {
        let src =
            ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).clamp(0.0, (n_in - 1) as f32);
        let i0 = src.floor() as usize;
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, src - i0 as f32)
    };
    Array2::from_shape_fn((out_h, out_w), |(y, x)| {
        let (y0, y1, fy) = coords(y, ih, out_h);
        let (x0, x1, fx) = coords(x, iw, out_w);
        let top = map[[y0, x0]] * (1.0 - fx) + map[[y0, x1]] * fx;
        let bottom = map[[y1, x0]] * (1.0 - fx) + map[[y1, x1]] * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

/// Min-max normalize to 0-255 (a constant map becomes all 0).
pub fn normalize_255(map: ArrayView2<f32>) -> Array2<u8> {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    map.mapv(|v| {
        if range > 0.0 {
            (255.0 * (v - min) / range).round().clamp(0.0, 255.0) as u8
        } else {
            0
        }
    })
}

/// Jet colour of an intensity (module doc).
pub fn jet(v: u8) -> [u8; 3] {
    let t = f32::from(v) / 255.0;
    let c = |x: f32| ((1.5 - x.abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [c(4.0 * t - 3.0), c(4.0 * t - 2.0), c(4.0 * t - 1.0)]
}

/// Overlay the jet-coloured heat map on a unit-scale CHW image; returns HWC RGB bytes.
pub fn overlay(image: ArrayView3<f32>, heat: ArrayView2<u8>) -> Result<Array3<u8>> {
    let (c, h, w) = image.dim();
    if heat.dim() != (h, w) {
        return Err(Error::input(
            "cam overlay",
            format!("heat map is {:?} but the image is {h}x{w}", heat.dim()),
        ));
    }
    if c != 1 && c != 3 {
        return Err(Error::input(
            "cam overlay",
            format!("image must have 1 or 3 channels, got {c}"),
        ));
    }
    let a = OVERLAY_ALPHA;
    Ok(Array3::from_shape_fn((h, w, 3), |(y, x, ch)| {
        let img = image[[if c == 1 { 0 } else { ch }, y, x]].clamp(0.0, 1.0) * 255.0;
        let heat = f32::from(jet(heat[[y, x]])[ch]);
        (a * heat + (1.0 - a) * img).round().clamp(0.0, 255.0) as u8
    }))
}

/// Third quartile of the 0-255 heat-map intensity over all pixels.
pub fn third_quartile_intensity(heat: ArrayView2<u8>) -> f32 {
    let mut v: Vec<f32> = heat.iter().map(|&b| f32::from(b)).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    quantile_sorted(&v, 0.75)
}

/// What the caller supplies for one CAM panel (one image through one variant).
#[derive(Clone, Debug)]
pub struct CamInput {
    /// Column title, e.g. "clean" or "DeepFool i=1".
    pub label: String,
    /// Unit-scale image, CHW.
    pub image: Array3<f32>,
    /// Last conv feature maps `[K, h, w]`.
    pub features: Array3<f32>,
    /// Classifier weights `[classes, K]`.
    pub weights: Array2<f32>,
    /// Class whose map is drawn (usually the predicted one).
    pub class: usize,
    /// Optional class name shown under the panel.
    pub class_name: Option<String>,
}

/// One row of the CAM grid (Table 3): a variant and its panels.
#[derive(Clone, Debug)]
pub struct CamRow {
    pub variant: String,
    pub panels: Vec<CamInput>,
}

/// A rendered panel: overlay pixels and the Q3 metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CamPanel {
    pub label: String,
    pub class: usize,
    pub class_name: Option<String>,
    /// Third-quartile heat intensity on 0-255.
    pub q3: f32,
    pub width: usize,
    pub height: usize,
    /// Overlay, HWC RGB bytes.
    #[serde(skip)]
    pub rgb: Vec<u8>,
}

/// Compute the CAM, upsample to the image size, normalize, colour and overlay.
pub fn render_panel(input: &CamInput) -> Result<CamPanel> {
    let (_, h, w) = input.image.dim();
    let map = cam(input.features.view(), input.weights.view(), input.class)
        .map_err(|e| Error::input(format!("cam panel {:?}", input.label), e.to_string()))?;
    if map.iter().any(|v| !v.is_finite()) {
        return Err(Error::input(
            format!("cam panel {:?}", input.label),
            "class activation map has non-finite values",
        ));
    }
    let heat = normalize_255(upsample_bilinear(map.view(), h, w).view());
    let rgb = overlay(input.image.view(), heat.view())?;
    Ok(CamPanel {
        label: input.label.clone(),
        class: input.class,
        class_name: input.class_name.clone(),
        q3: third_quartile_intensity(heat.view()),
        width: w,
        height: h,
        rgb: rgb.into_raw_vec_and_offset().0,
    })
}

/// The test image of the CAM grid, chosen from the sweep records (see [`choose_cam_image`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CamImageChoice {
    /// Test-set index.
    pub index: usize,
    /// Zoo entries whose clean prediction on it is correct.
    pub correct: usize,
    /// Zoo entries asked about.
    pub entries: usize,
}

impl CamImageChoice {
    /// True when every entry classifies the image correctly.
    pub fn all_correct(&self) -> bool {
        self.correct == self.entries
    }

    /// One sentence for captions.
    pub fn describe(&self) -> String {
        if self.all_correct() {
            format!(
                "Test image {}: the lowest test index that all {} entries classify correctly \
                 (clean predictions in the sweep records).",
                self.index, self.entries
            )
        } else {
            format!(
                "Test image {}: no image is classified correctly by all {} entries; this one is \
                 by the most ({} of {}; clean predictions in the sweep records).",
                self.index, self.entries, self.correct, self.entries
            )
        }
    }
}

/// The default CAM image: the lowest test index that every entry of `entries` classifies
/// correctly on the clean image (an entry counts as correct on an image when it has records of it
/// and all of them have `clean_pred == label`); if there is none, the image most entries get
/// right (lowest index on ties). `None` when the records name no image at all.
pub fn choose_cam_image(
    records: &[super::record::SweepRecord],
    entries: &[String],
) -> Option<CamImageChoice> {
    use std::collections::BTreeMap;
    // image -> entry -> all clean predictions correct so far
    let mut seen: BTreeMap<usize, BTreeMap<&str, bool>> = BTreeMap::new();
    for r in records {
        let ok = r.result.clean_pred == r.result.label;
        let e = seen
            .entry(r.result.index)
            .or_default()
            .entry(r.variant.as_str())
            .or_insert(true);
        *e &= ok;
    }
    let mut best: Option<CamImageChoice> = None;
    for (&index, by_entry) in &seen {
        let correct = entries
            .iter()
            .filter(|e| by_entry.get(e.as_str()) == Some(&true))
            .count();
        if best.as_ref().is_none_or(|b| correct > b.correct) {
            best = Some(CamImageChoice {
                index,
                correct,
                entries: entries.len(),
            });
        }
    }
    best
}
