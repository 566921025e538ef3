//! `bbed sweep` as a batch job: with stderr not a terminal it writes progress lines (records
//! done/total of the shard, rate, ETA, cells), and a resumed sweep counts from the records
//! already in its folder.

use std::path::Path;
use std::process::Command;

use crate::sweep_support::*;

fn sweep(zoo: &Path, grid: &Path, data: &Path, out: &Path, more: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_bbed"))
        .arg("sweep")
        .arg("--zoo")
        .arg(zoo)
        .arg("--config")
        .arg(grid)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--images", "2", "--seed", "7", "--reruns", "1"])
        .args(more)
        .env("BBED_PROGRESS_SECS", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

fn lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("sweep: "))
        .collect()
}

#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = write_zoo(&tmp.path().join("zoo"));
    let grid = write_grid(tmp.path());
    let data = write_dataset(&tmp.path().join("data"), &dataset(1));
    let out = tmp.path().join("out");
    // Two entries x the grid's cells with one rerun x two images.
    let total = 2 * cells_per_entry(1) * 2;

    // Stopped after 10 records: a line per record (BBED_PROGRESS_SECS=0) and a last one where
    // it stopped.
    let err = sweep(&zoo, &grid, &data, &out, &["--max-records", "10"]);
    let l = lines(&err);
    assert_eq!(l.len(), 11, "{err}");
    assert!(
        l[10].starts_with(&format!("sweep: 10/{total} records")),
        "{err}"
    );
    assert!(
        l[0].starts_with(&format!("sweep: 1/{total} records (")),
        "{err}"
    );
    assert!(
        l.iter()
            .all(|l| l.contains("/s, ETA ") && l.contains(", cells ")),
        "{err}"
    );
    assert!(
        l[9].starts_with(&format!("sweep: 10/{total} records")),
        "{err}"
    );

    // Resumed: the count starts at the 10 records already there and ends at the total.
    let err = sweep(&zoo, &grid, &data, &out, &["--resume"]);
    let l = lines(&err);
    assert_eq!(l.len(), total - 10, "{err}");
    assert!(
        l[0].starts_with(&format!("sweep: 11/{total} records")),
        "{err}"
    );
    let last = format!("sweep: {total}/{total} records (100.0%)");
    assert!(l.last().unwrap().starts_with(&last), "{err}");
}
