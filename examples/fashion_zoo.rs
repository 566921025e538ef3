//! A small Fashion-MNIST zoo for the `bbed sweep` walkthrough until `bbed zoo` lands: resnet8 on
//! 1x28x28, trained briefly with plain SGD + momentum on a seeded subset of the training split.
//! Entries: vanilla, KD-KL (student distilled from the vanilla net, T = 4, alpha 0.5),
//! weight-pruned (50% smallest-magnitude conv weights zeroed, then fine-tuned with the mask) and
//! XNOR (latent weights through the straight-through estimator).
//!
//! `cargo run --release --example fashion_zoo -- <fashion-mnist dir> <zoo out dir> [train images] [epochs]`

use std::path::PathBuf;
use std::time::Instant;

use breakingbed::engine::exec::{ConvBackend, Mode, Net};
use breakingbed::engine::ops::loss::{kd_kl_loss, softmax_cross_entropy};
use breakingbed::engine::params::{self, Params};
use breakingbed::io::dataset::Dataset;
use breakingbed::variant::{self, VariantKind, VariantSpec};
use breakingbed::zoo::{ZooEntry, ZooManifest};
use ndarray::{Array2, ArrayD, Zip};

const MODEL: &str = "resnet8";
const INPUT: [usize; 3] = [1, 28, 28];

fn net_for(kind: VariantKind, seed: u64) -> Net {
    let n = breakingbed::model::resolve(MODEL, Some(INPUT), Some(10)).unwrap();
    let cn = variant::apply(&n, &VariantSpec::new(kind)).unwrap();
    let p = params::init(&cn, seed);
    Net::new(cn, p).unwrap()
}

/// One epoch of SGD (momentum 0.9); `teacher` adds the KD-KL term; `mask` is re-applied after
/// every step (pruned weights stay zero).
#[allow(clippy::too_many_arguments)]
fn epoch(
    net: &mut Net,
    vel: &mut Params,
    data: &Dataset,
    order: &[usize],
    lr: f32,
    teacher: Option<&Net>,
    mask: &Params,
) {
    let batch = 64;
    for chunk in order.chunks(batch) {
        let sub = data.subset(chunk).unwrap();
        let x = sub.to_unit(0..sub.len()).unwrap();
        let labels: Vec<usize> = sub.labels.iter().map(|&l| l as usize).collect();
        let bw = net.binarize(false).unwrap();
        let (z, tape) = net
            .forward(&x, Mode::Train, ConvBackend::Float, &bw, false)
            .unwrap();
        let (_, mut dz) = softmax_cross_entropy(&z, &labels).unwrap();
        if let Some(t) = teacher {
            let tbw = t.binarize(false).unwrap();
            let (tz, _) = t
                .forward(&x, Mode::Eval, ConvBackend::Float, &tbw, false)
                .unwrap();
            let (_, dk) = kd_kl_loss(&z, &tz, 4.0).unwrap();
            dz = dz * 0.5 + dk * 0.5;
        }
        let g = net.backward(&tape, &bw, &dz, true).unwrap().params;
        let stats: Vec<(String, _, _)> = net
            .bn_batch_stats(&tape)
            .into_iter()
            .map(|(n, s)| (n.to_string(), s.mean.clone(), s.var_unbiased.clone()))
            .collect();
        for (name, grad) in g {
            let v = vel
                .entry(name.clone())
                .or_insert_with(|| ArrayD::zeros(grad.raw_dim()));
            Zip::from(&mut *v)
                .and(&grad)
                .for_each(|v, &g| *v = 0.9 * *v + g);
            let p = net.params.get_mut(&name).unwrap();
            Zip::from(&mut *p).and(&*v).for_each(|p, &v| *p -= lr * v);
            if let Some(m) = mask.get(&name) {
                Zip::from(&mut *p).and(m).for_each(|p, &m| *p *= m);
            }
        }
        for (name, mean, var) in stats {
            let rm = net.params.get_mut(&format!("{name}.running_mean")).unwrap();
            Zip::from(&mut *rm)
                .and(&mean.into_dyn())
                .for_each(|r, &m| *r = 0.9 * *r + 0.1 * m);
            let rv = net.params.get_mut(&format!("{name}.running_var")).unwrap();
            Zip::from(&mut *rv)
                .and(&var.into_dyn())
                .for_each(|r, &v| *r = 0.9 * *r + 0.1 * v);
        }
    }
}

fn accuracy(net: &Net, data: &Dataset) -> f32 {
    let bw = net.binarize(false).unwrap();
    let mut ok = 0;
    for r in data.batch_ranges(500).unwrap() {
        let x = data.to_unit(r.clone()).unwrap();
        let (z, _): (Array2<f32>, _) = net
            .forward(&x, Mode::Eval, ConvBackend::Float, &bw, false)
            .unwrap();
        for (row, &l) in z.rows().into_iter().zip(data.labels_of(r).unwrap()) {
            ok += usize::from(breakingbed::attack::classifier::argmax(&row.to_vec()) == l as usize);
        }
    }
    ok as f32 / data.len() as f32
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data_dir = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    let n_train: usize = args.get(3).map_or(6000, |s| s.parse().unwrap());
    let epochs: usize = args.get(4).map_or(2, |s| s.parse().unwrap());
    std::fs::create_dir_all(&out).unwrap();
    let (train, test) = breakingbed::io::load_dataset(&data_dir).unwrap();
    let train = train.expect("train split").sample(n_train, 1).unwrap();
    let test = test.sample(2000, 2).unwrap();
    let mut entries = Vec::new();
    let mut save = |name: &str, kind: VariantKind, net: &Net, secs: f64| {
        let acc = accuracy(net, &test);
        let file = format!("{name}.safetensors");
        params::save(&net.cn, &net.params, &out.join(&file)).unwrap();
        println!(
            "{name}: test accuracy {:.1}% (2000 images), trained in {secs:.0} s",
            acc * 100.0
        );
        entries.push(ZooEntry {
            name: name.into(),
            model: MODEL.into(),
            input: Some(INPUT),
            classes: Some(10),
            variant: VariantSpec::new(kind),
            weights: file.into(),
            accuracy: Some(acc),
            cost: None,
            training: None,
        });
    };
    let no_mask = Params::new();
    let lr = |e: usize| if e + 1 == epochs { 0.01 } else { 0.05 };
    let run = |net: &mut Net, teacher: Option<&Net>, mask: &Params, seed: u64| {
        let t0 = Instant::now();
        let mut vel = Params::new();
        for e in 0..epochs {
            let order = train.shuffled_indices(seed + e as u64);
            epoch(net, &mut vel, &train, &order, lr(e), teacher, mask);
        }
        t0.elapsed().as_secs_f64()
    };

    let mut vanilla = net_for(VariantKind::Vanilla, 10);
    let s = run(&mut vanilla, None, &no_mask, 100);
    save("resnet8-vanilla", VariantKind::Vanilla, &vanilla, s);

    let mut kd = net_for(VariantKind::Kd, 11);
    let s = run(&mut kd, Some(&vanilla), &no_mask, 200);
    save("resnet8-kd", VariantKind::Kd, &kd, s);

    // Weight pruning: zero the 50% smallest |w| of every conv weight of the trained vanilla net,
    // then fine-tune with the mask.
    let mut pruned = net_for(VariantKind::Weight, 12);
    pruned.params = vanilla.params.clone();
    let mut mask = Params::new();
    for (name, w) in &pruned.params {
        if name.ends_with(".weight") && w.ndim() == 4 {
            let mut a: Vec<f32> = w.iter().map(|v| v.abs()).collect();
            a.sort_by(f32::total_cmp);
            let thr = a[a.len() / 2];
            mask.insert(
                name.clone(),
                w.mapv(|v| if v.abs() >= thr { 1.0 } else { 0.0 }),
            );
        }
    }
    for (name, m) in &mask {
        let p = pruned.params.get_mut(name).unwrap();
        Zip::from(&mut *p).and(m).for_each(|p, &m| *p *= m);
    }
    let s = run(&mut pruned, None, &mask, 300);
    save("resnet8-weight", VariantKind::Weight, &pruned, s);

    let mut xnor = net_for(VariantKind::Xnor, 13);
    let s = run(&mut xnor, None, &no_mask, 400);
    save("resnet8-xnor", VariantKind::Xnor, &xnor, s);

    ZooManifest {
        dataset: "fashion-mnist".into(),
        entries,
    }
    .save(&out)
    .unwrap();
}
