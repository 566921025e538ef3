//! Attack configurations: plain serde data (parseable from TOML) that is also the command line
//! of `bbed attack <attack>` (`#[derive(clap::Args)]` on each spec, so every field is a flag
//! named after its path: `eps.scale` is `--eps-scale`, `max_iterations` is `--max-iterations`),
//! plus sweep grids (the paper's Table 2 lives in `configs/table2.toml`).
//!
//! Every epsilon / step is a budget `{ value, scale }` ([`Eps`], [`Step`]: a [`Budget`] as two
//! flags); a budget without `scale`, a negative, NaN or infinite value, an unknown attack name or
//! an unknown field is rejected when parsing, with the field path in the error
//! (`run.toml: pgd.eps.scale: ...`). `targeted = true` requires `target` (a class index,
//! `"random"`: uniform over the other classes from the image's target stream, see
//! [`super::streams`], or `"next"`: `(label + 1) mod classes`), checked by
//! [`AttackSpec::validate`] (which [`AttackSpec::from_toml`] calls).
//!
//! Defaults are those of each attack's paper / reference implementation and live in
//! [`defaults`] only: serde, clap and the library configs of the black-box attacks read them.

// clap renders this module's `///` comments as `--help` text, where brackets are literal
// (`[0,1]`, `[required]`), so rustdoc's link check does not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::collections::BTreeMap;

use clap::{ArgAction, Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::threat::{Budget, Norm, Scale};
use crate::{Error, Result};

/// Every default of an attack parameter (see the spec structs for their sources).
pub mod defaults {
    use super::Scale;

    pub const PGD_RESTARTS: usize = 1;
    pub const PGD_RANDOM_START: bool = true;
    pub const PGD_TRACE_EVERY: usize = 5;
    pub const CW_C: f32 = 1e-3;
    pub const CW_BINARY_SEARCH_STEPS: usize = 9;
    pub const CW_MAX_ITERATIONS: usize = 10_000;
    pub const CW_LEARNING_RATE: f32 = 1e-2;
    pub const CW_CONFIDENCE: f32 = 0.0;
    pub const CW_ABORT_EARLY: bool = true;
    /// Scale of the reported norms of the unbudgeted attacks (C&W, DeepFool).
    pub const REPORT_SCALE: Scale = Scale::Unit;
    pub const DF_MAX_ITERATIONS: usize = 50;
    pub const DF_OVERSHOOT: f32 = 0.02;
    pub const DF_CANDIDATES: usize = 10;
    pub const LS_ROUNDS: usize = 150;
    pub const LS_P: f32 = 10.0;
    pub const LS_R: f32 = 1.5;
    pub const LS_D: usize = 5;
    pub const LS_T: usize = 5;
    pub const GA_POPULATION: usize = 6;
    pub const GA_TEMPERATURE: f32 = 0.1;
    pub const GA_RHO_MIN: f32 = 0.1;
    pub const GA_ALPHA_MIN: f32 = 0.15;
}

/// serde's `default = "..."` takes a function path: one per default, each returning its constant.
macro_rules! default_fns {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}

default_fns! {
    pgd_restarts: usize = defaults::PGD_RESTARTS;
    pgd_random_start: RandomStart = RandomStart::from(defaults::PGD_RANDOM_START);
    pgd_trace_every: usize = defaults::PGD_TRACE_EVERY;
    cw_c: f32 = defaults::CW_C;
    cw_bs: usize = defaults::CW_BINARY_SEARCH_STEPS;
    cw_iters: usize = defaults::CW_MAX_ITERATIONS;
    cw_lr: f32 = defaults::CW_LEARNING_RATE;
    cw_confidence: f32 = defaults::CW_CONFIDENCE;
    cw_abort_early: bool = defaults::CW_ABORT_EARLY;
    report_scale: Scale = defaults::REPORT_SCALE;
    df_iters: usize = defaults::DF_MAX_ITERATIONS;
    df_overshoot: f32 = defaults::DF_OVERSHOOT;
    df_candidates: Option<usize> = Some(defaults::DF_CANDIDATES);
    ls_rounds: usize = defaults::LS_ROUNDS;
    ls_p: f32 = defaults::LS_P;
    ls_r: f32 = defaults::LS_R;
    ls_d: usize = defaults::LS_D;
    ls_t: usize = defaults::LS_T;
    ga_pop: usize = defaults::GA_POPULATION;
    ga_tau: f32 = defaults::GA_TEMPERATURE;
    ga_rho: f32 = defaults::GA_RHO_MIN;
    ga_alpha: f32 = defaults::GA_ALPHA_MIN;
}

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
            RawTarget::Word(w) => w.parse(),
        }
    }
}

/// A flag value: a class index, `random` or `next`.
impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(w: &str) -> std::result::Result<Self, String> {
        match w {
            "random" => Ok(Target::Random),
            "next" => Ok(Target::Next),
            _ => w.parse::<usize>().map(Target::Class).map_err(|_| {
                format!("unknown target {w:?}: expected a class index, \"random\" or \"next\"")
            }),
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

/// A flag value that is a budget amount: finite and `>= 0` (the same rule as [`Budget`]).
fn parse_amount(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    Budget::new(v, Scale::Unit)
        .validate("")
        .map(|_| v)
        .map_err(|_| format!("must be a finite number >= 0, got {v}"))
}

/// A [`Budget`] whose flags are `--<field> VALUE --<field>-scale SCALE` (clap cannot prefix a
/// flattened struct, so each budget field has its own type); in TOML it is the budget itself.
macro_rules! budget_field {
    ($(#[$doc:meta])* $name:ident, $value_flag:tt, $scale_flag:tt, $value_help:tt, $scale_help:tt) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Args)]
        #[serde(from = "Budget", into = "Budget")]
        pub struct $name {
            // Explicit ids: clap names an argument after its field, and every budget type has
            // fields `value` and `scale`.
            #[arg(id = $value_flag, long = $value_flag, value_name = "VALUE",
                  value_parser = parse_amount, allow_negative_numbers = true, help = $value_help)]
            pub value: f32,
            #[arg(id = $scale_flag, long = $scale_flag, value_name = "SCALE", value_enum,
                  help = $scale_help)]
            pub scale: Scale,
        }

        impl From<Budget> for $name {
            fn from(b: Budget) -> Self {
                $name { value: b.value, scale: b.scale }
            }
        }

        impl From<$name> for Budget {
            fn from(b: $name) -> Budget {
                Budget::new(b.value, b.scale)
            }
        }

        impl PartialEq<Budget> for $name {
            fn eq(&self, b: &Budget) -> bool {
                Budget::from(*self) == *b
            }
        }

        impl $name {
            pub fn budget(&self) -> Budget {
                Budget::from(*self)
            }

            /// Rejects NaN, infinite and negative values, naming `context`.
            pub fn validate(&self, context: &str) -> Result<()> {
                self.budget().validate(context)
            }
        }
    };
}

budget_field!(
    /// The radius of an attack's perturbation ball: `eps = { value, scale }`, `--eps --eps-scale`.
    Eps,
    "eps",
    "eps-scale",
    "Perturbation budget: radius of the ball (L-inf, or L2 for pgd --norm l2), in --eps-scale units [required]",
    "Unit of --eps [required]"
);
budget_field!(
    /// PGD's step size alpha: `step = { value, scale }`, `--step --step-scale`.
    Step,
    "step",
    "step-scale",
    "Step size alpha, in --step-scale units (L-inf: per element; L2: step length) [required]",
    "Unit of --step [required]"
);

/// PGD's start: uniform in the ball (Madry et al.; the default) or the clean image. A bool in a
/// spec file (`random_start = false`); on the command line `--random-start [BOOL]` or
/// `--no-random-start` (the last one given wins). Read it with [`RandomStart::get`].
#[derive(Clone, Copy, Debug, Args)]
pub struct RandomStart {
    /// Uniform random start in the ball (Madry et al.) [default: true]
    #[arg(
        long = "random-start",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        overrides_with = "no_random_start"
    )]
    random_start: Option<bool>,
    /// Start at the clean image (the same as --random-start false)
    #[arg(long = "no-random-start", overrides_with = "random_start")]
    no_random_start: bool,
}

impl RandomStart {
    /// Whether PGD starts at a uniform random point of the ball.
    pub fn get(&self) -> bool {
        !self.no_random_start && self.random_start.unwrap_or(defaults::PGD_RANDOM_START)
    }
}

impl From<bool> for RandomStart {
    fn from(on: bool) -> Self {
        RandomStart {
            random_start: Some(on),
            no_random_start: false,
        }
    }
}

impl PartialEq for RandomStart {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for RandomStart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bool(self.get())
    }
}

impl<'de> Deserialize<'de> for RandomStart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        bool::deserialize(d).map(RandomStart::from)
    }
}

/// FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015): one L-inf step of size `eps` along the sign
/// of the cross-entropy gradient (away from the label, or towards the target).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct FgsmSpec {
    #[command(flatten)]
    pub eps: Eps,
    /// Move towards --target instead of away from the label
    #[arg(long)]
    #[serde(default)]
    pub targeted: bool,
    /// Target class of a targeted attack: a class index, random (uniform over the other
    /// classes) or next (label + 1 mod classes)
    #[arg(long, value_name = "CLASS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// PGD (Madry et al., ICLR 2018). Reference defaults (torchattacks): L-inf, eps 8/255, step
/// 2/255, 10 iterations, random start; Madry's CIFAR-10 setup: 8/255, 2/255, 7 steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct PgdSpec {
    /// Norm of the ball and of the steps
    #[arg(long, value_enum, default_value_t = Norm::Linf)]
    #[serde(default)]
    pub norm: Norm,
    #[command(flatten)]
    pub eps: Eps,
    /// Step size alpha, measured in its own scale and norm (L-inf: per-element; L2: step length).
    #[command(flatten)]
    pub step: Step,
    /// Gradient steps per restart [required]
    #[arg(long)]
    pub iterations: usize,
    /// Independent random starts within one attack; the best (successful, else highest loss)
    /// is kept
    #[arg(long, default_value_t = defaults::PGD_RESTARTS)]
    #[serde(default = "pgd_restarts")]
    pub restarts: usize,
    #[command(flatten)]
    #[serde(default = "pgd_random_start")]
    pub random_start: RandomStart,
    /// Record loss and prediction every N iterations (paper: every 5th; 0 = off)
    #[arg(long, value_name = "N", default_value_t = defaults::PGD_TRACE_EVERY)]
    #[serde(default = "pgd_trace_every")]
    pub trace_every: usize,
    /// Move towards --target instead of away from the label
    #[arg(long)]
    #[serde(default)]
    pub targeted: bool,
    /// Target class of a targeted attack: a class index, random or next
    #[arg(long, value_name = "CLASS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Carlini & Wagner L2 (IEEE S&P 2017). Defaults of the authors' reference `l2_attack.py`:
/// binary_search_steps 9, max_iterations 10000, learning_rate 0.01 (Adam), initial_const 1e-3,
/// confidence 0, abort_early true. (torchattacks: c = 1, 50 steps, no search.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct CwSpec {
    /// Initial constant c of ||delta||_2^2 + c * f(x + delta) (the paper's Eq. 5 epsilon; no unit)
    #[arg(long, default_value_t = defaults::CW_C, allow_negative_numbers = true)]
    #[serde(default = "cw_c")]
    pub c: f32,
    /// Binary-search steps over c (1 = fixed c)
    #[arg(long, value_name = "N", default_value_t = defaults::CW_BINARY_SEARCH_STEPS)]
    #[serde(default = "cw_bs")]
    pub binary_search_steps: usize,
    /// Adam steps per binary-search step
    #[arg(long, value_name = "N", default_value_t = defaults::CW_MAX_ITERATIONS)]
    #[serde(default = "cw_iters")]
    pub max_iterations: usize,
    /// Adam learning rate (in tanh space)
    #[arg(long, value_name = "LR", default_value_t = defaults::CW_LEARNING_RATE, allow_negative_numbers = true)]
    #[serde(default = "cw_lr")]
    pub learning_rate: f32,
    /// kappa: required logit margin (logit units)
    #[arg(long, value_name = "KAPPA", default_value_t = defaults::CW_CONFIDENCE, allow_negative_numbers = true)]
    #[serde(default = "cw_confidence")]
    pub confidence: f32,
    /// Stop a search step early once the loss stops falling (reference behaviour)
    #[arg(long, value_name = "BOOL", default_value_t = defaults::CW_ABORT_EARLY, action = ArgAction::Set)]
    #[serde(default = "cw_abort_early")]
    pub abort_early: bool,
    /// Scale in which the result's norms are reported (the optimisation itself is L2 in unit
    /// scale, as in the reference, on [0,1] images)
    #[arg(long, value_name = "SCALE", value_enum, default_value_t = defaults::REPORT_SCALE)]
    #[serde(default = "report_scale")]
    pub report_scale: Scale,
    /// Move towards --target instead of away from the label
    #[arg(long)]
    #[serde(default)]
    pub targeted: bool,
    /// Target class of a targeted attack: a class index, random or next
    #[arg(long, value_name = "CLASS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), multi-class L2 version. Defaults
/// of the authors' reference implementation: max_iter 50, overshoot 0.02, 10 candidate classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct DeepFoolSpec {
    /// Maximum linearisation steps
    #[arg(long, value_name = "N", default_value_t = defaults::DF_MAX_ITERATIONS)]
    #[serde(default = "df_iters")]
    pub max_iterations: usize,
    /// Overshoot factor applied to the final perturbation (fraction, no unit)
    #[arg(long, default_value_t = defaults::DF_OVERSHOOT, allow_negative_numbers = true)]
    #[serde(default = "df_overshoot")]
    pub overshoot: f32,
    /// Only the N highest-scoring classes at the clean image are considered (reference: 10,
    /// every class on CIFAR-10); `None` (library only) = all classes
    // clap's `default_value_t` cannot fill an `Option`; the spec tests check this text equals
    // `defaults::DF_CANDIDATES`.
    #[arg(long, value_name = "N", default_value = "10")]
    #[serde(default = "df_candidates")]
    pub candidates: Option<usize>,
    /// Scale in which the result's norms are reported
    #[arg(long, value_name = "SCALE", value_enum, default_value_t = defaults::REPORT_SCALE)]
    #[serde(default = "report_scale")]
    pub report_scale: Scale,
}

/// LocalSearch (Narodytska & Kasiviswanathan, CVPR-W 2017), query-only, untargeted. Defaults as
/// in Foolbox 2.x: p 10, r 1.5, d 5, t 5, R 150. Implemented in `local_search.rs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct LocalSearchSpec {
    /// L-inf bound on the final perturbation (Table 2: 8, 16, 32 pixel).
    #[command(flatten)]
    pub eps: Eps,
    /// R: number of rounds (Table 2's iterations)
    #[arg(long, value_name = "R", default_value_t = defaults::LS_ROUNDS)]
    #[serde(default = "ls_rounds")]
    pub rounds: usize,
    /// Probe value p in the centred pixel scale [-1/2, 1/2] (with an eps bound every p >= 1 acts
    /// the same)
    #[arg(long, default_value_t = defaults::LS_P, allow_negative_numbers = true)]
    #[serde(default = "ls_p")]
    pub p: f32,
    /// Round-trip perturbation factor r of the cyclic update (paper: r in [0, 2])
    #[arg(long, default_value_t = defaults::LS_R, allow_negative_numbers = true)]
    #[serde(default = "ls_r")]
    pub r: f32,
    /// Neighbourhood half-size d, in pixels
    #[arg(long, default_value_t = defaults::LS_D)]
    #[serde(default = "ls_d")]
    pub d: usize,
    /// Pixels perturbed per round t
    #[arg(long, default_value_t = defaults::LS_T)]
    #[serde(default = "ls_t")]
    pub t: usize,
}

/// GenAttack (Alzantot et al., GECCO 2019), query-only. Defaults: population 6 (the paper,
/// following Alzantot et al.), sampling temperature 0.1, adaptive mutation with floors rho_min
/// 0.1 / alpha_min 0.15. Implemented in `genattack.rs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct GenAttackSpec {
    #[command(flatten)]
    pub eps: Eps,
    /// Maximum number of generations [required]
    #[arg(long)]
    pub generations: usize,
    /// Population size N (at least 2: the elite and one child)
    #[arg(long, value_name = "N", default_value_t = defaults::GA_POPULATION)]
    #[serde(default = "ga_pop")]
    pub population: usize,
    /// Sampling temperature tau of the parent selection softmax (fitness units)
    #[arg(long, value_name = "TAU", default_value_t = defaults::GA_TEMPERATURE, allow_negative_numbers = true)]
    #[serde(default = "ga_tau")]
    pub temperature: f32,
    /// Floor of the adaptive mutation probability (probability in [0, 1])
    #[arg(long, value_name = "P", default_value_t = defaults::GA_RHO_MIN, allow_negative_numbers = true)]
    #[serde(default = "ga_rho")]
    pub rho_min: f32,
    /// Floor of the adaptive mutation range (fraction of eps)
    #[arg(long, value_name = "FRACTION", default_value_t = defaults::GA_ALPHA_MIN, allow_negative_numbers = true)]
    #[serde(default = "ga_alpha")]
    pub alpha_min: f32,
    /// Move towards --target instead of away from the label
    #[arg(long)]
    #[serde(default)]
    pub targeted: bool,
    /// Target class of a targeted attack: a class index, random or next
    #[arg(long, value_name = "CLASS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// One attack with all its parameters; `attack = "<name>"` selects the variant in TOML, the
/// subcommand (`bbed attack pgd ...`) on the command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Subcommand)]
#[serde(tag = "attack", rename_all = "lowercase")]
pub enum AttackSpec {
    /// FGSM: one signed-gradient L-inf step (white-box, float engine)
    Fgsm(FgsmSpec),
    /// PGD: projected gradient steps in an L-inf or L2 ball (white-box, float engine)
    Pgd(PgdSpec),
    /// Carlini-Wagner L2 (white-box, float engine)
    Cw(CwSpec),
    /// DeepFool, multi-class L2 (white-box, float engine)
    #[command(name = "deepfool")]
    DeepFool(DeepFoolSpec),
    /// LocalSearch, query-only, untargeted (bit-exact engine for binarized variants)
    #[command(name = "localsearch")]
    LocalSearch(LocalSearchSpec),
    /// GenAttack, query-only genetic search (bit-exact engine for binarized variants)
    #[command(name = "genattack")]
    GenAttack(GenAttackSpec),
}

/// The attack names, as in TOML and on the command line.
pub const ATTACK_NAMES: [&str; 6] = ["fgsm", "pgd", "cw", "deepfool", "localsearch", "genattack"];

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

/// A probability in `[0, 1]`, or an error naming `context.field`.
pub(crate) fn check_probability(v: f32, field: &str, context: &str) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::input(
            format!("{context}.{field}"),
            format!("is a probability, must be in [0, 1], got {v}"),
        ))
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

    /// Scale in which the attack reports the norms of its perturbations: its budget's, or
    /// `report_scale` for the unbudgeted ones.
    pub fn report_scale(&self) -> Scale {
        match self {
            AttackSpec::Fgsm(s) => s.eps.scale,
            AttackSpec::Pgd(s) => s.eps.scale,
            AttackSpec::Cw(s) => s.report_scale,
            AttackSpec::DeepFool(s) => s.report_scale,
            AttackSpec::LocalSearch(s) => s.eps.scale,
            AttackSpec::GenAttack(s) => s.eps.scale,
        }
    }

    /// Checks what serde cannot: targeting consistency and parameter ranges. `context` prefixes
    /// the field path in errors (`context.eps`). This is the one place each rule lives: the
    /// command-line flags, spec files and sweep grids all pass through it. Every iteration count
    /// (`iterations`, `max_iterations`, `rounds`, `generations`) is at least 1: an attack of zero
    /// steps only evaluates its start point (PGD: a random point of the ball) and would be
    /// reported as if it were a robustness figure.
    pub fn validate(&self, context: &str) -> Result<()> {
        match self {
            AttackSpec::Fgsm(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                check_target(s.targeted, s.target, context)
            }
            AttackSpec::Pgd(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                s.step.validate(&format!("{context}.step"))?;
                check_count(s.iterations, "iterations", context)?;
                check_count(s.restarts, "restarts", context)?;
                check_target(s.targeted, s.target, context)
            }
            AttackSpec::Cw(s) => {
                check_nonneg(s.c, "c", context)?;
                check_positive(s.learning_rate, "learning_rate", context)?;
                check_nonneg(s.confidence, "confidence", context)?;
                check_count(s.binary_search_steps, "binary_search_steps", context)?;
                check_count(s.max_iterations, "max_iterations", context)?;
                check_target(s.targeted, s.target, context)
            }
            AttackSpec::DeepFool(s) => {
                check_count(s.max_iterations, "max_iterations", context)?;
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
                check_count(s.rounds, "rounds", context)?;
                check_positive(s.p, "p", context)?;
                check_nonneg(s.r, "r", context)?;
                check_count(s.t, "t", context)
            }
            AttackSpec::GenAttack(s) => {
                s.eps.validate(&format!("{context}.eps"))?;
                check_count(s.generations, "generations", context)?;
                if s.population < 2 {
                    return Err(Error::input(
                        format!("{context}.population"),
                        format!(
                            "needs at least 2 individuals (elite + child), got {}",
                            s.population
                        ),
                    ));
                }
                check_positive(s.temperature, "temperature", context)?;
                check_probability(s.rho_min, "rho_min", context)?;
                check_nonneg(s.alpha_min, "alpha_min", context)?;
                check_target(s.targeted, s.target, context)
            }
        }
    }

    /// Parses and validates one attack from TOML text (`attack = "pgd"` plus its fields);
    /// `context` (the file) starts every error, followed by the field path
    /// (`run.toml: pgd.eps.scale: ...`).
    pub fn from_toml(text: &str, context: &str) -> Result<AttackSpec> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| Error::input(context, e.to_string()))?;
        Self::from_table(table, context)
    }

    /// Builds and validates one attack from a parsed TOML table (see [`AttackSpec::from_toml`]).
    pub fn from_table(mut table: toml::Table, context: &str) -> Result<AttackSpec> {
        let names = ATTACK_NAMES.join(", ");
        let name = match table.remove("attack") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(Error::input(
                    format!("{context}: attack"),
                    format!("must be a name ({names}), got {other}"),
                ))
            }
            None => {
                return Err(Error::input(
                    format!("{context}: attack"),
                    format!("missing: attack = one of {names}"),
                ))
            }
        };
        let ctx = format!("{context}: {name}");
        let spec = match name.as_str() {
            "fgsm" => AttackSpec::Fgsm(fields(table, &ctx)?),
            "pgd" => AttackSpec::Pgd(fields(table, &ctx)?),
            "cw" => AttackSpec::Cw(fields(table, &ctx)?),
            "deepfool" => AttackSpec::DeepFool(fields(table, &ctx)?),
            "localsearch" => AttackSpec::LocalSearch(fields(table, &ctx)?),
            "genattack" => AttackSpec::GenAttack(fields(table, &ctx)?),
            _ => {
                return Err(Error::input(
                    format!("{context}: attack"),
                    format!("unknown attack {name:?}; expected one of {names}"),
                ))
            }
        };
        spec.validate(&ctx)?;
        Ok(spec)
    }
}

/// One attack's fields from its table; an error names `context.<field path>`.
fn fields<T: serde::de::DeserializeOwned>(table: toml::Table, context: &str) -> Result<T> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            context.to_string()
        } else {
            format!("{context}.{path}")
        };
        Error::input(at, e.inner().message().trim().to_string())
    })
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
