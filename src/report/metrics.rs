//! Robustness metrics computed from sweep records (never by re-running an attack): the paper's
//! Section 4.2.
//!
//! # Definitions
//! - **Clean accuracy** `A` of a cell: fraction of its results with `clean_pred == label`.
//! - **Accuracy after attack** `A*`: fraction with `adv_pred == label` (for targeted attacks this
//!   is the paper's OA). Both are fractions in \[0,1\] pooled over reruns and images.
//! - **Mean loss**: mean of `result.loss` over the results that report one.
//! - **Strain** `(A - A*) / A` (paper Sec. 4.2); undefined (`None`) when `A = 0`.
//! - **Stress** (paper Fig. 3 captions): FGSM eps; PGD eps with i = 3 fixed; C&W search
//!   iterations with c = 1 fixed; DeepFool iterations; LocalSearch iterations with eps = 16 fixed
//!   (the caption fixes eps and plots 0-200 iterations); GenAttack generations with eps = 8 and
//!   N = 16 fixed. See [`paper_stress_specs`]; callers may pass their own.
//! - **Curve points from traces** (LocalSearch and GenAttack, [`TRACE_CURVE_ATTACKS`]): a sweep may
//!   run such an attack as one long traced cell instead of one cell per iteration count. For an
//!   iterations axis, each variant's longest traced cell on the curve (run length = its
//!   iteration setting or deepest trace point) then adds points at [`traced_iterations`] (ten
//!   evenly spaced counts up to the run length). The prediction at iteration `i` is that of the
//!   last trace point at or before `i` (no trace point: the clean prediction); for GenAttack
//!   through [`pred_at_generation`], the rule [`accuracy_at_generations`] uses, which also
//!   applies GenAttack's failure rule (a not-yet-adversarial elite counts as the clean
//!   prediction). An iteration count that has its own cell keeps that cell's measured point.
//!   Premise: a run of `R` rounds stopped at round `k` is the run of `k` rounds (same seed, same
//!   per-image random stream, and nothing in rounds `1..=k` depends on `R`); tested for both
//!   attacks in the attack tests. Other attacks' traces are not used for curves, because the
//!   premise is not verified for them.
//! - **PGD breaking iteration**: the first tracked iteration at which accuracy is `<= 1/classes`
//!   (the breaking line, 10% for 10 classes). Per-image predictions at iteration `i` are those of
//!   the last trace point at or before `i` (iteration 0 / no trace: the clean prediction). It is
//!   computed per rerun and averaged over the reruns that broke; reruns that never broke are
//!   counted separately (`unbroken`), because averaging in a censored value would understate
//!   robustness. The breaking iteration of the rerun-averaged curve (what Fig. 2 shows) is
//!   reported too.
//!
//! # Strong / ductile / brittle (our quantitative rule; the paper gives only the idea)
//! Per (variant, attack) the strain curve is put on a *normalized stress* axis `s = sigma /
//! sigma_max` in \[0,1\], where `sigma_max` is the largest stress of that attack over all variants
//! (one axis for every variant, so they compare), with the origin `(0, 0)` prepended (no stress,
//! no strain). Two numbers describe it:
//! - `s_break`: the normalized stress at which strain first reaches [`BREAK_STRAIN`] = 0.9
//!   (accuracy down to a tenth of clean), linearly interpolated between grid points; `None` if it
//!   never does;
//! - `final_strain`: strain at the largest stress applied to this variant, i.e. the mean slope of
//!   the curve on the normalized axis measured from the origin.
//!
//! Rule, applied in this order:
//! 1. **brittle** if `s_break <= 0.5` ([`BRITTLE_MAX_BREAK`]): it breaks within the lower half of
//!    the stress range, before deforming gradually;
//! 2. **strong** if it never breaks and `final_strain <= 0.5` ([`STRONG_MAX_FINAL_STRAIN`]): it
//!    keeps at least half its accuracy at the heaviest stress;
//! 3. **ductile** otherwise: it breaks late (`s_break > 0.5`) or deforms past half its accuracy
//!    without breaking.
//!
//! # Box-plots
//! One value per cell (accuracy after attack of one (variant, setting), in percent), pooled per
//! (variant kind, attack) over the whole grid, as the paper's Fig. 4. A traced LocalSearch or
//! GenAttack cell also adds the iteration counts its curve reads off the trace
//! ([`trace_cells`]), so one long run counts as the shorter runs it stands in for. Quartiles use linear
//! interpolation between order statistics (Hyndman & Fan type 7, NumPy's default `linear`):
//! for sorted `x[0..n]` and `p`, `h = (n - 1) p`, `q = x[floor h] + (h - floor h) (x[floor h + 1] -
//! x[floor h])`. Whiskers reach the most extreme data points within `[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`
//! (Tukey; matplotlib's default); points outside are outliers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::record::{canonical_attack, Setting, SweepRecord};
use crate::attack::genattack::{accuracy_at_generations, pred_at_generation, GenerationAccuracy};
use crate::attack::result::success_on_correct;
use crate::attack::ImageResult;
use crate::{Error, Result};

/// Strain at which a model counts as broken for the classification rule.
pub const BREAK_STRAIN: f32 = 0.9;
/// Largest normalized breaking stress that still counts as brittle (inclusive).
pub const BRITTLE_MAX_BREAK: f32 = 0.5;
/// Largest final strain of an unbroken model that still counts as strong (inclusive).
pub const STRONG_MAX_FINAL_STRAIN: f32 = 0.5;

/// Aggregates of one (variant, attack, setting) cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellMetrics {
    pub variant: String,
    pub variant_kind: String,
    pub model: String,
    /// Canonical attack name.
    pub attack: String,
    pub setting: Setting,
    /// Number of results (images x reruns).
    pub results: usize,
    pub reruns: usize,
    /// Clean accuracy `A`, fraction.
    pub clean_accuracy: f32,
    /// Accuracy after attack `A*`, fraction.
    pub accuracy: f32,
    pub mean_loss: Option<f32>,
    /// `(A - A*) / A`, `None` when `A = 0`.
    pub strain: Option<f32>,
    /// Share of `success` among the results with `clean_pred == label` (`None` if none).
    #[serde(default)]
    pub success_rate_on_correct: Option<f32>,
}

/// `(A - A*) / A`; `None` when the clean accuracy is zero (strain is undefined).
pub fn strain(clean: f32, attacked: f32) -> Option<f32> {
    (clean > 0.0).then(|| (clean - attacked) / clean)
}

fn frac(num: usize, den: usize) -> f32 {
    if den == 0 {
        0.0
    } else {
        num as f32 / den as f32
    }
}

/// Accuracy and mean loss after attack of a set of results.
pub fn accuracy_and_loss(results: &[&ImageResult]) -> (f32, f32, Option<f32>) {
    let n = results.len();
    let clean = results.iter().filter(|r| r.clean_pred == r.label).count();
    let adv = results.iter().filter(|r| r.adv_pred == r.label).count();
    let losses: Vec<f64> = results
        .iter()
        .filter_map(|r| r.loss)
        .map(f64::from)
        .collect();
    let loss =
        (!losses.is_empty()).then(|| (losses.iter().sum::<f64>() / losses.len() as f64) as f32);
    (frac(clean, n), frac(adv, n), loss)
}

type CellKey = (String, String, String);

fn cell_key(r: &SweepRecord) -> CellKey {
    (
        r.variant.clone(),
        canonical_attack(&r.attack),
        r.setting.label(),
    )
}

/// Number of distinct reruns among a cell's records.
fn distinct_reruns(recs: &[&SweepRecord]) -> usize {
    recs.iter().map(|r| r.rerun).collect::<BTreeSet<_>>().len()
}

/// Group records by (variant, canonical attack, setting label), in sorted key order.
pub fn group_cells(records: &[SweepRecord]) -> BTreeMap<CellKey, Vec<&SweepRecord>> {
    let mut groups: BTreeMap<CellKey, Vec<&SweepRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(cell_key(r)).or_default().push(r);
    }
    groups
}

/// Accuracy, loss and strain per (variant, attack, setting), sorted by variant, attack and
/// numeric setting.
pub fn cell_metrics(records: &[SweepRecord]) -> Vec<CellMetrics> {
    let mut cells: Vec<CellMetrics> = group_cells(records)
        .into_values()
        .map(|recs| {
            let first = recs[0];
            let results: Vec<&ImageResult> = recs.iter().map(|r| &r.result).collect();
            let (clean, acc, loss) = accuracy_and_loss(&results);
            let reruns = distinct_reruns(&recs);
            CellMetrics {
                variant: first.variant.clone(),
                variant_kind: first.variant_kind.clone(),
                model: first.model.clone(),
                attack: canonical_attack(&first.attack),
                setting: first.setting.clone(),
                results: results.len(),
                reruns,
                clean_accuracy: clean,
                accuracy: acc,
                mean_loss: loss,
                strain: strain(clean, acc),
                success_rate_on_correct: success_on_correct(results.iter().copied()),
            }
        })
        .collect();
    cells.sort_by(|a, b| {
        (&a.variant, &a.attack)
            .cmp(&(&b.variant, &b.attack))
            .then_with(|| a.setting.numeric_cmp(&b.setting))
    });
    cells
}

/// Which setting field is the attack stress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StressParam {
    Eps,
    Iterations,
}

/// How one attack's stress axis is read from its settings (paper Fig. 3 captions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StressSpec {
    /// Canonical attack name.
    pub attack: String,
    pub param: StressParam,
    /// Fields that must match for a cell to be on the curve (the caption's "fixed" values).
    pub fixed: Setting,
    /// Axis label, e.g. "eps (0-255), i = 3 fixed".
    pub caption: String,
}

/// The stress axes of the paper's Fig. 3.
pub fn paper_stress_specs() -> Vec<StressSpec> {
    let spec = |attack: &str, param, fixed: Setting, caption: &str| StressSpec {
        attack: attack.to_string(),
        param,
        fixed,
        caption: caption.to_string(),
    };
    vec![
        spec("fgsm", StressParam::Eps, Setting::default(), "stress = eps"),
        spec(
            "pgd",
            StressParam::Eps,
            Setting {
                iterations: Some(3),
                ..Setting::default()
            },
            "stress = eps, fixed i = 3",
        ),
        spec(
            "cw",
            StressParam::Iterations,
            Setting {
                c: Some(1.0),
                ..Setting::default()
            },
            "stress = search iterations, fixed c = 1",
        ),
        spec(
            "deepfool",
            StressParam::Iterations,
            Setting::default(),
            "stress = iterations",
        ),
        spec(
            "localsearch",
            StressParam::Iterations,
            Setting {
                eps: Some(16.0),
                ..Setting::default()
            },
            "stress = iterations, fixed eps = 16",
        ),
        spec(
            "genattack",
            StressParam::Iterations,
            Setting {
                eps: Some(8.0),
                population: Some(16),
                ..Setting::default()
            },
            "stress = generations, fixed eps = 8, N = 16",
        ),
    ]
}

/// One point of a stress-strain curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrainPoint {
    pub stress: f32,
    pub strain: f32,
    /// Accuracy after attack, fraction.
    pub accuracy: f32,
}

/// Strain against stress of one variant under one attack, sorted by stress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrainCurve {
    pub variant: String,
    pub variant_kind: String,
    pub model: String,
    pub attack: String,
    pub points: Vec<StrainPoint>,
}

/// Counts of one image in one cell, pooled over the cell's reruns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub results: u32,
    /// Results with `clean_pred == label`.
    pub clean_ok: u32,
    /// Results whose prediction after the attack (at this point's iteration) is the label.
    pub adv_ok: u32,
}

/// One cell (or one iteration of a traced cell) tallied per image, sorted by image index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellTally {
    pub images: Vec<(usize, Tally)>,
}

impl CellTally {
    fn from_results<'a>(results: impl Iterator<Item = (&'a ImageResult, usize)>) -> CellTally {
        let mut by_image: BTreeMap<usize, Tally> = BTreeMap::new();
        for (r, pred) in results {
            let t = by_image.entry(r.index).or_default();
            t.results += 1;
            t.clean_ok += u32::from(r.clean_pred == r.label);
            t.adv_ok += u32::from(pred == r.label);
        }
        CellTally {
            images: by_image.into_iter().collect(),
        }
    }

    /// `(A, A*)` with image `k` counted `weight(k)` times (1 for the measured sample, the
    /// multiplicity in a bootstrap resample); `(0, 0)` when no image has weight.
    pub fn accuracies(&self, weight: impl Fn(usize) -> u32) -> (f32, f32) {
        let (mut n, mut clean, mut adv) = (0usize, 0usize, 0usize);
        for &(k, t) in &self.images {
            let w = weight(k) as usize;
            n += w * t.results as usize;
            clean += w * t.clean_ok as usize;
            adv += w * t.adv_ok as usize;
        }
        (frac(clean, n), frac(adv, n))
    }
}

/// The cells at one stress of a curve, each tallied per image.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    pub stress: f32,
    pub cells: Vec<CellTally>,
    /// Derived from the trace of a longer run (module doc) rather than measured by its own cell.
    pub from_trace: bool,
}

/// The per-image data behind one variant's stress-strain curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CurveData {
    pub variant: String,
    pub variant_kind: String,
    pub model: String,
    pub attack: String,
    /// Sorted by stress.
    pub points: Vec<CurvePoint>,
}

impl CurveData {
    /// The strain curve with image `k` counted `weight(k)` times: per point, the mean strain
    /// (and accuracy) over its cells with a defined strain; points without one are left out.
    pub fn curve(&self, weight: impl Fn(usize) -> u32 + Copy) -> StrainCurve {
        let points = self
            .points
            .iter()
            .filter_map(|p| {
                let (mut strain_sum, mut acc_sum, mut n) = (0.0f32, 0.0f32, 0usize);
                for c in &p.cells {
                    let (clean, acc) = c.accuracies(weight);
                    if let Some(s) = strain(clean, acc) {
                        strain_sum += s;
                        acc_sum += acc;
                        n += 1;
                    }
                }
                (n > 0).then(|| StrainPoint {
                    stress: p.stress,
                    strain: strain_sum / n as f32,
                    accuracy: acc_sum / n as f32,
                })
            })
            .collect();
        StrainCurve {
            variant: self.variant.clone(),
            variant_kind: self.variant_kind.clone(),
            model: self.model.clone(),
            attack: self.attack.clone(),
            points,
        }
    }
}

/// Attacks whose trace may stand in for shorter runs (the premise in the module doc, tested
/// for exactly these attacks).
pub const TRACE_CURVE_ATTACKS: [&str; 2] = ["localsearch", "genattack"];

/// Iterations at which a traced run of `run_length` iterations adds curve points: ten evenly
/// spaced, `ceil(run_length * k / 10)` for `k = 1..=10`, without repeats.
pub fn traced_iterations(run_length: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (1..=10)
        .map(|k| (run_length * k).div_ceil(10))
        .filter(|&i| i > 0)
        .collect();
    v.dedup();
    v
}

/// Run length of a cell: its iteration setting or its deepest trace point, whichever is larger.
fn run_length(recs: &[&SweepRecord]) -> usize {
    recs.iter()
        .filter_map(|r| r.setting.iterations)
        .chain(
            recs.iter()
                .flat_map(|r| r.result.trace.iter().map(|p| p.iteration)),
        )
        .max()
        .unwrap_or(0)
}

/// The prediction of `r` at iteration `i` by the rule of the module doc; GenAttack's includes
/// its failure rule ([`pred_at_generation`], which [`accuracy_at_generations`] counts).
fn pred_at(attack: &str, r: &ImageResult, i: usize) -> usize {
    if attack == "genattack" {
        pred_at_generation(r, i)
    } else {
        at_iteration(r, i).0
    }
}

/// Per-image curve data for `spec` (module doc "Stress"): one point per stress value of the
/// cells that match the spec, plus, for an iterations axis of an attack in
/// [`TRACE_CURVE_ATTACKS`], points read from the trace of each variant's longest traced cell at
/// [`traced_iterations`] (an iteration that has its own cell keeps that cell's point). Cells
/// without the stress field are left out; a variant without any point has no entry.
pub fn curve_data(records: &[SweepRecord], spec: &StressSpec) -> Vec<CurveData> {
    let attack = spec.attack.as_str();
    // variant -> cells on the curve (stress, records)
    type Cells<'a> = Vec<(f32, Vec<&'a SweepRecord>)>;
    let mut by_variant: BTreeMap<String, Cells> = BTreeMap::new();
    for ((variant, a, _), recs) in group_cells(records) {
        if a != attack || !recs[0].setting.matches(&spec.fixed) {
            continue;
        }
        let s = &recs[0].setting;
        let stress = match spec.param {
            StressParam::Eps => s.eps,
            StressParam::Iterations => s.iterations.map(|i| i as f32),
        };
        if let Some(stress) = stress {
            by_variant.entry(variant).or_default().push((stress, recs));
        }
    }
    for cells in by_variant.values_mut() {
        // The order of `cell_metrics`, so averaged points sum in the same order.
        cells.sort_by(|a, b| a.1[0].setting.numeric_cmp(&b.1[0].setting));
    }
    let traced = spec.param == StressParam::Iterations && TRACE_CURVE_ATTACKS.contains(&attack);
    by_variant
        .into_iter()
        .map(|(variant, cells)| {
            let mut points: BTreeMap<u32, CurvePoint> = BTreeMap::new();
            for (stress, recs) in &cells {
                let tally =
                    CellTally::from_results(recs.iter().map(|r| (&r.result, r.result.adv_pred)));
                points
                    .entry(stress.to_bits())
                    .or_insert_with(|| CurvePoint {
                        stress: *stress,
                        cells: Vec::new(),
                        from_trace: false,
                    })
                    .cells
                    .push(tally);
            }
            let longest = cells
                .iter()
                .filter(|(_, recs)| recs.iter().any(|r| !r.result.trace.is_empty()))
                .max_by_key(|(_, recs)| run_length(recs));
            if let (true, Some((_, recs))) = (traced, longest) {
                for i in traced_iterations(run_length(recs)) {
                    let stress = i as f32;
                    points
                        .entry(stress.to_bits())
                        .or_insert_with(|| CurvePoint {
                            stress,
                            cells: vec![CellTally::from_results(
                                recs.iter()
                                    .map(|r| (&r.result, pred_at(attack, &r.result, i))),
                            )],
                            from_trace: true,
                        });
                }
            }
            let mut points: Vec<CurvePoint> = points.into_values().collect();
            points.sort_by(|a, b| a.stress.total_cmp(&b.stress));
            let first = cells[0].1[0];
            CurveData {
                variant,
                variant_kind: first.variant_kind.clone(),
                model: first.model.clone(),
                attack: spec.attack.clone(),
                points,
            }
        })
        .collect()
}

/// Stress-strain curves for `spec` (see [`curve_data`]). Cells without a defined strain (zero
/// clean accuracy) are left out, and so is a variant left without points; two cells at the same
/// stress (other settings differing in fields the spec does not fix) are averaged.
pub fn strain_curves(records: &[SweepRecord], spec: &StressSpec) -> Vec<StrainCurve> {
    curve_data(records, spec)
        .iter()
        .map(|d| d.curve(|_| 1))
        .filter(|c| !c.points.is_empty())
        .collect()
}

/// Material class of a variant under an attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behaviour {
    Strong,
    Ductile,
    Brittle,
}

impl std::fmt::Display for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Behaviour::Strong => "strong",
            Behaviour::Ductile => "ductile",
            Behaviour::Brittle => "brittle",
        })
    }
}

/// The classification of one curve with the numbers it rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub variant: String,
    pub attack: String,
    pub behaviour: Behaviour,
    /// Normalized stress at which strain first reaches [`BREAK_STRAIN`].
    pub s_break: Option<f32>,
    /// Strain at the largest stress applied.
    pub final_strain: f32,
}

/// Normalized stress at which the curve (origin prepended, stresses divided by `max_stress`)
/// first reaches `threshold` strain, linearly interpolated.
pub fn breaking_stress(points: &[StrainPoint], max_stress: f32, threshold: f32) -> Option<f32> {
    let mut prev = (0.0f32, 0.0f32);
    for p in points {
        let s = p.stress / max_stress;
        if p.strain >= threshold {
            // prev.1 < threshold <= p.strain, so the division is safe.
            let (s0, e0) = prev;
            return Some(s0 + (threshold - e0) / (p.strain - e0) * (s - s0));
        }
        prev = (s, p.strain);
    }
    None
}

/// Classify a curve by the rule in the module doc. `max_stress` is the largest stress of the
/// attack over all variants. `None` for an empty curve or a non-positive `max_stress`.
pub fn classify(curve: &StrainCurve, max_stress: f32) -> Option<Classification> {
    let last = curve.points.last()?;
    if max_stress.is_nan() || max_stress <= 0.0 {
        return None;
    }
    let s_break = breaking_stress(&curve.points, max_stress, BREAK_STRAIN);
    let final_strain = last.strain;
    let behaviour = match s_break {
        Some(s) if s <= BRITTLE_MAX_BREAK => Behaviour::Brittle,
        None if final_strain <= STRONG_MAX_FINAL_STRAIN => Behaviour::Strong,
        _ => Behaviour::Ductile,
    };
    Some(Classification {
        variant: curve.variant.clone(),
        attack: curve.attack.clone(),
        behaviour,
        s_break,
        final_strain,
    })
}

/// Classify every curve of one attack on a shared stress axis.
pub fn classify_all(curves: &[StrainCurve]) -> Vec<Classification> {
    let max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.stress))
        .fold(0.0f32, f32::max);
    curves.iter().filter_map(|c| classify(c, max)).collect()
}

/// Quantile of sorted data by linear interpolation between order statistics (type 7).
/// Panics on empty input (callers check).
pub fn quantile_sorted(sorted: &[f32], p: f32) -> f32 {
    let h = (sorted.len() - 1) as f64 * f64::from(p);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    (f64::from(sorted[lo]) + frac * (f64::from(sorted[hi]) - f64::from(sorted[lo]))) as f32
}

/// Box-plot statistics (module doc for the conventions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxStats {
    pub n: usize,
    pub min: f32,
    pub q1: f32,
    pub median: f32,
    pub q3: f32,
    pub max: f32,
    pub mean: f32,
    pub lower_whisker: f32,
    pub upper_whisker: f32,
    /// Points outside the whiskers, ascending.
    pub outliers: Vec<f32>,
}

/// Box-plot statistics of `values`; error on empty or non-finite input (`context` names it).
pub fn box_stats(values: &[f32], context: &str) -> Result<BoxStats> {
    if values.is_empty() {
        return Err(Error::input(context, "no values for a box-plot"));
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::input(context, format!("non-finite value {v}")));
    }
    let mut x = values.to_vec();
    x.sort_by(f32::total_cmp);
    let q1 = quantile_sorted(&x, 0.25);
    let q3 = quantile_sorted(&x, 0.75);
    let iqr = q3 - q1;
    let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let inside: Vec<f32> = x
        .iter()
        .copied()
        .filter(|&v| v >= lo_fence && v <= hi_fence)
        .collect();
    Ok(BoxStats {
        n: x.len(),
        min: x[0],
        q1,
        median: quantile_sorted(&x, 0.5),
        q3,
        max: x[x.len() - 1],
        mean: (x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64) as f32,
        // With interpolated quartiles the nearest inside point can lie beyond Q1 (or Q3); the
        // whisker then collapses onto the box edge, as matplotlib's boxplot_stats does.
        lower_whisker: inside.first().map_or(q1, |&v| v.min(q1)),
        upper_whisker: inside.last().map_or(q3, |&v| v.max(q3)),
        outliers: x
            .iter()
            .copied()
            .filter(|&v| v < lo_fence || v > hi_fence)
            .collect(),
    })
}

/// One box of Fig. 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackBox {
    pub attack: String,
    pub variant_kind: String,
    pub stats: BoxStats,
}

/// Cells read off traces, for the box-plots: for each cell of an attack in
/// [`TRACE_CURVE_ATTACKS`] that carries a trace, one cell per count of [`traced_iterations`]
/// below its run length (the run itself is already a cell) that no measured cell of the same
/// variant and otherwise equal settings has, with the prediction at that count by the curve
/// rule ([`pred_at`]). A sweep that runs LocalSearch as one traced 50-round cell instead of ten
/// cells thus gets the same ten box-plot values; the premise is the module doc's.
pub fn trace_cells(records: &[SweepRecord]) -> Vec<CellMetrics> {
    let groups = group_cells(records);
    let mut out = Vec::new();
    for ((variant, attack, _), recs) in &groups {
        if !TRACE_CURVE_ATTACKS.contains(&attack.as_str())
            || recs.iter().all(|r| r.result.trace.is_empty())
        {
            continue;
        }
        let (len, reruns, first) = (run_length(recs), distinct_reruns(recs), recs[0]);
        for i in traced_iterations(len).into_iter().filter(|&i| i < len) {
            let setting = Setting {
                iterations: Some(i),
                ..first.setting.clone()
            };
            if groups.contains_key(&(variant.clone(), attack.clone(), setting.label())) {
                continue;
            }
            let tally = CellTally::from_results(
                recs.iter()
                    .map(|r| (&r.result, pred_at(attack, &r.result, i))),
            );
            let (clean, acc) = tally.accuracies(|_| 1);
            out.push(CellMetrics {
                variant: variant.clone(),
                variant_kind: first.variant_kind.clone(),
                model: first.model.clone(),
                attack: attack.clone(),
                setting,
                results: recs.len(),
                reruns,
                clean_accuracy: clean,
                accuracy: acc,
                mean_loss: None,
                strain: strain(clean, acc),
                success_rate_on_correct: None,
            });
        }
    }
    out
}

/// Box-plot statistics of post-attack accuracy [%] per (attack, variant kind) over all cells
/// (the report passes the measured cells and [`trace_cells`]).
pub fn attack_boxes(cells: &[CellMetrics]) -> Result<Vec<AttackBox>> {
    let mut groups: BTreeMap<(String, String), Vec<f32>> = BTreeMap::new();
    for c in cells {
        groups
            .entry((c.attack.clone(), c.variant_kind.clone()))
            .or_default()
            .push(100.0 * c.accuracy);
    }
    groups
        .into_iter()
        .map(|((attack, kind), v)| {
            let stats = box_stats(&v, &format!("box-plot {attack}/{kind}"))?;
            Ok(AttackBox {
                attack,
                variant_kind: kind,
                stats,
            })
        })
        .collect()
}

/// PGD accuracy/loss against iteration for one (variant, setting), averaged over reruns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PgdCurve {
    pub variant: String,
    pub model: String,
    pub setting: Setting,
    /// Tracked iterations (0 = clean), ascending.
    pub iterations: Vec<usize>,
    /// Rerun-averaged accuracy at each tracked iteration, fraction.
    pub accuracy: Vec<f32>,
    /// Rerun-averaged mean loss at each tracked iteration (None where no result reports one).
    pub loss: Vec<Option<f32>>,
    /// First tracked iteration at which each rerun's accuracy is `<= 1/classes`.
    pub per_rerun_breaking: Vec<Option<usize>>,
    /// Mean of the breaking iterations of the reruns that broke.
    pub mean_breaking: Option<f32>,
    /// Reruns that never reached the breaking line.
    pub unbroken: usize,
    /// Breaking iteration of the rerun-averaged accuracy curve (what Fig. 2 shows).
    pub breaking_of_mean: Option<usize>,
}

/// The prediction and loss of one result at iteration `i`: the last trace point at or before it.
fn at_iteration(r: &ImageResult, i: usize) -> (usize, Option<f32>) {
    r.trace
        .iter()
        .take_while(|p| p.iteration <= i)
        .last()
        .map_or((r.clean_pred, None), |p| (p.pred, p.loss))
}

/// First iteration whose accuracy is `<= line` (the breaking line).
pub fn first_breaking(iterations: &[usize], accuracy: &[f32], line: f32) -> Option<usize> {
    iterations
        .iter()
        .zip(accuracy)
        .find(|(_, &a)| a <= line)
        .map(|(&i, _)| i)
}

/// PGD curves and breaking iterations from traced records of one attack (`attack`, usually
/// `"pgd"`), one curve per (variant, setting). `classes` sets the breaking line `1/classes`.
pub fn pgd_curves(records: &[SweepRecord], attack: &str, classes: usize) -> Result<Vec<PgdCurve>> {
    if classes < 2 {
        return Err(Error::input(
            "classes",
            format!("need at least 2 classes for a breaking line, got {classes}"),
        ));
    }
    let line = 1.0 / classes as f32;
    let attack = canonical_attack(attack);
    let mut out = Vec::new();
    for ((variant, a, _), recs) in group_cells(records) {
        if a != attack || recs.iter().all(|r| r.result.trace.is_empty()) {
            continue;
        }
        let mut iterations: BTreeSet<usize> = BTreeSet::from([0]);
        for r in &recs {
            iterations.extend(r.result.trace.iter().map(|p| p.iteration));
        }
        let iterations: Vec<usize> = iterations.into_iter().collect();
        let mut by_rerun: BTreeMap<usize, Vec<&ImageResult>> = BTreeMap::new();
        for r in &recs {
            by_rerun.entry(r.rerun).or_default().push(&r.result);
        }
        let mut acc_sum = vec![0.0f64; iterations.len()];
        let mut loss_sum = vec![(0.0f64, 0usize); iterations.len()];
        let mut per_rerun_breaking = Vec::new();
        for results in by_rerun.values() {
            let acc: Vec<f32> = iterations
                .iter()
                .map(|&i| {
                    let ok = results
                        .iter()
                        .filter(|r| at_iteration(r, i).0 == r.label)
                        .count();
                    frac(ok, results.len())
                })
                .collect();
            for (k, &i) in iterations.iter().enumerate() {
                acc_sum[k] += f64::from(acc[k]);
                let losses: Vec<f32> = results
                    .iter()
                    .filter_map(|r| at_iteration(r, i).1)
                    .collect();
                if !losses.is_empty() {
                    let m = losses.iter().map(|&l| f64::from(l)).sum::<f64>() / losses.len() as f64;
                    loss_sum[k].0 += m;
                    loss_sum[k].1 += 1;
                }
            }
            per_rerun_breaking.push(first_breaking(&iterations, &acc, line));
        }
        let reruns = by_rerun.len() as f64;
        let accuracy: Vec<f32> = acc_sum.iter().map(|&s| (s / reruns) as f32).collect();
        let loss = loss_sum
            .iter()
            .map(|&(s, n)| (n > 0).then(|| (s / n as f64) as f32))
            .collect();
        let broke: Vec<usize> = per_rerun_breaking.iter().flatten().copied().collect();
        out.push(PgdCurve {
            variant,
            model: recs[0].model.clone(),
            setting: recs[0].setting.clone(),
            breaking_of_mean: first_breaking(&iterations, &accuracy, line),
            mean_breaking: (!broke.is_empty())
                .then(|| broke.iter().sum::<usize>() as f32 / broke.len() as f32),
            unbroken: per_rerun_breaking.len() - broke.len(),
            per_rerun_breaking,
            iterations,
            accuracy,
            loss,
        });
    }
    Ok(out)
}

/// OA/TA per generation of one GenAttack (variant, setting) cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenAttackRow {
    pub variant: String,
    pub setting: Setting,
    pub clean_accuracy: f32,
    pub rows: Vec<GenerationAccuracy>,
}

/// Generations to report when the caller gives none: five evenly spaced up to the largest
/// generation count (the paper's Table 6 uses 200, 400, ..., 1000 of 1000).
pub fn default_generations(max: usize) -> Vec<usize> {
    let mut g: Vec<usize> = (1..=5)
        .map(|k| (max * k).div_ceil(5))
        .filter(|&g| g > 0)
        .collect();
    g.dedup();
    g
}

/// OA/TA per generation (paper Table 6): one row per (variant, GenAttack setting without the
/// generation count), computed from the longest run of that group, since a run's trace holds
/// every earlier generation too. Columns are `generations`, or, when empty, five evenly spaced up
/// to the longest run of any variant; generations beyond a row's run length are left out of that
/// row. Rows are sorted by variant, then numerically by setting.
pub fn genattack_rows(records: &[SweepRecord], generations: &[usize]) -> Vec<GenAttackRow> {
    // (variant, setting label without iterations) -> longest cell so far
    let mut longest: BTreeMap<(String, String), Vec<&SweepRecord>> = BTreeMap::new();
    for ((variant, attack, _), recs) in group_cells(records) {
        if attack != "genattack" {
            continue;
        }
        let base = Setting {
            iterations: None,
            ..recs[0].setting.clone()
        };
        let e = longest.entry((variant, base.label())).or_default();
        if e.is_empty() || run_length(&recs) > run_length(e) {
            *e = recs;
        }
    }
    let gens = if generations.is_empty() {
        default_generations(longest.values().map(|r| run_length(r)).max().unwrap_or(0))
    } else {
        generations.to_vec()
    };
    let mut rows: Vec<GenAttackRow> = longest
        .into_iter()
        .map(|((variant, _), recs)| {
            let len = run_length(&recs);
            let mine: Vec<usize> = gens.iter().copied().filter(|&g| g <= len).collect();
            let results: Vec<ImageResult> = recs.iter().map(|r| r.result.clone()).collect();
            let refs: Vec<&ImageResult> = results.iter().collect();
            GenAttackRow {
                variant,
                setting: recs[0].setting.clone(),
                clean_accuracy: accuracy_and_loss(&refs).0,
                rows: accuracy_at_generations(&results, &mine),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        a.variant
            .cmp(&b.variant)
            .then_with(|| a.setting.numeric_cmp(&b.setting))
    });
    rows
}
