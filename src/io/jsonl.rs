//! Resumable append-only JSON Lines result logs.
//!
//! One record per line, each written with a single `write` of `json + "\n"` to a file opened in
//! append mode and flushed at once, so a killed process loses at most the line it was writing.
//! On resume the file is scanned:
//! - an unterminated last line that is not valid JSON is a *torn* write and is cut off (the file is
//!   truncated to the last newline); an unterminated last line that parses is a complete record
//!   missing only its newline, which is added (a prefix of a JSON object never parses);
//! - every other line must be a JSON value whose key (a caller-supplied function) exists; a bad
//!   line is an error naming the file and 1-based line number, or, with `skip_corrupt`, a warning
//!   on stderr and the line is left in place but ignored.
//!
//! Only one [`JsonlWriter`] may hold a file at a time: it takes an exclusive advisory lock
//! (`flock`) for its lifetime, so a second run pointed at the same file fails instead of
//! interleaving lines. The lock belongs to the open file description, which a child process forked
//! by another thread shares until it execs (or for its whole life, if the descriptor is passed to
//! it); so dropping the writer *unlocks* explicitly before closing, instead of relying on the last
//! close, and a writer reopened right after the previous one was dropped never finds a stale lock.
//!
//! Durability: records survive a killed process; [`JsonlWriter::sync`] also makes them survive a
//! power loss (it is not called per record because fsync per line costs milliseconds).

use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonlOptions {
    /// Continue an existing file (otherwise a non-empty existing file is refused).
    pub resume: bool,
    /// Skip corrupt lines with a warning instead of failing.
    pub skip_corrupt: bool,
}

/// What was found in an existing file when resuming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeState<K: Ord> {
    /// Keys of the valid records already present.
    pub completed: BTreeSet<K>,
    /// Number of valid records already present (duplicates included).
    pub records: usize,
    /// Valid records whose key was already seen.
    pub duplicates: usize,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: usize,
    /// 1-based line numbers of corrupt lines skipped (only with `skip_corrupt`).
    pub skipped_lines: Vec<usize>,
}

impl<K: Ord> Default for ResumeState<K> {
    fn default() -> Self {
        ResumeState {
            completed: BTreeSet::new(),
            records: 0,
            duplicates: 0,
            torn_bytes: 0,
            skipped_lines: Vec::new(),
        }
    }
}

/// The parsed content of a JSONL file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JsonlContents {
    /// (1-based line number, record).
    pub records: Vec<(usize, Value)>,
    /// 1-based line numbers of corrupt lines skipped.
    pub skipped_lines: Vec<usize>,
    /// Length of the valid prefix of the file (up to and including the last complete line).
    pub valid_len: usize,
    /// A parseable last line lacked its newline.
    pub missing_newline: bool,
    /// Bytes of a torn (unparseable, unterminated) last line.
    pub torn_bytes: usize,
}

/// Parse JSONL `bytes`; `key` rejects records without the fields the caller needs.
fn scan(
    bytes: &[u8],
    path: &Path,
    skip_corrupt: bool,
    valid: &dyn Fn(&Value) -> bool,
) -> Result<JsonlContents> {
    let mut out = JsonlContents::default();
    let mut start = 0;
    let mut line_no = 0;
    while start < bytes.len() {
        line_no += 1;
        let (end, terminated) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(p) => (start + p, true),
            None => (bytes.len(), false),
        };
        let line = &bytes[start..end];
        let parsed = serde_json::from_slice::<Value>(line);
        match parsed {
            Ok(v) if valid(&v) => {
                out.records.push((line_no, v));
                out.missing_newline = !terminated;
                out.valid_len = end + usize::from(terminated);
            }
            Ok(_) | Err(_) if !terminated => {
                out.torn_bytes = line.len();
                break;
            }
            res => {
                let why = match res {
                    Err(e) => format!("not valid JSON ({e})"),
                    Ok(_) => "record lacks the fields that identify it".to_string(),
                };
                if !skip_corrupt {
                    return Err(Error::input(
                        format!("{}:{line_no}", path.display()),
                        format!(
                            "corrupt line: {why}; fix or delete the line, or rerun with the \
                             skip-corrupt option to ignore it"
                        ),
                    ));
                }
                eprintln!(
                    "warning: {}:{line_no}: skipping corrupt line: {why}",
                    path.display()
                );
                out.skipped_lines.push(line_no);
                out.valid_len = end + 1;
            }
        }
        start = end + 1;
    }
    Ok(out)
}

/// Read a whole JSONL file. A torn last line (killed writer) is ignored with a warning; other bad
/// lines fail naming the line unless `skip_corrupt`.
pub fn read_jsonl(path: impl AsRef<Path>, skip_corrupt: bool) -> Result<JsonlContents> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let c = scan(&bytes, path, skip_corrupt, &|_| true)?;
    if c.torn_bytes > 0 {
        eprintln!(
            "warning: {}: ignoring an unfinished last line ({} bytes; the writer was probably killed)",
            path.display(),
            c.torn_bytes
        );
    }
    Ok(c)
}

/// An append-only JSONL file, one flushed line per record.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    file: File,
    appended: usize,
}

impl JsonlWriter {
    /// Open `path` for appending; see [`JsonlWriter::open_with`].
    pub fn open<K: Ord>(
        path: impl AsRef<Path>,
        resume: bool,
        key: impl Fn(&Value) -> Option<K>,
    ) -> Result<(JsonlWriter, ResumeState<K>)> {
        Self::open_with(
            path,
            JsonlOptions {
                resume,
                skip_corrupt: false,
            },
            key,
        )
    }

    /// Open `path`. Without `resume`, a missing or empty file is started and a non-empty one is
    /// refused. With `resume`, existing records are scanned (module docs) and their keys returned
    /// in [`ResumeState::completed`] so the caller can skip finished work.
    pub fn open_with<K: Ord>(
        path: impl AsRef<Path>,
        opts: JsonlOptions,
        key: impl Fn(&Value) -> Option<K>,
    ) -> Result<(JsonlWriter, ResumeState<K>)> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // Lock before reading so a second writer cannot interleave lines or truncate ours. The
        // file is opened without truncation; the refusal below happens before anything is written.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::input(
                    path.display().to_string(),
                    "another process (or writer) is already appending to this results file",
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        let existing = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut state = ResumeState::default();
        let mut contents = JsonlContents::default();
        if !existing.is_empty() {
            if !opts.resume {
                return Err(Error::input(
                    path.display().to_string(),
                    "results file already exists and is not empty; pass --resume to continue it, \
                     or choose another output file",
                ));
            }
            contents = scan(&existing, path, opts.skip_corrupt, &|v| key(v).is_some())?;
            state.torn_bytes = contents.torn_bytes;
            state.skipped_lines = contents.skipped_lines.clone();
            for (_, v) in &contents.records {
                let k = key(v).expect("scan kept only records with a key");
                state.records += 1;
                if !state.completed.insert(k) {
                    state.duplicates += 1;
                }
            }
        }
        if state.torn_bytes > 0 {
            eprintln!(
                "warning: {}: cutting off an unfinished last line ({} bytes; the previous run was \
                 probably killed mid-write)",
                path.display(),
                state.torn_bytes
            );
            file.set_len(contents.valid_len as u64)
                .map_err(|e| Error::io(path, e))?;
        }
        let mut w = JsonlWriter {
            path: path.to_path_buf(),
            file,
            appended: 0,
        };
        if contents.missing_newline {
            w.file.write_all(b"\n").map_err(|e| Error::io(path, e))?;
        }
        Ok((w, state))
    }

    /// Append one record as one line and flush it.
    pub fn append<T: serde::Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| {
            Error::input(
                self.path.display().to_string(),
                format!("record cannot be serialised: {e}"),
            )
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))?;
        self.appended += 1;
        Ok(())
    }

    /// Force written records to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records appended through this writer.
    pub fn appended(&self) -> usize {
        self.appended
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        // Release the lock on the open file description itself (module doc): a copy of the
        // descriptor held by a forked child would otherwise keep it until that child execs or exits.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// A child process holding a copy of the writer's descriptor (here as its stdin, the way a
    /// child forked by a parallel thread holds one until exec) must not keep the file locked once
    /// the writer is dropped. Without the explicit unlock in `Drop` the reopen below fails with
    /// "already appending".
    #[test]
    fn a_dropped_writer_releases_its_lock_even_while_a_child_holds_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let key = |v: &Value| v.get("k").and_then(Value::as_u64);
        let (mut w, _) = JsonlWriter::open(&path, false, key).unwrap();
        w.append(&serde_json::json!({"k": 1})).unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::from(w.file.try_clone().unwrap()))
            .spawn()
            .unwrap();
        drop(w);
        let reopened = JsonlWriter::open(&path, true, key);
        child.kill().unwrap();
        child.wait().unwrap();
        let (_, state) = reopened.unwrap();
        assert_eq!(state.records, 1);
        // And the lock is still exclusive while a writer is alive.
        let (_w, _) = JsonlWriter::open(&path, true, key).unwrap();
        let second = JsonlWriter::open(&path, true, key);
        assert!(second.is_err(), "a second writer must be refused");
    }
}
