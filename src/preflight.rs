//! Decides, from the catalog alone, whether recovery can reach a target, and from which backup.

use jiff::Timestamp;
use serde::Serialize;

use crate::catalog::archive::{ChainLeg, Walk};
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
    let decided = choose_backup(catalog, target).and_then(|backup| {
        decide(catalog, backup, target).map_err(|mut r| {
            r.backup_id = Some(backup.backup_id.clone());
            r
        })
    });
    match decided {
        Ok(ready) => Preflight::Ready(ready),
        Err(refused) => Preflight::Refused(refused),
    }
}

/// The WAL from `backup` along its timelines, and how far the archive reaches unbroken.
struct Chain<'a> {
    catalog: &'a LineageCatalog,
    legs: Vec<ChainLeg>,
    /// The walk from the backup's start with no bound: the first gap, if any.
    open: Walk,
    /// Where that walk got to, as (leg index, segno).
    reached: Option<(usize, u64)>,
}

impl Chain<'_> {
    fn leg_of(&self, timeline: u32) -> Option<usize> {
        self.legs.iter().position(|l| l.timeline == timeline)
    }

    fn name(&self, p: (u32, u64)) -> String {
        self.catalog.archive.segment(p.0, p.1).to_string()
    }

    /// A WAL gap at `missing`, saying where the archive resumes and why it matters.
    fn gap(&self, missing: (u32, u64), next: Option<(u32, u64)>, why: &str) -> Refusal {
        let missing_wal = self.name(missing);
        let next = next
            .map(|n| format!("; the archive resumes at {}", self.name(n)))
            .unwrap_or_default();
        Refusal {
            cause: Cause::WalGap,
            message: format!(
                "WAL segment {missing_wal} is missing from {}: {why}{next}",
                self.catalog.server_name
            ),
            missing_wal: Some(missing_wal),
            backup_id: None,
        }
    }

    /// A gap before `pos` stops recovery before the target.
    fn gap_before(&self, pos: (usize, u64), why: &str) -> Result<(), Refusal> {
        match self.open.missing {
            Some(missing) if self.reached.is_none_or(|r| r < pos) => {
                Err(self.gap(missing, self.open.next_present, why))
            }
            _ => Ok(()),
        }
    }
}

/// The checks after the backup is chosen: its WAL bounds, the WAL to consistency, then what
/// the kind of target needs.
fn decide(
    catalog: &LineageCatalog,
    backup: &BackupInfo,
    target: &Target,
) -> Result<Ready, Refusal> {
    let (Some(begin), Some(end)) = (backup.begin_segment(), backup.end_segment()) else {
        let msg = format!(
            "backup {} has no begin_wal/end_wal in backup.info",
            backup.backup_id
        );
        return Err(refusal(Cause::NoCompletedBackup, msg));
    };
    if let (TargetPoint::Time { time }, Some(end_time)) = (&target.point, backup.end_time)
        && *time < end_time
    {
        let msg = format!(
            "target time {time} is before the end of backup {} ({end_time})",
            backup.backup_id
        );
        return Err(refusal(Cause::TargetBeforeFirstRecoverabilityPoint, msg));
    }
    let archive = &catalog.archive;
    let legs = archive.chain(begin, archive.latest_descendant(begin));
    let open = archive.walk(&legs, None);
    let mut chain = Chain {
        catalog,
        reached: None,
        open,
        legs,
    };
    chain.reached = chain
        .open
        .last
        .and_then(|(tl, s)| Some((chain.leg_of(tl)?, s)));
    // The backup's own WAL is needed whatever the target.
    let end_leg = chain.leg_of(end.timeline).unwrap_or(0);
    let to_consistency = archive.walk(
        &chain.legs,
        Some((end_leg, end.segno(archive.segment_size))),
    );
    if let Some(missing) = to_consistency.missing {
        let why = "the backup cannot reach consistency";
        return Err(chain.gap(missing, to_consistency.next_present, why));
    }
    let mut ready = Ready {
        backup_id: backup.backup_id.clone(),
        target: target.pin(&backup.backup_id),
        backup_end_time: backup.end_time,
        timelines: chain.legs.iter().map(|l| l.timeline).collect(),
        expected_last_wal: None,
        expected_end_lsn: None,
        notes: Vec::new(),
    };
    match &target.point {
        TargetPoint::Latest => to_latest(&chain, &mut ready)?,
        TargetPoint::Lsn { lsn } => to_lsn(&chain, *lsn)?,
        TargetPoint::Time { time } => to_time(&chain, *time, &mut ready)?,
        TargetPoint::Xid { .. } | TargetPoint::Name { .. } => ready.notes.push(
            "the WAL position of an xid or restore point is not known before recovery".into(),
        ),
        TargetPoint::Immediate => {}
    }
    Ok(ready)
}

/// `latest` replays to the end of the archive: a gap on the way would stop it silently.
fn to_latest(chain: &Chain, ready: &mut Ready) -> Result<(), Refusal> {
    if chain.open.is_gap()
        && let Some(missing) = chain.open.missing
    {
        let why = "recovery to latest would stop silently just before it";
        return Err(chain.gap(missing, chain.open.next_present, why));
    }
    let archive = &chain.catalog.archive;
    ready.expected_last_wal = chain.open.last.map(|p| chain.name(p));
    ready.expected_end_lsn = chain.open.last.map(|(_, s)| archive.segment_end(s));
    Ok(())
}

fn to_lsn(chain: &Chain, lsn: Lsn) -> Result<(), Refusal> {
    let archive = &chain.catalog.archive;
    let segno = lsn.0 / archive.segment_size;
    let target_leg = chain
        .legs
        .iter()
        .position(|l| l.to.is_none_or(|to| segno <= to))
        .unwrap_or(chain.legs.len() - 1);
    let target_pos = (target_leg, segno);
    let last_present = last_present_on_chain(chain.catalog, &chain.legs);
    if last_present.is_none_or(|lp| target_pos > lp) {
        let end = last_present
            .map(|(_, s)| archive.segment_end(s).to_string())
            .unwrap_or_default();
        let msg = format!(
            "target LSN {lsn} is beyond the end of the archive of {} ({end})",
            chain.catalog.server_name
        );
        return Err(refusal(Cause::TargetBeyondArchive, msg));
    }
    chain.gap_before(target_pos, "the target lies after it")
}

fn to_time(chain: &Chain, time: Timestamp, ready: &mut Ready) -> Result<(), Refusal> {
    match first_uploaded_at_or_after(chain.catalog, &chain.legs, time) {
        Found::Unknown => {
            ready
                .notes
                .push("upload times unknown: cannot place the target time in the WAL".into());
            Ok(())
        }
        Found::None(last) => {
            let last = last
                .map(|t| format!(" (last segment uploaded at {t})"))
                .unwrap_or_default();
            let msg = format!(
                "target time {time} is after the end of the archive of {}{last}",
                chain.catalog.server_name
            );
            Err(refusal(Cause::TargetBeyondArchive, msg))
        }
        Found::At(pos) => chain.gap_before(pos, "the target time lies after it"),
    }
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
