//! Black-box attacks (LocalSearch, GenAttack) against tiny models defined and trained here:
//! budget/box properties, query accounting against the model's own call counter, success rising
//! with budget and iterations, targeted success, determinism across thread counts, bad input.

use std::sync::atomic::{AtomicU64, Ordering};

use breakingbed::attack::genattack::{
    accuracy_at_generations, genattack, genattack_batch, pred_at_generation, GenAttackConfig,
};
use breakingbed::attack::local_search::{local_search, local_search_batch, LocalSearchConfig};
use breakingbed::attack::testing::flatten_normalized;
use breakingbed::attack::{ImageResult, Model, Normalization, Oracle, Scale};
use breakingbed::Error;
use ndarray::{s, Array1, Array2, Array3, Array4, ArrayView3, Axis};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

// ------------------------------------------------------------------------------------------
// Test models. Each counts the images it is asked to classify (summing batch sizes) with its
// own counter, independent of the oracle's.
// ------------------------------------------------------------------------------------------

struct Linear {
    shape: [usize; 3],
    norm: Normalization,
    w: Array2<f32>, // classes x features
    b: Array1<f32>,
    calls: AtomicU64,
}

struct Mlp {
    shape: [usize; 3],
    norm: Normalization,
    w1: Array2<f32>, // hidden x features
    b1: Array1<f32>,
    w2: Array2<f32>, // classes x hidden
    b2: Array1<f32>,
    calls: AtomicU64,
}

/// The trained models see pixels centred on mid-grey, as real models see normalised images.
fn train_norm() -> Normalization {
    Normalization {
        mean: vec![0.5; SHAPE[0]],
        std: vec![0.25; SHAPE[0]],
    }
}

impl Linear {
    fn forward(&self, f: &Array2<f32>) -> Array2<f32> {
        f.dot(&self.w.t()) + &self.b
    }
}

impl Model for Linear {
    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }
    fn num_classes(&self) -> usize {
        self.w.nrows()
    }
    fn normalization(&self) -> Normalization {
        self.norm.clone()
    }
    fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
        self.calls
            .fetch_add(x.len_of(Axis(0)) as u64, Ordering::SeqCst);
        self.forward(&flatten_normalized(x, &self.norm))
    }
}

impl Mlp {
    fn hidden(&self, f: &Array2<f32>) -> Array2<f32> {
        (f.dot(&self.w1.t()) + &self.b1).mapv(|v| v.max(0.0))
    }
}

impl Model for Mlp {
    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }
    fn num_classes(&self) -> usize {
        self.w2.nrows()
    }
    fn normalization(&self) -> Normalization {
        self.norm.clone()
    }
    fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
        self.calls
            .fetch_add(x.len_of(Axis(0)) as u64, Ordering::SeqCst);
        self.hidden(&flatten_normalized(x, &self.norm))
            .dot(&self.w2.t())
            + &self.b2
    }
}

// ------------------------------------------------------------------------------------------
// Synthetic data: a class-independent random texture (each element uniform in [0.1, 0.9], as
// natural images spread over the pixel range) plus a faint class pattern of +/-DELTA per element.
// The texture dominates each pixel's value, so LocalSearch's "push away from mid-grey" moves are
// unrelated to the class, as on real images.
// ------------------------------------------------------------------------------------------

const SHAPE: [usize; 3] = [3, 8, 8];
const K: usize = 4;
const DELTA: f32 = 0.03;

fn dataset(n: usize, seed: u64) -> (Array4<f32>, Vec<usize>) {
    let d: usize = SHAPE.iter().product();
    let mut proto_rng = ChaCha8Rng::seed_from_u64(1234);
    let patterns: Vec<Vec<f32>> = (0..K)
        .map(|_| {
            (0..d)
                .map(|_| {
                    if proto_rng.gen::<bool>() {
                        DELTA
                    } else {
                        -DELTA
                    }
                })
                .collect()
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array4::<f32>::zeros((n, SHAPE[0], SHAPE[1], SHAPE[2]));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % K;
        y.push(k);
        for (v, &m) in x.slice_mut(s![i, .., .., ..]).iter_mut().zip(&patterns[k]) {
            *v = (rng.gen_range(0.25f32..0.75) + m).clamp(0.0, 1.0);
        }
    }
    (x, y)
}

/// Softmax of logits minus one-hot labels: d(mean cross-entropy)/d(logits) times n.
fn ce_grad(z: &Array2<f32>, y: &[usize]) -> Array2<f32> {
    let mut g = z.clone();
    for (mut row, &k) in g.rows_mut().into_iter().zip(y) {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
        row[k] -= 1.0;
    }
    g
}

fn train_linear(x: &Array4<f32>, y: &[usize]) -> Linear {
    let f = flatten_normalized(x, &train_norm());
    let d = f.ncols();
    let mut m = Linear {
        shape: SHAPE,
        norm: train_norm(),
        w: Array2::zeros((K, d)),
        b: Array1::zeros(K),
        calls: AtomicU64::new(0),
    };
    let n = f.nrows() as f32;
    for _ in 0..300 {
        let g = ce_grad(&m.forward(&f), y);
        m.w = &m.w - &(g.t().dot(&f) * (0.5 / n));
        m.b = &m.b - &(g.sum_axis(Axis(0)) * (0.5 / n));
    }
    m
}

fn train_mlp(x: &Array4<f32>, y: &[usize], seed: u64) -> Mlp {
    let f = flatten_normalized(x, &train_norm());
    let (d, h) = (f.ncols(), 16);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n1 = Normal::new(0.0f32, (2.0 / d as f32).sqrt()).unwrap();
    let n2 = Normal::new(0.0f32, (2.0 / h as f32).sqrt()).unwrap();
    let mut m = Mlp {
        shape: SHAPE,
        norm: train_norm(),
        w1: Array2::from_shape_fn((h, d), |_| n1.sample(&mut rng)),
        b1: Array1::zeros(h),
        w2: Array2::from_shape_fn((K, h), |_| n2.sample(&mut rng)),
        b2: Array1::zeros(K),
        calls: AtomicU64::new(0),
    };
    let n = f.nrows() as f32;
    let lr = 0.2 / n;
    for _ in 0..400 {
        let a = m.hidden(&f);
        let g2 = ce_grad(&(a.dot(&m.w2.t()) + &m.b2), y);
        let mut g1 = g2.dot(&m.w2);
        g1.zip_mut_with(&a, |g, &act| {
            if act <= 0.0 {
                *g = 0.0
            }
        });
        m.w2 = &m.w2 - &(g2.t().dot(&a) * lr);
        m.b2 = &m.b2 - &(g2.sum_axis(Axis(0)) * lr);
        m.w1 = &m.w1 - &(g1.t().dot(&f) * lr);
        m.b1 = &m.b1 - &(g1.sum_axis(Axis(0)) * lr);
    }
    m
}

fn accuracy(model: &dyn Model, x: &Array4<f32>, y: &[usize]) -> f32 {
    let z = model.logits(x);
    let hits = z
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(r, &k)| breakingbed::attack::classifier::argmax(&r.to_vec()) == k)
        .count();
    hits as f32 / y.len() as f32
}

fn success_rate(results: &[ImageResult]) -> f32 {
    results.iter().filter(|r| r.success).count() as f32 / results.len() as f32
}

/// Test images the model classifies correctly (attacks on those are what the rates measure).
fn correctly_classified(model: &dyn Model, n: usize) -> (Array4<f32>, Vec<usize>) {
    let (x, y) = dataset(4 * n, 99);
    let z = model.logits(&x);
    let keep: Vec<usize> = (0..y.len())
        .filter(|&i| breakingbed::attack::classifier::argmax(&z.row(i).to_vec()) == y[i])
        .take(n)
        .collect();
    assert_eq!(keep.len(), n, "not enough correctly classified test images");
    let views: Vec<_> = keep.iter().map(|&i| x.index_axis(Axis(0), i)).collect();
    (
        ndarray::stack(Axis(0), &views).unwrap(),
        keep.iter().map(|&i| y[i]).collect(),
    )
}

fn trained_linear() -> Linear {
    let (x, y) = dataset(1600, 7);
    let m = train_linear(&x, &y);
    let (xt, yt) = dataset(200, 8);
    // The model must really have learned the task, or "success" would mean nothing.
    let acc = accuracy(&m, &xt, &yt);
    eprintln!("linear test accuracy {acc}");
    assert!(acc > 0.9, "linear model did not train");
    m
}

fn trained_mlp() -> Mlp {
    let (x, y) = dataset(1600, 7);
    let m = train_mlp(&x, &y, 5);
    let (xt, yt) = dataset(200, 8);
    let acc = accuracy(&m, &xt, &yt);
    eprintln!("MLP test accuracy {acc}");
    assert!(acc > 0.9, "MLP did not train");
    m
}

/// Rates must not fall as the attack gets stronger (up to one image of noise) and must rise
/// overall.
fn assert_rising(rates: &[f32], n: usize, what: &str) {
    for w in rates.windows(2) {
        assert!(
            w[1] + 1.0 / n as f32 + 1e-6 >= w[0],
            "{what}: rates {rates:?}"
        );
    }
    assert!(rates[rates.len() - 1] > rates[0], "{what}: rates {rates:?}");
}

// ------------------------------------------------------------------------------------------
// Success rises with budget / iterations.
// ------------------------------------------------------------------------------------------

#[test]
fn local_search_success_rises_with_budget_and_rounds() {
    let model = trained_linear();
    let n = 24;
    let (x, y) = correctly_classified(&model, n);
    let run = |eps: f32, rounds: usize| {
        let cfg = LocalSearchConfig {
            eps: Some(eps),
            scale: Scale::Pixel,
            rounds,
            ..LocalSearchConfig::default()
        };
        success_rate(
            &local_search_batch(&model, x.view(), &y, 0, &cfg, 11)
                .unwrap()
                .into_iter()
                .map(|o| o.result)
                .collect::<Vec<_>>(),
        )
    };
    // The paper's grid: eps 8, 16, 32 (pixel scale) with up to 200 rounds, plus a tiny budget.
    let by_eps: Vec<f32> = [2.0, 8.0, 16.0, 32.0]
        .iter()
        .map(|&e| run(e, 150))
        .collect();
    eprintln!("LocalSearch linear, success by eps 2/8/16/32 (150 rounds): {by_eps:?}");
    assert_rising(&by_eps, n, "LocalSearch by eps");
    assert!(by_eps[3] >= 2.0 / 3.0, "majority at eps 32: {by_eps:?}");
    let by_rounds: Vec<f32> = [1, 5, 50, 150].iter().map(|&r| run(32.0, r)).collect();
    eprintln!("LocalSearch linear, success by rounds 1/5/50/150 (eps 32): {by_rounds:?}");
    assert_rising(&by_rounds, n, "LocalSearch by rounds");
    // Same seed: a run of R rounds is the prefix of a longer one, so the 150-round run here and
    // above must agree exactly.
    assert_eq!(by_rounds[3], by_eps[3]);
}

#[test]
fn genattack_success_rises_with_budget_on_mlp() {
    let model = trained_mlp();
    let n = 24;
    let (x, y) = correctly_classified(&model, n);
    let by_eps: Vec<f32> = [2.0, 8.0, 16.0, 32.0]
        .iter()
        .map(|&eps| {
            let cfg = GenAttackConfig {
                eps,
                population: 6,
                generations: 100,
                ..GenAttackConfig::default()
            };
            let out = genattack_batch(&model, x.view(), &y, None, 0, &cfg, 5).unwrap();
            success_rate(&out.into_iter().map(|o| o.result).collect::<Vec<_>>())
        })
        .collect();
    eprintln!("GenAttack MLP, untargeted success by eps 2/8/16/32 (N=6, G=100): {by_eps:?}");
    assert_rising(&by_eps, n, "GenAttack by eps");
    assert!(by_eps[3] > 0.75, "majority at eps 32: {by_eps:?}");
}

/// The per-generation trace of one long run must agree with separate shorter runs (same seed:
/// a run with G generations is the prefix of a longer one), and OA must fall with generations.
#[test]
fn genattack_generation_table_matches_shorter_runs() {
    let model = trained_linear();
    let n = 16;
    let (x, y) = correctly_classified(&model, n);
    let targets: Vec<usize> = y.iter().map(|&k| (k + 1) % K).collect();
    let cfg = |generations| GenAttackConfig {
        eps: 16.0,
        population: 16,
        generations,
        ..GenAttackConfig::default()
    };
    let long: Vec<ImageResult> =
        genattack_batch(&model, x.view(), &y, Some(&targets), 0, &cfg(60), 3)
            .unwrap()
            .into_iter()
            .map(|o| o.result)
            .collect();
    let gens = [1, 5, 20, 60];
    let table = accuracy_at_generations(&long, &gens);
    eprintln!("GenAttack linear, targeted eps 16 N=16 table: {table:?}");
    for row in &table {
        let short: Vec<ImageResult> = genattack_batch(
            &model,
            x.view(),
            &y,
            Some(&targets),
            0,
            &cfg(row.generation),
            3,
        )
        .unwrap()
        .into_iter()
        .map(|o| o.result)
        .collect();
        let oa = short.iter().filter(|r| r.adv_pred == r.label).count() as f32 / n as f32;
        let ta = short.iter().filter(|r| r.success).count() as f32 / n as f32;
        assert_eq!(row.oa, oa, "OA at generation {}", row.generation);
        assert_eq!(row.ta, Some(ta), "TA at generation {}", row.generation);
    }
    let oa: Vec<f32> = table.iter().map(|r| r.oa).collect();
    let ta: Vec<f32> = table.iter().map(|r| r.ta.unwrap()).collect();
    assert_rising(&ta, n, "TA by generation");
    assert!(oa[3] < oa[0], "OA must fall: {oa:?}");
}

#[test]
fn targeted_genattack_reaches_target_at_large_eps() {
    let model = trained_mlp();
    let n = 24;
    let (x, y) = correctly_classified(&model, n);
    // Every image aimed at a class other than its own, cycling through all of them.
    let targets: Vec<usize> = y
        .iter()
        .enumerate()
        .map(|(i, &k)| (k + 1 + i % (K - 1)) % K)
        .collect();
    let cfg = GenAttackConfig {
        eps: 48.0,
        population: 16,
        generations: 200,
        ..GenAttackConfig::default()
    };
    let out = genattack_batch(&model, x.view(), &y, Some(&targets), 0, &cfg, 9).unwrap();
    let ta = out
        .iter()
        .filter(|o| o.result.adv_pred == targets[o.result.index])
        .count();
    for o in &out {
        assert_eq!(
            o.result.success,
            o.result.adv_pred == targets[o.result.index]
        );
        assert_eq!(o.result.target, Some(targets[o.result.index]));
    }
    eprintln!("GenAttack MLP, targeted eps 48 N=16 G=200: {ta}/{n} reach the target");
    assert!(ta as f32 > 0.75 * n as f32, "{ta}/{n}");
}

// ------------------------------------------------------------------------------------------
// Query accounting: the result's count equals the model's own counter.
// ------------------------------------------------------------------------------------------

#[test]
fn query_counts_match_model_counter() {
    let model = trained_linear();
    let (x, y) = correctly_classified(&model, 6);
    for (i, &label) in y.iter().enumerate() {
        let img = x.index_axis(Axis(0), i);
        let before = model.calls.load(Ordering::SeqCst);
        let oracle = Oracle::new(&model);
        let cfg = LocalSearchConfig {
            eps: Some(8.0),
            rounds: 20,
            ..LocalSearchConfig::default()
        };
        let r = local_search(&oracle, img, label, i, &cfg, 1)
            .unwrap()
            .result;
        let used = model.calls.load(Ordering::SeqCst) - before;
        assert_eq!(r.queries, Some(used));

        let before = model.calls.load(Ordering::SeqCst);
        let cfg = GenAttackConfig {
            eps: 4.0,
            population: 6,
            generations: 30,
            ..GenAttackConfig::default()
        };
        let r = genattack(&oracle, img, label, Some((label + 1) % K), i, &cfg, 1)
            .unwrap()
            .result;
        let used = model.calls.load(Ordering::SeqCst) - before;
        assert_eq!(r.queries, Some(used));
        // By the algorithm: 1 clean query, N for generation 1, N - 1 per later generation.
        let g = (r.trace.len() - 1) as u64;
        assert_eq!(used, 1 + 6 + (g - 1) * 5);
    }
    // The parallel drivers: per-image counts add up to the model's total.
    let before = model.calls.load(Ordering::SeqCst);
    let out = local_search_batch(
        &model,
        x.view(),
        &y,
        0,
        &LocalSearchConfig {
            rounds: 10,
            ..LocalSearchConfig::default()
        },
        2,
    )
    .unwrap();
    let sum: u64 = out.iter().map(|o| o.result.queries.unwrap()).sum();
    assert_eq!(sum, model.calls.load(Ordering::SeqCst) - before);
    let before = model.calls.load(Ordering::SeqCst);
    let out = genattack_batch(
        &model,
        x.view(),
        &y,
        None,
        0,
        &GenAttackConfig::foolbox3(),
        2,
    )
    .unwrap();
    let sum: u64 = out.iter().map(|o| o.result.queries.unwrap()).sum();
    assert_eq!(sum, model.calls.load(Ordering::SeqCst) - before);
}

// ------------------------------------------------------------------------------------------
// Determinism regardless of thread count.
// ------------------------------------------------------------------------------------------

#[test]
fn deterministic_with_one_and_two_threads() {
    let model = trained_mlp();
    let (x, y) = correctly_classified(&model, 8);
    let ls_cfg = LocalSearchConfig {
        eps: Some(16.0),
        rounds: 20,
        ..LocalSearchConfig::default()
    };
    let ga_cfg = GenAttackConfig {
        eps: 8.0,
        generations: 40,
        ..GenAttackConfig::default()
    };
    let run = |threads: usize, seed: u64| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let ls = local_search_batch(&model, x.view(), &y, 10, &ls_cfg, seed).unwrap();
            let ga = genattack_batch(&model, x.view(), &y, None, 10, &ga_cfg, seed).unwrap();
            (ls, ga)
        })
    };
    let (ls1, ga1) = run(1, 42);
    let (ls2, ga2) = run(2, 42);
    assert_eq!(ls1, ls2);
    assert_eq!(ga1, ga2);
    assert_eq!(ls1[3].result.index, 13);
    // A different seed gives a different search (the seed is really used).
    let (_, ga3) = run(2, 43);
    assert_ne!(
        ga1.iter().map(|o| &o.adversarial).collect::<Vec<_>>(),
        ga3.iter().map(|o| &o.adversarial).collect::<Vec<_>>()
    );
}

// ------------------------------------------------------------------------------------------
// Budget and box: properties over random images, models, budgets and scales.
// ------------------------------------------------------------------------------------------

fn random_linear(shape: [usize; 3], k: usize, norm: Normalization, seed: u64) -> Linear {
    let d: usize = shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Linear {
        shape,
        norm,
        w: Array2::from_shape_fn((k, d), |_| rng.gen_range(-3.0..3.0)),
        b: Array1::from_shape_fn(k, |_| rng.gen_range(-1.0..1.0)),
        calls: AtomicU64::new(0),
    }
}

fn scale_strategy() -> impl Strategy<Value = (Scale, f32)> {
    prop_oneof![
        (0.0f32..64.0).prop_map(|e| (Scale::Pixel, e)),
        (0.0f32..0.3).prop_map(|e| (Scale::Unit, e)),
        (0.0f32..1.0).prop_map(|e| (Scale::Normalized, e)),
    ]
}

/// `adv` inside the box and within `eps * unit[c]` of `x`; reported linf within eps.
fn check_budget(
    x: ArrayView3<f32>,
    adv: &Array3<f32>,
    eps: Option<f32>,
    unit: &[f32],
    r: &ImageResult,
) -> Result<(), TestCaseError> {
    for (((c, _, _), &a), &b) in x.indexed_iter().zip(adv.iter()) {
        prop_assert!((0.0..=1.0).contains(&b), "pixel {b} outside the box");
        if let Some(e) = eps {
            prop_assert!(
                (b - a).abs() <= e * unit[c] + 1e-6,
                "|{b} - {a}| > {}",
                e * unit[c]
            );
        }
    }
    if let Some(e) = eps {
        prop_assert!(
            r.linf <= e * (1.0 + 1e-4) + 1e-5,
            "reported linf {} > eps {e}",
            r.linf
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn outputs_stay_in_ball_and_box(
        seed in any::<u64>(),
        (scale, eps) in scale_strategy(),
        unbounded in any::<bool>(),
        c in 1usize..4,
        hw in 2usize..7,
        k in 2usize..5,
    ) {
        let shape = [c, hw, hw];
        let norm = Normalization {
            mean: vec![0.45; c],
            std: (0..c).map(|i| 0.2 + 0.05 * i as f32).collect(),
        };
        let unit = scale.unit_per_channel(&norm);
        let model = random_linear(shape, k, norm, seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 1);
        // Include exact 0 and 1 pixels so box clipping is exercised.
        let x = Array3::from_shape_fn((c, hw, hw), |_| match rng.gen_range(0..5) {
            0 => 0.0,
            1 => 1.0,
            _ => rng.gen::<f32>(),
        });
        let label = rng.gen_range(0..k);
        let oracle = Oracle::new(&model);

        let ls_eps = if unbounded { None } else { Some(eps) };
        let cfg = LocalSearchConfig { eps: ls_eps, scale, rounds: 8, d: 1, t: 2, ..LocalSearchConfig::default() };
        let out = local_search(&oracle, x.view(), label, 0, &cfg, seed).unwrap();
        check_budget(x.view(), &out.adversarial, ls_eps, &unit, &out.result)?;
        prop_assert_eq!(out.result.scale, scale);
        // The margin trace agrees with the predictions it sits beside.
        prop_assert_eq!(out.margins.len(), out.result.trace.len());
        for (m, p) in out.margins.iter().zip(&out.result.trace) {
            if *m > 0.0 {
                prop_assert_eq!(p.pred, label);
            } else if *m < 0.0 {
                prop_assert_ne!(p.pred, label);
            }
        }
        prop_assert_eq!(out.result.adv_pred, out.result.trace.last().unwrap().pred);

        let target = if unbounded { None } else { Some((label + 1) % k) };
        let cfg = GenAttackConfig { eps, scale, population: 4, generations: 8, ..GenAttackConfig::default() };
        let out = genattack(&oracle, x.view(), label, target, 0, &cfg, seed).unwrap();
        check_budget(x.view(), &out.adversarial, Some(eps), &unit, &out.result)?;
    }
}

// ------------------------------------------------------------------------------------------
// Bad input: clear errors naming the field, never a panic.
// ------------------------------------------------------------------------------------------

fn input_context(e: Error) -> String {
    match e {
        Error::Input { context, .. } => context,
        other => panic!("expected an input error, got {other}"),
    }
}

#[test]
fn bad_input_is_a_named_error() {
    let model = random_linear(SHAPE, K, Normalization::identity(3), 1);
    let oracle = Oracle::new(&model);
    let x = Array3::<f32>::from_elem((3, 8, 8), 0.5);
    let ga = |cfg: &GenAttackConfig, img: ArrayView3<f32>, label, target| {
        genattack(&oracle, img, label, target, 0, cfg, 0).map(|o| o.result)
    };
    let ok = GenAttackConfig::default();
    let neg = GenAttackConfig {
        eps: -1.0,
        ..ok.clone()
    };
    assert_eq!(
        input_context(ga(&neg, x.view(), 0, None).unwrap_err()),
        "genattack.eps"
    );
    let nan = GenAttackConfig {
        eps: f32::NAN,
        ..ok.clone()
    };
    assert_eq!(
        input_context(ga(&nan, x.view(), 0, None).unwrap_err()),
        "genattack.eps"
    );
    let pop = GenAttackConfig {
        population: 1,
        ..ok.clone()
    };
    assert_eq!(
        input_context(ga(&pop, x.view(), 0, None).unwrap_err()),
        "genattack.population"
    );
    let tau = GenAttackConfig {
        tau: 0.0,
        ..ok.clone()
    };
    assert_eq!(
        input_context(ga(&tau, x.view(), 0, None).unwrap_err()),
        "genattack.tau"
    );
    assert_eq!(
        input_context(ga(&ok, x.view(), 0, Some(0)).unwrap_err()),
        "genattack.target"
    );
    assert_eq!(
        input_context(ga(&ok, x.view(), 0, Some(K)).unwrap_err()),
        "genattack.target"
    );
    assert_eq!(
        input_context(ga(&ok, x.view(), K, None).unwrap_err()),
        "genattack.label"
    );
    let small = Array3::<f32>::from_elem((3, 4, 4), 0.5);
    assert_eq!(
        input_context(ga(&ok, small.view(), 0, None).unwrap_err()),
        "genattack.image"
    );
    let mut bright = x.clone();
    bright[[0, 0, 0]] = 255.0;
    assert_eq!(
        input_context(ga(&ok, bright.view(), 0, None).unwrap_err()),
        "genattack.image"
    );

    let ls =
        |cfg: &LocalSearchConfig| local_search(&oracle, x.view(), 0, 0, cfg, 0).map(|o| o.result);
    let ok = LocalSearchConfig::default();
    let neg = LocalSearchConfig {
        eps: Some(-8.0),
        ..ok.clone()
    };
    assert_eq!(input_context(ls(&neg).unwrap_err()), "local_search.eps");
    let t0 = LocalSearchConfig { t: 0, ..ok.clone() };
    assert_eq!(input_context(ls(&t0).unwrap_err()), "local_search.t");
    let p0 = LocalSearchConfig {
        p: -1.0,
        ..ok.clone()
    };
    assert_eq!(input_context(ls(&p0).unwrap_err()), "local_search.p");

    // A model whose normalisation has the wrong number of channels, with a normalized budget.
    let odd = random_linear(SHAPE, K, Normalization::identity(1), 1);
    let odd_oracle = Oracle::new(&odd);
    let cfg = LocalSearchConfig {
        eps: Some(0.1),
        scale: Scale::Normalized,
        ..ok.clone()
    };
    let e = local_search(&odd_oracle, x.view(), 0, 0, &cfg, 0).unwrap_err();
    assert_eq!(input_context(e), "local_search.scale");

    // Batch drivers: label count must match the images.
    let xb = Array4::<f32>::from_elem((2, 3, 8, 8), 0.5);
    let e = local_search_batch(&model, xb.view(), &[0], 0, &ok, 0).unwrap_err();
    assert_eq!(input_context(e), "local_search.labels");
    let e = genattack_batch(
        &model,
        xb.view(),
        &[0, 1],
        Some(&[1]),
        0,
        &GenAttackConfig::default(),
        0,
    )
    .unwrap_err();
    assert_eq!(input_context(e), "genattack.targets");

    // Configs from TOML: unknown fields are rejected, missing ones take the defaults.
    let cfg: LocalSearchConfig = toml::from_str("eps = 16.0\nscale = \"pixel\"").unwrap();
    assert_eq!(cfg.eps, Some(16.0));
    assert_eq!(cfg.rounds, 150);
    assert!(toml::from_str::<GenAttackConfig>("populaton = 6").is_err());
}

/// An image the model already gets wrong costs one query and is returned unchanged.
#[test]
fn misclassified_image_is_returned_unchanged() {
    let model = random_linear(SHAPE, K, Normalization::identity(3), 3);
    let x = Array3::<f32>::from_elem((3, 8, 8), 0.3);
    let pred = breakingbed::attack::classifier::argmax(
        &model
            .logits(&x.clone().insert_axis(Axis(0)))
            .row(0)
            .to_vec(),
    );
    let wrong = (pred + 1) % K;
    let oracle = Oracle::new(&model);
    let out = local_search(
        &oracle,
        x.view(),
        wrong,
        0,
        &LocalSearchConfig::default(),
        0,
    )
    .unwrap();
    assert!(out.result.success);
    assert_eq!(out.result.queries, Some(1));
    assert_eq!(out.adversarial, x);
    assert_eq!((out.result.l0, out.result.linf), (0, 0.0));
    assert_eq!(out.margins.len(), 1);
    assert!(out.margins[0] < 0.0);
}

/// Round one probes the initial set, `min(floor(10% of H*W), 128)` locations (Foolbox 2), so one
/// round costs exactly 1 (clean) + that many probes + 1 (updated image) queries.
#[test]
fn local_search_initial_set_is_ten_percent_capped_at_128() {
    for (hw, expected_init) in [(32usize, 102u64), (40, 128), (3, 1)] {
        let shape = [3, hw, hw];
        let model = random_linear(shape, K, Normalization::identity(3), hw as u64);
        let x = Array3::<f32>::from_elem((3, hw, hw), 0.4);
        let pred = breakingbed::attack::classifier::argmax(
            &model
                .logits(&x.clone().insert_axis(Axis(0)))
                .row(0)
                .to_vec(),
        );
        let oracle = Oracle::new(&model);
        let cfg = LocalSearchConfig {
            rounds: 1,
            eps: Some(8.0),
            ..LocalSearchConfig::default()
        };
        let r = local_search(&oracle, x.view(), pred, 0, &cfg, 4)
            .unwrap()
            .result;
        assert_eq!(r.queries, Some(1 + expected_init + 1), "{hw}x{hw}");
        // At most t = 5 pixels (all channels) change in one round.
        assert!(r.l0 <= 5 * 3, "l0 {}", r.l0);
    }
}

// ------------------------------------------------------------------------------------------
// Premise of the report's stress curves from traces (report::metrics, "Curve points from
// traces"): a run of N iterations stopped at iteration k is the run of k iterations.
// ------------------------------------------------------------------------------------------

/// Last trace point at or before `k` (the report's rule; iteration 0 is the clean image).
fn trace_pred_at(r: &ImageResult, k: usize) -> Option<usize> {
    r.trace
        .iter()
        .take_while(|p| p.iteration <= k)
        .last()
        .map(|p| p.pred)
}

/// Checks one image of a k-run against the same image of an N-run (N > k, same seed): the
/// k-run's trace is the N-run's trace up to k, its final prediction is `n_pred_at_k` (the
/// N-run's prediction at k by the report's rule), and where the N-run stopped by iteration k
/// the two runs are identical, image included (the N-run stores no image at k otherwise).
/// Returns whether the N-run went on beyond k.
fn check_prefix(
    short: (&ImageResult, &Array3<f32>),
    long: (&ImageResult, &Array3<f32>),
    k: usize,
    n_pred_at_k: usize,
) -> bool {
    let (s, s_img) = short;
    let (l, l_img) = long;
    let prefix: Vec<_> = l
        .trace
        .iter()
        .filter(|p| p.iteration <= k)
        .cloned()
        .collect();
    assert_eq!(s.trace, prefix, "image {}: trace of the k-run", s.index);
    assert_eq!(
        s.adv_pred, n_pred_at_k,
        "image {}: prediction at k",
        s.index
    );
    let went_on = l.trace.last().is_some_and(|p| p.iteration > k);
    if !went_on {
        assert_eq!(s, l, "image {}: stopped by k, results must agree", s.index);
        assert_eq!(
            s_img, l_img,
            "image {}: stopped by k, images must agree",
            s.index
        );
    }
    went_on
}

#[test]
fn local_search_stopped_at_k_rounds_is_the_k_round_run() {
    let model = trained_linear();
    let (x, y) = correctly_classified(&model, 24);
    let cfg = |rounds| LocalSearchConfig {
        eps: Some(16.0),
        scale: Scale::Pixel,
        rounds,
        ..LocalSearchConfig::default()
    };
    let long = local_search_batch(&model, x.view(), &y, 0, &cfg(50), 4).unwrap();
    let mut counts = Vec::new();
    for k in [1usize, 3, 10, 30] {
        let short = local_search_batch(&model, x.view(), &y, 0, &cfg(k), 4).unwrap();
        let (mut went_on, mut fooled_by_k) = (0, 0);
        for (s, l) in short.iter().zip(&long) {
            let at_k = trace_pred_at(&l.result, k).unwrap();
            fooled_by_k += usize::from(at_k != l.result.label);
            went_on += usize::from(check_prefix(
                (&s.result, &s.adversarial),
                (&l.result, &l.adversarial),
                k,
                at_k,
            ));
            assert_eq!(s.margins[..], l.margins[..s.margins.len()]);
        }
        eprintln!("LocalSearch k = {k}: {fooled_by_k} fooled by k, {went_on} ran on");
        counts.push(went_on);
    }
    // Both branches are exercised: images that stop by k and images that go on.
    assert!(counts.iter().any(|&c| c > 0) && counts.iter().any(|&c| c < long.len()));
}

#[test]
fn genattack_stopped_at_k_generations_is_the_k_generation_run() {
    let model = trained_mlp();
    let (x, y) = correctly_classified(&model, 24);
    let cfg = |generations| GenAttackConfig {
        eps: 8.0,
        population: 16,
        generations,
        ..GenAttackConfig::default()
    };
    let long = genattack_batch(&model, x.view(), &y, None, 0, &cfg(60), 6).unwrap();
    let mut counts = Vec::new();
    for k in [1usize, 5, 20, 40] {
        let short = genattack_batch(&model, x.view(), &y, None, 0, &cfg(k), 6).unwrap();
        let mut went_on = 0;
        for (s, l) in short.iter().zip(&long) {
            // The report reads GenAttack traces through its failure rule.
            let at_k = pred_at_generation(&l.result, k);
            went_on += usize::from(check_prefix(
                (&s.result, &s.adversarial),
                (&l.result, &l.adversarial),
                k,
                at_k,
            ));
        }
        eprintln!("GenAttack k = {k}: {went_on} of {} ran on", long.len());
        counts.push(went_on);
    }
    assert!(counts.iter().any(|&c| c > 0) && counts.iter().any(|&c| c < long.len()));
}
