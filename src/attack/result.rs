//! Per-image attack results and their aggregates: the plain data every attack returns and the
//! sweep/report stages read.

use serde::{Deserialize, Serialize};

use super::threat::Scale;

/// One tracked point of an iterative attack (PGD iteration, GenAttack generation, DeepFool step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Iteration / generation number (1-based; 0 = before the first step).
    pub iteration: usize,
    /// Prediction of the current adversarial candidate (best individual for GenAttack).
    pub pred: usize,
    /// Cross-entropy loss w.r.t. the true label at this point, where the attack computes it.
    pub loss: Option<f32>,
}

/// Result of attacking one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    /// Index of the image in the data set.
    pub index: usize,
    pub label: usize,
    /// Target class of a targeted attack.
    pub target: Option<usize>,
    pub clean_pred: usize,
    pub adv_pred: usize,
    /// Untargeted: `adv_pred != label`; targeted: `adv_pred == target`.
    pub success: bool,
    /// Scale in which the norms below are expressed.
    pub scale: Scale,
    /// Number of input elements changed (count, scale-free).
    pub l0: usize,
    pub l2: f32,
    pub linf: f32,
    /// Gradient iterations used (white-box attacks).
    pub iterations: Option<usize>,
    /// Model queries used (black-box attacks).
    pub queries: Option<u64>,
    /// Cross-entropy loss w.r.t. the true label at the final adversarial example.
    pub loss: Option<f32>,
    /// Loss / prediction trace, where the attack records one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TracePoint>,
    /// Why this result should not be trusted as a robustness figure (e.g. an all-zero input
    /// gradient: gradient masking, AutoAttack's check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Aggregates over a set of per-image results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub images: usize,
    /// Share of images with `clean_pred == label`.
    pub accuracy_clean: f32,
    /// Share of images with `adv_pred == label`.
    pub accuracy_adv: f32,
    /// Mean of the final cross-entropy over images that report one (`None` if none do).
    pub mean_loss: Option<f32>,
    /// Share of *all* images with `success`. For an untargeted attack this counts an image the
    /// model already misclassified as a success (it is > 0 at eps 0); see
    /// `success_rate_on_correct`.
    pub success_rate_all: f32,
    /// Images the model classified correctly before the attack (`clean_pred == label`).
    pub initially_correct: usize,
    /// Share of `success` among the initially correct images: what the attack achieved (`None`
    /// when no image was initially correct).
    pub success_rate_on_correct: Option<f32>,
    /// Targeted attacks: accuracy to the original label (OA) and to the target label (TA).
    pub oa: Option<f32>,
    pub ta: Option<f32>,
    /// Images carrying a warning.
    pub warnings: usize,
}

/// Share of `success` among the results with `clean_pred == label` (`None` if there are none).
pub fn success_on_correct<'a>(results: impl IntoIterator<Item = &'a ImageResult>) -> Option<f32> {
    let (mut correct, mut won) = (0usize, 0usize);
    for r in results.into_iter().filter(|r| r.clean_pred == r.label) {
        correct += 1;
        won += usize::from(r.success);
    }
    (correct > 0).then(|| won as f32 / correct as f32)
}

/// Aggregates of `results` (all zero for an empty slice).
pub fn summarize(results: &[ImageResult]) -> Summary {
    let n = results.len();
    let frac = |k: usize| if n == 0 { 0.0 } else { k as f32 / n as f32 };
    let losses: Vec<f32> = results.iter().filter_map(|r| r.loss).collect();
    let targeted: Vec<&ImageResult> = results.iter().filter(|r| r.target.is_some()).collect();
    let initially_correct = results.iter().filter(|r| r.clean_pred == r.label).count();
    let (oa, ta) = if targeted.is_empty() {
        (None, None)
    } else {
        let m = targeted.len() as f32;
        (
            Some(targeted.iter().filter(|r| r.adv_pred == r.label).count() as f32 / m),
            Some(
                targeted
                    .iter()
                    .filter(|r| Some(r.adv_pred) == r.target)
                    .count() as f32
                    / m,
            ),
        )
    };
    Summary {
        images: n,
        accuracy_clean: frac(results.iter().filter(|r| r.clean_pred == r.label).count()),
        accuracy_adv: frac(results.iter().filter(|r| r.adv_pred == r.label).count()),
        mean_loss: if losses.is_empty() {
            None
        } else {
            Some((losses.iter().map(|&l| l as f64).sum::<f64>() / losses.len() as f64) as f32)
        },
        success_rate_all: frac(results.iter().filter(|r| r.success).count()),
        initially_correct,
        success_rate_on_correct: success_on_correct(results),
        oa,
        ta,
        warnings: results.iter().filter(|r| r.warning.is_some()).count(),
    }
}

/// One point of an attack curve (the paper's Fig. 2): accuracy and mean loss at an iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub iteration: usize,
    pub accuracy: f32,
    pub mean_loss: Option<f32>,
    /// Number of (image, rerun) traces that contributed.
    pub samples: usize,
}

/// Accuracy (prediction == label) and mean loss per traced iteration, averaged over all images
/// of all reruns (`reruns[r][i]` is image `i` of rerun `r`).
pub fn curve(reruns: &[Vec<ImageResult>]) -> Vec<CurvePoint> {
    let mut acc: std::collections::BTreeMap<usize, (usize, usize, f64, usize)> = Default::default();
    for r in reruns.iter().flatten() {
        for t in &r.trace {
            let e = acc.entry(t.iteration).or_default();
            e.0 += 1;
            e.1 += usize::from(t.pred == r.label);
            if let Some(l) = t.loss {
                e.2 += l as f64;
                e.3 += 1;
            }
        }
    }
    acc.into_iter()
        .map(|(iteration, (n, ok, ls, nl))| CurvePoint {
            iteration,
            accuracy: ok as f32 / n as f32,
            mean_loss: (nl > 0).then(|| (ls / nl as f64) as f32),
            samples: n,
        })
        .collect()
}
