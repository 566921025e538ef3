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
}
