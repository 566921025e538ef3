//! The instruction-set levels end to end: `bbed` under `BBED_ISA=portable` (every kernel on its
//! portable path) and under the CPU's best level prints bit-identical logits, for the XNOR
//! engine and the float one, on seeded ResNet20 weights and random CIFAR-format images; a bad
//! `BBED_ISA` is an input error naming the variable. Under `CI`, a CPU without the AVX-512
//! features fails these tests (the native run would not exercise the AVX-512 kernels).

use std::process::Command;

use breakingbed::engine::cpu;
use breakingbed::io::cifar::write_cifar_file;
use breakingbed::io::dataset::Dataset;
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Runs `bbed args` with `BBED_ISA` set to `isa` (or removed): (exit code, stdout, stderr).
fn bbed_isa(isa: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bbed"));
    cmd.args(args);
    match isa {
        Some(v) => cmd.env(cpu::ENV, v),
        None => cmd.env_remove(cpu::ENV),
    };
    let out = cmd.output().expect("run bbed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The logits of every image, as the `f32` bit patterns the JSON numbers round-trip to.
fn logit_bits(v: &Value) -> Vec<Vec<u32>> {
    v["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|im| {
            im["logits"]
                .as_array()
                .expect("logits")
                .iter()
                .map(|x| (x.as_f64().expect("number") as f32).to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn portable_and_native_logits_are_bit_identical() {
    // Under CI this fails unless the CPU has every AVX-512 feature the kernels use.
    let levels = cpu::test_levels();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let images = Array4::from_shape_simple_fn((5, 3, 32, 32), || rng.gen::<u8>());
    let labels = (0..5).map(|_| rng.gen_range(0..10u16)).collect();
    let ds = Dataset::new(images, labels, 10, "synthetic").unwrap();
    let path = dir.path().join("test_batch.bin");
    write_cifar_file(&path, &ds).unwrap();
    let data = path.to_str().unwrap();
    for (variant, engine) in [("xnor", "binary"), ("vanilla", "float")] {
        let args = [
            "infer",
            "--model",
            "resnet20",
            "--variant",
            variant,
            "--engine",
            engine,
            "--data",
            data,
            "--seed",
            "4",
            "--batch",
            "3",
            "--format",
            "json",
        ];
        let mut runs = vec![];
        for isa in [Some("portable"), None] {
            let (code, out, err) = bbed_isa(isa, &args);
            assert_eq!(code, 0, "{isa:?} {variant}: {err}");
            let v: Value = serde_json::from_str(&out).unwrap();
            runs.push(logit_bits(&v));
        }
        let (portable, native) = (&runs[0], &runs[1]);
        assert_eq!(portable.len(), 5, "{variant}");
        assert!(portable.iter().all(|l| l.len() == 10), "{variant}");
        // Not a degenerate output: the images get different logits.
        assert_ne!(portable[0], portable[1], "{variant}");
        assert_eq!(
            portable,
            native,
            "{variant}: portable vs {:?}",
            levels.last()
        );
    }
}

#[test]
fn bad_isa_values_are_input_errors() {
    for (value, needle) in [
        ("sse9", "accepted: portable, avx2, avx512, native, auto"),
        ("", ""),
    ] {
        let (code, out, err) = bbed_isa(
            Some(value),
            &[
                "verify",
                "--model",
                "resnet8",
                "--variant",
                "xnor",
                "--images",
                "1",
            ],
        );
        if value.is_empty() {
            // Empty means unset: the default level.
            assert_eq!(code, 0, "{err}");
            continue;
        }
        assert_eq!(code, 2, "{value}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.starts_with("error: BBED_ISA:"), "{err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
    }
    // A level this CPU lacks is refused, not silently lowered; one it has is accepted.
    for isa in cpu::Isa::ALL {
        let (code, _, err) = bbed_isa(
            Some(isa.name()),
            &[
                "verify",
                "--model",
                "resnet8",
                "--variant",
                "xnor",
                "--images",
                "1",
            ],
        );
        match isa.is_available() {
            true => assert_eq!(code, 0, "{isa:?}: {err}"),
            false => assert!(
                code == 2 && err.contains("not supported by this CPU"),
                "{err}"
            ),
        }
    }
}
