//! The paper's claims (abstract and Sec. 4) tested on a sweep: the measured effect per claim with
//! a paired bootstrap 95% confidence interval over images, and a verdict.
//!
//! # Summary statistic and effect
//! For a zoo entry and an attack, **S** is the mean strain over the points of that attack's
//! Fig. 3 stress-strain curve ([`super::metrics::curve_data`]: the points the figure shows,
//! including those read from traces), strain `(A - A*)/A` with `A`, `A*` pooled over reruns.
//! The **effect** of a claim row is `S(reference) - S(candidate)`: positive means the candidate
//! is more robust (less strain). A family row ("binarized", "pruned") uses the mean `S` of the
//! family's entries of that model (pooled).
//!
//! # Paired bootstrap
//! The entries of a sweep are attacked on one seeded image sample, so they are compared paired
//! by image: a resample draws `n` of the `n` distinct image indices of the sweep with
//! replacement, and every entry's `A` and `A*` are recomputed on that resample, each image
//! counted with its multiplicity ([`super::metrics::CellTally::accuracies`]). Resample `b` of
//! `B` draws from ChaCha8 seeded with the bootstrap seed on stream `b` ([`resample_rng`]), so
//! the result depends on (seed, `B`) only, not on the thread count. The 95% interval is the
//! percentile interval: the 2.5% and 97.5% quantiles (type 7, [`quantile_sorted`]) of the
//! resampled effects. A resample in which a curve has no defined point (zero clean accuracy on
//! every cell) gives no effect and is left out; `resamples_used` says how many remained. The
//! point estimate is the effect on the full sample.
//!
//! # Verdicts
//! - Directional claim "candidate more robust than reference": **confirmed** if CI low > 0,
//!   **refuted** if CI high < 0, else **inconclusive**.
//! - Null claim "candidate no more robust than reference", equivalence margin
//!   [`NULL_MARGIN`] = 0.05 strain (practical equivalence: a smaller advantage is no advantage,
//!   even when significant): **refuted** if CI low > 0.05 (more robust by more than the margin),
//!   **confirmed** if CI high < 0.05, else **inconclusive**.
//! - Stress-strain class: the class from [`classify`] on the full sample, and its stability
//!   (the share of resamples giving that class; the stress axis is normalized by the attack's
//!   largest stress on the full sample in every resample). Where the paper states a class:
//!   **confirmed** if at least 95% of resamples give the paper's class, **refuted** if at most
//!   5% do, else **inconclusive**.
//!
//! A claim whose entries or attack are missing from the sweep is listed as **not measured**
//! with what is missing. Entries are matched by variant kind (`kd` and `kd-kl`, `channel` and
//! `ch-prune`, `abc3` and `abc3x3` are the same kind); the reference is the model's vanilla
//! entry.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::metrics::{
    classify, curve_data, quantile_sorted, Behaviour, CurveData, StrainCurve, StressSpec,
};
use super::record::SweepRecord;
use super::tables::Table;
use crate::{Error, Result};

/// Default number of bootstrap resamples.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Equivalence margin of the null claims, in strain.
pub const NULL_MARGIN: f32 = 0.05;
/// Share of resamples with the paper's class at or above which a class claim is confirmed.
pub const CLASS_CONFIRM_SHARE: f32 = 0.95;
/// Share at or below which it is refuted.
pub const CLASS_REFUTE_SHARE: f32 = 0.05;

/// The verdict rules, as printed next to the tables.
pub fn rules() -> Vec<String> {
    vec![
        "S = mean strain over the points of the attack's Fig. 3 stress-strain curve; effect = \
         S(reference) - S(candidate), positive = candidate more robust; 95% CI = paired \
         percentile bootstrap over images."
            .into(),
        "Directional claim (candidate more robust): CONFIRMED if CI low > 0, REFUTED if CI high \
         < 0, else inconclusive."
            .into(),
        format!(
            "Null claim (candidate no more robust), margin {NULL_MARGIN}: REFUTED if CI low > \
             {NULL_MARGIN}, CONFIRMED if CI high < {NULL_MARGIN}, else inconclusive."
        ),
        format!(
            "Class claim: CONFIRMED if >= {:.0}% of resamples give the paper's class, REFUTED if \
             <= {:.0}%, else inconclusive.",
            100.0 * CLASS_CONFIRM_SHARE,
            100.0 * CLASS_REFUTE_SHARE
        ),
    ]
}

/// Directional or null (equivalence) claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimType {
    Directional,
    Null,
    /// Stress-strain class (claim 4).
    Class,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    Refuted,
    Inconclusive,
    NotMeasured,
}

impl Verdict {
    /// Text that tells the verdicts apart without colour.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Confirmed => "CONFIRMED",
            Verdict::Refuted => "REFUTED",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// Verdict of a directional claim from its CI (module doc).
pub fn directional_verdict(low: f32, high: f32) -> Verdict {
    if low > 0.0 {
        Verdict::Confirmed
    } else if high < 0.0 {
        Verdict::Refuted
    } else {
        Verdict::Inconclusive
    }
}

/// Verdict of a null claim with equivalence margin `delta` from its CI (module doc).
pub fn null_verdict(low: f32, high: f32, delta: f32) -> Verdict {
    // Practical equivalence: an advantage below the margin is no advantage, even when it is
    // significant (with 500 images a 0.003-strain difference can be).
    if low > delta {
        Verdict::Refuted
    } else if high < delta {
        Verdict::Confirmed
    } else {
        Verdict::Inconclusive
    }
}

/// Verdict of a class claim from the share of resamples giving the paper's class.
pub fn class_verdict(share: f32) -> Verdict {
    if share >= CLASS_CONFIRM_SHARE {
        Verdict::Confirmed
    } else if share <= CLASS_REFUTE_SHARE {
        Verdict::Refuted
    } else {
        Verdict::Inconclusive
    }
}

/// The random stream of resample `b`.
pub fn resample_rng(seed: u64, b: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(b as u64);
    rng
}

/// Run `stat` on `resamples` bootstrap resamples of `n` items: `stat` gets the multiplicity of
/// each item (length `n`, summing to `n`). Parallel over resamples; the output is in resample
/// order and independent of the thread count.
pub fn bootstrap<T: Send>(
    n: usize,
    resamples: usize,
    seed: u64,
    stat: impl Fn(&[u32]) -> T + Sync,
) -> Vec<T> {
    (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = resample_rng(seed, b);
            let mut w = vec![0u32; n];
            for _ in 0..n {
                w[rng.gen_range(0..n)] += 1;
            }
            stat(&w)
        })
        .collect()
}

/// The 95% percentile interval of `values` (type 7 quantiles); `None` when empty.
pub fn percentile_ci(values: &[f32]) -> Option<(f32, f32)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    Some((quantile_sorted(&v, 0.025), quantile_sorted(&v, 0.975)))
}

/// Bootstrap settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    pub resamples: usize,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: DEFAULT_RESAMPLES,
            seed: 0,
        }
    }
}

/// One tested (claim, model, attack, reference, candidate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimRow {
    /// Claim id ("1", "2a", ...).
    pub claim: String,
    pub claim_type: ClaimType,
    pub model: String,
    pub attack: String,
    /// Reference entry (or family, for the swapped PGD claim).
    pub reference: String,
    pub candidate: String,
    /// Distinct images behind the two curves.
    pub images: usize,
    pub s_reference: Option<f32>,
    pub s_candidate: Option<f32>,
    /// `S(reference) - S(candidate)` on the full sample.
    pub effect: Option<f32>,
    pub ci_low: Option<f32>,
    pub ci_high: Option<f32>,
    pub resamples_used: usize,
    /// The verdict rule of this claim's type.
    pub rule: String,
    pub verdict: Verdict,
    /// What is missing (not measured) or which entries a family row pools.
    pub note: String,
}

/// A claim's statement and the paper's words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimText {
    pub claim: String,
    pub statement: String,
    pub claim_type: ClaimType,
    pub rule: String,
    pub paper_words: String,
    pub paper_section: String,
}

/// Stress-strain class of one (entry, attack) and its bootstrap stability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    pub model: String,
    pub variant: String,
    pub variant_kind: String,
    pub attack: String,
    /// Class on the full sample (`None`: not measured).
    pub class: Option<Behaviour>,
    /// Share of resamples giving `class`.
    pub stability: Option<f32>,
    /// The class the paper states for this entry and attack, if any.
    pub paper_class: Option<Behaviour>,
    /// Share of resamples giving `paper_class`.
    pub paper_share: Option<f32>,
    /// `None` where the paper states no class.
    pub verdict: Option<Verdict>,
    pub note: String,
}

/// Everything `claims.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimsReport {
    pub resamples: usize,
    pub seed: u64,
    pub null_margin: f32,
    /// Distinct images of the sweep (the bootstrap population).
    pub images: usize,
    pub rules: Vec<String>,
    pub texts: Vec<ClaimText>,
    pub claims: Vec<ClaimRow>,
    pub classes: Vec<ClassRow>,
}

/// The kind a claim refers to, from a record's `variant_kind` (sweep and CLI spellings).
pub fn claim_kind(variant_kind: &str) -> Option<&'static str> {
    Some(match variant_kind.to_ascii_lowercase().as_str() {
        "vanilla" => "vanilla",
        "kd" | "kd-kl" => "kd",
        "filter" | "filter-prune" => "filter",
        "channel" | "ch-prune" => "channel",
        "kernel" | "kernel-prune" => "kernel",
        "weight" | "weight-prune" => "weight",
        "xnor" => "xnor",
        "abc1" | "abc1x1" => "abc1x1",
        "abc3" | "abc3x3" => "abc3x3",
        "abc5" | "abc5x5" => "abc5x5",
        _ => return None,
    })
}

const BINARIZED: [&str; 4] = ["xnor", "abc1x1", "abc3x3", "abc5x5"];
const PRUNED: [&str; 4] = ["filter", "channel", "kernel", "weight"];

struct ClaimDef {
    id: &'static str,
    statement: &'static str,
    claim_type: ClaimType,
    words: &'static str,
    section: &'static str,
    candidates: &'static [&'static str],
    /// Name of the pooled family row, if any.
    family: Option<&'static str>,
    attacks: &'static [&'static str],
    /// Vanilla is the candidate and each listed kind the reference.
    swapped: bool,
}

const CLAIMS: [ClaimDef; 5] = [
    ClaimDef {
        id: "1",
        statement: "Binarized nets are more robust than vanilla to black-box attacks",
        claim_type: ClaimType::Directional,
        words: "\"binary neural networks exhibit resilient behavior compared to their baselines \
                and other compressed variants\" (Abstract); \"The discretization of weights and \
                activations also makes BNNs stronger against black-box attacks.\" (Sec. 4.5)",
        section: "Abstract; Sec. 4.5",
        candidates: &BINARIZED,
        family: Some("binarized"),
        attacks: &["localsearch", "genattack"],
        swapped: false,
    },
    ClaimDef {
        id: "2a",
        statement: "KD is more robust than vanilla to FGSM and PGD",
        claim_type: ClaimType::Directional,
        words: "\"The distilled models exhibit their strength against all white box attacks with \
                an exception of C&W.\" (Abstract); \"KD shows greater resilience to the PGD \
                attack\" (Sec. 4.2)",
        section: "Abstract; Sec. 4.2",
        candidates: &["kd"],
        family: None,
        attacks: &["fgsm", "pgd"],
        swapped: false,
    },
    ClaimDef {
        id: "2b",
        statement: "KD is no more robust than vanilla to C&W",
        claim_type: ClaimType::Null,
        words: "\"The distilled models exhibit their strength against all white box attacks with \
                an exception of C&W.\" (Abstract); \"However, the C&W attack is able to fool the distilled model, even at higher \
                temperatures as the attack is not focused on the cross-entropy loss directly.\" \
                (Sec. 4.5)",
        section: "Abstract; Sec. 4.5",
        candidates: &["kd"],
        family: None,
        attacks: &["cw"],
        swapped: false,
    },
    ClaimDef {
        id: "3a",
        statement: "Pruned nets are no more robust than vanilla",
        claim_type: ClaimType::Null,
        words: "\"Our analysis reveals susceptible behavior of uncompressed and pruned CNNs \
                against all kinds of attacks.\" (Abstract); \"pruned models are not \
                automatically more robust than their full-precision counterpart.\" (Sec. 4.5)",
        section: "Abstract; Sec. 4.5",
        candidates: &PRUNED,
        family: Some("pruned"),
        attacks: &["fgsm", "pgd", "cw", "deepfool"],
        swapped: false,
    },
    ClaimDef {
        id: "3b",
        statement: "Vanilla is more robust than every pruned net to PGD",
        claim_type: ClaimType::Directional,
        words: "\"Consistently, all investigated pruning techniques harm adversarial robustness \
                against PGD attack with respect to its vanilla versions of ResNet20/56\" \
                (Sec. 4.2)",
        section: "Sec. 4.2",
        candidates: &PRUNED,
        family: Some("pruned"),
        attacks: &["pgd"],
        swapped: true,
    },
];

const CLASS_WORDS: &str = "\"The results show the strength of this method, rendering all our \
    networks brittle.\" (C&W, Sec. 4.2); \"DeepFool renders most of the considered CNNs brittle. \
    One exception is the ResNet56-XNOR\" (Sec. 4.2); \"We can classify BNNs as strong against \
    GenAttacks, and all other variants, as brittle.\" (Sec. 4.2)";

/// The class the paper states for an entry of `model` and `kind` under `attack`, if any.
/// DeepFool: brittle except ResNet56-XNOR, which the paper names as the exception.
fn paper_class(model: &str, kind: Option<&str>, attack: &str) -> Option<Behaviour> {
    let binarized = kind.is_some_and(|k| BINARIZED.contains(&k));
    match attack {
        "cw" => Some(Behaviour::Brittle),
        "deepfool" if model.eq_ignore_ascii_case("resnet56") && kind == Some("xnor") => None,
        "deepfool" => Some(Behaviour::Brittle),
        "genattack" if binarized => Some(Behaviour::Strong),
        "genattack" => Some(Behaviour::Brittle),
        _ => None,
    }
}

fn rule_text(t: ClaimType) -> String {
    match t {
        ClaimType::Directional => {
            "directional: CONFIRMED if CI low > 0, REFUTED if CI high < 0, else inconclusive".into()
        }
        ClaimType::Null => format!(
            "null, margin {NULL_MARGIN}: REFUTED if CI low > {NULL_MARGIN}, CONFIRMED if CI \
             high < {NULL_MARGIN}, else inconclusive"
        ),
        ClaimType::Class => rules()[3].clone(),
    }
}

/// Per-resample summary of one curve: `S` and the class.
type Outcome = (Option<f32>, Option<Behaviour>);

fn summarize(curve: &StrainCurve, max_stress: f32) -> Outcome {
    let n = curve.points.len();
    let s = (n > 0).then(|| curve.points.iter().map(|p| p.strain).sum::<f32>() / n as f32);
    (s, classify(curve, max_stress).map(|c| c.behaviour))
}

/// Test the paper's claims on `records` (module doc). `specs` are the Fig. 3 stress axes.
pub fn paper_claims(
    records: &[SweepRecord],
    specs: &[StressSpec],
    cfg: BootstrapConfig,
) -> Result<ClaimsReport> {
    if cfg.resamples == 0 {
        return Err(Error::input(
            "--bootstrap",
            "need at least 1 bootstrap resample (default 2000)",
        ));
    }
    // Curves per (model, variant, attack), and each attack's largest stress.
    let mut data: Vec<CurveData> = Vec::new();
    let mut max_stress: BTreeMap<String, f32> = BTreeMap::new();
    for spec in specs {
        for d in curve_data(records, spec) {
            let full = d.curve(|_| 1);
            if full.points.is_empty() {
                continue;
            }
            let m = max_stress.entry(spec.attack.clone()).or_insert(0.0);
            *m = full.points.iter().map(|p| p.stress).fold(*m, f32::max);
            data.push(d);
        }
    }
    let index: BTreeMap<(&str, &str), usize> = data
        .iter()
        .enumerate()
        .map(|(k, d)| ((d.variant.as_str(), d.attack.as_str()), k))
        .collect();

    // The bootstrap population: every distinct image of the sweep.
    let images: Vec<usize> = records
        .iter()
        .map(|r| r.result.index)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Image index -> position in `images`: a table for data-set-sized indices, a binary search
    // beyond (an index is a record field, not a size to allocate).
    let table: Option<Vec<u32>> = images.last().filter(|&&m| m < 1 << 22).map(|&m| {
        let mut t = vec![0u32; m + 1];
        for (p, &i) in images.iter().enumerate() {
            t[i] = p as u32;
        }
        t
    });
    let position = |i: usize| match &table {
        Some(t) => t[i] as usize,
        // Every tallied image is in `images`.
        None => images.binary_search(&i).unwrap_or(0),
    };
    let outcome =
        |d: &CurveData, w: &dyn Fn(usize) -> u32| summarize(&d.curve(w), max_stress[&d.attack]);
    let full: Vec<Outcome> = data.iter().map(|d| outcome(d, &|_| 1)).collect();
    let boot: Vec<Vec<Outcome>> = bootstrap(images.len(), cfg.resamples, cfg.seed, |w| {
        let weight = |i: usize| w[position(i)];
        data.iter().map(|d| outcome(d, &weight)).collect()
    });

    // Entries per (model, claim kind).
    let mut entries: BTreeMap<(String, &str), Vec<String>> = BTreeMap::new();
    let mut models: BTreeSet<String> = BTreeSet::new();
    let mut kind_of: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for r in records {
        models.insert(r.model.clone());
        kind_of.insert(&r.variant, (&r.model, &r.variant_kind));
        if let Some(k) = claim_kind(&r.variant_kind) {
            let e = entries.entry((r.model.clone(), k)).or_default();
            if !e.contains(&r.variant) {
                e.push(r.variant.clone());
            }
        }
    }
    for e in entries.values_mut() {
        e.sort();
    }

    let images_of = |ks: &[usize]| {
        ks.iter()
            .flat_map(|&k| {
                data[k]
                    .points
                    .iter()
                    .flat_map(|p| p.cells.iter().flat_map(|c| c.images.iter().map(|i| i.0)))
            })
            .collect::<BTreeSet<_>>()
            .len()
    };
    // S of a side (one entry or a pooled family) in the full sample and in each resample.
    let side = |ks: &[usize]| -> (Option<f32>, Vec<Option<f32>>) {
        let mean = |o: &[Outcome]| -> Option<f32> {
            let v: Option<Vec<f32>> = ks.iter().map(|&k| o[k].0).collect();
            v.map(|v| v.iter().sum::<f32>() / v.len() as f32)
        };
        (mean(&full), boot.iter().map(|o| mean(o)).collect())
    };

    let mut rows = Vec::new();
    for def in &CLAIMS {
        for model in &models {
            for &attack in def.attacks {
                // Reference: the model's vanilla entry.
                let vanilla = entries.get(&(model.clone(), "vanilla"));
                let vname = vanilla.map_or("vanilla".to_string(), |v| v[0].clone());
                let not_measured = |candidate: String, note: String| ClaimRow {
                    claim: def.id.into(),
                    claim_type: def.claim_type,
                    model: model.clone(),
                    attack: attack.into(),
                    reference: if def.swapped {
                        candidate.clone()
                    } else {
                        vname.clone()
                    },
                    candidate: if def.swapped {
                        vname.clone()
                    } else {
                        candidate
                    },
                    images: 0,
                    s_reference: None,
                    s_candidate: None,
                    effect: None,
                    ci_low: None,
                    ci_high: None,
                    resamples_used: 0,
                    rule: rule_text(def.claim_type),
                    verdict: Verdict::NotMeasured,
                    note,
                };
                let curve_of = |variant: &str| index.get(&(variant, attack)).copied();
                let no_curve = |v: &str| {
                    format!("no {attack} stress-strain curve for {v} (cells missing or clean accuracy 0)")
                };
                let base = match vanilla.map(|v| (v[0].as_str(), curve_of(&v[0]))) {
                    None => Err(format!("no vanilla entry for {model}")),
                    Some((v, None)) => Err(no_curve(v)),
                    Some((v, Some(k))) => Ok((v, k)),
                };
                let mut members: Vec<(String, usize)> = Vec::new();
                let mut missing: Vec<String> = Vec::new();
                for &kind in def.candidates {
                    match entries.get(&(model.clone(), kind)) {
                        None => {
                            let note = format!("no {kind} entry for {model}");
                            missing.push(kind.to_string());
                            rows.push(not_measured(kind.to_string(), note));
                        }
                        Some(vs) => {
                            for v in vs {
                                match (&base, curve_of(v)) {
                                    (Err(e), _) => rows.push(not_measured(v.clone(), e.clone())),
                                    (Ok(_), None) => {
                                        missing.push(v.clone());
                                        rows.push(not_measured(v.clone(), no_curve(v)));
                                    }
                                    (Ok(_), Some(k)) => members.push((v.clone(), k)),
                                }
                            }
                        }
                    }
                }
                let mut groups: Vec<(String, Vec<usize>, String)> = members
                    .iter()
                    .map(|(v, k)| {
                        let note = match vanilla {
                            Some(vs) if vs.len() > 1 => {
                                format!("reference {} of vanillas {}", vs[0], vs.join(", "))
                            }
                            _ => String::new(),
                        };
                        (v.clone(), vec![*k], note)
                    })
                    .collect();
                if let Some(family) = def.family {
                    let name = format!("{family} (pooled)");
                    if let Err(e) = &base {
                        rows.push(not_measured(name, e.clone()));
                    } else if members.is_empty() {
                        rows.push(not_measured(
                            name,
                            format!("no {family} entry measured for {model}"),
                        ));
                    } else {
                        let used: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
                        let mut note = format!("mean S over {}", used.join(", "));
                        if !missing.is_empty() {
                            note += &format!("; missing: {}", missing.join(", "));
                        }
                        groups.push((name, members.iter().map(|m| m.1).collect(), note));
                    }
                }
                let Ok((vname, vk)) = base else {
                    continue;
                };
                let (s_van, boot_van) = side(&[vk]);
                for (name, ks, note) in groups {
                    let (s_cand, boot_cand) = side(&ks);
                    let ((s_ref, boot_ref), (s_c, boot_c), reference, candidate) = if def.swapped {
                        (
                            (s_cand, &boot_cand),
                            (s_van, &boot_van),
                            name,
                            vname.to_string(),
                        )
                    } else {
                        (
                            (s_van, &boot_van),
                            (s_cand, &boot_cand),
                            vname.to_string(),
                            name,
                        )
                    };
                    let diffs: Vec<f32> = boot_ref
                        .iter()
                        .zip(boot_c)
                        .filter_map(|(r, c)| Some((*r)? - (*c)?))
                        .collect();
                    let ci = percentile_ci(&diffs);
                    let verdict = match ci {
                        None => Verdict::NotMeasured,
                        Some((lo, hi)) if def.claim_type == ClaimType::Null => {
                            null_verdict(lo, hi, NULL_MARGIN)
                        }
                        Some((lo, hi)) => directional_verdict(lo, hi),
                    };
                    let mut all = ks.clone();
                    all.push(vk);
                    rows.push(ClaimRow {
                        claim: def.id.into(),
                        claim_type: def.claim_type,
                        model: model.clone(),
                        attack: attack.into(),
                        reference,
                        candidate,
                        images: images_of(&all),
                        s_reference: s_ref,
                        s_candidate: s_c,
                        effect: s_ref.zip(s_c).map(|(r, c)| r - c),
                        ci_low: ci.map(|c| c.0),
                        ci_high: ci.map(|c| c.1),
                        resamples_used: diffs.len(),
                        rule: rule_text(def.claim_type),
                        verdict,
                        note,
                    });
                }
            }
        }
    }

    // Classes: every curve, plus "not measured" for attacks the paper classifies.
    let mut classes = Vec::new();
    for (k, d) in data.iter().enumerate() {
        let kind = claim_kind(&d.variant_kind);
        let class = full[k].1;
        let share = |b: Behaviour| {
            boot.iter().filter(|o| o[k].1 == Some(b)).count() as f32 / boot.len() as f32
        };
        let paper = paper_class(&d.model, kind, &d.attack);
        let paper_share = paper.map(share);
        classes.push(ClassRow {
            model: d.model.clone(),
            variant: d.variant.clone(),
            variant_kind: d.variant_kind.clone(),
            attack: d.attack.clone(),
            class,
            stability: class.map(share),
            paper_class: paper,
            paper_share,
            verdict: paper_share.map(class_verdict),
            note: String::new(),
        });
    }
    for attack in ["cw", "deepfool", "genattack"] {
        for (variant, (model, vk)) in &kind_of {
            if index.contains_key(&(*variant, attack)) {
                continue;
            }
            let kind = claim_kind(vk);
            let Some(paper) = paper_class(model, kind, attack) else {
                continue;
            };
            classes.push(ClassRow {
                model: model.to_string(),
                variant: variant.to_string(),
                variant_kind: vk.to_string(),
                attack: attack.into(),
                class: None,
                stability: None,
                paper_class: Some(paper),
                paper_share: None,
                verdict: Some(Verdict::NotMeasured),
                note: format!(
                    "no {attack} stress-strain curve for {variant} (cells missing or clean accuracy 0)"
                ),
            });
        }
    }
    classes
        .sort_by(|a, b| (&a.attack, &a.model, &a.variant).cmp(&(&b.attack, &b.model, &b.variant)));

    let mut texts: Vec<ClaimText> = CLAIMS
        .iter()
        .map(|d| ClaimText {
            claim: d.id.into(),
            statement: d.statement.into(),
            claim_type: d.claim_type,
            rule: rule_text(d.claim_type),
            paper_words: d.words.into(),
            paper_section: d.section.into(),
        })
        .collect();
    texts.push(ClaimText {
        claim: "4".into(),
        statement: "Stress-strain classes: C&W and DeepFool make every net brittle (DeepFool: \
                    except ResNet56-XNOR); GenAttack: binarized nets strong, all others brittle"
            .into(),
        claim_type: ClaimType::Class,
        rule: rule_text(ClaimType::Class),
        paper_words: CLASS_WORDS.into(),
        paper_section: "Sec. 4.2".into(),
    });
    Ok(ClaimsReport {
        resamples: cfg.resamples,
        seed: cfg.seed,
        null_margin: NULL_MARGIN,
        images: images.len(),
        rules: rules(),
        texts,
        claims: rows,
        classes,
    })
}

fn num(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// The claims as tables: statements with the paper's words, effects, and classes.
pub fn claims_tables(r: &ClaimsReport) -> [Table; 3] {
    let texts = Table {
        title: "Paper claims tested (the paper's words)".into(),
        header: ["Claim", "Statement", "Type", "Paper's words", "Section"]
            .map(String::from)
            .to_vec(),
        rows: r
            .texts
            .iter()
            .map(|t| {
                vec![
                    t.claim.clone(),
                    t.statement.clone(),
                    match t.claim_type {
                        ClaimType::Class => "class".into(),
                        ClaimType::Directional => "directional".into(),
                        ClaimType::Null => format!("null (margin {NULL_MARGIN})"),
                    },
                    t.paper_words.clone(),
                    t.paper_section.clone(),
                ]
            })
            .collect(),
    };
    let effects = Table {
        title: format!(
            "Paper claims: effect = S(reference) - S(candidate) (positive: candidate more \
             robust), paired bootstrap 95% CI over images (B = {}, seed {})",
            r.resamples, r.seed
        ),
        header: [
            "Claim",
            "Model",
            "Attack",
            "Reference",
            "Candidate",
            "Images",
            "S ref",
            "S cand",
            "Effect",
            "CI low",
            "CI high",
            "Verdict",
            "Note",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .claims
            .iter()
            .map(|c| {
                vec![
                    c.claim.clone(),
                    c.model.clone(),
                    c.attack.clone(),
                    c.reference.clone(),
                    c.candidate.clone(),
                    c.images.to_string(),
                    num(c.s_reference),
                    num(c.s_candidate),
                    num(c.effect),
                    num(c.ci_low),
                    num(c.ci_high),
                    c.verdict.label().into(),
                    c.note.clone(),
                ]
            })
            .collect(),
    };
    let classes = Table {
        title: format!(
            "Claim 4: stress-strain class per entry and attack, share of {} resamples giving it",
            r.resamples
        ),
        header: [
            "Model",
            "Variant",
            "Attack",
            "Class",
            "Stability",
            "Paper's class",
            "Share with paper's class",
            "Verdict",
            "Note",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .classes
            .iter()
            .map(|c| {
                vec![
                    c.model.clone(),
                    c.variant.clone(),
                    c.attack.clone(),
                    c.class.map_or("-".into(), |b| b.to_string()),
                    c.stability.map_or("-".into(), |s| format!("{s:.3}")),
                    c.paper_class
                        .map_or("(none stated)".into(), |b| b.to_string()),
                    c.paper_share.map_or("-".into(), |s| format!("{s:.3}")),
                    c.verdict
                        .map_or("no paper class".into(), |v| v.label().into()),
                    c.note.clone(),
                ]
            })
            .collect(),
    };
    [texts, effects, classes]
}
