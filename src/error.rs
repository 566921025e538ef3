//! The crate's error type. Every error a user can cause (bad file, bad option, bad shape) is an
//! [`Error::Input`] or [`Error::Io`] naming the file/field; the CLI maps those to exit code 2.
//! Panics are reserved for broken internal invariants.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user input: `context` names the file, field or option; `message` says what is wrong
    /// and, where possible, what was expected.
    #[error("{context}: {message}")]
    Input { context: String, message: String },
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

    /// Process exit code for this error (2: the user's input is at fault).
    pub fn exit_code(&self) -> i32 {
        2
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
