//! Batched white-box attacks: results (records and adversarial images) are bitwise the same
//! whether images run alone, in chunks of 7 or all together, on one thread or two (the float
//! engine: ResNet20 with reference weights, resnet8-XNOR at random init); each gradient costs one forward pass and the
//! records need no forward pass beyond the one at the adversarial images (counted by a wrapper
//! around the engine).

use breakingbed::attack::driver::{attack_images, Victim};
use breakingbed::attack::spec::AttackSpec;
use breakingbed::attack::testing::{Counting, LinearSoftmax};
use breakingbed::attack::{run_white, AttackOutput, ImageResult};
use breakingbed::engine::classifier::FloatEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{s, Array2, Array3, Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// ResNet20 with the repository's reference weights (float), or resnet8-XNOR at random init
/// (seed 2): both have small margins and varied predictions on random images, so the attacks
/// succeed on some images and fail on others.
fn engine(kind: VariantKind) -> FloatEngine {
    let (model, weights) = match kind {
        VariantKind::Vanilla => ("resnet20", true),
        _ => ("resnet8", false),
    };
    let n = breakingbed::model::builtin(model, None, None).unwrap();
    let cn = apply(&n, &VariantSpec::new(kind)).unwrap();
    let p = if weights {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        params::load(&cn, &dir.join("tests/data/resnet20_ref.safetensors")).unwrap()
    } else {
        params::init(&cn, 2)
    };
    FloatEngine::new(Net::new(cn, p).unwrap()).unwrap()
}

/// `n` images of 8-bit pixels in unit scale; labels are the model's own clean predictions for
/// even images (so the attacks have work to do) and the next class for odd ones (already
/// misclassified).
fn images(m: &FloatEngine, n: usize, seed: u64) -> (Array4<f32>, Vec<usize>) {
    use breakingbed::attack::Model;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen_range(0u8..=255) as f32 / 255.0);
    let z = m.logits(&x);
    let labels = (0..n)
        .map(|i| {
            let p = breakingbed::attack::classifier::argmax(&z.row(i).to_vec());
            if i % 2 == 0 {
                p
            } else {
                (p + 1) % 10
            }
        })
        .collect();
    (x, labels)
}

fn specs() -> Vec<AttackSpec> {
    [
        "attack = \"fgsm\"\neps = { value = 4, scale = \"pixel\" }\n",
        "attack = \"fgsm\"\neps = { value = 4, scale = \"pixel\" }\ntargeted = true\ntarget = \"random\"\n",
        "attack = \"pgd\"\neps = { value = 0.01, scale = \"normalized\" }\n\
         step = { value = 0.005, scale = \"normalized\" }\niterations = 3\nrestarts = 2\ntrace_every = 1\n",
        "attack = \"pgd\"\nnorm = \"l2\"\neps = { value = 0.3, scale = \"unit\" }\n\
         step = { value = 0.1, scale = \"unit\" }\niterations = 2\nrandom_start = false\n\
         targeted = true\ntarget = \"next\"\n",
        "attack = \"deepfool\"\nmax_iterations = 2\novershoot = 0\n",
        "attack = \"cw\"\nc = 0.1\nmax_iterations = 5\nbinary_search_steps = 2\nlearning_rate = 0.01\n",
        "attack = \"cw\"\nc = 0.5\nmax_iterations = 4\nbinary_search_steps = 2\ntargeted = true\ntarget = \"random\"\n",
    ]
    .iter()
    .map(|t| AttackSpec::from_toml(t, "test").unwrap())
    .collect()
}

/// Every output of `spec` over the images, `chunk` images per call of the driver.
fn run(
    m: &FloatEngine,
    spec: &AttackSpec,
    x: &Array4<f32>,
    labels: &[usize],
    chunk: usize,
) -> Vec<(ImageResult, Array3<f32>)> {
    let n = labels.len();
    let mut out = Vec::new();
    for lo in (0..n).step_by(chunk) {
        let hi = (lo + chunk).min(n);
        let idx: Vec<usize> = (lo..hi).map(|i| 100 + i).collect();
        let got: Vec<AttackOutput> = attack_images(
            Victim::WhiteBox(m),
            spec,
            x.slice(s![lo..hi, .., .., ..]),
            &labels[lo..hi],
            &idx,
            5,
        )
        .unwrap();
        out.extend(got.into_iter().map(|o| (o.result, o.adv)));
    }
    out
}

fn bits(v: &[(ImageResult, Array3<f32>)]) -> Vec<(String, Vec<u32>)> {
    v.iter()
        .map(|(r, a)| {
            (
                serde_json::to_string(r).unwrap(),
                a.iter().map(|f| f.to_bits()).collect(),
            )
        })
        .collect()
}

#[test]
fn white_box_results_do_not_depend_on_batching_or_threads() {
    let specs = specs();
    // (successes, images) per spec over both networks.
    let mut wins = vec![(0usize, 0usize); specs.len()];
    for kind in [VariantKind::Vanilla, VariantKind::Xnor] {
        let m = engine(kind);
        let (x, labels) = images(&m, 9, 11);
        for (k, spec) in specs.iter().enumerate() {
            let pool = |t: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
            };
            let all = pool(2).install(|| bits(&run(&m, spec, &x, &labels, 9)));
            let name = format!("{kind:?} {}", spec.name());
            for (threads, chunk) in [(1, 1), (2, 7), (1, 9)] {
                let got = pool(threads).install(|| bits(&run(&m, spec, &x, &labels, chunk)));
                assert_eq!(got.len(), all.len());
                for (i, (g, a)) in got.iter().zip(&all).enumerate() {
                    assert_eq!(g.0, a.0, "{name}: record of image {i}, chunk {chunk}");
                    assert!(g.1 == a.1, "{name}: adversarial image {i}, chunk {chunk}");
                }
            }
            // The attacks did something: some image changed, and (below; every attack but
            // FGSM, whose step is always taken) some images succeeded and some not, so both
            // paths of the restart / active-set bookkeeping ran.
            let outs = run(&m, spec, &x, &labels, 9);
            let changed = outs
                .iter()
                .enumerate()
                .any(|(i, (_, a))| *a != x.index_axis(Axis(0), i));
            assert!(changed, "{name}: no image was perturbed");
            wins[k].0 += outs.iter().filter(|(r, _)| r.success).count();
            wins[k].1 += outs.len();
        }
    }
    for (spec, (won, of)) in specs.iter().zip(wins) {
        assert!(
            spec.name() == "fgsm" || (0 < won && won < of),
            "{}: {won} of {of} succeeded",
            spec.name()
        );
    }
}

/// Forward and backward passes (in images) of one white-box run.
fn passes(spec: &str, n: usize) -> (u64, u64) {
    let m = Counting::new(LinearSoftmax::random([3, 4, 4], 4, 3));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Array4::from_shape_fn((n, 3, 4, 4), |_| rng.gen_range(0.2f32..0.8));
    // Labels: the clean predictions (uncounted), so no image starts out adversarial.
    use breakingbed::attack::Model;
    let z = m.inner.logits(&x);
    let labels: Vec<usize> = (0..n)
        .map(|i| breakingbed::attack::classifier::argmax(&z.row(i).to_vec()))
        .collect();
    let spec = AttackSpec::from_toml(spec, "test").unwrap();
    run_white(&m, &spec, &x, &labels, 0).unwrap();
    (m.logit_images(), m.vjp_images())
}

#[test]
fn one_forward_pass_per_gradient_and_none_extra_at_the_end() {
    // FGSM: the gradient's forward pass (which gives the clean logits) and one at the
    // adversarial images.
    assert_eq!(
        passes(
            "attack = \"fgsm\"\neps = { value = 4, scale = \"pixel\" }\n",
            5
        ),
        (10, 5)
    );
    // PGD from the clean image, eps 0 (nothing succeeds, so no restart is skipped): one forward
    // pass per gradient plus one at the end of each restart; the clean logits come from the
    // first gradient's pass.
    let pgd = "attack = \"pgd\"\neps = { value = 0, scale = \"pixel\" }\n\
               step = { value = 1, scale = \"pixel\" }\niterations = 4\nrestarts = 2\n\
               random_start = false\n";
    assert_eq!(passes(pgd, 3), (3 * (2 * (4 + 1)), 3 * 2 * 4));
    // With a random start the clean images need one forward pass of their own.
    let pgd_rs = pgd.replace("random_start = false", "random_start = true");
    assert_eq!(passes(&pgd_rs, 3), (3 * (2 * (4 + 1) + 1), 3 * 2 * 4));
}

#[test]
fn first_gradient_is_the_masking_check() {
    // A model with no input gradient: every white-box attack flags every image, from the
    // gradient it computes anyway (the pass counts above show no extra one).
    let mut m = LinearSoftmax::random([3, 4, 4], 4, 3);
    m.w = Array2::zeros((4, 48));
    m.b = ndarray::Array1::from(vec![1.0, 0.0, 0.0, 0.0]);
    let x = Array4::from_elem((2, 3, 4, 4), 0.5f32);
    for spec in [
        "attack = \"fgsm\"\neps = { value = 4, scale = \"pixel\" }\n",
        "attack = \"deepfool\"\n",
        "attack = \"cw\"\nmax_iterations = 3\nbinary_search_steps = 1\n",
    ] {
        let spec = AttackSpec::from_toml(spec, "test").unwrap();
        let res = run_white(&m, &spec, &x, &[0, 0], 0).unwrap();
        for r in &res {
            let w = r.warning.as_deref().unwrap_or("");
            assert!(w.contains("gradient masking"), "{}: {w:?}", spec.name());
        }
    }
}
