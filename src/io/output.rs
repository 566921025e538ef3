//! The one rule for every file or folder a command writes, checked before any work starts:
//! - an output that already exists is refused unless the command was given `--force`;
//! - an output that is the same file as one of the command's inputs is refused even with
//!   `--force` (compared by device and inode after resolving links, so `./w` and `w`, a hard
//!   link or a symlink all count as the same file);
//! - the folder the output goes into must be (or become) a writable directory: it is created if
//!   missing and probed with a throw-away file, so a read-only or impossible folder fails in
//!   milliseconds instead of after the first epoch.
//!
//! The writing itself goes through [`super::atomic::write_atomic`] (temp file + fsync + rename),
//! so a kill or a full disk never leaves a half-written output behind.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One input of a command: the flag it came from and its path.
pub type Input<'a> = (&'a str, &'a Path);

/// True when `a` and `b` name the same existing file (same device and inode).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// The folder `path` is written into (`.` for a bare file name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` if missing and checks a file can be created in it.
pub fn ensure_writable_dir(flag: &str, dir: &Path) -> Result<()> {
    let fail = |why: String| {
        Error::input(
            format!("{flag} {}", dir.display()),
            format!("the output folder is not writable ({why}); choose another place"),
        )
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let probe = dir.join(format!(".bbed-write-probe.{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Refuses `out` when it is one of `inputs` (whatever `force` says).
fn refuse_input(flag: &str, out: &Path, inputs: &[Input]) -> Result<()> {
    if let Some((in_flag, _)) = inputs.iter().find(|(_, p)| same_file(out, p)) {
        return Err(Error::input(
            format!("{flag} {}", out.display()),
            format!(
                "is the same file as {in_flag}; writing it would destroy the input (refused \
                 even with --force): choose another output"
            ),
        ));
    }
    Ok(())
}

/// The output-file rule (module docs) for `out`, given on the command line as `flag`.
pub fn check_file(flag: &str, out: &Path, force: bool, inputs: &[Input]) -> Result<()> {
    refuse_input(flag, out, inputs)?;
    if out.is_dir() {
        return Err(Error::input(
            format!("{flag} {}", out.display()),
            "is a directory; give a file name",
        ));
    }
    if out.exists() && !force {
        return Err(Error::input(
            format!("{flag} {}", out.display()),
            "already exists; pass --force to replace it, or choose another name",
        ));
    }
    ensure_writable_dir(flag, &parent_of(out))
}

/// The output-folder rule for a command that fills `dir` with several files: a folder holding
/// anything is refused unless `force` or `resumable(dir)` says it is this command's own earlier
/// output (which it then continues); an input inside or equal to `dir` is refused.
pub fn check_dir(
    flag: &str,
    dir: &Path,
    force: bool,
    resumable: impl Fn(&Path) -> bool,
    inputs: &[Input],
) -> Result<()> {
    refuse_input(flag, dir, inputs)?;
    if let Ok(full) = dir.canonicalize() {
        for (in_flag, p) in inputs {
            if p.canonicalize().is_ok_and(|q| q.starts_with(&full)) {
                return Err(Error::input(
                    format!("{flag} {}", dir.display()),
                    format!(
                        "holds {in_flag} {}; choose another output folder",
                        p.display()
                    ),
                ));
            }
        }
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Error::input(
            format!("{flag} {}", dir.display()),
            "is a file, not a folder",
        ));
    }
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !force && !resumable(dir) {
        return Err(Error::input(
            format!("{flag} {}", dir.display()),
            "is not empty and holds no earlier output of this command; choose an empty or new \
             folder, or pass --force",
        ));
    }
    ensure_writable_dir(flag, dir)
}
