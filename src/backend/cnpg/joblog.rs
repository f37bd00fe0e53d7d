//! Reading the log of CNPG's full-recovery job (pure). The instance manager writes JSON lines;
//! PostgreSQL's own lines carry `"logger":"postgres"` with the server record under `record`.

use serde_json::Value;

use crate::backend::pglog::{RecoveryEnd, classify, read_recovery_end};
use crate::outcome::Cause;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobLog {
    /// PostgreSQL's lines as `SEVERITY:  message`, as in a plain server log.
    pub postgres: String,
    /// The instance manager's restore error (`error` of its error lines), if any.
    pub restore_error: Option<String>,
}

pub fn read(text: &str) -> JobLog {
    let mut log = JobLog::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        if v["logger"].as_str() == Some("postgres") {
            let record = &v["record"];
            let severity = record["error_severity"].as_str().unwrap_or("LOG");
            let message = record["message"].as_str().unwrap_or_default();
            log.postgres.push_str(&format!("{severity}:  {message}\n"));
        } else if v["level"].as_str() == Some("error")
            && log.restore_error.is_none()
            && let Some(e) = v["error"].as_str()
        {
            let msg = v["msg"].as_str().unwrap_or_default();
            log.restore_error = Some(format!("{msg}: {e}"));
        }
    }
    log
}

impl JobLog {
    pub fn recovery_end(&self) -> RecoveryEnd {
        read_recovery_end(&self.postgres)
    }

    /// A failure that retrying the same backup cannot fix: PostgreSQL's first FATAL, or a
    /// restore error about the backup itself. Network trouble is not decisive.
    pub fn decisive_failure(&self) -> Option<(Cause, String)> {
        if let Some(decided) = classify(&self.recovery_end()) {
            return Some(decided);
        }
        let err = self.restore_error.as_deref()?;
        if self.infrastructure_error().is_some() {
            return None;
        }
        let lower = err.to_ascii_lowercase();
        let cause = if lower.contains("no target backup found") {
            Cause::NoCompletedBackup
        } else if lower.contains("no backup found with id") {
            Cause::UnknownBackupId
        } else if lower.contains("checking the presence of first needed wal") {
            Cause::WalGap
        } else if lower.contains("barman-cloud-restore") || lower.contains("operation error") {
            Cause::BaseBackupUnreadable
        } else {
            return None;
        };
        Some((cause, err.to_string()))
    }
}

impl JobLog {
    /// A restore error about reaching the store, not the backup: barman-cloud's network error
    /// (exit 2) or general error (exit 4), after which CNPG wipes the data and retries.
    pub fn infrastructure_error(&self) -> Option<&str> {
        let err = self.restore_error.as_deref()?;
        let lower = err.to_ascii_lowercase();
        (lower.contains("network error")
            || lower.contains("general error")
            || lower.contains("exit code 2")
            || lower.contains("exit code 4"))
        .then_some(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEYOND: &str = r#"{"level":"info","ts":"2026-01-01T00:00:00Z","msg":"Restore through plugin detected, proceeding...","logging_pod":"c-1-full-recovery"}
{"level":"info","ts":"2026-01-01T00:00:01Z","logger":"postgres","msg":"record","logging_pod":"c-1-full-recovery","record":{"error_severity":"LOG","message":"redo done at 0/5000060 system usage: CPU: user: 0.00 s","backend_type":"startup"}}
{"level":"info","ts":"2026-01-01T00:00:01Z","logger":"postgres","msg":"record","logging_pod":"c-1-full-recovery","record":{"error_severity":"FATAL","sql_state_code":"XX000","message":"recovery ended before configured recovery target was reached","backend_type":"startup"}}
{"level":"error","ts":"2026-01-01T00:00:02Z","msg":"Error while restoring a backup","logging_pod":"c-1-full-recovery","error":"while activating instance: error starting PostgreSQL instance: exit status 1"}
not json at all
"#;

    #[test]
    fn the_first_fatal_decides_the_cause() {
        let log = read(BEYOND);
        assert_eq!(
            log.recovery_end()
                .redo_done
                .map(|l| l.to_string())
                .as_deref(),
            Some("0/5000060")
        );
        let (cause, evidence) = log.decisive_failure().unwrap();
        assert_eq!(cause, Cause::TargetBeyondArchive);
        assert!(evidence.contains("recovery ended before"));
        assert!(log.restore_error.unwrap().contains("exit status 1"));
    }

    #[test]
    fn network_errors_are_not_decisive() {
        let net = r#"{"level":"error","msg":"restore error","error":"while restoring cluster: Network error (exit code 2)"}"#;
        assert_eq!(read(net).decisive_failure(), None);
        assert!(read(net).infrastructure_error().is_some());
        // Even while checking the first WAL: a transient failure is not a gap.
        let probe = r#"{"level":"error","msg":"restore error","error":"encountered an error while checking the presence of first needed WAL in the archive: General error (exit code 4)"}"#;
        assert_eq!(read(probe).decisive_failure(), None);
        let gone = r#"{"level":"error","msg":"restore error","error":"no target backup found"}"#;
        assert_eq!(
            read(gone).decisive_failure().unwrap().0,
            Cause::NoCompletedBackup
        );
    }
}
