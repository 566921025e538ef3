//! Bad input to `bbed sweep`, `bbed merge` and `bbed report`: clear errors naming the entry,
//! file:line or folder, and nothing overwritten.

use crate::sweep_support;

use std::process::Command;

use breakingbed::report::{report_from_paths, ReportInputs};
use breakingbed::sweep::{merge_shards, run_sweep, Shard, RESULTS_FILE};
use sweep_support::*;

#[test]
fn zoo_entry_without_weights_fails_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    std::fs::remove_file(zoo.join("resnet8-xnor.safetensors")).unwrap();
    let grid = write_grid(tmp.path());
    let out = tmp.path().join("out");
    let e = run_sweep(&options(&zoo, &grid, &out), &dataset(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"resnet8-xnor\""), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    assert!(!out.exists(), "no output before the zoo is checked");
}

#[test]
fn zoo_for_other_images_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let images = ndarray::Array4::<u8>::zeros((4, 1, 10, 10));
    let data =
        breakingbed::io::dataset::Dataset::new(images, vec![0, 1, 2, 3], 10, "other").unwrap();
    let e = run_sweep(&options(&zoo, &grid, &tmp.path().join("o")), &data)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resnet8-vanilla") && e.contains("[1, 10, 10]"),
        "{e}"
    );
}

#[test]
fn corrupted_results_line_is_named_and_skippable() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(1);
    let out = tmp.path().join("out");
    let mut o = options(&zoo, &grid, &out);
    o.only_attacks = Some(vec!["fgsm".into(), "deepfool".into()]);
    let s = run_sweep(&o, &data).unwrap();
    let path = out.join(RESULTS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = r#"{"variant": "resnet8-vanilla", "attack": 12"#;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    // The report names file:line, or skips it with the flag.
    let rep = tmp.path().join("report");
    let e = report_from_paths(&[&out], false, &ReportInputs::default(), &rep)
        .unwrap_err()
        .to_string();
    assert!(e.contains("results.jsonl:5"), "{e}");
    let r = report_from_paths(&[&out], true, &ReportInputs::default(), &rep).unwrap();
    assert_eq!(r.records, s.records_total - 1);

    // Resuming the sweep stops at the line too, unless told to skip it; the skipped record is
    // then recomputed.
    o.resume = true;
    let e = run_sweep(&o, &data).unwrap_err().to_string();
    assert!(e.contains("results.jsonl") && e.contains('5'), "{e}");
    o.skip_corrupt = true;
    let s2 = run_sweep(&o, &data).unwrap();
    assert_eq!(s2.records_written, 1);
}

#[test]
fn resume_with_other_settings_or_rerun_without_resume_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(1);
    let out = tmp.path().join("out");
    let mut o = options(&zoo, &grid, &out);
    o.only_attacks = Some(vec!["fgsm".into()]);
    o.max_records = Some(2);
    run_sweep(&o, &data).unwrap();
    let before = snapshot(&out);

    o.max_records = None;
    let e = run_sweep(&o, &data).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    o.resume = true;
    o.seed = 8;
    let e = run_sweep(&o, &data).unwrap_err().to_string();
    assert!(e.contains("sweep.json") && e.contains("seed"), "{e}");
    o.seed = 7;
    o.images = 4;
    let e = run_sweep(&o, &data).unwrap_err().to_string();
    assert!(e.contains("image_indices"), "{e}");
    o.images = 3;
    o.only_attacks = Some(vec!["nosuch".into()]);
    let e = run_sweep(&o, &data).unwrap_err().to_string();
    assert!(e.contains("--only-attacks") && e.contains("nosuch"), "{e}");
    assert_eq!(
        snapshot(&out),
        before,
        "refused runs leave the folder alone"
    );
}

#[test]
fn incompatible_or_incomplete_shards_are_refused_and_nothing_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(1);
    let shard = |name: &str, i: usize, n: usize, seed: u64| {
        let out = tmp.path().join(name);
        let mut o = options(&zoo, &grid, &out);
        o.only_attacks = Some(vec!["fgsm".into()]);
        o.shard = Some(Shard { index: i, count: n });
        o.seed = seed;
        run_sweep(&o, &data).unwrap();
        out
    };
    let a = shard("a", 0, 2, 7);
    let b = shard("b", 1, 2, 7);
    let b_other_seed = shard("b2", 1, 2, 8);
    let c_of_three = shard("c", 1, 3, 7);
    let merged = tmp.path().join("merged");
    let cases = [
        (vec![a.clone(), b_other_seed], "seed"),
        (vec![a.clone(), c_of_three], "one of 2 shards"),
        (vec![a.clone(), a.clone()], "also in"),
        (vec![a.clone()], "missing"),
        (vec![a.clone(), tmp.path().join("zoo")], "sweep.json"),
    ];
    for (inputs, want) in cases {
        let e = merge_shards(&inputs, &merged, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(!merged.exists(), "nothing written on refusal");
    }
    // A duplicate record smuggled into shard b is refused.
    let extra = std::fs::read_to_string(a.join(RESULTS_FILE)).unwrap();
    let first = extra.lines().next().unwrap().to_string() + "\n";
    let b_path = b.join(RESULTS_FILE);
    let b_orig = std::fs::read(&b_path).unwrap();
    let mut dup = b_orig.clone();
    dup.extend_from_slice(first.as_bytes());
    std::fs::write(&b_path, &dup).unwrap();
    let e = merge_shards(&[a.clone(), b.clone()], &merged, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate"), "{e}");
    std::fs::write(&b_path, &b_orig).unwrap();

    // An existing non-empty output folder is never overwritten.
    std::fs::create_dir_all(&merged).unwrap();
    std::fs::write(merged.join("keep.txt"), "mine").unwrap();
    let before = snapshot(&merged);
    let e = merge_shards(&[a.clone(), b.clone()], &merged, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("never overwrites"), "{e}");
    assert_eq!(snapshot(&merged), before);
    // The CLI reports the same as `error: ...` with exit code 2.
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .args(["merge"])
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("never overwrites"),
        "{err}"
    );
    assert_eq!(snapshot(&merged), before);
    // A fresh folder works.
    merge_shards(&[a, b], &tmp.path().join("merged2"), false).unwrap();
}
