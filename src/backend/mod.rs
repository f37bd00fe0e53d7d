//! Backends provision a scratch server from a backup and recover it to a target.
//! `local` runs barman-cloud and PostgreSQL on this machine; `cnpg` a scratch CNPG cluster.

pub mod cnpg;
pub mod local;
pub mod pglog;
pub mod settings;

use crate::outcome::Cause;
pub use crate::outcome::{Failure, Stage};

/// The harness or the infrastructure failed at `stage`.
pub(crate) fn error(stage: Stage, message: impl Into<String>) -> Failure {
    Failure::error(stage, message)
}

/// The backup did not restore as promised: a cause and the evidence.
pub(crate) fn fail(stage: Stage, cause: Cause, evidence: impl Into<String>) -> Failure {
    Failure::fail(stage, cause, evidence)
}
