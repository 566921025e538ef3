//! Folder-of-images loading at torchvision's eval sizes (shorter side 256, centre crop 224):
//! decode + resize + crop per image, in images/s (criterion's "elem/s"), for ImageNet-sized
//! (500 x 375) JPEGs and PNGs. The images are smooth gradients plus seeded noise written here, so
//! the files are a little larger (slower to decode) than typical photographs. Run with
//! `cargo bench --bench io_folder -- --warm-up-time 1 --measurement-time 3`; single thread:
//! `RAYON_NUM_THREADS=1` in front.

use breakingbed::io::folder::{class_names, load_split, FolderOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PER_CLASS: usize = 8;
const CLASSES: usize = 2;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("image_folder_500x375");
    g.sample_size(10);
    g.throughput(Throughput::Elements((PER_CLASS * CLASSES) as u64));
    for ext in ["jpg", "png"] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for k in 0..CLASSES {
            let class = dir.path().join(format!("n{k:08}"));
            std::fs::create_dir_all(&class).unwrap();
            for i in 0..PER_CLASS {
                let img = RgbImage::from_fn(500, 375, |x, y| {
                    let n: u8 = rng.gen_range(0..32);
                    Rgb([(x / 2) as u8 + n, (y / 2) as u8 + n, (i * 20) as u8 + n])
                });
                img.save(class.join(format!("{i}.{ext}"))).unwrap();
            }
        }
        let classes = class_names(dir.path()).unwrap();
        let opts = FolderOptions::default();
        g.bench_function(ext, |b| {
            b.iter(|| load_split(dir.path(), &classes, &opts).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
