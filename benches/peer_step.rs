//! One timed piece of work of the ResNet20 engine, for the peer scripts under `benches/peers/`
//! (PyTorch, JAX, onnxruntime): they run this binary and their own framework on the same
//! weights and images, interleaved on one pinned core, and print the ratios. Not a criterion
//! bench: it prints one JSON line per call so a script can read it.
//!
//! ```text
//! peer_step MODE [--weights W.safetensors] [--data D.safetensors] [--batch N] [--steps N] [--warmup N]
//! MODE: logits-float | logits-xnor      eval-mode logits of the first --batch images (JSON)
//!       loss-float | loss-xnor          train-mode loss of one batch and a few gradient norms
//!       train-float                     vanilla ResNet20, SGD (momentum 0.9, wd 1e-4, lr 0.1)
//!       train-xnor                      XNOR ResNet20 (STE), Adam (lr 1e-3)
//!       grad-float                      eval-mode logits + d(cross-entropy)/d(input), the
//!                                       attack gradient path (no parameter gradients)
//!       grad-fused                      the same through Net::logits_and_input_grad
//!       grad-values                     that gradient's values (flattened NCHW) and the loss
//!       infer-float | infer-xnor        tape-free inference (XNOR on the bitwise engine)
//!       popcount                        this core's XNOR + popcount rates: streaming two
//!                                       L1-resident vectors, and the register-only peak of the
//!                                       vector ALUs, which bounds ResNet20-XNOR images/s (40.1 M
//!                                       binary MACs each)
//! ```
//!
//! `--data` holds `images` (F32 `[N,3,32,32]`, unit scale) and `labels` (I64 or F32 `[N]`);
//! without it, seeded random images and labels. `--weights` is a vanilla ResNet20 state dict
//! (the XNOR net takes its latent weights from it); without it, seeded random init.
//! Timing: `--warmup` untimed steps, then `--steps` timed ones; `img_per_s` = images / seconds.
//! Threads: rayon's default (set `RAYON_NUM_THREADS=1` and pin with `taskset`).

use std::path::PathBuf;
use std::time::Instant;

use breakingbed::engine::classifier::{BinaryEngine, FloatEngine};
use breakingbed::engine::exec::Net;
use breakingbed::engine::ops::loss::softmax_cross_entropy as cross_entropy;
use breakingbed::engine::params;
use breakingbed::model;
use breakingbed::train::net::NetModel;
use breakingbed::train::optim::{Optimizer, OptimizerConfig};
use breakingbed::train::r#loop::Trainable;
use breakingbed::variant::{self, CompressedNetwork, VariantKind, VariantSpec};
use ndarray::{s, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Args {
    mode: String,
    weights: Option<PathBuf>,
    data: Option<PathBuf>,
    batch: usize,
    steps: usize,
    warmup: usize,
}

fn parse() -> Args {
    let mut a = Args {
        mode: String::new(),
        weights: None,
        data: None,
        batch: 128,
        steps: 5,
        warmup: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| fail(&format!("{k} needs a value")))
        };
        let mut count = |name: &str| -> usize {
            let v = val();
            v.parse()
                .unwrap_or_else(|_| fail(&format!("{name} takes a count, got {v:?}")))
        };
        match k.as_str() {
            "--weights" => a.weights = Some(val().into()),
            "--data" => a.data = Some(val().into()),
            "--batch" => a.batch = count("--batch"),
            "--steps" => a.steps = count("--steps"),
            "--warmup" => a.warmup = count("--warmup"),
            // cargo bench passes --bench to harness-less benches.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            m if !m.starts_with('-') && a.mode.is_empty() => a.mode = m.to_string(),
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if !MODES.contains(&a.mode.as_str()) {
        fail(&format!("unknown or missing MODE {:?}", a.mode));
    }
    a
}

/// The usage text (the module doc's).
const USAGE: &str = "usage: peer_step MODE [--weights W.safetensors] [--data D.safetensors] [--batch N] [--steps N] [--warmup N]
MODE: logits-float | logits-xnor | loss-float | loss-xnor | train-float | train-xnor |
      grad-float | grad-fused | grad-values | infer-float | infer-xnor | popcount
(see the doc comment of benches/peer_step.rs)";

const MODES: [&str; 12] = [
    "logits-float",
    "logits-xnor",
    "loss-float",
    "loss-xnor",
    "train-float",
    "train-xnor",
    "grad-float",
    "grad-fused",
    "grad-values",
    "infer-float",
    "infer-xnor",
    "popcount",
];

/// Bad command line: the reason and the usage on stderr, exit status 2.
fn fail(msg: &str) -> ! {
    eprintln!("peer_step: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn network(kind: VariantKind) -> CompressedNetwork {
    let m = model::builtin("resnet20", None, None).expect("resnet20");
    variant::apply(&m, &VariantSpec::new(kind)).expect("variant")
}

fn params_for(cn: &CompressedNetwork, weights: &Option<PathBuf>) -> params::Params {
    match weights {
        Some(p) => params::load(cn, p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        None => params::init(cn, 1),
    }
}

/// Images and labels, `batch` of them (cycled from the file when it holds fewer).
fn data(a: &Args) -> (Array4<f32>, Vec<usize>) {
    let Some(path) = &a.data else {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let x = Array4::from_shape_simple_fn((a.batch, 3, 32, 32), || rng.gen::<f32>());
        let y = (0..a.batch).map(|_| rng.gen_range(0..10)).collect();
        return (x, y);
    };
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let im = st.tensor("images").expect("images tensor");
    let v: Vec<f32> = im
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = im.shape()[0];
    let all = Array4::from_shape_vec((n, 3, 32, 32), v).expect("images [N,3,32,32]");
    let lt = st.tensor("labels").expect("labels tensor");
    let labels: Vec<usize> = match lt.dtype() {
        safetensors::Dtype::I64 => lt
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect(),
        _ => lt
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect(),
    };
    let idx: Vec<usize> = (0..a.batch).map(|i| i % n).collect();
    let x = ndarray::stack(
        ndarray::Axis(0),
        &idx.iter()
            .map(|&i| all.slice(s![i, .., .., ..]))
            .collect::<Vec<_>>(),
    )
    .expect("stack");
    (x, idx.iter().map(|&i| labels[i]).collect())
}

fn timed(a: &Args, mut step: impl FnMut()) -> f64 {
    for _ in 0..a.warmup {
        step();
    }
    let t = Instant::now();
    for _ in 0..a.steps {
        step();
    }
    t.elapsed().as_secs_f64()
}

fn report(a: &Args, secs: f64) {
    let imgs = (a.batch * a.steps) as f64;
    println!(
        "{{\"mode\":\"{}\",\"batch\":{},\"steps\":{},\"seconds\":{secs:.4},\"img_per_s\":{:.1},\"threads\":{}}}",
        a.mode,
        a.batch,
        a.steps,
        imgs / secs,
        rayon::current_num_threads()
    );
}

fn main() {
    let a = parse();
    let (x, y) = data(&a);
    let kind = if a.mode.ends_with("xnor") {
        VariantKind::Xnor
    } else {
        VariantKind::Vanilla
    };
    let cn = network(kind);
    let p = params_for(&cn, &a.weights);
    match a.mode.as_str() {
        "logits-float" | "logits-xnor" => {
            let e = FloatEngine::new(Net::new(cn, p).expect("net")).expect("engine");
            let z = e.try_logits(&x).expect("logits");
            let rows: Vec<String> = z
                .outer_iter()
                .map(|r| {
                    format!(
                        "[{}]",
                        r.iter()
                            .map(|v| format!("{v:e}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                })
                .collect();
            println!("{{\"logits\":[{}]}}", rows.join(","));
        }
        "loss-float" | "loss-xnor" => {
            let mut m = NetModel::new(cn, p).expect("net");
            let (loss, g) = m.forward_backward(&x, &y, true).expect("step");
            let norm = |k: &str| g[k].iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            println!(
                "{{\"loss\":{loss:e},\"grad_norm\":{{\"conv1.weight\":{:e},\"layer2.0.conv1.weight\":{:e},\"linear.weight\":{:e},\"bn1.weight\":{:e}}}}}",
                norm("conv1.weight"),
                norm("layer2.0.conv1.weight"),
                norm("linear.weight"),
                norm("bn1.weight")
            );
        }
        "train-float" | "train-xnor" => {
            let mut m = NetModel::new(cn, p).expect("net");
            let (cfg, lr) = if kind == VariantKind::Xnor {
                (OptimizerConfig::adam(), 1e-3)
            } else {
                (OptimizerConfig::sgd(0.9, 1e-4), 0.1)
            };
            let mut opt = Optimizer::new(cfg).expect("optimizer");
            let secs = timed(&a, || {
                let (_, g) = m.forward_backward(&x, &y, true).expect("step");
                opt.step(m.params_mut(), &g, lr).expect("update");
            });
            report(&a, secs);
        }
        "grad-float" => {
            let net = Net::new(cn, p).expect("net");
            let bw = net.binarize(false).expect("binarize");
            let secs = timed(&a, || {
                let (z, tape) = net.forward_taped_eval(&x, &bw).expect("forward");
                let (_, dz) = cross_entropy(&z, &y).expect("loss");
                std::hint::black_box(net.input_grad(&tape, &bw, &dz).expect("gradient"));
            });
            report(&a, secs);
        }
        "grad-fused" => {
            let net = Net::new(cn, p).expect("net");
            let bw = net.binarize(false).expect("binarize");
            let n = a.batch as f32;
            let secs = timed(&a, || {
                std::hint::black_box(
                    net.logits_and_input_grad(&x, &bw, |i, z| {
                        let z1 = z.to_owned().insert_axis(ndarray::Axis(0));
                        let (_, dz) = cross_entropy(&z1, &y[i..i + 1])?;
                        Ok(dz.row(0).mapv(|v| v / n))
                    })
                    .expect("gradient"),
                );
            });
            report(&a, secs);
        }
        "grad-values" => {
            // The input gradient of the mean cross-entropy, for the peers to compare.
            let net = Net::new(cn, p).expect("net");
            let bw = net.binarize(false).expect("binarize");
            let (z, tape) = net.forward_taped_eval(&x, &bw).expect("forward");
            let (loss, dz) = cross_entropy(&z, &y).expect("loss");
            let g = net.input_grad(&tape, &bw, &dz).expect("gradient");
            let gs = g.as_standard_layout();
            let v: Vec<String> = gs.iter().map(|v| format!("{v:e}")).collect();
            println!("{{\"loss\":{loss:e},\"grad\":[{}]}}", v.join(","));
        }
        "infer-float" => {
            let e = FloatEngine::new(Net::new(cn, p).expect("net")).expect("engine");
            let secs = timed(&a, || {
                std::hint::black_box(e.try_logits(&x).expect("logits"));
            });
            report(&a, secs);
        }
        "infer-xnor" => {
            let e = BinaryEngine::new(Net::new(cn, p).expect("net")).expect("engine");
            let secs = timed(&a, || {
                std::hint::black_box(e.try_logits(&x).expect("logits"));
            });
            report(&a, secs);
        }
        "popcount" => {
            // XNOR + popcount throughput of this core in binary MACs/s (bits of two L1-resident
            // vectors of 64 Kbit each), and what it bounds ResNet20-XNOR at (40.1 M binary MACs
            // per image).
            let path = breakingbed::engine::binary::popcount::PopcountPath::detect();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let words = 1024;
            let va: Vec<u64> = (0..words).map(|_| rng.gen()).collect();
            let vb: Vec<u64> = (0..words).map(|_| rng.gen()).collect();
            let reps = 20_000;
            let mut acc = 0i64;
            let t = Instant::now();
            for _ in 0..reps {
                acc += breakingbed::engine::binary::bdot_with(
                    path,
                    std::hint::black_box(&va),
                    std::hint::black_box(&vb),
                    words * 64,
                )
                .expect("bdot") as i64;
            }
            let secs = t.elapsed().as_secs_f64();
            let stream = (reps * words * 64) as f64 / secs;
            let (peak, peak_check) = popcount_peak();
            let ghz = core_ghz();
            println!(
                "{{\"mode\":\"popcount\",\"path\":\"{path:?}\",\"stream_binary_macs_per_s\":{stream:.4e},\"peak_binary_macs_per_s\":{peak:.4e},\"core_ghz\":{ghz:.2},\"peak_binary_macs_per_cycle\":{:.0},\"resnet20_xnor_bound_img_per_s\":{:.0},\"check\":{}}}",
                peak / (ghz * 1e9),
                peak / 40.1e6,
                acc + peak_check
            );
        }
        m => fail(&format!("unknown MODE {m:?}")),
    }
}

/// The most XOR + popcount + add work this core retires, in binary MACs/s: 12 independent
/// chains of `x ^= w; acc += popcount(x)` on 512-bit registers, nothing loaded, so only the
/// vector ALUs bound it (3 instructions per 512 binary MACs, the mix of the XNOR GEMM's inner
/// loop). Returns the rate and a checksum that keeps the work observable. 0 without
/// AVX-512 VPOPCNTDQ.
fn popcount_peak() -> (f64, i64) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512vpopcntdq") {
        let iters: usize = 20_000_000;
        let t = Instant::now();
        // SAFETY: the CPU has AVX-512F and VPOPCNTDQ (checked above).
        let check = unsafe { peak_avx512(iters) };
        let secs = t.elapsed().as_secs_f64();
        return ((iters * CHAINS * 512) as f64 / secs, check);
    }
    (0.0, 0)
}

/// Chains of [`peak_avx512`]: two registers each plus the shared operand stay within the 32
/// vector registers, so nothing spills.
const CHAINS: usize = 12;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn peak_avx512(iters: usize) -> i64 {
    use std::arch::x86_64::*;
    let w = std::hint::black_box(_mm512_set1_epi64(0x5a5a_3c3c_0f0f_6969));
    let mut x = [_mm512_setzero_si512(); CHAINS];
    let mut acc = [_mm512_setzero_si512(); CHAINS];
    for (i, v) in x.iter_mut().enumerate() {
        *v = _mm512_set1_epi64(i as i64 * 0x0123_4567_89ab_cdef);
    }
    for _ in 0..iters {
        for i in 0..CHAINS {
            x[i] = _mm512_xor_si512(x[i], w);
            acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(x[i]));
        }
    }
    let mut total = _mm512_setzero_si512();
    for a in acc {
        total = _mm512_add_epi64(total, a);
    }
    _mm512_reduce_add_epi64(total)
}

/// This core's clock while busy, in GHz: a chain of dependent 64-bit adds retires one per
/// cycle, so adds per second is cycles per second.
fn core_ghz() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let iters: u64 = 200_000_000;
        let mut x: u64 = std::hint::black_box(1);
        let t = Instant::now();
        for _ in 0..iters {
            // SAFETY: eight register adds; no memory, no flags read.
            unsafe {
                std::arch::asm!(
                    "add {0}, 1", "add {0}, 1", "add {0}, 1", "add {0}, 1",
                    "add {0}, 1", "add {0}, 1", "add {0}, 1", "add {0}, 1",
                    inout(reg) x,
                    options(nomem, nostack),
                );
            }
        }
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(x);
        (iters * 8) as f64 / secs / 1e9
    }
    #[cfg(not(target_arch = "x86_64"))]
    0.0
}
