//! Exit codes, stable and documented (see README).

/// Every drill passed, or the command did what it was asked.
pub const OK: i32 = 0;
/// A drill failed: the backup is not restorable as promised (preflight refusals included).
pub const FAIL: i32 = 1;
/// pgdrill could not verify: infrastructure, object store or harness error.
pub const ERROR: i32 = 2;
/// Bad usage or an invalid scenario.
pub const USAGE: i32 = 64;

/// An error on its way to the terminal: one line and an exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            code: ERROR,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
        }
    }
}
