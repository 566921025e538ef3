//! The crate's error type and the process exit codes it maps to.
//!
//! Every error a user can cause (bad file, bad option, bad shape) is an [`Error::Input`] or
//! [`Error::Io`] naming the file/field: exit code [`EXIT_INPUT`] (2, as clap's usage errors). A
//! check the user asked for that ran and failed ([`Error::Check`]) exits with [`EXIT_CHECK`] (1).
//! A broken internal invariant is a bug, never the user's fault: [`Error::Internal`] where the
//! code can return an error, a panic where it cannot; both exit with [`EXIT_INTERNAL`] (70,
//! `EX_SOFTWARE` of BSD's sysexits.h), the panic through the CLI's top-level guard
//! ([`crate::cli::run`]).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user input: `context` names the file, field or option; `message` says what is wrong
    /// and, where possible, what was expected.
    #[error("{context}: {message}")]
    Input { context: String, message: String },
    /// A check the user asked for ran and failed (e.g. a functional mismatch): exit code 1.
    #[error("{context}: {message}")]
    Check { context: String, message: String },
    /// A broken internal invariant (a bug, not bad input): exit code [`EXIT_INTERNAL`].
    #[error("internal error in {context}: {message} (this is a bug in bbed; please report it)")]
    Internal { context: String, message: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn input(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            context: context.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn check(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Check {
            context: context.into(),
            message: message.into(),
        }
    }

    pub fn internal(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Internal {
            context: context.into(),
            message: message.into(),
        }
    }

    /// Process exit code: [`EXIT_CHECK`] for a failed check, [`EXIT_INPUT`] for bad input or
    /// unreadable files, [`EXIT_INTERNAL`] for a broken invariant.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Check { .. } => EXIT_CHECK,
            Error::Input { .. } | Error::Io { .. } => EXIT_INPUT,
            Error::Internal { .. } => EXIT_INTERNAL,
        }
    }
}

/// Exit code of a check the user asked for that ran and failed (e.g. `simulate --functional`).
pub const EXIT_CHECK: i32 = 1;
/// Exit code of bad user input: a bad option, file, field or shape, or an unreadable file.
pub const EXIT_INPUT: i32 = 2;
/// Exit code of an internal error (a bug): [`Error::Internal`] or a panic.
pub const EXIT_INTERNAL: i32 = 70;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant's exit code, and the three codes distinct from each other and from success.
    #[test]
    fn exit_codes_by_variant() {
        let io = Error::io("f", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(Error::input("f", "m").exit_code(), 2);
        assert_eq!(io.exit_code(), 2);
        assert_eq!(Error::check("c", "m").exit_code(), 1);
        assert_eq!(Error::internal("c", "m").exit_code(), 70);
        let mut codes = vec![0, EXIT_CHECK, EXIT_INPUT, EXIT_INTERNAL];
        codes.dedup();
        assert_eq!(codes.len(), 4);
    }

    #[test]
    fn internal_error_says_it_is_a_bug() {
        let msg = Error::internal("report metrics.json", "key must be a string").to_string();
        assert!(msg.starts_with("internal error in report metrics.json: key must be"));
        assert!(msg.contains("bug") && msg.contains("report"), "{msg}");
    }
}
