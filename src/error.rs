//! The crate's error type. Every error a user can cause (bad file, bad option, bad shape) is an
//! [`Error::Input`] or [`Error::Io`] naming the file/field; the CLI maps those to exit code 2.
//! A check that ran and failed ([`Error::Check`]) exits with 1.
//! Panics are reserved for broken internal invariants.

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

    /// Process exit code: 1 for a failed check, 2 for bad input or unreadable files.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Check { .. } => 1,
            _ => 2,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
