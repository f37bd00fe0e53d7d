//! Reading a recovering server's log: where replay ended, the new timeline, and the first
//! FATAL line, classified into a stable cause.

use crate::outcome::Cause;
pub use crate::outcome::RecoveryEnd;

/// Why a restore failed, as a stable snake_case cause.
pub fn classify_fatal(line: &str) -> Cause {
    let l = line.to_ascii_lowercase();
    if l.contains("recovery ended before configured recovery target was reached") {
        Cause::TargetBeyondArchive
    } else if l.contains("requested recovery stop point is before consistent recovery point") {
        Cause::TargetBeforeFirstRecoverabilityPoint
    } else if l.contains("wal ends before end of online backup")
        || l.contains("wal ends before consistent recovery point")
        || l.contains("could not find redo location")
        || l.contains("could not locate required checkpoint record")
    {
        Cause::WalGap
    } else if l.contains("invalid checkpoint record")
        || l.contains("could not read file \"backup_label\"")
        || l.contains("invalid data in file \"backup_label\"")
        || l.contains("incorrect checksum in control file")
        || l.contains("could not open file \"global/pg_control\"")
    {
        Cause::BaseBackupUnreadable
    } else {
        Cause::RecoveryFailed
    }
}

/// Why recovery failed, from the log as a whole: the first FATAL decides, except that a
/// recovery that ended early after PostgreSQL found unreadable WAL is `wal_corrupt`, with that
/// line as the evidence.
pub fn classify(end: &RecoveryEnd) -> Option<(Cause, String)> {
    let fatal = end.first_fatal.as_ref()?;
    let cause = classify_fatal(fatal);
    Some(match (&end.wal_problem, cause) {
        (Some(problem), Cause::TargetBeyondArchive | Cause::WalGap | Cause::RecoveryFailed) => {
            (Cause::WalCorrupt, format!("{problem}; then FATAL: {fatal}"))
        }
        _ => (cause, format!("FATAL: {fatal}")),
    })
}

/// Messages of PostgreSQL's WAL reader (xlogreader.c) for a record or page it cannot use.
/// "invalid record length … got 0" is the normal end of WAL and is not one of them.
const WAL_PROBLEMS: &[&str] = &[
    "invalid magic number",
    "invalid info bits",
    "incorrect resource manager data checksum",
    "invalid resource manager id",
    "record with incorrect prev-link",
    "unexpected pageaddr",
    "invalid contrecord length",
    "too long",
    "out-of-sequence timeline id",
    "wal file is from different database system",
    "invalid record length",
];

fn wal_problem(line: &str) -> Option<String> {
    let message = after(line, "LOG:  ").or_else(|| after(line, "WARNING:  "))?;
    let lower = message.to_ascii_lowercase();
    let normal_end = lower.contains("invalid record length") && lower.ends_with("got 0");
    (!normal_end && WAL_PROBLEMS.iter().any(|p| lower.contains(p)))
        .then(|| message.trim().to_string())
}

/// Scans a PostgreSQL log (plain stderr lines).
pub fn read_recovery_end(log: &str) -> RecoveryEnd {
    let mut end = RecoveryEnd::default();
    for line in log.lines() {
        if let Some(rest) = after(line, "redo done at ") {
            end.redo_done = rest.split_whitespace().next().and_then(|l| l.parse().ok());
        } else if let Some(rest) = after(line, "last completed transaction was at log time ") {
            end.last_transaction_at = Some(rest.trim().to_string());
        } else if let Some(rest) = after(line, "selected new timeline ID: ") {
            end.new_timeline = rest.trim().parse().ok();
        } else if let Some(rest) = after(line, "recovery stopping ") {
            end.stop_reason = Some(format!("recovery stopping {}", rest.trim()));
        } else if end.first_fatal.is_none()
            && let Some(rest) = after(line, "FATAL:  ")
        {
            end.first_fatal = Some(rest.trim().to_string());
        } else if end.wal_problem.is_none() {
            end.wal_problem = wal_problem(line);
        }
    }
    end
}

fn after<'a>(line: &'a str, needle: &str) -> Option<&'a str> {
    line.find(needle).map(|i| &line[i + needle.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-11-21 23:19:37.900 UTC [100] LOG:  starting archive recovery
2026-11-21 23:19:38.100 UTC [100] LOG:  consistent recovery state reached at 0/2000100
2026-11-21 23:19:39.000 UTC [100] LOG:  redo done at 0/7024A08 system usage: CPU: user: 0.00 s
2026-11-21 23:19:39.000 UTC [100] LOG:  last completed transaction was at log time 2026-11-21 23:19:37.884846+00
2026-11-21 23:19:39.100 UTC [100] LOG:  selected new timeline ID: 2
2026-11-21 23:19:39.200 UTC [100] LOG:  archive recovery complete
";

    #[test]
    fn reads_where_replay_ended() {
        let end = read_recovery_end(LOG);
        assert_eq!(end.redo_done.unwrap().to_string(), "0/7024A08");
        assert_eq!(end.new_timeline, Some(2));
        assert_eq!(
            end.last_transaction_at.as_deref(),
            Some("2026-11-21 23:19:37.884846+00")
        );
        assert_eq!(end.first_fatal, None);
    }

    #[test]
    fn classifies_the_first_fatal() {
        let log = format!(
            "{LOG}2026-11-21 23:19:39 UTC [100] FATAL:  recovery ended before configured recovery target was reached\n\
             2026-11-21 23:19:39 UTC [99] FATAL:  something later\n"
        );
        let fatal = read_recovery_end(&log).first_fatal.unwrap();
        assert_eq!(classify_fatal(&fatal), Cause::TargetBeyondArchive);
        assert_eq!(
            classify_fatal("WAL ends before end of online backup"),
            Cause::WalGap
        );
        assert_eq!(
            classify_fatal("invalid checkpoint record"),
            Cause::BaseBackupUnreadable
        );
        assert_eq!(
            classify_fatal("requested recovery stop point is before consistent recovery point"),
            Cause::TargetBeforeFirstRecoverabilityPoint
        );
        assert_eq!(
            classify_fatal("the database system is starting up"),
            Cause::RecoveryFailed
        );
    }

    #[test]
    fn corrupt_wal_is_told_from_the_normal_end_of_wal() {
        let line = |m: &str| format!("2026-12-02 10:00:00 UTC [1] LOG:  {m}\n");
        let cases = [
            (
                "bad magic, then the target is not reached",
                line(
                    "invalid magic number 2EEF in log segment 000000010000000000000004, offset 8192",
                ) + "2026-12-02 10:00:01 UTC [1] FATAL:  recovery ended before configured recovery target was reached\n",
                Some(Cause::WalCorrupt),
            ),
            (
                "a record checksum",
                line("incorrect resource manager data checksum in record at 0/4000A28")
                    + "x FATAL:  recovery ended before configured recovery target was reached\n",
                Some(Cause::WalCorrupt),
            ),
            (
                "the normal end of WAL, then the target is not reached",
                line("invalid record length at 0/7024A08: wanted 24, got 0")
                    + "x FATAL:  recovery ended before configured recovery target was reached\n",
                Some(Cause::TargetBeyondArchive),
            ),
            (
                "a damaged backup_label stays a base backup problem",
                line("invalid magic number 0000 in log segment 000000010000000000000002, offset 0")
                    + "x FATAL:  invalid data in file \"backup_label\"\n",
                Some(Cause::BaseBackupUnreadable),
            ),
            ("no FATAL", line("redo done at 0/7024A08"), None),
        ];
        for (name, log, want) in cases {
            let got = classify(&read_recovery_end(&log)).map(|(c, _)| c);
            assert_eq!(got, want, "{name}");
        }
        let end = read_recovery_end(&line(
            "invalid magic number 2EEF in log segment 000000010000000000000004, offset 8192",
        ));
        assert_eq!(end.truncation_cause(), Cause::WalCorrupt);
        assert!(
            end.wal_problem
                .unwrap()
                .contains("000000010000000000000004")
        );
        let clean = read_recovery_end(&line(
            "invalid record length at 0/7024A08: wanted 24, got 0",
        ));
        assert_eq!(clean.truncation_cause(), Cause::RecoveryTruncated);
    }
}
