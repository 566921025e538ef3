//! Threat-model units: budgets with an explicit scale, the epsilon ball they define, projection
//! into that ball *and* the valid pixel box, and the size of a perturbation in a given scale.
//!
//! # Scales
//! Every epsilon and step size carries a [`Scale`]:
//! - `pixel`: 0-255 pixel values (eps 8 = 8/255 in unit scale);
//! - `unit`: pixels in \[0,1\] (what classifiers receive, see the crate conventions);
//! - `normalized`: after the model's per-channel `(x - mean) / std`, so one normalized unit is
//!   `std[c]` in unit scale for channel `c`.
//!
//! A perturbation `delta` (unit scale, CHW) is measured in scale `S` through its coordinates
//! `z[c,h,w] = delta[c,h,w] / s[c]`, where `s[c]` is the size of one `S`-unit in unit scale
//! ([`Scale::unit_per_channel`]). So L-inf in `normalized` scale bounds each channel by
//! `eps * std[c]`, and **L2 in `normalized` scale is the L2 norm in normalized space**,
//! `sqrt(sum (delta / std[c])^2)` — the ball is an ellipsoid in unit space. Pixel and unit scale
//! have the same `s` for every channel, so their balls are ordinary round balls.
//!
//! # Projection
//! [`Ball::project`] first projects onto the ball (clamp for L-inf, radial rescale of `z` for L2)
//! and then clips `x0 + delta` to \[0,1\]. Because `x0` lies in \[0,1\], the clip only shrinks each
//! `|delta_i|`, so the result stays in the ball: it is feasible for both constraints (it is the
//! exact Euclidean projection onto the intersection for L-inf, the usual approximation for L2,
//! as in Madry et al.'s and torchattacks' implementations).
//!
//! # Which scale did the paper mean? (Table 2)
//! - **FGSM eps 2, 4, 8, 16 -> pixel.** Integers doubling from 2 to 16 are the classic 0-255
//!   grid (Kurakin et al.; Madry's 8/255). In unit scale every eps >= 1 maps the whole image to a
//!   corner of the box, and in normalized scale 16 would be ~4 (CIFAR) full ranges: the grid
//!   would be degenerate in both.
//! - **PGD eps 0.1, 0.5, 1.0, 2.0 with step 0.5 -> normalized.** In unit scale 1.0 and 2.0 both
//!   contain the whole \[0,1\] box (identical attacks, and step 0.5 would jump half the range); in
//!   pixel scale 0.1/255 is below the 8-bit quantum and could not drop ImageNet ResNet50 from
//!   75% to 26% in two steps (the paper's Table 5). In normalized units, 0.1 is ~6/255 (CIFAR
//!   std ~0.25, ImageNet ~0.225), a standard budget, and 2.0 is ~0.5 of the range, which breaks
//!   every network as the paper's Fig. 2 reports; step 0.5 ~ 32/255. This is also what an attack
//!   library applied to already-normalised tensors (a common setup) computes.
//! - **CW eps 0.01 .. 10 is not a norm budget**: it is the constant `c` (the paper's epsilon) of
//!   Eq. 5, `min ||delta||_p + c * g(I + delta)`; its "iterations" 1 .. 50 are optimiser steps
//!   (torchattacks' CW default is c = 1 and 50 steps, the paper's "fixed eps = 1").
//! - **DeepFool** has no budget, only iterations 1 .. 20 (maximum iterations).
//! - **LocalSearch eps 8, 16, 32 and GenAttack eps 8, 12 -> pixel.** Same integer 0-255 grid as
//!   FGSM; GenAttack's own ImageNet budget 0.05 (Alzantot et al.) is ~12.75/255, next to 12.

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use ndarray::{Array3, ArrayView3, Zip};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::model::Normalization;
use crate::{Error, Result};

/// The unit an epsilon or step is measured in (module doc); as a flag value and in TOML:
/// `pixel`, `unit` or `normalized`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// 0-255 pixel values (8 = 8/255 in unit scale)
    Pixel,
    /// Pixels in [0,1]
    Unit,
    /// After the model's per-channel (x - mean) / std
    Normalized,
}

impl Scale {
    /// Size of one unit of this scale in unit scale, per channel.
    pub fn unit_per_channel(self, norm: &Normalization) -> Vec<f32> {
        match self {
            Scale::Pixel => vec![1.0 / 255.0; norm.channels()],
            Scale::Unit => vec![1.0; norm.channels()],
            Scale::Normalized => norm.std.clone(),
        }
    }
}

/// The norm a ball is measured in; as a flag value and in TOML: `linf` or `l2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Largest per-element change
    #[default]
    Linf,
    /// Euclidean length of the change
    L2,
}

/// A non-negative, finite amount (epsilon or step size) in an explicit scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Budget {
    pub value: f32,
    pub scale: Scale,
}

/// What a config file may contain; [`Budget`] is only built from it after validation, so a
/// budget without a scale or with a negative value never exists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    value: f64,
    scale: Option<Scale>,
}

fn no_scale(value: f64) -> String {
    format!(
        "budget {value} has no scale: write {{ value = {value}, scale = \"pixel\" }} (0-255), \
         \"unit\" ([0,1]) or \"normalized\" (after the model's mean/std)"
    )
}

impl TryFrom<RawBudget> for Budget {
    type Error = String;
    fn try_from(raw: RawBudget) -> std::result::Result<Self, String> {
        let scale = raw.scale.ok_or_else(|| no_scale(raw.value))?;
        let b = Budget {
            value: raw.value as f32,
            scale,
        };
        b.check().map(|_| b)
    }
}

/// Accepts `{ value, scale }` only; a bare number is rejected with a "no scale" message rather
/// than a type error, since that is the mistake it almost always is.
impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Budget;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a budget { value = <number>, scale = \"pixel\" | \"unit\" | \"normalized\" }",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Budget, E> {
                Err(E::custom(no_scale(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Budget, E> {
                Err(E::custom(no_scale(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Budget, E> {
                Err(E::custom(no_scale(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Budget, A::Error> {
                let raw = RawBudget::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Budget::try_from(raw).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Budget {
    pub fn new(value: f32, scale: Scale) -> Self {
        Budget { value, scale }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !self.value.is_finite() {
            return Err(format!("budget must be finite, got {}", self.value));
        }
        if self.value < 0.0 {
            return Err(format!("budget must be >= 0, got {}", self.value));
        }
        Ok(())
    }

    /// Rejects NaN, infinite and negative values, naming `context`.
    pub fn validate(&self, context: &str) -> Result<()> {
        self.check().map_err(|m| Error::input(context, m))
    }

    /// The budget in unit scale, per channel (L-inf radius of each channel).
    pub fn unit_per_channel(&self, norm: &Normalization, context: &str) -> Result<Vec<f32>> {
        self.validate(context)?;
        check_normalization(norm, context)?;
        Ok(self
            .scale
            .unit_per_channel(norm)
            .into_iter()
            .map(|s| s * self.value)
            .collect())
    }
}

/// A normalisation is usable for unit conversion only with finite means and positive, finite
/// standard deviations (otherwise `normalized` scale, and L2 in it, is undefined).
pub fn check_normalization(norm: &Normalization, context: &str) -> Result<()> {
    if norm.mean.len() != norm.std.len() || norm.std.is_empty() {
        return Err(Error::input(
            context,
            format!(
                "normalization has {} means and {} stds; need one of each per channel",
                norm.mean.len(),
                norm.std.len()
            ),
        ));
    }
    if let Some(s) = norm.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::input(
            context,
            format!("normalization std must be positive and finite, got {s}: normalized scale is undefined"),
        ));
    }
    if let Some(m) = norm.mean.iter().find(|m| !m.is_finite()) {
        return Err(Error::input(
            context,
            format!("normalization mean must be finite, got {m}"),
        ));
    }
    Ok(())
}

/// The set `{ delta : || delta[c] / s[c] ||_p <= radius }` of a budget (see the module doc), in
/// unit-scale coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Ball {
    pub norm: Norm,
    /// Radius in the budget's scale.
    pub radius: f32,
    pub scale: Scale,
    /// Size of one scale unit in unit scale, per channel.
    pub unit_per_channel: Vec<f32>,
}

impl Ball {
    /// Validates the budget and the normalisation (channel count must equal `channels`).
    pub fn new(
        norm: Norm,
        budget: Budget,
        normalization: &Normalization,
        channels: usize,
        context: &str,
    ) -> Result<Ball> {
        budget.validate(context)?;
        check_normalization(normalization, context)?;
        if normalization.channels() != channels {
            return Err(Error::input(
                context,
                format!(
                    "normalization has {} channels but images have {channels}",
                    normalization.channels()
                ),
            ));
        }
        Ok(Ball {
            norm,
            radius: budget.value,
            scale: budget.scale,
            unit_per_channel: budget.scale.unit_per_channel(normalization),
        })
    }

    /// The L-inf ball of radius `radius` (`None`: unbounded, i.e. only the pixel box) in a scale
    /// whose unit is `unit_per_channel` (already validated, e.g. by [`Ball::new`]).
    pub fn linf(radius: Option<f32>, scale: Scale, unit_per_channel: Vec<f32>) -> Ball {
        Ball {
            norm: Norm::Linf,
            radius: radius.unwrap_or(f32::INFINITY),
            scale,
            unit_per_channel,
        }
    }

    /// L-inf only: the unit-scale radius of channel `c`.
    pub fn unit_radius(&self, c: usize) -> f32 {
        self.radius * self.unit_per_channel[c]
    }

    /// L-inf only: element `v` of channel `c` clamped into the ball around the clean value `x0`
    /// and the box; the same number [`Ball::project`] gives for that element.
    pub fn clamp(&self, c: usize, x0: f32, v: f32) -> f32 {
        let r = self.unit_radius(c);
        v.clamp(x0 - r, x0 + r).clamp(0.0, 1.0)
    }

    /// Moves `x` to the nearest feasible point: into the ball around `x0`, then into \[0,1\].
    pub fn project(&self, x0: ArrayView3<f32>, x: &mut Array3<f32>) {
        match self.norm {
            Norm::Linf => {
                for (c, s) in self.unit_per_channel.iter().enumerate() {
                    let r = self.radius * s;
                    Zip::from(x.index_axis_mut(ndarray::Axis(0), c))
                        .and(x0.index_axis(ndarray::Axis(0), c))
                        .for_each(|xi, &x0i| *xi = (*xi).clamp(x0i - r, x0i + r));
                }
            }
            Norm::L2 => {
                let n = norms(x0, x.view(), &self.unit_per_channel).l2;
                if n > self.radius && n > 0.0 {
                    let k = self.radius / n;
                    Zip::from(&mut *x)
                        .and(&x0)
                        .for_each(|xi, &x0i| *xi = x0i + (*xi - x0i) * k);
                }
            }
        }
        x.mapv_inplace(|v| v.clamp(0.0, 1.0));
    }

    /// Whether `x` lies in the ball around `x0` (with relative tolerance `tol`) and in \[0,1\].
    pub fn contains(&self, x0: ArrayView3<f32>, x: ArrayView3<f32>, tol: f32) -> bool {
        if x.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return false;
        }
        let n = norms(x0, x, &self.unit_per_channel);
        let size = match self.norm {
            Norm::Linf => n.linf,
            Norm::L2 => n.l2,
        };
        let slack = match self.norm {
            Norm::Linf => self.rounding_slack(),
            Norm::L2 => self.rounding_slack() * (x.len() as f32).sqrt(),
        };
        size <= self.radius * (1.0 + tol) + slack
    }

    /// How far f32 rounding alone can carry a projected point past the radius, per element,
    /// in the budget's scale: images are f32 in \[0,1\], so `x0 +/- r` lands within half an
    /// ulp of 1.0 (2^-24, unit scale) of the exact boundary, i.e. `2^-24 / s` for a channel
    /// whose unit-scale radius per budget unit is `s` (3e-5 for the pixel scale); at least 1e-6.
    pub fn rounding_slack(&self) -> f32 {
        self.unit_per_channel
            .iter()
            .map(|s| f32::EPSILON / s)
            .fold(1e-6, f32::max)
    }

    /// A uniformly random point of the ball around `x0` (uniform in `z` coordinates), then
    /// clipped to \[0,1\] — the random start of Madry et al.
    pub fn sample<R: Rng>(&self, x0: ArrayView3<f32>, rng: &mut R) -> Array3<f32> {
        let mut x = x0.to_owned();
        match self.norm {
            Norm::Linf => {
                for (c, s) in self.unit_per_channel.iter().enumerate() {
                    let r = self.radius * s;
                    for v in x.index_axis_mut(ndarray::Axis(0), c).iter_mut() {
                        *v += rng.gen_range(-1.0f32..=1.0) * r;
                    }
                }
            }
            Norm::L2 => {
                // Gaussian direction, radius r * u^(1/d): uniform in the d-dimensional ball.
                let d = x.len();
                let z: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
                let zn = z.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
                let u: f64 = rng.gen_range(0.0..1.0);
                let rad = self.radius as f64 * u.powf(1.0 / d as f64);
                let hw = x.len() / self.unit_per_channel.len().max(1);
                for (i, v) in x.iter_mut().enumerate() {
                    let s = self.unit_per_channel[i / hw] as f64;
                    *v += (z[i] / zn * rad * s) as f32;
                }
            }
        }
        x.mapv_inplace(|v| v.clamp(0.0, 1.0));
        x
    }
}

/// Size of a perturbation in one scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Norms {
    /// Number of changed elements (scale-free).
    pub l0: usize,
    pub l2: f32,
    pub linf: f32,
}

/// Norms of `x - x0` in `scale`, where `unit_per_channel` is `scale.unit_per_channel(norm)`.
pub fn norms(x0: ArrayView3<f32>, x: ArrayView3<f32>, unit_per_channel: &[f32]) -> Norms {
    let mut l0 = 0usize;
    let mut l2 = 0f64;
    let mut linf = 0f64;
    for (c, s) in unit_per_channel.iter().enumerate() {
        let s = *s as f64;
        Zip::from(x.index_axis(ndarray::Axis(0), c))
            .and(x0.index_axis(ndarray::Axis(0), c))
            .for_each(|&a, &b| {
                if a != b {
                    l0 += 1;
                }
                let z = (a as f64 - b as f64).abs() / s;
                l2 += z * z;
                linf = linf.max(z);
            });
    }
    Norms {
        l0,
        l2: l2.sqrt() as f32,
        linf: linf as f32,
    }
}

/// Norms of `x - x0` in `scale` for a model with normalisation `norm`.
pub fn norms_in(
    x0: ArrayView3<f32>,
    x: ArrayView3<f32>,
    scale: Scale,
    norm: &Normalization,
) -> Norms {
    norms(x0, x, &scale.unit_per_channel(norm))
}
