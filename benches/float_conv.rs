//! Float convolution throughput (forward, and forward+backward at batch 128) for the two ResNet20
//! layer shapes the issue names, with both GEMM backends, plus a bare sgemm comparison on
//! the per-image GEMM shapes, and the first layer (3->16 on 32x32) as the float engine runs it
//! (NCHW, im2col + GEMM) vs the channel-last direct kernel the XNOR engine runs
//! (`ops::direct`, same values bit for bit). Report GMAC/s = MACs / time.
//!
//! Run: `cargo bench --bench float_conv -- --warm-up-time 1 --measurement-time 3`.
//!
//! Measured 2026-11-25 on the shared 2-core AVX-512 EPYC (load average 6-9 from other jobs, so
//! absolute numbers swing up to 2x between runs; compare within one run), RAYON_NUM_THREADS=1,
//! GMAC/s of forward MACs: 64->64 3x3 8x8 fwd b1 ~55, b128 ~50; 16->16 3x3 32x32 fwd b1 ~41,
//! b128 ~42; bare sgemm in the same run 72-78. Backward (2x the MACs, reported per forward
//! MAC): 8x8 b128 17-24, 32x32 b128 10-14. gemm vs matrixmultiply: forward 1.3-2x, sgemm
//! 1.3-2.4x in favour of gemm.

use breakingbed::engine::ops::conv::{
    conv2d_backward_with, conv2d_fused, conv2d_fused_nhwc, conv2d_with, geometry,
};
use breakingbed::engine::ops::epilogue::Epilogue;
use breakingbed::engine::ops::gemm::{sgemm, GemmBackend, MatRef};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand4(rng: &mut ChaCha8Rng, d: (usize, usize, usize, usize)) -> Array4<f32> {
    Array::from_shape_fn(d, |_| rng.gen_range(-1.0f32..1.0))
}

const BACKENDS: [(GemmBackend, &str); 2] = [
    (GemmBackend::Gemm, "gemm"),
    (GemmBackend::MatrixMultiply, "matrixmultiply"),
];

fn conv(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // (channels, spatial): the 3x3 layers of ResNet20's last and first stage.
    for &(ch, hw) in &[(64usize, 8usize), (16, 32)] {
        for &batch in &[1usize, 128] {
            let x = rand4(&mut rng, (batch, ch, hw, hw));
            let w = rand4(&mut rng, (ch, ch, 3, 3));
            let (n, g) = geometry(x.dim(), w.dim(), 1, 1).unwrap();
            let mut group = c.benchmark_group(format!("conv{ch}x{ch}_3x3_{hw}x{hw}_b{batch}"));
            // Throughput in "elements" = MACs, so criterion prints Melem/s = MMAC/s.
            group.throughput(Throughput::Elements(n as u64 * g.macs()));
            for (backend, name) in BACKENDS {
                group.bench_function(BenchmarkId::new("forward", name), |b| {
                    b.iter(|| conv2d_with(backend, &x, &w, None, 1, 1).unwrap())
                });
            }
            if batch == 128 {
                let dy = conv2d_with(GemmBackend::Gemm, &x, &w, None, 1, 1).unwrap();
                for (backend, name) in BACKENDS {
                    group.bench_function(BenchmarkId::new("backward", name), |b| {
                        b.iter(|| conv2d_backward_with(backend, &x, &w, 1, 1, &dy).unwrap())
                    });
                }
            }
            group.finish();
        }
    }
}

fn bare_sgemm(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // Per-image forward GEMMs of the two layers, [O x C*9] x [C*9 x H*W], and the 8x8 layer with
    // four images side by side (what grouping images into one GEMM would buy).
    for &(m, k, n) in &[
        (64usize, 576usize, 64usize),
        (64, 576, 256),
        (16, 144, 1024),
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut out = vec![0.0f32; m * n];
        let mut group = c.benchmark_group(format!("sgemm_{m}x{k}x{n}"));
        group.throughput(Throughput::Elements((m * k * n) as u64));
        for (backend, name) in BACKENDS {
            group.bench_function(name, |bch| {
                bch.iter(|| {
                    sgemm(
                        backend,
                        MatRef::row_major(&a, m, k),
                        MatRef::row_major(&b, k, n),
                        &mut out,
                        false,
                        false,
                    )
                })
            });
        }
        group.finish();
    }
}

/// The two backward GEMMs of the 16->16 32x32 layer, with the operand views conv uses:
/// `dcol = W^T dy` ([144x16] x [16x1024], lhs transposed) and `dW += dy col^T`
/// ([16x1024] x [1024x144], rhs transposed).
fn backward_sgemm(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (o, ckk, l) = (16usize, 144usize, 1024usize);
    let w: Vec<f32> = (0..o * ckk).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let dy: Vec<f32> = (0..o * l).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let col: Vec<f32> = (0..ckk * l).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut dcol = vec![0.0f32; ckk * l];
    let mut dw = vec![0.0f32; o * ckk];
    let mut group = c.benchmark_group("sgemm_backward_16x144x1024");
    group.throughput(Throughput::Elements((o * ckk * l) as u64));
    for (backend, name) in BACKENDS {
        group.bench_function(BenchmarkId::new("dcol", name), |b| {
            b.iter(|| {
                sgemm(
                    backend,
                    MatRef::row_major(&w, o, ckk).t(),
                    MatRef::row_major(&dy, o, l),
                    &mut dcol,
                    false,
                    false,
                )
            })
        });
        group.bench_function(BenchmarkId::new("dw", name), |b| {
            b.iter(|| {
                sgemm(
                    backend,
                    MatRef::row_major(&dy, o, l),
                    MatRef::row_major(&col, ckk, l).t(),
                    &mut dw,
                    true,
                    false,
                )
            })
        });
        // Same product with col^T stored row-major (an im2col that writes [L x CKK]).
        group.bench_function(BenchmarkId::new("dw_rhs_row_major", name), |b| {
            b.iter(|| {
                sgemm(
                    backend,
                    MatRef::row_major(&dy, o, l),
                    MatRef::row_major(&col, l, ckk),
                    &mut dw,
                    true,
                    false,
                )
            })
        });
        // And transposed: dW^T = col dy^T, [144x1024] x [1024x16].
        let mut dwt = vec![0.0f32; o * ckk];
        group.bench_function(BenchmarkId::new("dw_transposed", name), |b| {
            b.iter(|| {
                sgemm(
                    backend,
                    MatRef::row_major(&col, ckk, l),
                    MatRef::row_major(&dy, o, l).t(),
                    &mut dwt,
                    true,
                    false,
                )
            })
        });
    }
    group.finish();
}

fn first_layer(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = rand4(&mut rng, (1, 3, 32, 32));
    let w = rand4(&mut rng, (16, 3, 3, 3));
    let (n, g) = geometry(x.dim(), w.dim(), 1, 1).unwrap();
    let mut group = c.benchmark_group("first_conv_3to16_32x32_b1");
    group.throughput(Throughput::Elements(n as u64 * g.macs()));
    let ep = Epilogue::IDENTITY;
    group.bench_function("nchw_im2col_gemm", |b| {
        b.iter(|| conv2d_fused(&x, &w, None, 1, 1, ep, None).unwrap())
    });
    group.bench_function("nhwc_direct", |b| {
        b.iter(|| conv2d_fused_nhwc(&x, &w, None, 1, 1, ep).unwrap())
    });
    group.finish();
}

criterion_group!(benches, conv, bare_sgemm, backward_sgemm, first_layer);
criterion_main!(benches);
