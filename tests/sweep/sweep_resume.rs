//! Resume and sharding of `bbed sweep`: a sweep stopped at random points (with and without a torn
//! last line, as a kill mid-write leaves) and resumed ends with exactly the records of an
//! uninterrupted run; the union of n shards is the unsharded run, and `merge` rebuilds it; the
//! records do not depend on the thread count.

use crate::sweep_support;

use std::collections::BTreeSet;
use std::io::Write;

use breakingbed::report::{canonical_attack, load_records};
use breakingbed::sweep::{merge_shards, run_sweep, Shard, SweepHeader, RESULTS_FILE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sweep_support::*;

#[test]
fn uninterrupted_sweep_writes_every_record_once() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(1);
    let out = tmp.path().join("full");
    let s = run_sweep(&options(&zoo, &grid, &out), &data).unwrap();
    // 2 entries x (fgsm 2 + pgd 2 settings x 2 reruns + cw 1 + deepfool 2 + ls 1 + ga 1) x 3 images
    let expected = 2 * cells_per_entry(2) * 3;
    assert_eq!(s.records_total, expected);
    assert_eq!(s.records_written, expected);
    assert!(!s.stopped_early);
    let recs = load_records(out.join(RESULTS_FILE), false).unwrap();
    assert_eq!(recs.len(), expected);
    let keys: BTreeSet<_> = recs
        .iter()
        .map(|r| {
            (
                r.variant.clone(),
                canonical_attack(&r.attack),
                r.setting.label(),
                r.rerun,
                r.result.index,
            )
        })
        .collect();
    assert_eq!(keys.len(), expected, "no duplicate keys");
    // The images are the seeded sample, independently drawn here.
    let want: BTreeSet<usize> = data.sample_indices(3, 7).unwrap().into_iter().collect();
    let got: BTreeSet<usize> = recs.iter().map(|r| r.result.index).collect();
    assert_eq!(got, want);
    for r in &recs {
        assert_eq!(r.result.label, data.labels[r.result.index] as usize);
        let want_kind = if r.variant.ends_with("xnor") {
            "xnor"
        } else {
            "vanilla"
        };
        assert_eq!(r.variant_kind, want_kind);
        // Only PGD (random start) is rerun.
        if r.attack == "pgd" {
            assert!(r.rerun < 2);
        } else {
            assert_eq!(r.rerun, 0, "{}", r.attack);
        }
    }
    // Black-box attacks report queries, white-box ones iterations; PGD traces are present.
    assert!(recs
        .iter()
        .filter(|r| r.attack == "localsearch" || r.attack == "genattack")
        .all(|r| r.result.queries.is_some()));
    assert!(recs
        .iter()
        .filter(|r| r.attack == "pgd")
        .all(|r| !r.result.trace.is_empty()));
    let h = SweepHeader::load(&out).unwrap().unwrap();
    assert_eq!(h.total_records, expected);
    assert_eq!(h.image_indices, data.sample_indices(3, 7).unwrap());
}

#[test]
fn killed_at_random_points_and_resumed_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(1);
    let full = tmp.path().join("full");
    run_sweep(&options(&zoo, &grid, &full), &data).unwrap();
    let want = sorted_lines(&full);

    for trial in 0..2u64 {
        let out = tmp.path().join(format!("killed{trial}"));
        let mut rng = ChaCha8Rng::seed_from_u64(trial);
        let mut first = true;
        let mut runs = 0;
        loop {
            let mut o = options(&zoo, &grid, &out);
            o.resume = !first;
            o.max_records = Some(rng.gen_range(0..=20));
            let s = run_sweep(&o, &data).unwrap();
            first = false;
            runs += 1;
            if !s.stopped_early {
                break;
            }
            // Every other stop also leaves a torn half line, as a kill during a write does.
            if rng.gen_bool(0.5) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(out.join(RESULTS_FILE))
                    .unwrap();
                f.write_all(br#"{"variant":"resnet8-van"#).unwrap();
            }
            assert!(runs < 200, "sweep does not make progress");
        }
        assert!(
            runs > 3,
            "the limits should interrupt the sweep several times"
        );
        // A final resume finds nothing to do.
        let mut o = options(&zoo, &grid, &out);
        o.resume = true;
        let s = run_sweep(&o, &data).unwrap();
        assert_eq!(s.records_written, 0);
        assert_eq!(s.records_existing, s.records_total);
        assert_eq!(sorted_lines(&out), want, "trial {trial}");
    }
}

#[test]
fn union_of_shards_equals_unsharded_and_merge_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(1);
    let full = tmp.path().join("full");
    run_sweep(&options(&zoo, &grid, &full), &data).unwrap();
    let want = sorted_lines(&full);

    let n = 3;
    let mut dirs = Vec::new();
    let mut union = Vec::new();
    let mut cells = 0;
    for i in 0..n {
        let out = tmp.path().join(format!("shard{i}"));
        let mut o = options(&zoo, &grid, &out);
        o.shard = Some(Shard { index: i, count: n });
        let s = run_sweep(&o, &data).unwrap();
        cells += s.cells;
        let lines = sorted_lines(&out);
        assert!(!lines.is_empty());
        union.extend(lines);
        dirs.push(out);
    }
    assert_eq!(cells, 2 * cells_per_entry(2), "shards partition the cells");
    union.sort();
    assert_eq!(union, want);

    let merged = tmp.path().join("merged");
    let m = merge_shards(&dirs, &merged, false).unwrap();
    assert_eq!(m.records, want.len());
    assert_eq!(sorted_lines(&merged), want);
    let h = SweepHeader::load(&merged).unwrap().unwrap();
    let mut hf = SweepHeader::load(&full).unwrap().unwrap();
    hf.zoo = h.zoo.clone();
    assert!(h.differences(&hf, true).is_empty());
}

#[test]
fn records_do_not_depend_on_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = dataset(2);
    let mut lines = Vec::new();
    for threads in [1, 3] {
        let out = tmp.path().join(format!("t{threads}"));
        let mut o = options(&zoo, &grid, &out);
        o.only_attacks = Some(vec!["pgd".into(), "genattack".into()]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run_sweep(&o, &data)).unwrap();
        lines.push(sorted_lines(&out));
    }
    assert_eq!(lines[0], lines[1]);
    assert!(lines[0]
        .iter()
        .all(|l| l.contains("\"pgd\"") || l.contains("genattack")));
}

#[test]
fn shard_strings_parse_zero_based() {
    assert_eq!(Shard::parse("0/4").unwrap(), Shard { index: 0, count: 4 });
    assert_eq!(
        Shard::parse(" 3 / 4 ").unwrap(),
        Shard { index: 3, count: 4 }
    );
    for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
        let e = Shard::parse(bad).unwrap_err().to_string();
        assert!(e.starts_with("--shard"), "{bad}: {e}");
    }
}

#[test]
fn sigkilled_cli_sweep_resumes_to_the_uninterrupted_records() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let d = dataset(1);
    let data = write_dataset(&tmp.path().join("data"), &d);
    let full = tmp.path().join("full");
    run_sweep(&options(&zoo, &grid, &full), &d).unwrap();
    let want = sorted_lines(&full);

    let out = tmp.path().join("killed");
    let cmd = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bbed"));
        c.arg("sweep")
            .arg("--zoo")
            .arg(&zoo)
            .arg("--config")
            .arg(&grid)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(["--images", "3", "--seed", "7", "--reruns", "2", "--resume"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..3 {
        let mut child = cmd().spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(20..300)));
        child.kill().ok(); // SIGKILL; it may already have finished
        child.wait().unwrap();
    }
    let status = cmd().status().unwrap();
    assert!(status.success());
    assert_eq!(sorted_lines(&out), want);
}
