//! Nothing lost, nothing silently wrong (issue 18), end to end through the `bbed` binary:
//! outputs never overwrite inputs or existing files without --force, an unusable output folder
//! fails before any work, writes are atomic, one rule per parameter, size guards, and progress a
//! batch system can see. The data is a tiny seeded MNIST-style IDX folder written per test.

use breakingbed::engine::params;
use breakingbed::io::idx::write_idx;
use breakingbed::io::WeightStore;
use breakingbed::model;
use breakingbed::variant::{apply, VariantKind, VariantSpec};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::bbed;

const SIDE: usize = 12;

/// A 10-class IDX folder with `n_train` / `n_test` random SIDE x SIDE images.
fn idx_data(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let px: Vec<u8> = (0..n * SIDE * SIDE).map(|_| rng.gen()).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            &[n, SIDE, SIDE],
            &px,
            false,
        )
        .unwrap();
        write_idx(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            &[n],
            &labels,
            false,
        )
        .unwrap();
    }
    dir.to_path_buf()
}

const INPUT: &str = "1,12,12";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train", "--model", "resnet8", "--input", INPUT, "--data", data, "--out", out, "--batch",
        "16",
    ];
    v.extend_from_slice(extra);
    v
}

fn user_error(args: &[&str], needles: &[&str]) -> String {
    let (code, out, err) = bbed(args);
    assert_eq!(code, 2, "{args:?}: stdout {out} stderr {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
    err
}

fn save_init(path: &Path) {
    let net = model::builtin("resnet8", Some([1, SIDE, SIDE]), Some(10)).unwrap();
    let cn = apply(&net, &VariantSpec::new(VariantKind::Vanilla)).unwrap();
    params::save(&cn, &params::init(&cn, 1), path).unwrap();
}

#[test]
fn outputs_never_replace_inputs_or_existing_files_silently() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let data = s(&idx_data(&d("data"), 40, 20));
    let w = d("w.safetensors");
    save_init(&w);
    let before = std::fs::read(&w).unwrap();
    let ws = s(&w);
    let prune = |out: &Path, extra: &[&str]| -> (i32, String, String) {
        let out = s(out);
        let mut v = vec![
            "prune",
            "--model",
            "resnet8",
            "--input",
            INPUT,
            "--weights",
            &ws,
            "--scheme",
            "filter",
            "--out",
            &out,
        ];
        v.extend_from_slice(extra);
        bbed(&v)
    };
    let call = |r: (i32, String, String), needles: &[&str]| {
        assert_eq!(r.0, 2, "{r:?}");
        assert!(!r.2.contains("panicked"), "{r:?}");
        for n in needles {
            assert!(r.2.contains(n), "'{n}' not in {}", r.2);
        }
    };
    // prune --out equal to --weights: refused even with --force, the input untouched.
    call(prune(&w, &[]), &["--out", "same file as --weights"]);
    call(prune(&w, &["--force"]), &["same file as --weights"]);
    // The same file under another spelling and through a symlink.
    let dotted = dir.path().join(".").join("w.safetensors");
    call(prune(&dotted, &["--force"]), &["same file as --weights"]);
    std::os::unix::fs::symlink(&w, d("link.safetensors")).unwrap();
    call(
        prune(&d("link.safetensors"), &["--force"]),
        &["same file as --weights"],
    );
    assert_eq!(
        std::fs::read(&w).unwrap(),
        before,
        "the input weights changed"
    );
    // prune --out onto a dataset file: it exists, so refused without --force.
    let images = d("data").join("t10k-images-idx3-ubyte");
    let img_before = std::fs::read(&images).unwrap();
    call(prune(&images, &[]), &["already exists", "--force"]);
    assert_eq!(std::fs::read(&images).unwrap(), img_before);
    // A new file works; writing it again needs --force.
    let p = d("p.safetensors");
    assert_eq!(prune(&p, &[]).0, 0);
    call(prune(&p, &[]), &["already exists"]);
    assert_eq!(prune(&p, &["--force"]).0, 0);

    // The agent's rates file (both spellings) follows the same rule, before any search.
    let rates = d("rates.toml");
    std::fs::write(&rates, "\"conv1\" = 0.5\n").unwrap();
    let rs = s(&rates);
    for cmd in [
        vec!["prune-agent", "--out", rs.as_str()],
        vec!["prune", "--agent", "--rates-out", rs.as_str()],
    ] {
        let mut a = cmd.clone();
        a.extend([
            "--model",
            "resnet8",
            "--input",
            INPUT,
            "--weights",
            &ws,
            "--data",
            &data,
            "--budget",
            "0.5",
        ]);
        user_error(&a, &["already exists"]);
        a.extend(["--force", "--history", &ws]);
        user_error(&a, &["--history", "same file as --weights"]);
    }
    assert_eq!(
        std::fs::read_to_string(&rates).unwrap(),
        "\"conv1\" = 0.5\n"
    );
    // train --init X --out X: refused even with --force.
    user_error(
        &train_args(&data, &ws, &["--init", &ws, "--force"]),
        &["--out", "same file as --init"],
    );
    // train --out onto an existing model or a zoo manifest: refused without --force.
    user_error(&train_args(&data, &ws, &[]), &["already exists", "--force"]);
    let manifest = d("manifest.json");
    std::fs::write(&manifest, "{\"dataset\": \"x\", \"entries\": []}").unwrap();
    user_error(&train_args(&data, &s(&manifest), &[]), &["already exists"]);
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        "{\"dataset\": \"x\", \"entries\": []}"
    );
    assert_eq!(
        std::fs::read(&w).unwrap(),
        before,
        "the input weights changed"
    );
    // --force replaces an existing output that is no input.
    let o = d("o.safetensors");
    std::fs::write(&o, b"old").unwrap();
    let os = s(&o);
    let (code, _, err) = bbed(&train_args(&data, &os, &["--force"]));
    assert_eq!(code, 0, "{err}");
    assert!(WeightStore::load(&o).is_ok());
}

#[test]
fn an_unusable_output_folder_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = s(&idx_data(&dir.path().join("data"), 40, 20));
    // A "folder" that is a file: nothing can be created in it.
    let file = dir.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let out = s(&file.join("w.safetensors"));
    let started = Instant::now();
    let (code, stdout, err) = bbed(&train_args(&data, &out, &["--epochs", "1"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not writable") && err.contains("afile"),
        "{err}"
    );
    // Refused before any epoch ran.
    assert!(
        !stdout.contains("epoch") && !err.contains("epoch"),
        "{stdout} {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Same for prune and zoo.
    let w = dir.path().join("w.safetensors");
    save_init(&w);
    user_error(
        &[
            "prune",
            "--model",
            "resnet8",
            "--input",
            INPUT,
            "--weights",
            &s(&w),
            "--scheme",
            "filter",
            "--out",
            &out,
        ],
        &["not writable"],
    );
    user_error(
        &[
            "zoo", "--model", "resnet8", "--input", INPUT, "--data", &data, "--out", &out,
            "--only", "vanilla",
        ],
        &["not writable"],
    );
}

#[test]
fn a_full_disk_leaves_no_truncated_vector_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vec");
    // Files may grow to 4 KiB only (bash's `ulimit -f` counts KiB; SIGXFSZ ignored, so a write
    // beyond fails with EFBIG like on a full disk). weights.hex (288 words) fits, acts.hex (1024
    // words of 13 bytes) does not.
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 4; exec '{}' vectors --model resnet8 --variant xnor --layer \
         layer2.0.conv1 --images 1 --out '{}'",
        env!("CARGO_BIN_EXE_bbed"),
        out.display()
    );
    let o = Command::new("bash").arg("-c").arg(&cmd).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("acts.hex") && !err.contains("panicked"),
        "{err}"
    );
    // A cut-off write stops exactly at the limit; nothing half-written may remain.
    let mut names = Vec::new();
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "temp file {name} left behind");
        assert_ne!(
            std::fs::metadata(&p).unwrap().len(),
            4096,
            "{name} is truncated"
        );
        names.push(name);
    }
    assert_eq!(names, ["weights.hex"], "only the complete file remains");
}

#[test]
fn one_rule_per_parameter() {
    // --limit 0 would report "accuracy 0.0000 of 0".
    user_error(
        &[
            "infer",
            "--model",
            "resnet8",
            "--input",
            "1,28,28",
            "--data",
            "/nonexistent",
            "--limit",
            "0",
        ],
        &["--limit", "at least 1"],
    );
    // A rate of 1 removes every filter: cost refuses it as prune does.
    for cmd in ["cost", "infer"] {
        let mut a = vec![
            cmd,
            "--model",
            "resnet8",
            "--variant",
            "filter",
            "--rate",
            "1.0",
        ];
        if cmd == "infer" {
            a.extend(["--data", "/nonexistent"]);
        }
        user_error(&a, &["--rate", "(0, 1)"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let y = s(&dir.path().join("y.safetensors"));
    let e = user_error(
        &[
            "prune",
            "--model",
            "resnet8",
            "--weights",
            "/x",
            "--scheme",
            "filter",
            "--rate",
            "1.0",
            "--out",
            &y,
        ],
        &["--rate", "(0, 1)"],
    );
    assert!(e.contains("pruning rate 1"), "{e}");
    // A per-layer override of 1 in a rates file, for cost as for prune.
    let rates = dir.path().join("r.toml");
    std::fs::write(&rates, "\"layer1.*\" = 1.0\n").unwrap();
    user_error(
        &[
            "cost",
            "--model",
            "resnet8",
            "--variant",
            "channel",
            "--rates",
            &s(&rates),
        ],
        &["layer1.*", "[0, 1)"],
    );
}

#[test]
fn size_guards_refuse_before_allocating() {
    // A depth whose description alone would take terabytes: refused at once with the estimate.
    let started = Instant::now();
    let e = user_error(
        &["cost", "--model", "resnet6000000002"],
        &["resnet6000000002", "estimated", "GB", "BBED_MAX_MEMORY"],
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{e}");
    // A network TOML with 1e9 channels: cost counts it analytically, infer refuses.
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("huge.toml");
    std::fs::write(
        &toml,
        r#"name = "huge"
input = [1, 28, 28]
num_classes = 10
[[layers]]
name = "conv1"
op = "conv"
out_c = 1000000000
kernel = 3
padding = 1
[[layers]]
name = "pool"
op = "global_avg_pool"
[[layers]]
name = "fc"
op = "linear"
out_f = 10
"#,
    )
    .unwrap();
    let (code, out, err) = bbed(&["cost", "--model", &s(&toml)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("TOTAL"), "{out}");
    let data = s(&idx_data(&dir.path().join("data"), 0, 10));
    let e = user_error(
        &["infer", "--model", &s(&toml), "--data", &data],
        &["huge", "estimated", "GB", "--batch", "BBED_MAX_MEMORY"],
    );
    assert!(!e.contains("memory allocation"), "{e}");
    // The limit is overridable: with a tiny one even resnet8 is refused, naming the limit.
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args([
            "infer", "--model", "resnet8", "--input", "1,12,12", "--data", &data,
        ])
        .env("BBED_MAX_MEMORY", "0.000001")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("limit of 0.00 GB"), "{err}");
}

#[test]
fn a_bad_batch_norm_variance_names_layer_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = s(&idx_data(&dir.path().join("data"), 0, 10));
    let w = dir.path().join("bad.safetensors");
    save_init(&w);
    let mut store = WeightStore::load(&w).unwrap();
    store
        .tensors
        .get_mut("layer1.0.bn2.running_var")
        .unwrap()
        .as_slice_mut()
        .unwrap()[3] = -2.0;
    store.save(&w).unwrap();
    user_error(
        &[
            "infer",
            "--model",
            "resnet8",
            "--input",
            INPUT,
            "--data",
            &data,
            "--weights",
            &s(&w),
        ],
        &["bad.safetensors", "layer1.0.bn2", "channel 3", "-2"],
    );
}

#[test]
fn resume_refuses_other_settings_and_lets_epochs_grow() {
    let dir = tempfile::tempdir().unwrap();
    let data = s(&idx_data(&dir.path().join("data"), 64, 20));
    let out = s(&dir.path().join("w.safetensors"));
    let base = |extra: &[&str]| {
        let mut v = train_args(&data, &out, &["--subset", "48"]);
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |v: Vec<String>| bbed(&v.iter().map(|x| x.as_str()).collect::<Vec<_>>());
    let (code, _, err) = run(base(&["--epochs", "1"]));
    assert_eq!(code, 0, "{err}");
    // On a finished checkpoint and mid-run alike, each result-changing setting is named.
    for (flag, value, named) in [
        ("--subset", "32", "--subset"),
        ("--seed", "5", "seed"),
        ("--lr", "0.5", "schedule"),
        ("--batch", "8", "batch_size"),
        ("--variant", "filter", "--variant"),
        ("--schedule", "step", "schedule"),
    ] {
        let mut v = base(&["--epochs", "2", "--resume"]);
        // The later of two equal flags wins in clap only for some; replace instead.
        if let Some(i) = v.iter().position(|x| x == flag) {
            v[i + 1] = value.into();
        } else {
            v.extend([flag.to_string(), value.to_string()]);
        }
        let (code, _, err) = run(v);
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains("another training config") && err.contains(named),
            "{flag}: {err}"
        );
    }
    // Only epochs may change, and only grow.
    let (code, out2, err) = run(base(&["--epochs", "2", "--resume"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out2.contains("epoch   1") && !out2.contains("epoch   0"),
        "{out2}"
    );
    let (code, _, err) = run(base(&["--epochs", "1", "--resume"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("epochs may only grow"), "{err}");
}

#[test]
fn zoo_records_its_settings_and_refuses_a_silent_skip() {
    let dir = tempfile::tempdir().unwrap();
    let data = s(&idx_data(&dir.path().join("data"), 48, 20));
    let out = s(&dir.path().join("zoo"));
    let zoo = |extra: &[&str]| {
        let mut v = vec![
            "zoo", "--model", "resnet8", "--input", INPUT, "--data", &data, "--out", &out,
            "--only", "vanilla", "--batch", "16",
        ];
        v.extend_from_slice(extra);
        bbed(&v)
    };
    let (code, _, err) = zoo(&["--epochs", "1"]);
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("zoo/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["entries"][0]["training"]["epochs"], 1, "{m}");
    // Same settings: skipped.
    let (code, _, err) = zoo(&["--epochs", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipping"), "{err}");
    // Other settings: refused, naming the setting; --force re-trains.
    let (code, _, err) = zoo(&["--epochs", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("epochs") && err.contains("--force"), "{err}");
    let (code, _, err) = zoo(&["--epochs", "2", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("skipping"), "{err}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("zoo/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["entries"][0]["training"]["epochs"], 2, "{m}");
    // A folder that holds something else is no zoo to continue.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"keep").unwrap();
    let (code, _, err) = bbed(&[
        "zoo",
        "--model",
        "resnet8",
        "--input",
        INPUT,
        "--data",
        &data,
        "--out",
        &s(&other),
        "--only",
        "vanilla",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn epoch_lines_reach_a_redirected_stdout_while_training_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = s(&idx_data(&dir.path().join("data"), 64, 20));
    let out = s(&dir.path().join("w.safetensors"));
    let log = dir.path().join("stdout.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(train_args(&data, &out, &["--epochs", "400"]))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    while started.elapsed() < Duration::from_secs(120) {
        seen = std::fs::read_to_string(&log).unwrap_or_default();
        if seen.contains("epoch   0") || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        still_running,
        "the run ended before its first epoch line appeared: {seen}"
    );
    assert!(seen.contains("epoch   0"), "stdout so far: {seen:?}");
}

#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = s(&idx_data(&dir.path().join("data"), 64, 20));
    let out = s(&dir.path().join("w.safetensors"));
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(train_args(&data, &out, &["--epochs", "2"]))
        .env("BBED_PROGRESS_SECS", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // 64 images in batches of 16: 4 updates per epoch, 8 in all, one line each.
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("train: ")).collect();
    assert_eq!(lines.len(), 8, "{err}");
    assert!(
        lines[0].contains("1/8 updates (12.5%)") && lines[0].contains("ETA"),
        "{err}"
    );
    assert!(lines[7].contains("8/8 updates (100.0%)"), "{err}");
    // infer too: 20 test images in batches of 8, a line per batch.
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args([
            "infer", "--model", "resnet8", "--input", INPUT, "--data", &data, "--batch", "8",
        ])
        .env("BBED_PROGRESS_SECS", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("infer: ")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[2].contains("20/20 images (100.0%)"), "{err}");
}
