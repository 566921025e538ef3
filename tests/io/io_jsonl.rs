//! Resumable JSONL: torn last lines, corrupt middle lines, refusal to overwrite, and a run killed
//! at arbitrary byte offsets that resumes to exactly the uninterrupted content.

use breakingbed::io::jsonl::{read_jsonl, JsonlOptions, JsonlWriter};
use breakingbed::Error;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;

fn key(v: &Value) -> Option<u64> {
    v.get("id")?.as_u64()
}

fn input_message(e: Error) -> String {
    match e {
        Error::Input { .. } => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

fn rec(i: u64) -> Value {
    json!({"id": i, "attack": "pgd", "eps": 0.5, "adv_pred": i % 10})
}

#[test]
fn fresh_file_one_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/results.jsonl");
    let (mut w, st) = JsonlWriter::open(&path, false, key).unwrap();
    assert!(st.completed.is_empty());
    for i in 0..3 {
        w.append(&rec(i)).unwrap();
    }
    assert_eq!(w.appended(), 3);
    w.sync().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.ends_with('\n'));
    assert_eq!(
        serde_json::from_str::<Value>(text.lines().nth(1).unwrap()).unwrap(),
        rec(1)
    );
    let c = read_jsonl(&path, false).unwrap();
    assert_eq!(
        c.records.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn refuses_to_overwrite_without_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    std::fs::write(&path, "").unwrap();
    // An empty file may be started.
    let (mut w, _) = JsonlWriter::open(&path, false, key).unwrap();
    w.append(&rec(0)).unwrap();
    drop(w);
    let msg = input_message(JsonlWriter::open(&path, false, key).unwrap_err());
    assert!(msg.contains("r.jsonl"), "{msg}");
    assert!(msg.contains("--resume"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        1,
        "untouched"
    );
}

#[test]
fn resume_cuts_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let (mut w, _) = JsonlWriter::open(&path, false, key).unwrap();
    for i in 0..3 {
        w.append(&rec(i)).unwrap();
    }
    drop(w);
    let torn = br#"{"id": 3, "attack": "pg"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();

    let (mut w, st) = JsonlWriter::open(&path, true, key).unwrap();
    assert_eq!(st.completed, BTreeSet::from([0, 1, 2]));
    assert_eq!(st.records, 3);
    assert_eq!(st.torn_bytes, torn.len());
    w.append(&rec(3)).unwrap();
    drop(w);
    let c = read_jsonl(&path, false).unwrap();
    assert_eq!(
        c.records.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        (0..4).map(rec).collect::<Vec<_>>()
    );
    assert_eq!(c.torn_bytes, 0);
}

#[test]
fn complete_last_record_without_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    std::fs::write(&path, format!("{}\n{}", rec(0), rec(1))).unwrap();
    let (mut w, st) = JsonlWriter::open(&path, true, key).unwrap();
    assert_eq!(st.completed, BTreeSet::from([0, 1]));
    assert_eq!(st.torn_bytes, 0);
    w.append(&rec(2)).unwrap();
    drop(w);
    assert_eq!(read_jsonl(&path, false).unwrap().records.len(), 3);
}

#[test]
fn corrupt_middle_line_is_an_error_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let body = format!(
        "{}\n{{\"id\": 1, oops\n{}\n{}\n",
        rec(0),
        rec(2),
        json!({"no_id": true})
    );
    std::fs::write(&path, &body).unwrap();

    let msg = input_message(JsonlWriter::open(&path, true, key).unwrap_err());
    assert!(msg.contains(&format!("{}:2", path.display())), "{msg}");
    assert!(msg.contains("not valid JSON"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        body,
        "nothing changed on error"
    );
    let msg = input_message(read_jsonl(&path, false).unwrap_err());
    assert!(msg.contains(":2"), "{msg}");

    let opts = JsonlOptions {
        resume: true,
        skip_corrupt: true,
    };
    let (mut w, st) = JsonlWriter::open_with(&path, opts, key).unwrap();
    assert_eq!(st.completed, BTreeSet::from([0, 2]));
    assert_eq!(st.skipped_lines, vec![2, 4], "line 4 has no key");
    w.append(&rec(1)).unwrap();
    drop(w);
    let c = read_jsonl(&path, true).unwrap();
    assert_eq!(c.skipped_lines, vec![2]);
    assert_eq!(c.records.len(), 4, "reader without a key accepts line 4");
}

#[test]
fn duplicates_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    std::fs::write(&path, format!("{}\n{}\n{}\n", rec(0), rec(1), rec(0))).unwrap();
    let (_, st) = JsonlWriter::open(&path, true, key).unwrap();
    assert_eq!((st.records, st.duplicates, st.completed.len()), (3, 1, 2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A run over `n` work items killed after an arbitrary number of bytes, then resumed (possibly
    /// killed again), ends with exactly one record per item and the same records as an
    /// uninterrupted run.
    #[test]
    fn killed_and_resumed_runs_match_an_uninterrupted_one(
        n in 1u64..40,
        cuts in prop::collection::vec(0.0f64..1.0, 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let full_path = dir.path().join("full.jsonl");
        let (mut w, _) = JsonlWriter::open(&full_path, false, key).unwrap();
        for i in 0..n { w.append(&rec(i)).unwrap(); }
        drop(w);
        let full = std::fs::read(&full_path).unwrap();

        let path = dir.path().join("run.jsonl");
        // The first run wrote a prefix of the full byte stream, then died.
        let cut = (cuts[0] * full.len() as f64) as usize;
        std::fs::write(&path, &full[..cut]).unwrap();
        for &frac in &cuts[1..] {
            // Each resumed run appends some of the remaining records, then dies mid-line.
            let (mut w, st) = JsonlWriter::open(&path, true, key).unwrap();
            let todo: Vec<u64> = (0..n).filter(|i| !st.completed.contains(i)).collect();
            let k = (frac * todo.len() as f64) as usize;
            for &i in &todo[..k] { w.append(&rec(i)).unwrap(); }
            drop(w);
            if let Some(&i) = todo.get(k) {
                let line = serde_json::to_vec(&rec(i)).unwrap();
                let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                f.write_all(&line[..line.len() / 2]).unwrap();
            }
        }
        let (mut w, st) = JsonlWriter::open(&path, true, key).unwrap();
        prop_assert_eq!(st.duplicates, 0);
        for i in (0..n).filter(|i| !st.completed.contains(i)) { w.append(&rec(i)).unwrap(); }
        drop(w);
        let got: Vec<Value> = read_jsonl(&path, false).unwrap().records.into_iter().map(|(_, v)| v).collect();
        prop_assert_eq!(got.len() as u64, n);
        let mut got_sorted = got.clone();
        got_sorted.sort_by_key(|v| key(v).unwrap());
        prop_assert_eq!(got_sorted, (0..n).map(rec).collect::<Vec<_>>());
    }
}

#[test]
fn second_writer_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let (mut w, _) = JsonlWriter::open(&path, false, key).unwrap();
    w.append(&rec(0)).unwrap();
    let msg = input_message(JsonlWriter::open(&path, true, key).unwrap_err());
    assert!(msg.contains("already appending"), "{msg}");
    drop(w);
    // Released when the first writer is dropped.
    let (_, st) = JsonlWriter::open(&path, true, key).unwrap();
    assert_eq!(st.completed, BTreeSet::from([0]));
}
