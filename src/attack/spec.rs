//! Attack configurations as plain serde data, parseable from TOML, plus sweep grids (the
//! paper's Table 2 lives in `configs/table2.toml`).
//!
//! Every epsilon / step is a [`Budget`] `{ value, scale }`; a budget without `scale`, a negative,
//! NaN or infinite value, an unknown attack name or an unknown field is rejected when parsing.
//! `targeted = true` requires `target` (a class index, `"random"`: uniform over the other classes
//! from the image's seeded RNG, or `"next"`: `(label + 1) mod classes`), checked by
//! [`AttackSpec::validate`] (which [`AttackSpec::from_toml`] calls).
//!
//! Defaults are those of each attack's paper / reference implementation (see the field docs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::genattack::GenAttackConfig;
use super::local_search::LocalSearchConfig;
use super::threat::{Budget, Norm, Scale};
use crate::{Error, Result};

/// Target class of a targeted attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTarget", into = "RawTarget")]
pub enum Target {
    Class(usize),
    Random,
    Next,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawTarget {
    Class(usize),
    Word(String),
}

impl TryFrom<RawTarget> for Target {
    type Error = String;
    fn try_from(r: RawTarget) -> std::result::Result<Self, String> {
        match r {
            RawTarget::Class(c) => Ok(Target::Class(c)),
            RawTarget::Word(w) if w == "random" => Ok(Target::Random),
            RawTarget::Word(w) if w == "next" => Ok(Target::Next),
            RawTarget::Word(w) => Err(format!(
                "unknown target {w:?}: expected a class index, \"random\" or \"next\""
            )),
        }
    }
}

impl From<Target> for RawTarget {
    fn from(t: Target) -> Self {
        match t {
            Target::Class(c) => RawTarget::Class(c),
            Target::Random => RawTarget::Word("random".into()),
            Target::Next => RawTarget::Word("next".into()),
        }
    }
}

fn unit_scale() -> Scale {
    Scale::Unit
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn five() -> usize {
    5
}

/// FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015): one L-inf step of size `eps` along the sign
/// of the cross-entropy gradient (away from the label, or towards the target).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FgsmSpec {
    pub eps: Budget,
    #[serde(default)]
    pub targeted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// PGD (Madry et al., ICLR 2018). Reference defaults (torchattacks): L-inf, eps 8/255, step
/// 2/255, 10 iterations, random start; Madry's CIFAR-10 setup: 8/255, 2/255, 7 steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgdSpec {
    #[serde(default)]
    pub norm: Norm,
    pub eps: Budget,
    /// Step size alpha, measured in its own scale and norm (L-inf: per-element; L2: step length).
    pub step: Budget,
    pub iterations: usize,
    /// Independent random starts within one attack; the best (successful, else highest loss)
    /// is kept.
    #[serde(default = "one")]
    pub restarts: usize,
    /// Uniform random start in the ball (Madry et al.); false starts at the clean image.
    #[serde(default = "yes")]
    pub random_start: bool,
    /// Record loss and prediction every `trace_every` iterations (paper: every 5th; 0 = off).
    #[serde(default = "five")]
    pub trace_every: usize,
    #[serde(default)]
    pub targeted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

fn cw_c() -> f32 {
    1e-3
}
fn cw_bs() -> usize {
    9
}
fn cw_iters() -> usize {
    10_000
}
fn cw_lr() -> f32 {
    1e-2
}

/// Carlini & Wagner L2 (IEEE S&P 2017). Defaults of the authors' reference `l2_attack.py`:
/// binary_search_steps 9, max_iterations 10000, learning_rate 0.01 (Adam), initial_const 1e-3,
/// confidence 0, abort_early true. (torchattacks: c = 1, 50 steps, no search.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CwSpec {
    /// Initial constant c of `||delta||_2^2 + c * f(x + delta)` (the paper's Eq. 5 epsilon).
    #[serde(default = "cw_c")]
    pub c: f32,
    #[serde(default = "cw_bs")]
    pub binary_search_steps: usize,
    #[serde(default = "cw_iters")]
    pub max_iterations: usize,
    #[serde(default = "cw_lr")]
    pub learning_rate: f32,
    /// kappa: required logit margin.
    #[serde(default)]
    pub confidence: f32,
    #[serde(default = "yes")]
    pub abort_early: bool,
    /// Scale in which the result's norms are reported (the optimisation itself is L2 in unit
    /// scale, as in the reference, on \[0,1\] images).
    #[serde(default = "unit_scale")]
    pub report_scale: Scale,
    #[serde(default)]
    pub targeted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

fn df_iters() -> usize {
    50
}
fn df_candidates() -> Option<usize> {
    Some(10)
}
fn df_overshoot() -> f32 {
    0.02
}

/// DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), multi-class L2 version. Defaults
/// of the authors' reference implementation: max_iter 50, overshoot 0.02, 10 candidate classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepFoolSpec {
    #[serde(default = "df_iters")]
    pub max_iterations: usize,
    #[serde(default = "df_overshoot")]
    pub overshoot: f32,
    /// Only the `candidates` highest-scoring classes at the clean image are considered
    /// (reference and default: 10, which is every class on CIFAR-10); `None` = all classes.
    #[serde(default = "df_candidates")]
    pub candidates: Option<usize>,
    #[serde(default = "unit_scale")]
    pub report_scale: Scale,
}

fn ls_p() -> f32 {
    10.0
}
fn ls_r() -> f32 {
    1.5
}
fn ls_d() -> usize {
    5
}
fn ls_t() -> usize {
    5
}
fn ls_rounds() -> usize {
    150
}

/// LocalSearch (Narodytska & Kasiviswanathan, CVPR-W 2017), query-only, untargeted. Defaults as
/// in Foolbox 2.x: p 10, r 1.5, d 5, t 5, R 150. Implemented in `local_search.rs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSearchSpec {
    /// L-inf bound on the final perturbation (Table 2: 8, 16, 32 pixel).
    pub eps: Budget,
    /// R: number of rounds (Table 2's iterations).
    #[serde(default = "ls_rounds")]
    pub rounds: usize,
    #[serde(default = "ls_p")]
    pub p: f32,
    #[serde(default = "ls_r")]
    pub r: f32,
    #[serde(default = "ls_d")]
    pub d: usize,
    #[serde(default = "ls_t")]
    pub t: usize,
}

fn ga_pop() -> usize {
    6
}
fn ga_tau() -> f32 {
    0.1
}
fn ga_rho() -> f32 {
    0.1
}
fn ga_alpha() -> f32 {
    0.15
}

/// GenAttack (Alzantot et al., GECCO 2019), query-only. Defaults: population 6 (the paper, following Alzantot et al.),
/// sampling temperature 0.1, adaptive mutation with floors rho_min 0.1 / alpha_min 0.15.
/// Implemented in `genattack.rs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenAttackSpec {
    pub eps: Budget,
    pub generations: usize,
    #[serde(default = "ga_pop")]
    pub population: usize,
    #[serde(default = "ga_tau")]
    pub temperature: f32,
    #[serde(default = "ga_rho")]
    pub rho_min: f32,
    #[serde(default = "ga_alpha")]
    pub alpha_min: f32,
    #[serde(default)]
    pub targeted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// One attack with all its parameters; `attack = "<name>"` selects the variant in TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "attack", rename_all = "lowercase")]
pub enum AttackSpec {
    Fgsm(FgsmSpec),
    Pgd(PgdSpec),
    Cw(CwSpec),
    DeepFool(DeepFoolSpec),
    LocalSearch(LocalSearchSpec),
    GenAttack(GenAttackSpec),
}

fn check_target(targeted: bool, target: Option<Target>, context: &str) -> Result<()> {
    match (targeted, target) {
        (true, None) => Err(Error::input(
            format!("{context}.target"),
            "targeted attack needs a target: a class index, \"random\" or \"next\"",
        )),
        (false, Some(_)) => Err(Error::input(
            format!("{context}.targeted"),
            "a target is given but targeted = false; set targeted = true or drop target",
        )),
        _ => Ok(()),
    }
}

/// A finite value `> 0`, or an error naming `context.field`. Shared by every attack config.
pub(crate) fn check_positive(v: f32, field: &str, context: &str) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::input(
            format!("{context}.{field}"),
            format!("must be positive and finite, got {v}"),
        ))
    }
}

/// A finite value `>= 0`, or an error naming `context.field`.
pub(crate) fn check_nonneg(v: f32, field: &str, context: &str) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::input(
            format!("{context}.{field}"),
            format!("must be >= 0 and finite, got {v}"),
        ))
    }
}

/// A count of at least 1, or an error naming `context.field`.
pub(crate) fn check_count(v: usize, field: &str, context: &str) -> Result<()> {
    if v == 0 {
        Err(Error::input(
            format!("{context}.{field}"),
            "must be at least 1",
        ))
    } else {
        Ok(())
    }
}

impl AttackSpec {
    /// Short lowercase name, as in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            AttackSpec::Fgsm(_) => "fgsm",
            AttackSpec::Pgd(_) => "pgd",
            AttackSpec::Cw(_) => "cw",
            AttackSpec::DeepFool(_) => "deepfool",
            AttackSpec::LocalSearch(_) => "localsearch",
            AttackSpec::GenAttack(_) => "genattack",
        }
    }

    /// Whether the attack needs gradients (white-box).
    pub fn is_white_box(&self) -> bool {
        matches!(
            self,
            AttackSpec::Fgsm(_) | AttackSpec::Pgd(_) | AttackSpec::Cw(_) | AttackSpec::DeepFool(_)
        )
    }

    /// The targeting option, if the attack has one.
    pub fn target(&self) -> Option<Target> {
        match self {
            AttackSpec::Fgsm(s) => s.target,
            AttackSpec::Pgd(s) => s.target,
            AttackSpec::Cw(s) => s.target,
            AttackSpec::GenAttack(s) => s.target,
            AttackSpec::DeepFool(_) | AttackSpec::LocalSearch(_) => None,
        }
    }

    /// Checks what serde cannot: targeting consistency and parameter ranges. `context` names
    /// the file / section for the error.
    pub fn validate(&self, context: &str) -> Result<()> {
        match self {
            AttackSpec::Fgsm(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                check_target(s.targeted, s.target, context)
            }
            AttackSpec::Pgd(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                s.step.validate(&format!("{context}.step"))?;
                check_count(s.restarts, "restarts", context)?;
                check_target(s.targeted, s.target, context)
            }
            AttackSpec::Cw(s) => {
                check_nonneg(s.c, "c", context)?;
                check_positive(s.learning_rate, "learning_rate", context)?;
                check_nonneg(s.confidence, "confidence", context)?;
                check_count(s.binary_search_steps, "binary_search_steps", context)?;
                check_target(s.targeted, s.target, context)
            }
            AttackSpec::DeepFool(s) => {
                check_nonneg(s.overshoot, "overshoot", context)?;
                if s.candidates == Some(0) || s.candidates == Some(1) {
                    return Err(Error::input(
                        format!("{context}.candidates"),
                        "needs at least 2 classes (the label and one other)",
                    ));
                }
                Ok(())
            }
            AttackSpec::LocalSearch(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                check_nonneg(s.p, "p", context)?;
                check_nonneg(s.r, "r", context)?;
                check_count(s.t, "t", context)
            }
            AttackSpec::GenAttack(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                check_count(s.population, "population", context)?;
                check_positive(s.temperature, "temperature", context)?;
                check_target(s.targeted, s.target, context)
            }
        }
    }

    /// Parses and validates one attack from TOML text (`attack = "pgd"` plus its fields).
    pub fn from_toml(text: &str, context: &str) -> Result<AttackSpec> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| Error::input(context, e.to_string()))?;
        Self::from_table(table, context)
    }

    /// Builds and validates one attack from a parsed TOML table.
    pub fn from_table(table: toml::Table, context: &str) -> Result<AttackSpec> {
        precheck_budgets(&table, context)?;
        let spec: AttackSpec = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::input(context, e.message().trim().to_string()))?;
        spec.validate(context)?;
        Ok(spec)
    }
}

/// A sweep file: named entries, each a template attack and the fields to sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub grid: Vec<GridEntry>,
}

/// One template attack and the values to sweep. Sweep keys are dotted paths into the template
/// (`"eps.value"`, `"iterations"`); the expansion is the cartesian product, in key order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridEntry {
    pub name: String,
    pub spec: toml::Table,
    #[serde(default)]
    pub sweep: BTreeMap<String, Vec<toml::Value>>,
}

/// One point of an expanded grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Entry name.
    pub name: String,
    /// The swept values, as `(path, value)`.
    pub params: Vec<(String, String)>,
    pub spec: AttackSpec,
}

/// Budget errors found while deserialising an internally tagged enum lose their field name, so
/// the budget fields are checked first, by name.
fn precheck_budgets(table: &toml::Table, context: &str) -> Result<()> {
    for key in ["eps", "step"] {
        if let Some(v) = table.get(key) {
            let ctx = format!("{context}.{key}");
            let b: Budget = v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| Error::input(&ctx, e.message().trim().to_string()))?;
            b.validate(&ctx)?;
        }
    }
    Ok(())
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value, context: &str) -> Result<()> {
    let mut parts = path.split('.').peekable();
    let mut cur = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return Ok(());
        }
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                Error::input(
                    format!("{context}.sweep.{path}"),
                    format!("{p} is not a table in the template"),
                )
            })?;
    }
    Err(Error::input(format!("{context}.sweep"), "empty sweep key"))
}

impl Grid {
    /// Parses a sweep file; `context` is its path (for errors).
    pub fn from_toml(text: &str, context: &str) -> Result<Grid> {
        toml::from_str(text).map_err(|e| Error::input(context, e.to_string()))
    }

    /// Every attack of the grid, validated.
    pub fn expand(&self, context: &str) -> Result<Vec<GridPoint>> {
        let mut out = Vec::new();
        for (i, entry) in self.grid.iter().enumerate() {
            let ctx = format!("{context}: grid[{i}] ({})", entry.name);
            let keys: Vec<&String> = entry.sweep.keys().collect();
            for (k, vals) in &entry.sweep {
                if vals.is_empty() {
                    return Err(Error::input(format!("{ctx}.sweep.{k}"), "no values"));
                }
            }
            let sizes: Vec<usize> = keys.iter().map(|k| entry.sweep[*k].len()).collect();
            let total: usize = sizes.iter().product();
            for mut flat in 0..total {
                let mut table = entry.spec.clone();
                let mut params = Vec::new();
                for (k, n) in keys.iter().zip(&sizes).rev() {
                    let v = entry.sweep[*k][flat % n].clone();
                    flat /= n;
                    params.push((k.to_string(), v.to_string()));
                    set_path(&mut table, k, v, &ctx)?;
                }
                params.reverse();
                let spec = AttackSpec::from_table(table, &ctx)?;
                out.push(GridPoint {
                    name: entry.name.clone(),
                    params,
                    spec,
                });
            }
        }
        Ok(out)
    }
}

impl LocalSearchSpec {
    /// The [`LocalSearchConfig`] this spec stands for; fields the spec does not carry keep the
    /// config's defaults (Foolbox 2's), so defaults live in one place.
    pub fn config(&self) -> LocalSearchConfig {
        LocalSearchConfig {
            p: self.p,
            r: self.r,
            d: self.d,
            t: self.t,
            rounds: self.rounds,
            eps: Some(self.eps.value),
            scale: self.eps.scale,
            ..LocalSearchConfig::default()
        }
    }
}

impl GenAttackSpec {
    /// The [`GenAttackConfig`] this spec stands for (plateau settings keep their defaults).
    pub fn config(&self) -> GenAttackConfig {
        GenAttackConfig {
            population: self.population,
            generations: self.generations,
            eps: self.eps.value,
            scale: self.eps.scale,
            tau: self.temperature,
            rho_min: self.rho_min,
            alpha_min: self.alpha_min,
            ..GenAttackConfig::default()
        }
    }
}
