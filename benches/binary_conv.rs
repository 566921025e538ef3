//! Binary conv vs float conv of the same shape (3x3, stride 1, pad 1):
//! 64->64 on 8x8 and 16->16 on 32x32, batch 1 and 128.
//!
//! The float baseline lives here (im2col + `matrixmultiply::sgemm`, one GEMM per image) so the
//! ratio can be read from one run. For a like-for-like single-core ratio run with
//! `RAYON_NUM_THREADS=1 MATMUL_NUM_THREADS=1`:
//! `cargo bench --bench binary_conv -- --warm-up-time 1 --measurement-time 3`.
//! "binary" times the conv on already packed activations; "binary+pack" adds packing the f32
//! input by sign, which a network pays once per binary layer; "channel_last+pack" is the
//! inference path's kernel (`BConv2d::forward_nhwc`: NHWC f32 image packed into a frame,
//! windows read in place, sums pixel-major), image by image.
//!
//! Measured 2026-11-26, 1 thread, per image at batch 1: 64->64 8x8 float 56.2 us, binary
//! (AVX-512) 1.99, binary+pack 2.88, channel_last+pack (tap kernel) 1.30 (43x the float
//! conv); 16->16 32x32 float 112.5 us, binary 5.94, binary+pack 8.09, channel_last+pack 2.41
//! (47x).

use breakingbed::engine::binary::{pack_activations, pack_weights, BConv2d, PopcountPath};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Float conv baseline: per image, im2col into `[C*kh*kw][OH*OW]`, then `out = W · cols`.
struct FloatConv {
    o: usize,
    c: usize,
    k: usize,
    pad: usize,
    w: Vec<f32>,
}

impl FloatConv {
    fn forward(&self, x: &Array4<f32>, cols: &mut Vec<f32>, out: &mut Vec<f32>) {
        let (n, c, h, w) = x.dim();
        assert_eq!(c, self.c);
        let (k, pad) = (self.k, self.pad);
        let (oh, ow) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
        let p = oh * ow;
        let kk = c * k * k;
        cols.resize(kk * p, 0.0);
        out.resize(n * self.o * p, 0.0);
        let xs = x.as_slice().expect("standard layout");
        for b in 0..n {
            let img = &xs[b * c * h * w..(b + 1) * c * h * w];
            for ch in 0..c {
                for ky in 0..k {
                    for kx in 0..k {
                        let row = &mut cols[((ch * k + ky) * k + kx) * p..][..p];
                        for oy in 0..oh {
                            let iy = (oy + ky) as isize - pad as isize;
                            for ox in 0..ow {
                                let ix = (ox + kx) as isize - pad as isize;
                                row[oy * ow + ox] =
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        img[(ch * h + iy as usize) * w + ix as usize]
                                    } else {
                                        0.0
                                    };
                            }
                        }
                    }
                }
            }
            let dst = &mut out[b * self.o * p..(b + 1) * self.o * p];
            // SAFETY: dimensions and strides describe the three row-major buffers exactly.
            unsafe {
                matrixmultiply::sgemm(
                    self.o,
                    kk,
                    p,
                    1.0,
                    self.w.as_ptr(),
                    kk as isize,
                    1,
                    cols.as_ptr(),
                    p as isize,
                    1,
                    0.0,
                    dst.as_mut_ptr(),
                    p as isize,
                    1,
                );
            }
        }
    }
}

fn bench(cr: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(c, hw) in &[(64usize, 8usize), (16, 32)] {
        let w = Array4::from_shape_fn((c, c, 3, 3), |_| rng.gen_range(-1.0f32..1.0));
        let layer = BConv2d::new(&pack_weights(&w).unwrap());
        let float = FloatConv {
            o: c,
            c,
            k: 3,
            pad: 1,
            w: w.iter().copied().collect(),
        };
        for &n in &[1usize, 128] {
            let x = Array4::from_shape_fn((n, c, hw, hw), |_| rng.gen_range(-1.0f32..1.0));
            let px = pack_activations(&x).unwrap();
            let mut g = cr.benchmark_group(format!("conv3x3_{c}to{c}_{hw}x{hw}_batch{n}"));
            g.sample_size(10);
            g.throughput(Throughput::Elements(n as u64));
            let (mut cols, mut out) = (Vec::new(), Vec::new());
            g.bench_function("float_im2col_sgemm", |b| {
                b.iter(|| float.forward(&x, &mut cols, &mut out))
            });
            for path in PopcountPath::available() {
                g.bench_function(BenchmarkId::new("binary", format!("{path:?}")), |b| {
                    b.iter(|| layer.forward_with(path, &px, 1, 1).unwrap())
                });
            }
            g.bench_function("binary+pack", |b| {
                b.iter(|| layer.forward(&pack_activations(&x).unwrap(), 1, 1).unwrap())
            });
            let nhwc: Vec<f32> = x
                .view()
                .permuted_axes([0, 2, 3, 1])
                .iter()
                .copied()
                .collect();
            let path = PopcountPath::detect();
            g.bench_function("channel_last+pack", |b| {
                b.iter(|| {
                    for (img, xi) in nhwc.chunks_exact(c * hw * hw).enumerate() {
                        let mut acc = 0i64;
                        layer
                            .forward_nhwc(path, xi, (hw, hw), 1, 1, img, |_, s| {
                                acc += i64::from(s[0])
                            })
                            .unwrap();
                        std::hint::black_box(acc);
                    }
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
