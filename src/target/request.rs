//! What a scenario or `--target` asks for: one grammar for both.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{Target, TargetPoint};
use crate::duration::parse_duration;

/// A target as asked for: a point, or a policy that picks one from the lineage's catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetRequest {
    /// `latest`, `immediate`, a time, an LSN, an xid, a restore point, optionally from a backup.
    Point(Target),
    /// The exact point the named baseline was recorded at.
    Baseline {
        name: String,
        backup_id: Option<String>,
    },
    /// The first recoverability point of the lineage.
    Oldest,
    /// A time picked uniformly in the last `within` of the lineage's window.
    Random {
        within: Duration,
        backup_id: Option<String>,
    },
    /// `latest` from each completed backup of the lineage: the fallbacks an operator reaches
    /// for when the newest backup is bad.
    EveryBackup,
}

/// Which count policy of `checks.counts` applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Latest,
    Baseline,
    PointInTime,
}

impl TargetRequest {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetRequest::Point(t) if t.point == TargetPoint::Latest => TargetKind::Latest,
            TargetRequest::EveryBackup => TargetKind::Latest,
            TargetRequest::Baseline { .. } => TargetKind::Baseline,
            _ => TargetKind::PointInTime,
        }
    }

    /// The name reports and metrics use: stable across runs (a random target is named by its
    /// window, the time it picked is in the drill's target).
    pub fn label(&self) -> String {
        match self {
            TargetRequest::Point(t) => match (&t.point, &t.backup_id) {
                (TargetPoint::Immediate, Some(id)) => format!("backup:{id}"),
                (TargetPoint::Latest, Some(id)) => latest_from(id),
                (point, _) => point_label(point),
            },
            TargetRequest::EveryBackup => "everyBackup".into(),
            TargetRequest::Baseline { name, .. } => format!("baseline:{name}"),
            TargetRequest::Oldest => "oldest".into(),
            TargetRequest::Random { within, .. } => format!("random:{}s", within.as_secs()),
        }
    }
}

/// The label of `latest` from one backup (a `backupID`-only target, or one of `everyBackup`).
pub fn latest_from(backup_id: &str) -> String {
    format!("latest@{backup_id}")
}

fn point_label(point: &TargetPoint) -> String {
    Target {
        point: point.clone(),
        backup_id: None,
    }
    .to_string()
}

impl fmt::Display for TargetRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl FromStr for TargetRequest {
    type Err = String;

    /// Every form a scenario can write: `latest`, `immediate`, `oldest`, `everyBackup`,
    /// `time:<timestamp>`,
    /// `lsn:<X/Y>`, `xid:<n>`, `name:<restore point>`, `backup:<id>`, `baseline:<name>`,
    /// `random:<duration>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "oldest" => Ok(TargetRequest::Oldest),
            None if s == "everyBackup" => Ok(TargetRequest::EveryBackup),
            Some(("baseline", name)) if !name.is_empty() => Ok(TargetRequest::Baseline {
                name: name.to_string(),
                backup_id: None,
            }),
            Some(("random", within)) => Ok(TargetRequest::Random {
                within: parse_duration(within).map_err(|e| format!("target {s:?}: {e}"))?,
                backup_id: None,
            }),
            _ => s.parse::<Target>().map(TargetRequest::Point).map_err(|_| {
                format!(
                    "invalid target {s:?}: expected latest, immediate, oldest, everyBackup, \
                     time:<timestamp>, lsn:<X/Y>, xid:<n>, name:<restore point>, backup:<id>, \
                     baseline:<name> or random:<duration>"
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_labels_itself() {
        let cases = [
            ("latest", "latest", TargetKind::Latest),
            ("immediate", "immediate", TargetKind::PointInTime),
            ("oldest", "oldest", TargetKind::PointInTime),
            ("lsn:0/7000028", "lsn:0/7000028", TargetKind::PointInTime),
            ("xid:1234", "xid:1234", TargetKind::PointInTime),
            ("name:before", "name:before", TargetKind::PointInTime),
            (
                "backup:20261121T230000",
                "backup:20261121T230000",
                TargetKind::PointInTime,
            ),
            ("baseline:nightly", "baseline:nightly", TargetKind::Baseline),
            ("random:7d", "random:604800s", TargetKind::PointInTime),
            ("everyBackup", "everyBackup", TargetKind::Latest),
            (
                "time:2025-01-15 12:00:00+00",
                "time:2025-01-15T12:00:00Z",
                TargetKind::PointInTime,
            ),
        ];
        for (text, label, kind) in cases {
            let r: TargetRequest = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.label(), label, "{text}");
            assert_eq!(r.kind(), kind, "{text}");
        }
    }

    #[test]
    fn bad_forms_name_every_valid_one() {
        for bad in [
            "",
            "newest",
            "time:yesterday",
            "random:soon",
            "baseline:",
            "xid:-1",
        ] {
            let err = bad.parse::<TargetRequest>().unwrap_err();
            assert!(
                err.contains("random:") || err.contains("invalid duration"),
                "{bad}: {err}"
            );
        }
    }
}
