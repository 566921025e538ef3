//! A failed GenAttack leaves the image unchanged: on the bit-exact engine (resnet8-XNOR, random
//! init, weak budget so most runs fail) every record is either a success or the clean image
//! with the clean prediction, so accuracy after a targeted run never exceeds the clean
//! accuracy. Before the fix a failed run returned its elite (noise inside the ball), whose
//! prediction differed from the clean one for many images.

use breakingbed::attack::driver::{attack_images, Victim};
use breakingbed::attack::spec::AttackSpec;
use breakingbed::attack::{summarize, Model};
use breakingbed::engine::classifier::BinaryEngine;
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use ndarray::{Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn failed_genattack_returns_the_clean_image_and_accuracy_cannot_rise() {
    let n = breakingbed::model::builtin("resnet8", None, None).unwrap();
    let cn = apply(&n, &VariantSpec::new(VariantKind::Xnor)).unwrap();
    let be = BinaryEngine::new(Net::new(cn.clone(), params::init(&cn, 1)).unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let count = 40;
    let x = Array4::from_shape_fn((count, 3, 32, 32), |_| {
        rng.gen_range(0u8..=255) as f32 / 255.0
    });
    // Half the labels are the model's clean prediction, so both kinds of images occur.
    let z = be.logits(&x);
    let labels: Vec<usize> = (0..count)
        .map(|i| {
            let p = breakingbed::attack::classifier::argmax(&z.row(i).to_vec());
            if i % 2 == 0 {
                p
            } else {
                (p + 3) % 10
            }
        })
        .collect();
    let indices: Vec<usize> = (0..count).collect();
    let spec = AttackSpec::from_toml(
        "attack = \"genattack\"\neps = { value = 4, scale = \"pixel\" }\ngenerations = 2\n\
         population = 6\ntargeted = true\ntarget = \"random\"\n",
        "test",
    )
    .unwrap();
    let outs = attack_images(Victim::Query(&be), &spec, x.view(), &labels, &indices, 1).unwrap();
    let mut failed_elite_moved = 0;
    for (i, o) in outs.iter().enumerate() {
        let r = &o.result;
        if r.success {
            assert_eq!(Some(r.adv_pred), r.target, "image {i}");
            continue;
        }
        assert_eq!(
            o.adv,
            x.index_axis(Axis(0), i),
            "image {i}: failed run changed the image"
        );
        assert_eq!((r.l0, r.adv_pred), (0, r.clean_pred), "image {i}");
        // The last elite's prediction (what the old code reported) differed from the clean one.
        if r.trace.last().is_some_and(|t| t.pred != r.clean_pred) {
            failed_elite_moved += 1;
        }
    }
    let s = summarize(&outs.iter().map(|o| o.result.clone()).collect::<Vec<_>>());
    assert!(s.accuracy_adv <= s.accuracy_clean, "{s:?}");
    assert!(
        failed_elite_moved > 0,
        "no failed run whose elite changed the prediction: the test does not see the old bug"
    );
}
