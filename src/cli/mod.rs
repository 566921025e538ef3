//! Command-line interface of `bbed`.

/// Entry point of the `bbed` binary; returns the process exit code.
pub fn run() -> i32 {
    0
}
