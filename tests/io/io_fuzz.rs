//! Fuzzing every loader and config parser on arbitrary and mutated bytes: safetensors, IDX
//! (plain and gzipped), CIFAR-10, image files of an image folder, network TOML, hardware TOML
//! (device and NCC lane counts),
//! per-layer rates TOML, attack spec and sweep grid TOML, JSONL result logs.
//!
//! Each case must end in `Ok` or an `Error` whose text names the input (no panic), and no single
//! allocation during the call may exceed the guard: a counting global allocator of this test
//! binary records the largest allocation per thread. The bound is 64 x the input length plus
//! 16 MiB for every loader except images, whose bound is the decoder limit
//! (`crate::io::folder`'s 256 MiB) plus the decoded-RGB copy.
//!
//! Cases come from one seeded generator per loader ([`case`]): half arbitrary bytes, half a
//! valid sample with 1-8 mutations (bit flips, byte overwrites with boundary values, inserted
//! or deleted runs, truncation, 32/64-bit big numbers written over header fields). The CI test
//! runs a few hundred seeds per loader via proptest; the `#[ignore]`d campaign runs
//! `BBED_FUZZ_CASES` (default 100 000) per loader: `cargo test --release --test io
//! fuzz_campaign -- --ignored --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use breakingbed::attack::{AttackSpec, Grid};
use breakingbed::cli::args::VariantArgs;
use breakingbed::cost::NccParams;
use breakingbed::hw::Device;
use breakingbed::io::folder::{load_image, FolderOptions};
use breakingbed::io::idx::{idx_bytes, parse_idx, read_idx};
use breakingbed::io::{cifar, read_jsonl, WeightStore};
use breakingbed::model::custom;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // try_with: the slot may be gone while a thread shuts down.
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
}

// SAFETY: every method forwards to `System` with the arguments it was given, so `Counting`
// upholds `GlobalAlloc`'s contract exactly as `System` does; `note` neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: usize = 1 << 20;

/// The loaders under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    Safetensors,
    Idx,
    IdxGz,
    Cifar,
    Image,
    ModelToml,
    HwToml,
    NccToml,
    Rates,
    AttackSpec,
    Grid,
    Jsonl,
}

pub const LOADERS: [Loader; 12] = [
    Loader::Safetensors,
    Loader::Idx,
    Loader::IdxGz,
    Loader::Cifar,
    Loader::Image,
    Loader::ModelToml,
    Loader::HwToml,
    Loader::NccToml,
    Loader::Rates,
    Loader::AttackSpec,
    Loader::Grid,
    Loader::Jsonl,
];

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A valid input of each loader (the seed of the mutated cases).
fn sample(l: Loader) -> Vec<u8> {
    match l {
        Loader::Safetensors => {
            let mut s = WeightStore::new();
            s.insert("conv.weight", ArrayD::from_elem(IxDyn(&[2, 1, 3, 3]), 0.5));
            s.insert("bn.running_var", ArrayD::from_elem(IxDyn(&[2]), 1.0));
            s.metadata.insert("model".into(), "\"tiny\"".into());
            s.to_bytes()
        }
        Loader::Idx => idx_bytes(&[3, 4, 4], &[7u8; 48]).unwrap(),
        Loader::IdxGz => gzip(&idx_bytes(&[3, 4, 4], &[7u8; 48]).unwrap()),
        // Two records: a label byte (0-9) and 3072 pixel bytes each.
        Loader::Cifar => (0..2 * 3073)
            .map(|i: usize| if i.is_multiple_of(3073) { (i / 3073) as u8 + 3 } else { (i % 251) as u8 })
            .collect(),
        Loader::Image => {
            let img = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 99]));
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png).unwrap();
            out.into_inner()
        }
        Loader::ModelToml => include_bytes!("../../configs/custom_net.toml").to_vec(),
        Loader::HwToml => include_bytes!("../../hw/zcu102.toml").to_vec(),
        Loader::NccToml => include_bytes!("../../hw/reference.toml").to_vec(),
        Loader::Rates => include_bytes!("../../configs/rates_example.toml").to_vec(),
        Loader::AttackSpec => b"attack = \"pgd\"\nnorm = \"linf\"\neps = { value = 0.1, scale = \"normalized\" }\nstep = { value = 0.05, scale = \"normalized\" }\niterations = 3\n".to_vec(),
        Loader::Grid => include_bytes!("../../configs/table2.toml").to_vec(),
        Loader::Jsonl => b"{\"a\": 1, \"b\": [1, 2]}\n{\"a\": 2}\n{\"x\": \"y\"}\n".to_vec(),
    }
}

/// Boundary values written over bytes / header fields.
const BIG: [u64; 8] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
    1 << 40,
];

/// Case `seed` of loader `l` (module docs).
pub fn case(l: Loader, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (l as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if rng.gen_bool(0.5) {
        let n = rng.gen_range(0..2048);
        let text = matches!(
            l,
            Loader::ModelToml
                | Loader::HwToml
                | Loader::NccToml
                | Loader::Rates
                | Loader::AttackSpec
                | Loader::Grid
                | Loader::Jsonl
        );
        return (0..n)
            .map(|_| {
                if text && rng.gen_bool(0.8) {
                    // Mostly TOML/JSON-ish characters so the parsers get past the first byte.
                    b"[]{}=\"., \n0123456789abcdefxyz_-+e"[rng.gen_range(0..33)]
                } else {
                    rng.gen()
                }
            })
            .collect();
    }
    let mut b = sample(l);
    for _ in 0..rng.gen_range(1..=8) {
        let len = b.len();
        let pos = if len == 0 { 0 } else { rng.gen_range(0..len) };
        match rng.gen_range(0..7) {
            0 if len > 0 => b[pos] ^= 1 << rng.gen_range(0..8),
            1 if len > 0 => b[pos] = BIG[rng.gen_range(0..BIG.len())] as u8,
            2 => {
                let run: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
                b.splice(pos..pos, run);
            }
            3 if len > 0 => {
                let end = (pos + rng.gen_range(1..64)).min(len);
                b.drain(pos..end);
            }
            4 => b.truncate(pos),
            5 if len >= pos + 8 => {
                let v = BIG[rng.gen_range(0..BIG.len())];
                if rng.gen_bool(0.5) {
                    b[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
                } else {
                    b[pos..pos + 4].copy_from_slice(&(v as u32).to_be_bytes());
                }
            }
            _ if len > 0 => {
                // Duplicate a chunk (repeated keys, tables, records).
                let end = (pos + rng.gen_range(1..256)).min(len);
                let chunk = b[pos..end].to_vec();
                b.splice(end..end, chunk);
            }
            _ => {}
        }
    }
    b
}

/// Runs loader `l` on `bytes` (through a file in `dir` where the loader reads files). Returns
/// the error text, if any.
fn run(l: Loader, bytes: &[u8], dir: &Path) -> Option<String> {
    let path = dir.join("case.bin");
    let text = || String::from_utf8_lossy(bytes).into_owned();
    let to_file = |name: &str| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let r: Result<(), breakingbed::Error> = match l {
        Loader::Safetensors => WeightStore::from_bytes(bytes, &path).and_then(|s| s.check_finite()),
        Loader::Idx => parse_idx(bytes, &path).map(drop),
        Loader::IdxGz => read_idx(to_file("case-idx3-ubyte.gz")).map(drop),
        Loader::Cifar => cifar::parse_cifar(bytes, &path).map(drop),
        Loader::Image => {
            let opts = FolderOptions {
                resize: 8,
                crop: 8,
                limit_per_class: None,
            };
            load_image(&to_file("case.png"), &opts).map(drop)
        }
        Loader::ModelToml => custom::from_toml_str(&text(), "case.toml").map(drop),
        Loader::HwToml => Device::from_toml_str(&text(), "case.toml").map(drop),
        Loader::NccToml => NccParams::from_toml_str(&text(), "case.toml").map(drop),
        Loader::Rates => {
            let p = to_file("rates.toml");
            VariantArgs {
                variant: Some("channel".into()),
                m: None,
                n: None,
                rate: None,
                rates: Some(p),
                fp_first_last: None,
                shortcut: None,
                bn: None,
                scales: None,
                bias: None,
                index_bits: None,
            }
            .spec()
            .map(drop)
        }
        Loader::AttackSpec => AttackSpec::from_toml(&text(), "case.toml").map(drop),
        Loader::Grid => Grid::from_toml(&text(), "case.toml")
            .and_then(|g| g.expand("case.toml"))
            .map(drop),
        Loader::Jsonl => read_jsonl(to_file("case.jsonl"), false).map(drop),
    };
    r.err().map(|e| e.to_string())
}

/// Runs one case and checks it (module docs): `Ok(true)` when the input was accepted,
/// `Ok(false)` when refused with a proper error, `Err` describing a failure.
pub fn check(l: Loader, seed: u64, dir: &Path) -> Result<bool, String> {
    let bytes = case(l, seed);
    LARGEST.with(|c| c.set(0));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(l, &bytes, dir)));
    let largest = LARGEST.with(|c| c.get());
    let err =
        outcome.map_err(|_| format!("{l:?} seed {seed}: panicked ({} bytes)", bytes.len()))?;
    let bound = match l {
        Loader::Image => 256 * MIB + 8192 * 8192 * 3,
        _ => 16 * MIB + 64 * bytes.len(),
    };
    if largest > bound {
        return Err(format!(
            "{l:?} seed {seed}: allocated {largest} bytes at once for a {}-byte input",
            bytes.len()
        ));
    }
    match err {
        None => Ok(true),
        Some(e) => {
            let named = ["case", "rates.toml", "--rates", "rates.\""];
            if !named.iter().any(|n| e.contains(n)) {
                return Err(format!("{l:?} seed {seed}: error names no input: {e}"));
            }
            Ok(false)
        }
    }
}

fn quiet_panics<T>(f: impl FnOnce() -> T) -> T {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(hook);
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every loader on arbitrary and mutated bytes: no panic, no allocation beyond the guard, an
    /// error naming the input.
    #[test]
    fn loaders_survive_arbitrary_and_mutated_bytes(seed in any::<u64>()) {
        let dir = tempfile::tempdir().unwrap();
        for l in LOADERS {
            if let Err(e) = check(l, seed, dir.path()) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}

/// The samples themselves load (the mutations start from valid inputs).
#[test]
fn fuzz_samples_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    for l in LOADERS {
        assert_eq!(run(l, &sample(l), dir.path()), None, "{l:?}");
    }
}

/// The long campaign (module docs): `BBED_FUZZ_CASES` seeds per loader; prints counts, time
/// and how many cases were accepted / refused.
#[test]
#[ignore]
fn fuzz_campaign() {
    let n: u64 = std::env::var("BBED_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    // Loaders that read files get them in memory-backed /dev/shm where there is one.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut failures = Vec::new();
    for l in LOADERS {
        let started = std::time::Instant::now();
        let (mut ok, mut refused) = (0u64, 0u64);
        quiet_panics(|| {
            for seed in 0..n {
                match check(l, seed, dir.path()) {
                    Err(e) => failures.push(e),
                    Ok(true) => ok += 1,
                    Ok(false) => refused += 1,
                }
            }
        });
        println!(
            "fuzz {l:?}: {n} cases in {:.1}s, {ok} accepted, {refused} refused with an error, {} failed",
            started.elapsed().as_secs_f64(),
            n - ok - refused
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}
