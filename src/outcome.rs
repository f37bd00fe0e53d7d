//! The vocabulary of outcomes (pure): verdicts, causes, stages, failures, where recovery
//! ended and the checks a drill ran. Every stage speaks these types; this is the only place a
//! cause is named.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;

/// How a drill ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Restored to the target and every check held.
    Pass,
    /// The backup is not restorable as promised, or the data is wrong.
    Fail,
    /// pgdrill could not verify: the store, the tools, the cluster or pgdrill failed.
    Error,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a drill did not pass, as a stable snake_case code. `verdict()` says whose problem it is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The target lies before the end of the earliest usable backup: nothing can restore to it.
    TargetBeforeFirstRecoverabilityPoint,
    /// The target lies after the last archived WAL: recovery would end before reaching it.
    TargetBeyondArchive,
    /// A WAL segment recovery needs is missing from the archive.
    WalGap,
    /// A WAL segment recovery needs is corrupt: PostgreSQL's line (bad magic number, record
    /// checksum, record length…) names the segment and offset.
    WalCorrupt,
    /// The lineage holds no completed base backup (or one without its WAL bounds).
    NoCompletedBackup,
    /// The backup the target names is not a completed backup of the lineage.
    UnknownBackupId,
    /// The base backup could not be downloaded or is unusable (truncated, bad backup_label).
    BaseBackupUnreadable,
    /// PostgreSQL stopped during recovery for another reason (its FATAL line is the evidence).
    RecoveryFailed,
    /// barman-cloud-restore did not finish within `timeouts.restore`.
    RestoreTimeout,
    /// Recovery did not finish within `timeouts.recovery` (or the CNPG deadline).
    RecoveryTimeout,
    /// Recovery promoted before the end of the archive or away from the target.
    RecoveryTruncated,
    /// Restored row counts differ from the baseline under the count policy.
    RowCountMismatch,
    /// A scenario SQL check returned an unexpected value.
    CheckFailed,
    /// Restore plus recovery took longer than the scenario's `rto`.
    RtoExceeded,
    /// A signal stopped pgdrill before the drill finished (it was torn down): not a verdict on
    /// the backup.
    Interrupted,
}

impl Cause {
    /// Every cause, in the order the README's table lists them.
    pub const ALL: [Cause; 15] = [
        Cause::TargetBeforeFirstRecoverabilityPoint,
        Cause::TargetBeyondArchive,
        Cause::WalGap,
        Cause::WalCorrupt,
        Cause::NoCompletedBackup,
        Cause::UnknownBackupId,
        Cause::BaseBackupUnreadable,
        Cause::RecoveryFailed,
        Cause::RestoreTimeout,
        Cause::RecoveryTimeout,
        Cause::RecoveryTruncated,
        Cause::RowCountMismatch,
        Cause::CheckFailed,
        Cause::RtoExceeded,
        Cause::Interrupted,
    ];

    /// The code on the wire (reports, metrics, JUnit, `expect.cause`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::TargetBeforeFirstRecoverabilityPoint => {
                "target_before_first_recoverability_point"
            }
            Cause::TargetBeyondArchive => "target_beyond_archive",
            Cause::WalGap => "wal_gap",
            Cause::WalCorrupt => "wal_corrupt",
            Cause::NoCompletedBackup => "no_completed_backup",
            Cause::UnknownBackupId => "unknown_backup_id",
            Cause::BaseBackupUnreadable => "base_backup_unreadable",
            Cause::RecoveryFailed => "recovery_failed",
            Cause::RestoreTimeout => "restore_timeout",
            Cause::RecoveryTimeout => "recovery_timeout",
            Cause::RecoveryTruncated => "recovery_truncated",
            Cause::RowCountMismatch => "row_count_mismatch",
            Cause::CheckFailed => "check_failed",
            Cause::RtoExceeded => "rto_exceeded",
            Cause::Interrupted => "interrupted",
        }
    }

    /// What the cause means, for people (the README's table).
    pub fn meaning(&self) -> &'static str {
        match self {
            Cause::TargetBeforeFirstRecoverabilityPoint => {
                "the target is before the end of the earliest usable backup"
            }
            Cause::TargetBeyondArchive => "the target is after the last archived WAL",
            Cause::WalGap => "a WAL segment recovery needs is missing",
            Cause::WalCorrupt => "a WAL segment recovery needs is corrupt (PostgreSQL's line)",
            Cause::NoCompletedBackup => "the lineage has no completed base backup",
            Cause::UnknownBackupId => "the named backup is not a completed backup of the lineage",
            Cause::BaseBackupUnreadable => "the base backup cannot be downloaded or used",
            Cause::RecoveryFailed => "PostgreSQL stopped during recovery (its FATAL line)",
            Cause::RestoreTimeout => "the base backup download did not finish within its timeout",
            Cause::RecoveryTimeout => "recovery did not finish within its timeout",
            Cause::RecoveryTruncated => "recovery promoted before the archive's end or the target",
            Cause::RowCountMismatch => "restored row counts differ from the baseline",
            Cause::CheckFailed => "a scenario SQL check returned an unexpected value",
            Cause::RtoExceeded => "restore and recovery took longer than the rto",
            Cause::Interrupted => "a signal stopped pgdrill before the drill finished",
        }
    }

    /// Whose problem it is: `Fail` for the backup, `Error` for the harness or infrastructure.
    pub fn verdict(&self) -> Verdict {
        match self {
            Cause::Interrupted => Verdict::Error,
            _ => Verdict::Fail,
        }
    }

    /// The valid codes, for error messages.
    pub fn names() -> String {
        Cause::ALL.map(|c| c.as_str()).join(", ")
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// How a stage stopped short: `Fail` when the backup is not restorable as promised (with a
/// cause and the evidence), `Error` when the harness or the infrastructure failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Fail {
        stage: Stage,
        cause: Cause,
        evidence: String,
    },
    Error {
        stage: Stage,
        message: String,
    },
}

impl Failure {
    /// The backup did not restore as promised: a cause and the evidence.
    pub fn fail(stage: Stage, cause: Cause, evidence: impl Into<String>) -> Self {
        Failure::Fail {
            stage,
            cause,
            evidence: evidence.into(),
        }
    }

    /// The harness or the infrastructure failed at `stage`.
    pub fn error(stage: Stage, message: impl Into<String>) -> Self {
        Failure::Error {
            stage,
            message: message.into(),
        }
    }

    pub fn stage(&self) -> Stage {
        match self {
            Failure::Fail { stage, .. } | Failure::Error { stage, .. } => *stage,
        }
    }

    pub fn verdict(&self) -> Verdict {
        match self {
            Failure::Fail { .. } => Verdict::Fail,
            Failure::Error { .. } => Verdict::Error,
        }
    }
}

/// What the server log says about the end of recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryEnd {
    /// `redo done at X/Y`: the last record replayed.
    pub redo_done: Option<Lsn>,
    /// `last completed transaction was at log time …`.
    pub last_transaction_at: Option<String>,
    /// `selected new timeline ID: N`.
    pub new_timeline: Option<u32>,
    /// `recovery stopping before/after …` or `recovery stopping at restore point …`.
    pub stop_reason: Option<String>,
    pub first_fatal: Option<String>,
    /// The first line where PostgreSQL found a WAL record or page it could not read (a bad
    /// magic number, a record checksum…): where a corrupt segment stopped replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_problem: Option<String>,
}

impl RecoveryEnd {
    /// Why replay stopped short of where it had to reach: corrupt WAL when PostgreSQL said so,
    /// else a truncated recovery (a gap PostgreSQL passed over silently).
    pub fn truncation_cause(&self) -> Cause {
        match self.wal_problem {
            Some(_) => Cause::WalCorrupt,
            None => Cause::RecoveryTruncated,
        }
    }
}

/// What a check looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    RecoveryEnd,
    RowCount,
    Sql,
}

impl CheckKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::RecoveryEnd => "recovery_end",
            CheckKind::RowCount => "row_count",
            CheckKind::Sql => "sql",
        }
    }
}

/// One check of a restored server: what was expected, what was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

/// The verdict a scenario says a drill is meant to reach, e.g. `{verdict: fail, cause: wal_gap}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// `pass`, `fail` or `error`.
    pub verdict: Verdict,
    /// One of the cause codes (see the README's table).
    pub cause: Option<Cause>,
}

impl Expectation {
    /// Whether a drill that ended in `verdict` with `cause` met this expectation.
    pub fn met_by(&self, verdict: Verdict, cause: Option<Cause>) -> bool {
        self.verdict == verdict && self.cause.is_none_or(|c| cause == Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_serde_name() {
        for cause in Cause::ALL {
            let json = serde_json::to_value(cause).unwrap();
            assert_eq!(json, cause.as_str(), "{cause:?}");
            let back: Cause = serde_json::from_value(json).unwrap();
            assert_eq!(back, cause);
        }
    }

    #[test]
    fn every_cause_is_listed_once() {
        let mut names: Vec<&str> = Cause::ALL.iter().map(Cause::as_str).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Cause::ALL.len());
    }

    #[test]
    fn an_unknown_cause_lists_the_valid_ones() {
        let err = serde_json::from_str::<Cause>("\"beyond_archive\"").unwrap_err();
        assert!(
            err.to_string()
                .contains(Cause::TargetBeyondArchive.as_str()),
            "{err}"
        );
    }

    #[test]
    fn expectations_match_verdict_and_cause() {
        let e = Expectation {
            verdict: Verdict::Fail,
            cause: Some(Cause::WalGap),
        };
        assert!(e.met_by(Verdict::Fail, Some(Cause::WalGap)));
        assert!(!e.met_by(Verdict::Fail, Some(Cause::RecoveryTruncated)));
        assert!(!e.met_by(Verdict::Error, None));
        let any_fail = Expectation {
            verdict: Verdict::Fail,
            cause: None,
        };
        assert!(any_fail.met_by(Verdict::Fail, Some(Cause::CheckFailed)));
    }
}
