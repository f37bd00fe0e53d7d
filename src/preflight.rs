//! Decides, from the catalog alone, whether recovery can reach a target, and from which backup.

use jiff::Timestamp;
use serde::Serialize;

use crate::catalog::archive::ChainLeg;
use crate::catalog::backup_info::BackupInfo;
use crate::catalog::lineage::LineageCatalog;
use crate::lsn::Lsn;
pub use crate::outcome::Cause;
pub use crate::target::{PinnedTarget, Target, TargetPoint};

/// A drill that can run: the backup CNPG would pick and how far the WAL must reach.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ready {
    pub backup_id: String,
    /// The target, pinned to that backup: what the backends render.
    pub target: PinnedTarget,
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
        target: target.pin(&backup.backup_id),
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
