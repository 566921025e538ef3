//! Attacks on the real engines (resnet8, random init; XNOR and vanilla variants): black-box
//! query counts on the bit-exact engine equal an independent counter wrapped around the engine;
//! which engine `bbed attack` picks; every attack's output stays in its epsilon ball (recomputed
//! here from the images, per channel) and in the pixel box; results do not depend on the number
//! of threads.

use std::sync::atomic::{AtomicU64, Ordering};

use breakingbed::attack::driver::{attack_image, Engines};
use breakingbed::attack::genattack::{genattack, genattack_batch, GenAttackConfig};
use breakingbed::attack::local_search::{local_search, local_search_batch, LocalSearchConfig};
use breakingbed::attack::spec::AttackSpec;
use breakingbed::attack::{run_white_with_images, Model, Normalization, Oracle, Scale};
use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{Array2, Array4, ArrayView3, Axis};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn net(kind: VariantKind) -> Net {
    let n = breakingbed::model::builtin("resnet8", None, None).unwrap();
    let cn = apply(&n, &VariantSpec::new(kind)).unwrap();
    let p = params::init(&cn, 1);
    Net::new(cn, p).unwrap()
}

/// `n` images of 8-bit pixels in unit scale, labels `i % 10`.
fn images(n: usize, seed: u64) -> (Array4<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen_range(0u8..=255) as f32 / 255.0);
    (x, (0..n).map(|i| i % 10).collect())
}

/// Counts every image the attack sends to the engine, independently of the Oracle's counter.
struct Counting<'a> {
    inner: &'a dyn Model,
    images: AtomicU64,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a dyn Model) -> Self {
        Counting {
            inner,
            images: AtomicU64::new(0),
        }
    }
    fn count(&self) -> u64 {
        self.images.load(Ordering::SeqCst)
    }
}

impl Model for Counting<'_> {
    fn input_shape(&self) -> [usize; 3] {
        self.inner.input_shape()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn normalization(&self) -> Normalization {
        self.inner.normalization()
    }
    fn logits(&self, x: &Array4<f32>) -> Array2<f32> {
        self.images
            .fetch_add(x.len_of(Axis(0)) as u64, Ordering::SeqCst);
        self.inner.logits(x)
    }
}

fn ga_cfg(generations: usize) -> GenAttackConfig {
    GenAttackConfig {
        generations,
        eps: 8.0,
        scale: Scale::Pixel,
        ..GenAttackConfig::default()
    }
}

fn ls_cfg() -> LocalSearchConfig {
    LocalSearchConfig {
        rounds: 6,
        eps: Some(16.0),
        ..LocalSearchConfig::default()
    }
}

#[test]
fn black_box_queries_on_the_binary_engine_equal_an_independent_counter() {
    let engine = BinaryEngine::new(net(VariantKind::Xnor)).unwrap();
    let (x, labels) = images(3, 11);
    for (k, &label) in labels.iter().enumerate() {
        let img = x.index_axis(Axis(0), k);
        let target = Some((label + 1) % 10);

        let counter = Counting::new(&engine);
        let r = genattack(
            &Oracle::new(&counter),
            img,
            labels[k],
            target,
            k,
            &ga_cfg(12),
            5,
        )
        .unwrap()
        .result;
        assert!(counter.count() > 1, "the attack queried the population");
        assert_eq!(r.queries, Some(counter.count()), "genattack image {k}");

        let counter = Counting::new(&engine);
        let r = local_search(&Oracle::new(&counter), img, label, k, &ls_cfg(), 5)
            .unwrap()
            .result;
        assert_eq!(r.queries, Some(counter.count()), "local search image {k}");
    }
}

/// The attack driver picks the bit-exact engine for a black-box attack on XNOR and reports the
/// same query count as the library attack run through a counting wrapper on a separately built
/// bit-exact engine (same weights, seed and image index).
#[test]
fn cli_driver_runs_black_box_on_the_binary_engine_with_counted_queries() {
    let spec = AttackSpec::from_toml(
        "attack = \"genattack\"\neps = { value = 8, scale = \"pixel\" }\ngenerations = 12\n\
         targeted = true\ntarget = \"next\"\n",
        "test",
    )
    .unwrap();
    let engine = Engines::for_attack(net(VariantKind::Xnor), &spec).unwrap();
    assert_eq!(engine.kind(&spec).name(), "binary");
    let victim = engine.victim(&spec).unwrap();
    let reference = BinaryEngine::new(net(VariantKind::Xnor)).unwrap();
    let (x, labels) = images(3, 12);
    for (k, &label) in labels.iter().enumerate() {
        let img = x.index_axis(Axis(0), k);
        let r = attack_image(victim, &spec, img, label, 40 + k, 9)
            .unwrap()
            .result;
        let counter = Counting::new(&reference);
        let target = r.target;
        assert_eq!(target, Some((labels[k] + 1) % 10));
        let lib = genattack(
            &Oracle::new(&counter),
            img,
            labels[k],
            target,
            40 + k,
            &ga_cfg(12),
            9,
        )
        .unwrap()
        .result;
        assert_eq!(r.queries, Some(counter.count()));
        assert_eq!(r, lib);
    }

    let pgd = AttackSpec::from_toml(
        "attack = \"pgd\"\neps = { value = 8, scale = \"pixel\" }\n\
         step = { value = 2, scale = \"pixel\" }\niterations = 2\n",
        "test",
    )
    .unwrap();
    assert_eq!(
        Engines::for_attack(net(VariantKind::Xnor), &pgd)
            .unwrap()
            .kind(&pgd)
            .name(),
        "float"
    );
    assert_eq!(
        Engines::for_attack(net(VariantKind::Vanilla), &spec)
            .unwrap()
            .kind(&spec)
            .name(),
        "float"
    );
}

/// Per-channel coordinates `z = (adv - x) / s[c]` in the budget's scale, computed here.
fn z_norms(x: ArrayView3<f32>, adv: ArrayView3<f32>, s: &[f32]) -> (f64, f64) {
    let (mut linf, mut l2) = (0f64, 0f64);
    for (c, sc) in s.iter().enumerate() {
        let (xc, ac) = (x.index_axis(Axis(0), c), adv.index_axis(Axis(0), c));
        for (a, b) in ac.iter().zip(xc.iter()) {
            let z = (*a as f64 - *b as f64).abs() / *sc as f64;
            linf = linf.max(z);
            l2 += z * z;
        }
    }
    (linf, l2.sqrt())
}

fn in_box(adv: ArrayView3<f32>) -> bool {
    adv.iter().all(|v| (0.0..=1.0).contains(v))
}

fn unit(scale: Scale) -> Vec<f32> {
    match scale {
        Scale::Pixel => vec![1.0 / 255.0; 3],
        Scale::Unit => vec![1.0; 3],
        // Published CIFAR-10 channel standard deviations (the built-in models' normalisation).
        Scale::Normalized => vec![0.2470, 0.2435, 0.2616],
    }
}

fn scale_name(s: Scale) -> &'static str {
    match s {
        Scale::Pixel => "pixel",
        Scale::Unit => "unit",
        Scale::Normalized => "normalized",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// FGSM and PGD (L-inf and L2) on the float engine of XNOR and vanilla (STE gradients for
    /// XNOR): in the ball, in the box, reported norms equal the recomputed ones.
    #[test]
    fn white_box_attacks_on_the_engines_stay_in_ball_and_box(
        eps in 0.05f32..1.5, scale_i in 0usize..3, l2 in any::<bool>(), xnor in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let scale = [Scale::Pixel, Scale::Unit, Scale::Normalized][scale_i];
        // Pixel budgets from the same draw, on the 0-255 grid's usual range.
        let eps = if scale == Scale::Pixel { eps * 16.0 } else { eps };
        let kind = if xnor { VariantKind::Xnor } else { VariantKind::Vanilla };
        let fe = FloatEngine::new(net(kind)).unwrap();
        let (x, labels) = images(2, seed);
        let sc = scale_name(scale);
        let norm = if l2 { "l2" } else { "linf" };
        let specs = [
            format!("attack = \"fgsm\"\neps = {{ value = {eps}, scale = \"{sc}\" }}\n"),
            format!(
                "attack = \"pgd\"\nnorm = \"{norm}\"\neps = {{ value = {eps}, scale = \"{sc}\" }}\n\
                 step = {{ value = {}, scale = \"{sc}\" }}\niterations = 3\n", eps / 2.0
            ),
        ];
        for (i, text) in specs.iter().enumerate() {
            let spec = AttackSpec::from_toml(text, "test").unwrap();
            let (res, adv) = run_white_with_images(&fe, &spec, &x, &labels, seed).unwrap();
            let is_l2 = i == 1 && l2;
            for (k, r) in res.iter().enumerate() {
                let (a, x0) = (adv.index_axis(Axis(0), k), x.index_axis(Axis(0), k));
                prop_assert!(in_box(a));
                let (linf, l2n) = z_norms(x0, a, &unit(scale));
                let size = if is_l2 { l2n } else { linf };
                prop_assert!(size <= eps as f64 * (1.0 + 1e-4) + 1e-5, "{text}: {size} > {eps}");
                prop_assert!((r.linf as f64 - linf).abs() <= 1e-3 * linf.max(1.0), "{} vs {linf}", r.linf);
                prop_assert!((r.l2 as f64 - l2n).abs() <= 1e-3 * l2n.max(1.0), "{} vs {l2n}", r.l2);
            }
        }
    }

    /// GenAttack and LocalSearch on the bit-exact XNOR engine: in the L-inf ball and the box.
    #[test]
    fn black_box_attacks_on_the_binary_engine_stay_in_ball_and_box(
        eps in 1.0f32..32.0, seed in 0u64..1000,
    ) {
        let be = BinaryEngine::new(net(VariantKind::Xnor)).unwrap();
        let (x, labels) = images(2, seed);
        let s = unit(Scale::Pixel);
        let ga = GenAttackConfig { eps, ..ga_cfg(8) };
        let outs = genattack_batch(&be, x.view(), &labels, None, 0, &ga, seed).unwrap();
        for (k, o) in outs.iter().enumerate() {
            let (x0, a) = (x.index_axis(Axis(0), k), o.adversarial.view());
            prop_assert!(in_box(a));
            let (linf, _) = z_norms(x0, a, &s);
            prop_assert!(linf <= eps as f64 * (1.0 + 1e-4) + 1e-4, "genattack {linf} > {eps}");
        }
        let ls = LocalSearchConfig { eps: Some(eps), ..ls_cfg() };
        let outs = local_search_batch(&be, x.view(), &labels, 0, &ls, seed).unwrap();
        for (k, o) in outs.iter().enumerate() {
            let (x0, a) = (x.index_axis(Axis(0), k), o.adversarial.view());
            prop_assert!(in_box(a));
            let (linf, _) = z_norms(x0, a, &s);
            prop_assert!(linf <= eps as f64 * (1.0 + 1e-4) + 1e-4, "local search {linf} > {eps}");
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let be = BinaryEngine::new(net(VariantKind::Xnor)).unwrap();
    let fe = FloatEngine::new(net(VariantKind::Xnor)).unwrap();
    let (x, labels) = images(4, 3);
    let pgd = AttackSpec::from_toml(
        "attack = \"pgd\"\neps = { value = 0.5, scale = \"normalized\" }\n\
         step = { value = 0.25, scale = \"normalized\" }\niterations = 3\n",
        "test",
    )
    .unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let ga = genattack_batch(&be, x.view(), &labels, None, 0, &ga_cfg(6), 4).unwrap();
            let w = run_white_with_images(&fe, &pgd, &x, &labels, 4).unwrap();
            (ga.into_iter().map(|o| o.result).collect::<Vec<_>>(), w.0)
        })
    };
    assert_eq!(run(1), run(2));
}
