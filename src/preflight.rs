//! Decides, from the catalog alone, whether recovery can reach a target, and from which backup.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::catalog::archive::ChainLeg;
use crate::catalog::backup_info::{BackupInfo, parse_time};
use crate::catalog::lineage::LineageCatalog;
use crate::lsn::Lsn;
pub use crate::outcome::Cause;

/// Where recovery should stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetPoint {
    Latest,
    Time { time: Timestamp },
    Lsn { lsn: Lsn },
    Xid { xid: u32 },
    Name { name: String },
    Immediate,
}

/// A recovery target as CNPG's `recoveryTarget` expresses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    #[serde(flatten)]
    pub point: TargetPoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    /// `latest`, `immediate`, `time:<timestamp>`, `lsn:<X/Y>`, `xid:<n>`, `name:<restore point>`,
    /// `backup:<id>` (the end of that backup).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let point = match s.split_once(':') {
            None if s == "latest" => TargetPoint::Latest,
            None if s == "immediate" => TargetPoint::Immediate,
            Some(("time", v)) => TargetPoint::Time {
                time: parse_time(v).ok_or_else(|| {
                    format!("invalid time {v:?}: expected RFC 3339 or '2025-01-15 12:00:00+00'")
                })?,
            },
            Some(("lsn", v)) => TargetPoint::Lsn {
                lsn: v.parse().map_err(|e| format!("{e}"))?,
            },
            Some(("xid", v)) => TargetPoint::Xid {
                xid: v
                    .parse()
                    .map_err(|_| format!("invalid xid {v:?}: expected a 32-bit integer"))?,
            },
            Some(("name", v)) if !v.is_empty() => TargetPoint::Name {
                name: v.to_string(),
            },
            Some(("backup", id)) if !id.is_empty() => {
                return Ok(Self {
                    point: TargetPoint::Immediate,
                    backup_id: Some(id.to_string()),
                });
            }
            _ => {
                return Err(format!(
                    "invalid target {s:?}: expected latest, immediate, time:<timestamp>, lsn:<X/Y>, \
                     xid:<n>, name:<restore point> or backup:<id>"
                ));
            }
        };
        Ok(Self {
            point,
            backup_id: None,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.point {
            TargetPoint::Latest => write!(f, "latest"),
            TargetPoint::Time { time } => write!(f, "time:{time}"),
            TargetPoint::Lsn { lsn } => write!(f, "lsn:{lsn}"),
            TargetPoint::Xid { xid } => write!(f, "xid:{xid}"),
            TargetPoint::Name { name } => write!(f, "name:{name}"),
            TargetPoint::Immediate => write!(f, "immediate"),
        }?;
        if let Some(id) = &self.backup_id {
            write!(f, " (backup {id})")?;
        }
        Ok(())
    }
}

/// A drill that can run: the backup CNPG would pick and how far the WAL must reach.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ready {
    pub backup_id: String,
    pub backup_end_time: Option<Timestamp>,
    pub timelines: Vec<u32>,
    /// For `latest`: the last segment of the archive, where replay must end.
    pub expected_last_wal: Option<String>,
    pub expected_end_lsn: Option<Lsn>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refusal {
    pub cause: Cause,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_wal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Preflight {
    Ready(Ready),
    Refused(Refusal),
}

pub fn refusal(cause: Cause, message: String) -> Refusal {
    Refusal {
        cause,
        message,
        missing_wal: None,
        backup_id: None,
    }
}

fn refuse(cause: Cause, message: String) -> Preflight {
    Preflight::Refused(refusal(cause, message))
}

/// Picks the backup CNPG would restore for `target`, or says why none fits.
pub fn choose_backup<'a>(
    catalog: &'a LineageCatalog,
    target: &Target,
) -> Result<&'a BackupInfo, Refusal> {
    let done: Vec<&BackupInfo> = catalog.done_backups().collect();
    if done.is_empty() {
        let msg = format!("lineage {} has no completed backup", catalog.server_name);
        return Err(refusal(Cause::NoCompletedBackup, msg));
    }
    if let Some(id) = &target.backup_id {
        return done
            .iter()
            .find(|b| &b.backup_id == id)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = done.iter().map(|b| b.backup_id.as_str()).collect();
                refusal(
                    Cause::UnknownBackupId,
                    format!(
                        "no completed backup {id} in lineage {}; completed: {}",
                        catalog.server_name,
                        known.join(", ")
                    ),
                )
            });
    }
    let first = done[0];
    let before_first = |what: String| {
        refusal(
            Cause::TargetBeforeFirstRecoverabilityPoint,
            format!(
                "{what} is before the first recoverability point of {} ({}, end of backup {})",
                catalog.server_name,
                first.end_time.map(|t| t.to_string()).unwrap_or_default(),
                first.backup_id
            ),
        )
    };
    match &target.point {
        TargetPoint::Time { time } => done
            .iter()
            .rev()
            .find(|b| b.end_time.is_some_and(|e| e <= *time))
            .copied()
            .ok_or_else(|| before_first(format!("target time {time}"))),
        TargetPoint::Lsn { lsn } => done
            .iter()
            .rev()
            .find(|b| b.end_lsn.is_some_and(|e| e < *lsn))
            .copied()
            .ok_or_else(|| before_first(format!("target LSN {lsn}"))),
        _ => Ok(done[done.len() - 1]),
    }
}

/// Pure: catalog + target → ready (with the backup) or refused (with a stable cause).
pub fn preflight(catalog: &LineageCatalog, target: &Target) -> Preflight {
    let backup = match choose_backup(catalog, target) {
        Ok(b) => b,
        Err(refused) => return Preflight::Refused(refused),
    };
    let archive = &catalog.archive;
    let with_backup = |p: Preflight| match p {
        Preflight::Refused(mut r) => {
            r.backup_id = Some(backup.backup_id.clone());
            Preflight::Refused(r)
        }
        ready => ready,
    };
    let (Some(begin), Some(end)) = (backup.begin_segment(), backup.end_segment()) else {
        let msg = format!(
            "backup {} has no begin_wal/end_wal in backup.info",
            backup.backup_id
        );
        return with_backup(refuse(Cause::NoCompletedBackup, msg));
    };
    if let (TargetPoint::Time { time }, Some(end_time)) = (&target.point, backup.end_time)
        && *time < end_time
    {
        let msg = format!(
            "target time {time} is before the end of backup {} ({end_time})",
            backup.backup_id
        );
        return with_backup(refuse(Cause::TargetBeforeFirstRecoverabilityPoint, msg));
    }
    let latest_tl = archive.latest_descendant(begin);
    let legs = archive.chain(begin, latest_tl);
    let leg_of = |tl: u32| legs.iter().position(|l| l.timeline == tl);
    let name = |p: (u32, u64)| archive.segment(p.0, p.1).to_string();
    let gap = |missing: (u32, u64), next: Option<(u32, u64)>, why: &str| {
        let missing_wal = name(missing);
        let next = next
            .map(|n| format!("; the archive resumes at {}", name(n)))
            .unwrap_or_default();
        Preflight::Refused(Refusal {
            cause: Cause::WalGap,
            message: format!(
                "WAL segment {missing_wal} is missing from {}{next}: {why}",
                catalog.server_name
            ),
            missing_wal: Some(missing_wal),
            backup_id: Some(backup.backup_id.clone()),
        })
    };

    // The backup's own WAL is needed whatever the target.
    let end_leg = leg_of(end.timeline).unwrap_or(0);
    let to_consistency = archive.walk(&legs, Some((end_leg, end.segno(archive.segment_size))));
    if let Some(missing) = to_consistency.missing {
        return gap(
            missing,
            to_consistency.next_present,
            "the backup cannot reach consistency",
        );
    }
    let open = archive.walk(&legs, None);
    let reached = open.last.and_then(|(tl, s)| Some((leg_of(tl)?, s)));
    let mut ready = Ready {
        backup_id: backup.backup_id.clone(),
        backup_end_time: backup.end_time,
        timelines: legs.iter().map(|l| l.timeline).collect(),
        expected_last_wal: None,
        expected_end_lsn: None,
        notes: Vec::new(),
    };
    match &target.point {
        TargetPoint::Latest => {
            if open.is_gap()
                && let Some(missing) = open.missing
            {
                return gap(
                    missing,
                    open.next_present,
                    "recovery to latest would stop there silently",
                );
            }
            ready.expected_last_wal = open.last.map(name);
            ready.expected_end_lsn = open.last.map(|(_, s)| archive.segment_end(s));
        }
        TargetPoint::Lsn { lsn } => {
            let target_leg = legs
                .iter()
                .position(|l| l.to.is_none_or(|to| lsn.0 / archive.segment_size <= to))
                .unwrap_or(legs.len() - 1);
            let target_pos = (target_leg, lsn.0 / archive.segment_size);
            let last_present = last_present_on_chain(catalog, &legs);
            if last_present.is_none_or(|lp| target_pos > lp) {
                let end = last_present
                    .map(|(_, s)| archive.segment_end(s).to_string())
                    .unwrap_or_default();
                let msg = format!(
                    "target LSN {lsn} is beyond the end of the archive of {} ({end})",
                    catalog.server_name
                );
                return with_backup(refuse(Cause::TargetBeyondArchive, msg));
            }
            if let Some(missing) = open
                .missing
                .filter(|_| reached.is_none_or(|r| r < target_pos))
            {
                return gap(missing, open.next_present, "the target lies after it");
            }
        }
        TargetPoint::Time { time } => match first_uploaded_at_or_after(catalog, &legs, *time) {
            Found::Unknown => ready
                .notes
                .push("upload times unknown: cannot place the target time in the WAL".into()),
            Found::None(last) => {
                let last = last
                    .map(|t| format!(" (last segment uploaded at {t})"))
                    .unwrap_or_default();
                let msg = format!(
                    "target time {time} is after the end of the archive of {}{last}",
                    catalog.server_name
                );
                return with_backup(refuse(Cause::TargetBeyondArchive, msg));
            }
            Found::At(pos) => {
                if let Some(missing) = open.missing.filter(|_| reached.is_none_or(|r| r < pos)) {
                    return gap(missing, open.next_present, "the target time lies after it");
                }
            }
        },
        TargetPoint::Xid { .. } | TargetPoint::Name { .. } => {
            ready.notes.push(
                "the WAL position of an xid or restore point is not known before recovery".into(),
            );
        }
        TargetPoint::Immediate => {}
    }
    Preflight::Ready(ready)
}

/// The newest present segment along the chain, as (leg index, segno).
pub fn last_present_on_chain(catalog: &LineageCatalog, legs: &[ChainLeg]) -> Option<(usize, u64)> {
    legs.iter().enumerate().rev().find_map(|(i, leg)| {
        let segs = catalog.archive.timelines.get(&leg.timeline)?;
        segs.segnos
            .iter()
            .rev()
            .find(|s| **s >= leg.from && leg.to.is_none_or(|to| **s <= to))
            .map(|s| (i, *s))
    })
}

enum Found {
    At((usize, u64)),
    None(Option<Timestamp>),
    Unknown,
}

/// The first segment along the chain uploaded at or after `time`: it holds the target or later.
fn first_uploaded_at_or_after(
    catalog: &LineageCatalog,
    legs: &[ChainLeg],
    time: Timestamp,
) -> Found {
    let mut latest = None;
    let mut any_known = false;
    for (i, leg) in legs.iter().enumerate() {
        let Some(segs) = catalog.archive.timelines.get(&leg.timeline) else {
            continue;
        };
        let start = segs.position(leg.from).unwrap_or_else(|p| p);
        for (segno, uploaded) in segs.segnos[start..].iter().zip(&segs.uploaded[start..]) {
            if leg.to.is_some_and(|to| *segno > to) {
                break;
            }
            if let Some(at) = uploaded {
                any_known = true;
                latest = latest.max(Some(*at));
                // S3 reports upload times in whole seconds: a segment stamped within a second
                // of the target may hold it, so it counts (never a false gap or end).
                if *at + jiff::SignedDuration::from_secs(1) > time {
                    return Found::At((i, *segno));
                }
            }
        }
    }
    if any_known {
        Found::None(latest)
    } else {
        Found::Unknown
    }
}
