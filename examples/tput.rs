use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn net(kind: VariantKind) -> Net {
    let m = model::builtin("resnet20", None, None).unwrap();
    let cn = variant::apply(&m, &VariantSpec::new(kind)).unwrap();
    let p = params::init(&cn, 1);
    Net::new(cn, p).unwrap()
}
fn main() {
    let float = FloatEngine::new(net(VariantKind::Vanilla)).unwrap();
    let xnor = BinaryEngine::new(net(VariantKind::Xnor)).unwrap();
    for batch in [1usize, 128] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = Array4::from_shape_simple_fn((batch, 3, 32, 32), || rng.gen::<f32>());
        let reps = if batch == 1 { 2000 } else { 16 };
        let t = cpu();
        if std::env::var("ONLY").as_deref() != Ok("xnor") {
            for _ in 0..reps {
                float.try_logits(&x).unwrap();
            }
        }
        let bf = cpu() - t;
        let t = cpu();
        for _ in 0..reps {
            xnor.try_logits(&x).unwrap();
        }
        let bx = cpu() - t;
        let n = (batch * reps) as f64;
        println!(
            "batch {batch}: float {:.0} img/s, xnor {:.0} img/s (per CPU-second), ratio {:.2}",
            n / bf,
            n / bx,
            bf / bx
        );
    }
}
