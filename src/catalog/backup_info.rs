//! `base/<id>/backup.info`: barman's `key=value` description of one base backup.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::catalog::wal::{DEFAULT_SEGMENT_SIZE, SegmentName};
use crate::lsn::Lsn;

/// The fields of `backup.info` that recovery planning uses. The id comes from the folder name,
/// since the file has no `backup_id` key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackupInfo {
    pub backup_id: String,
    pub backup_name: Option<String>,
    pub status: Option<String>,
    pub begin_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub begin_wal: Option<String>,
    pub end_wal: Option<String>,
    pub begin_lsn: Option<Lsn>,
    pub end_lsn: Option<Lsn>,
    pub timeline: Option<u32>,
    pub server_version: Option<u32>,
    pub xlog_segment_size: u64,
    pub size: Option<u64>,
    pub cluster_size: Option<u64>,
    pub systemid: Option<String>,
    pub compression: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {problem}")]
pub struct BackupInfoError {
    pub line: usize,
    pub problem: String,
}

impl BackupInfo {
    /// CNPG's definition of a usable backup: both begin and end times are set (status is not read).
    pub fn is_done(&self) -> bool {
        self.begin_time.is_some() && self.end_time.is_some()
    }

    /// `done`, `failed` or `incomplete`, for people and reports.
    pub fn state(&self) -> &'static str {
        match self.status.as_deref() {
            Some("FAILED") => "failed",
            _ if self.is_done() && self.status.as_deref() == Some("DONE") => "done",
            _ => "incomplete",
        }
    }

    /// PostgreSQL major version (`150004` → 15, `90624` → 9).
    pub fn server_major(&self) -> Option<u32> {
        self.server_version
            .map(|v| if v >= 100_000 { v / 10_000 } else { v / 100 })
    }

    pub fn begin_segment(&self) -> Option<SegmentName> {
        self.begin_wal.as_deref().and_then(SegmentName::parse)
    }

    pub fn end_segment(&self) -> Option<SegmentName> {
        self.end_wal.as_deref().and_then(SegmentName::parse)
    }

    pub fn parse(backup_id: &str, text: &str) -> Result<Self, BackupInfoError> {
        let mut fields = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(BackupInfoError {
                    line: i + 1,
                    problem: format!("expected key=value, found {line:?}"),
                });
            };
            let value = value.trim();
            if value != "None" {
                fields.insert(key.trim(), (i + 1, value));
            }
        }
        if fields.is_empty() {
            return Err(BackupInfoError {
                line: 0,
                problem: "file holds no key=value lines".into(),
            });
        }
        let text_of = |k: &str| fields.get(k).map(|(_, v)| (*v).to_string());
        let typed =
            |k: &str, expected: &str, ok: &dyn Fn(&str) -> bool| -> Result<(), BackupInfoError> {
                match fields.get(k) {
                    Some((line, v)) if !ok(v) => Err(BackupInfoError {
                        line: *line,
                        problem: format!("{k}: expected {expected}, found {v:?}"),
                    }),
                    _ => Ok(()),
                }
            };
        typed("begin_time", "a timestamp", &|v| parse_time(v).is_some())?;
        typed("end_time", "a timestamp", &|v| parse_time(v).is_some())?;
        typed("begin_xlog", "an LSN", &|v| v.parse::<Lsn>().is_ok())?;
        typed("end_xlog", "an LSN", &|v| v.parse::<Lsn>().is_ok())?;
        typed("timeline", "an integer", &|v| v.parse::<u32>().is_ok())?;
        typed("version", "an integer", &|v| v.parse::<u32>().is_ok())?;
        // PostgreSQL allows powers of two from 1 MiB to 1 GiB.
        typed(
            "xlog_segment_size",
            "a power of two from 1 MiB to 1 GiB",
            &|v| {
                v.parse::<u64>()
                    .is_ok_and(|n| n.is_power_of_two() && (1 << 20..=1 << 30).contains(&n))
            },
        )?;
        typed("begin_wal", "a WAL name", &|v| {
            SegmentName::parse(v).is_some()
        })?;
        typed("end_wal", "a WAL name", &|v| {
            SegmentName::parse(v).is_some()
        })?;
        let get = |k: &str| fields.get(k).map(|(_, v)| *v);
        Ok(Self {
            backup_id: backup_id.to_string(),
            backup_name: text_of("backup_name"),
            status: text_of("status"),
            begin_time: get("begin_time").and_then(parse_time),
            end_time: get("end_time").and_then(parse_time),
            begin_wal: text_of("begin_wal"),
            end_wal: text_of("end_wal"),
            begin_lsn: get("begin_xlog").and_then(|v| v.parse().ok()),
            end_lsn: get("end_xlog").and_then(|v| v.parse().ok()),
            timeline: get("timeline").and_then(|v| v.parse().ok()),
            server_version: get("version").and_then(|v| v.parse().ok()),
            xlog_segment_size: get("xlog_segment_size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_SEGMENT_SIZE),
            size: get("size").and_then(|v| v.parse().ok()),
            cluster_size: get("cluster_size").and_then(|v| v.parse().ok()),
            systemid: text_of("systemid"),
            compression: text_of("compression"),
            error: text_of("error"),
        })
    }
}

/// Times as barman writes them (`2024-05-01 10:30:00.123456+00:00`), RFC 3339, or naive (UTC).
pub fn parse_time(value: &str) -> Option<Timestamp> {
    let v = value.trim();
    if let Ok(ts) = v.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(zoned) = v.parse::<jiff::Zoned>() {
        return Some(zoned.timestamp());
    }
    // Postgres prints short offsets (`+00`); jiff wants `+00:00`.
    if let Some(idx) = v.rfind(['+', '-']).filter(|i| *i > 10) {
        let (head, off) = v.split_at(idx);
        if off.len() == 3
            && let Ok(ts) = format!("{head}{off}:00").parse::<Timestamp>()
        {
            return Some(ts);
        }
    }
    v.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "backup_label='START WAL LOCATION: 0/2000028'\nbegin_offset=40\n\
begin_time=2026-11-21 23:19:30.123456+00:00\nbegin_wal=000000010000000000000002\nbegin_xlog=0/2000028\n\
compression=None\nend_offset=312\nend_time=2026-11-21 23:19:35.5+00:00\nend_wal=000000010000000000000002\n\
end_xlog=0/2000138\nerror=None\nserver_name=cloud\nsize=4567890\nstatus=DONE\ntimeline=1\nversion=150018\n\
xlog_segment_size=16777216\nsystemid=7300000000000000001\n";

    #[test]
    fn parses_every_field_used() {
        let b = BackupInfo::parse("20261121T231930", SAMPLE).unwrap();
        assert_eq!(b.backup_id, "20261121T231930");
        assert_eq!(b.status.as_deref(), Some("DONE"));
        assert_eq!(b.state(), "done");
        assert_eq!(b.begin_lsn.unwrap().to_string(), "0/2000028");
        assert_eq!(b.end_lsn.unwrap().to_string(), "0/2000138");
        assert_eq!(b.timeline, Some(1));
        assert_eq!(b.server_major(), Some(15));
        assert_eq!(b.compression, None, "None is null");
        assert_eq!(b.error, None);
        assert_eq!(b.end_time.unwrap().to_string(), "2026-11-21T23:19:35.5Z");
        assert_eq!(b.xlog_segment_size, 16 * 1024 * 1024);
    }

    #[test]
    fn reads_offsets_and_short_forms() {
        assert_eq!(
            parse_time("2025-01-15 12:00:00+02:00").unwrap().to_string(),
            "2025-01-15T10:00:00Z"
        );
        assert_eq!(
            parse_time("2025-01-15 12:00:00+00").unwrap().to_string(),
            "2025-01-15T12:00:00Z"
        );
        assert_eq!(
            parse_time("2025-01-15T12:00:00Z").unwrap().to_string(),
            "2025-01-15T12:00:00Z"
        );
        assert_eq!(
            parse_time("2025-01-15 12:00:00").unwrap().to_string(),
            "2025-01-15T12:00:00Z"
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn failed_and_started_backups() {
        let failed =
            BackupInfo::parse("x", "status=FAILED\nerror=failure uploading data (boom)\n").unwrap();
        assert_eq!(failed.state(), "failed");
        assert!(!failed.is_done());
        let started = BackupInfo::parse(
            "x",
            "status=STARTED\nbegin_time=2025-01-15 12:00:00+00:00\n",
        )
        .unwrap();
        assert_eq!(started.state(), "incomplete");
    }

    #[test]
    fn bad_values_name_the_line_and_key() {
        let err = BackupInfo::parse("x", "status=DONE\nend_xlog=nope\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.problem.contains("end_xlog"), "{err}");
        assert!(BackupInfo::parse("x", "\u{0}\u{1}garbage").is_err());
        assert!(BackupInfo::parse("x", "").is_err());
        for bad in ["8589934592", "1", "3000000"] {
            let err = BackupInfo::parse("x", &format!("status=DONE\nxlog_segment_size={bad}\n"))
                .unwrap_err();
            assert!(err.problem.contains("1 MiB to 1 GiB"), "{err}");
        }
    }
}
