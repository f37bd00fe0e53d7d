//! Backends provision a scratch server from a backup and recover it to a target.
//! `local` runs barman-cloud and PostgreSQL on this machine.

pub mod cnpg;
pub mod local;
pub mod pglog;
pub mod settings;

use serde::Serialize;

/// The pipeline stage a drill was in when it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Plan,
    Preflight,
    Restore,
    Recover,
    Verify,
    Teardown,
}

/// How a backend stopped short: `Fail` when the backup is not restorable as promised (with a
/// stable cause and the evidence), `Error` when the harness or the infrastructure failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Fail {
        stage: Stage,
        cause: String,
        evidence: String,
    },
    Error {
        stage: Stage,
        message: String,
    },
}

/// The harness or the infrastructure failed at `stage`.
pub(crate) fn error(stage: Stage, message: impl Into<String>) -> Failure {
    Failure::Error {
        stage,
        message: message.into(),
    }
}

/// The backup did not restore as promised: a stable cause and the evidence.
pub(crate) fn fail(stage: Stage, cause: &str, evidence: impl Into<String>) -> Failure {
    Failure::Fail {
        stage,
        cause: cause.to_string(),
        evidence: evidence.into(),
    }
}
