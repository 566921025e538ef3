//! Simulator speed: slice operations per second (functional XNOR and MAC paths, and the
//! cycle-by-cycle schedule stepper), and one ResNet20-XNOR image simulated functionally
//! (each layer on random inputs of its shape; BN/sign between layers are not the simulator's).

use breakingbed::hw::Device;
use breakingbed::sim::{
    run_binary, run_fixed, step_cycles, BinaryInputs, LayerKind, LayerSpec, Mapping, PackedActs,
    PackedWeights, Precision,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn conv(in_c: usize, out_c: usize, stride: usize, hw: usize, p: Precision) -> LayerSpec {
    LayerSpec {
        name: format!("conv{in_c}_{out_c}_{hw}"),
        kind: LayerKind::Conv {
            in_c,
            out_c,
            kernel: 3,
            stride,
            padding: 1,
            in_h: hw,
            in_w: hw,
        },
        precision: p,
    }
}

fn resnet20(inner: Precision) -> Vec<LayerSpec> {
    let mut v = vec![conv(3, 16, 1, 32, Precision::Full)];
    let (mut c, mut hw) = (16, 32);
    for (stage, width) in [16usize, 32, 64].into_iter().enumerate() {
        for block in 0..3 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            v.push(conv(c, width, stride, hw, inner));
            hw /= stride;
            v.push(conv(width, width, 1, hw, inner));
            c = width;
        }
    }
    v.push(LayerSpec {
        name: "fc".into(),
        kind: LayerKind::Linear {
            in_f: 64,
            out_f: 10,
        },
        precision: Precision::Full,
    });
    v
}

/// Prepared inputs for one layer.
enum Prepared {
    Bin(LayerSpec, PackedWeights, PackedActs, Vec<f32>),
    Fix(LayerSpec, Vec<i32>, Vec<i32>),
}

fn prepare(spec: &LayerSpec, dev: &Device, rng: &mut ChaCha8Rng) -> Prepared {
    let g = spec.geometry().unwrap();
    match spec.precision {
        Precision::Binary { .. } => {
            let mut pm =
                |n: usize| -> Vec<i8> { (0..n).map(|_| if rng.gen() { 1 } else { -1 }).collect() };
            let lanes = dev.slice.xnor.lanes;
            let w =
                PackedWeights::from_pm1(&pm(g.o * g.reduction()), g.o, g.c, g.kh, lanes).unwrap();
            let a = PackedActs::from_pm1(&pm(g.c * g.h * g.w), g.c, g.h, g.w, lanes).unwrap();
            Prepared::Bin(spec.clone(), w, a, vec![1.0; g.o])
        }
        Precision::Full => {
            let h = 1i32 << (dev.slice.mac.width - 1);
            let w = (0..g.o * g.reduction())
                .map(|_| rng.gen_range(-h..h))
                .collect();
            let x = (0..g.c * g.h * g.w).map(|_| rng.gen_range(-h..h)).collect();
            Prepared::Fix(spec.clone(), w, x)
        }
    }
}

fn run(p: &Prepared, dev: &Device) -> usize {
    match p {
        Prepared::Bin(s, w, a, alpha) => run_binary(
            s,
            dev,
            &BinaryInputs {
                weights: std::slice::from_ref(w),
                acts: std::slice::from_ref(a),
                alpha,
                beta: &[1.0],
            },
        )
        .unwrap()
        .dots
        .len(),
        Prepared::Fix(s, w, x) => run_fixed(s, dev, w, x).unwrap().len(),
    }
}

fn bench(c: &mut Criterion) {
    let dev = Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zcu102.toml")).unwrap();
    let paper = Device::load(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/paper.toml")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    // Functional XNOR path: one slice operation = one 48-bit XNOR + popcount.
    let bspec = conv(64, 64, 1, 8, Precision::Binary { m: 1, n: 1 });
    let bp = prepare(&bspec, &dev, &mut rng);
    let ops = Mapping::new(&bspec, &dev).unwrap().work / 48;
    let mut g = c.benchmark_group("sim");
    g.throughput(Throughput::Elements(ops));
    g.bench_function("xnor_slice_ops", |b| b.iter(|| run(&bp, &dev)));

    // Functional MAC path on the paper's 2 x 16-bit slice: one slice op = one packed MAC.
    let fspec = conv(16, 16, 1, 16, Precision::Full);
    let fp = prepare(&fspec, &paper, &mut rng);
    let m = Mapping::new(&fspec, &paper).unwrap();
    g.throughput(Throughput::Elements(m.work / 2));
    g.bench_function("mac_slice_ops", |b| b.iter(|| run(&fp, &paper)));

    // Cycle-by-cycle stepper: slice-cycles per second.
    let sspec = conv(16, 16, 1, 16, Precision::Binary { m: 1, n: 1 });
    let small = Device::from_toml_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hw/zu3eg.toml"))
            .unwrap()
            .replace("dsp_count = 360", "dsp_count = 32"),
        "zu3eg-32",
    )
    .unwrap();
    let sm = Mapping::new(&sspec, &small).unwrap();
    g.throughput(Throughput::Elements(sm.compute_cycles() * 32));
    g.bench_function("stepper_slice_cycles", |b| {
        b.iter(|| step_cycles(&sm, Some(64)))
    });

    // ResNet20-XNOR, one image, functional.
    let net: Vec<Prepared> = resnet20(Precision::Binary { m: 1, n: 1 })
        .iter()
        .map(|s| prepare(s, &dev, &mut rng))
        .collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("resnet20_xnor_functional_image", |b| {
        b.iter(|| net.iter().map(|p| run(p, &dev)).sum::<usize>())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
