//! What one lineage (a serverName folder) holds, computed purely from a listing.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::catalog::archive::{Archive, TimelineSegments};
use crate::catalog::backup_info::BackupInfo;
use crate::catalog::history::parse_history;
use crate::catalog::wal::{DEFAULT_SEGMENT_SIZE, SegmentName, WalFile, segments_per_log};
use crate::lsn::Lsn;

/// The raw material read from the object store for one lineage.
#[derive(Debug, Default)]
pub struct Listing {
    pub server_name: String,
    /// Folders under `base/` (backup ids).
    pub backup_folders: Vec<String>,
    /// `backup.info` text per backup id, or the reason it could not be read.
    pub backup_infos: Vec<(String, Result<String, String>)>,
    pub wal: Vec<(WalFile, Option<Timestamp>)>,
    /// `.history` text per timeline, or the reason it could not be read.
    pub histories: Vec<(u32, Result<String, String>)>,
    pub unrecognized: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Backup {
    #[serde(flatten)]
    pub info: BackupInfo,
    /// `done`, `failed` or `incomplete`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub backup_id: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimelineSummary {
    pub timeline: u32,
    pub parent: Option<u32>,
    pub switch_lsn: Option<Lsn>,
    pub reason: Option<String>,
    /// `present`, `missing`, `unreadable` or `not_needed` (timeline 1).
    pub history: &'static str,
    pub segments: usize,
    pub first_wal: Option<String>,
    pub last_wal: Option<String>,
    /// LSN at the end of the last archived segment.
    pub end_lsn: Option<Lsn>,
    pub last_archived_at: Option<Timestamp>,
    pub partial: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub timeline: u32,
    pub first_missing: String,
    pub missing_segments: u64,
    pub next_present: String,
    /// True when the hole lies after the oldest usable backup's first WAL, so a restore crosses it.
    pub affects_recovery: bool,
}

/// Whether a backup's WAL runs without a hole to the end of the archive.
#[derive(Clone, Debug, Serialize)]
pub struct Continuity {
    pub backup_id: String,
    pub timelines: Vec<u32>,
    pub from_wal: String,
    pub reaches_wal: Option<String>,
    pub reaches_lsn: Option<Lsn>,
    pub continuous: bool,
    pub first_missing: Option<String>,
    pub next_present: Option<String>,
}

/// The recoverability window of a lineage.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// End time of the oldest done backup (as CNPG computes it).
    pub first_point: Timestamp,
    pub last_backup_end: Timestamp,
    /// The last segment reachable without a gap from the newest backup.
    pub last_wal: Option<String>,
    pub last_lsn: Option<Lsn>,
    pub last_archived_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WalCounts {
    pub segments: usize,
    pub partial: usize,
    pub backup_labels: usize,
    pub history: usize,
    pub by_compression: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LineageCatalog {
    pub server_name: String,
    pub segment_size: u64,
    /// Backups with a readable `backup.info`, sorted by id.
    pub backups: Vec<Backup>,
    /// Folders under `base/` without `backup.info` (still running, or abandoned).
    pub incomplete_backups: Vec<String>,
    pub unreadable_backups: Vec<Problem>,
    pub window: Option<Window>,
    pub timelines: Vec<TimelineSummary>,
    pub wal: WalCounts,
    pub gaps: Vec<Gap>,
    pub continuity: Vec<Continuity>,
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub archive: Archive,
}

impl LineageCatalog {
    /// Done backups (begin and end time set), oldest end first.
    pub fn done_backups(&self) -> impl Iterator<Item = &BackupInfo> {
        let mut done: Vec<&BackupInfo> = self
            .backups
            .iter()
            .map(|b| &b.info)
            .filter(|b| b.is_done())
            .collect();
        done.sort_by_key(|b| (b.end_time, b.backup_id.clone()));
        done.into_iter()
    }

    /// Builds the catalog from a listing. Unreadable files are reported, never fatal.
    pub fn build(mut listing: Listing) -> Self {
        let mut warnings = Vec::new();
        let backups = BackupSet::read(listing.backup_infos, listing.backup_folders);
        let segment_size = segment_size_of(&backups.readable, &mut warnings);
        let wal = SortedWal::sort(listing.wal, segment_size, &mut listing.unrecognized);
        let mut archive = Archive {
            segment_size,
            timelines: timeline_segments(wal.complete),
            ..Default::default()
        };
        let unreadable_history = read_histories(listing.histories, &mut archive, &mut warnings);
        warnings.extend(unrecognized_warning(&listing.unrecognized));
        let timelines =
            summarize_timelines(&archive, &wal.partial, &unreadable_history, &mut warnings);
        let mut catalog = Self {
            server_name: listing.server_name,
            segment_size,
            backups: backups.readable,
            incomplete_backups: backups.incomplete,
            unreadable_backups: backups.unreadable,
            window: None,
            timelines,
            wal: wal.counts,
            gaps: Vec::new(),
            continuity: Vec::new(),
            warnings,
            archive,
        };
        // Continuity, gaps and the window all read the finished archive and each other.
        catalog.continuity = catalog
            .done_backups()
            .filter_map(|b| continuity_of(&catalog.archive, b))
            .collect();
        catalog.gaps = gaps_of(&catalog);
        catalog.window = window_of(&catalog);
        catalog
    }
}

/// The backups of a lineage, by whether their `backup.info` could be read.
struct BackupSet {
    /// Sorted by id.
    readable: Vec<Backup>,
    /// Folders without `backup.info`, sorted.
    incomplete: Vec<String>,
    unreadable: Vec<Problem>,
}

impl BackupSet {
    fn read(infos: Vec<(String, Result<String, String>)>, folders: Vec<String>) -> Self {
        let mut readable = Vec::new();
        let mut unreadable = Vec::new();
        let mut with_info = Vec::new();
        for (id, text) in infos {
            with_info.push(id.clone());
            match text
                .and_then(|t| BackupInfo::parse(&id, &t).map_err(|e| format!("backup.info {e}")))
            {
                Ok(info) => readable.push(Backup {
                    state: info.state(),
                    info,
                }),
                Err(reason) => unreadable.push(Problem {
                    backup_id: id,
                    reason,
                }),
            }
        }
        readable.sort_by(|a, b| a.info.backup_id.cmp(&b.info.backup_id));
        let mut incomplete: Vec<String> = folders
            .into_iter()
            .filter(|f| !with_info.contains(f))
            .collect();
        incomplete.sort();
        Self {
            readable,
            incomplete,
            unreadable,
        }
    }
}

/// The WAL objects of a lineage, counted and grouped by timeline.
#[derive(Default)]
struct SortedWal {
    counts: WalCounts,
    /// `.partial` file names per timeline.
    partial: BTreeMap<u32, Vec<String>>,
    /// Complete segments per timeline, unsorted, with their upload time.
    complete: BTreeMap<u32, Vec<(u64, Option<Timestamp>)>>,
}

impl SortedWal {
    /// Segment numbers that cannot exist with `segment_size` go to `unrecognized`.
    fn sort(
        wal: Vec<(WalFile, Option<Timestamp>)>,
        segment_size: u64,
        unrecognized: &mut Vec<String>,
    ) -> Self {
        let mut sorted = Self::default();
        for (file, uploaded) in wal {
            match file {
                WalFile::Segment { name, .. }
                    if u64::from(name.seg) >= segments_per_log(segment_size) =>
                {
                    unrecognized.push(name.to_string());
                }
                WalFile::Segment {
                    name,
                    partial,
                    compression,
                } => {
                    if let Some(c) = compression {
                        *sorted
                            .counts
                            .by_compression
                            .entry(c.to_string())
                            .or_default() += 1;
                    }
                    sorted.add_segment(name, partial, segment_size, uploaded);
                }
                WalFile::BackupLabel { .. } => sorted.counts.backup_labels += 1,
                WalFile::History { .. } => sorted.counts.history += 1,
            }
        }
        sorted
    }

    fn add_segment(
        &mut self,
        name: SegmentName,
        partial: bool,
        segment_size: u64,
        uploaded: Option<Timestamp>,
    ) {
        if partial {
            self.counts.partial += 1;
            self.partial
                .entry(name.timeline)
                .or_default()
                .push(format!("{name}.partial"));
        } else {
            self.counts.segments += 1;
            self.complete
                .entry(name.timeline)
                .or_default()
                .push((name.segno(segment_size), uploaded));
        }
    }
}

/// Complete segments per timeline, sorted by number; a segment listed twice counts once.
fn timeline_segments(
    complete: BTreeMap<u32, Vec<(u64, Option<Timestamp>)>>,
) -> BTreeMap<u32, TimelineSegments> {
    complete
        .into_iter()
        .map(|(tl, mut segs)| {
            segs.sort_unstable_by_key(|s| s.0);
            segs.dedup_by_key(|s| s.0);
            let (segnos, uploaded) = segs.into_iter().unzip();
            (tl, TimelineSegments { segnos, uploaded })
        })
        .collect()
}

/// Parses the history files into `archive`; returns the timelines whose file is unreadable.
fn read_histories(
    histories: Vec<(u32, Result<String, String>)>,
    archive: &mut Archive,
    warnings: &mut Vec<String>,
) -> Vec<u32> {
    let mut unreadable = Vec::new();
    for (tl, text) in histories {
        match text.and_then(|t| parse_history(&t)) {
            Ok(entries) => {
                archive.histories.insert(tl, entries);
            }
            Err(e) => {
                unreadable.push(tl);
                warnings.push(format!("history file of timeline {tl} is unreadable: {e}"))
            }
        }
    }
    unreadable
}

fn unrecognized_warning(unrecognized: &[String]) -> Option<String> {
    let first = unrecognized.first()?;
    Some(format!(
        "{} object(s) under wals/ are not WAL files, e.g. {first}",
        unrecognized.len()
    ))
}

fn segment_size_of(backups: &[Backup], warnings: &mut Vec<String>) -> u64 {
    let mut sizes: Vec<u64> = backups.iter().map(|b| b.info.xlog_segment_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.len() > 1 {
        warnings.push(format!(
            "backups disagree on xlog_segment_size ({sizes:?}); using the newest"
        ));
    }
    backups
        .last()
        .map_or(DEFAULT_SEGMENT_SIZE, |b| b.info.xlog_segment_size)
}

fn summarize_timelines(
    archive: &Archive,
    partial: &BTreeMap<u32, Vec<String>>,
    unreadable_history: &[u32],
    warnings: &mut Vec<String>,
) -> Vec<TimelineSummary> {
    let mut all = archive.known_timelines();
    all.extend(partial.keys());
    all.sort_unstable();
    all.dedup();
    all.into_iter()
        .map(|tl| {
            let own = archive.histories.get(&tl).and_then(|h| h.last());
            let history = match (tl, own) {
                (1, _) => "not_needed",
                (_, Some(_)) => "present",
                _ if unreadable_history.contains(&tl) => "unreadable",
                _ => {
                    warnings.push(format!(
                        "timeline {tl} has WAL but no {tl:08X}.history file"
                    ));
                    "missing"
                }
            };
            let segs = archive.timelines.get(&tl);
            let first = segs.and_then(|s| s.segnos.first());
            let last = segs.and_then(|s| s.segnos.last());
            TimelineSummary {
                timeline: tl,
                parent: own.map(|e| e.parent),
                switch_lsn: own.map(|e| e.switch_lsn),
                reason: own.map(|e| e.reason.clone()),
                history,
                segments: segs.map_or(0, |s| s.segnos.len()),
                first_wal: first.map(|s| archive.segment(tl, *s).to_string()),
                last_wal: last.map(|s| archive.segment(tl, *s).to_string()),
                end_lsn: last.map(|s| archive.segment_end(*s)),
                last_archived_at: last.and_then(|s| archive.uploaded(tl, *s)),
                partial: partial.get(&tl).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

fn continuity_of(archive: &Archive, backup: &BackupInfo) -> Option<Continuity> {
    let begin = backup.begin_segment()?;
    let latest = archive.latest_descendant(begin);
    let legs = archive.chain(begin, latest);
    let walk = archive.walk(&legs, None);
    let name = |p: Option<(u32, u64)>| p.map(|(t, s)| archive.segment(t, s).to_string());
    Some(Continuity {
        backup_id: backup.backup_id.clone(),
        timelines: legs.iter().map(|l| l.timeline).collect(),
        from_wal: begin.to_string(),
        reaches_wal: name(walk.last),
        reaches_lsn: walk.last.map(|(_, s)| archive.segment_end(s)),
        continuous: walk.missing.is_none(),
        first_missing: name(walk.missing),
        next_present: name(walk.next_present),
    })
}

fn gaps_of(catalog: &LineageCatalog) -> Vec<Gap> {
    let archive = &catalog.archive;
    // The earliest segment any done backup needs, per timeline.
    let mut needed_from: BTreeMap<u32, u64> = BTreeMap::new();
    for b in catalog.done_backups() {
        if let Some(seg) = b.begin_segment() {
            let segno = seg.segno(archive.segment_size);
            let e = needed_from.entry(seg.timeline).or_insert(segno);
            *e = (*e).min(segno);
        }
    }
    archive
        .holes()
        .into_iter()
        .map(|(tl, first, count, next)| Gap {
            timeline: tl,
            first_missing: archive.segment(tl, first).to_string(),
            missing_segments: count,
            next_present: archive.segment(tl, next).to_string(),
            affects_recovery: needed_from
                .iter()
                .any(|(t, from)| *t < tl || (*t == tl && *from < next)),
        })
        .collect()
}

fn window_of(catalog: &LineageCatalog) -> Option<Window> {
    let mut done = catalog.done_backups();
    let oldest = done.next()?;
    let newest = done.last().unwrap_or(oldest);
    let reach = catalog
        .continuity
        .iter()
        .find(|c| c.backup_id == newest.backup_id);
    let last_wal = reach.and_then(|c| c.reaches_wal.clone());
    let last_archived_at = last_wal
        .as_deref()
        .and_then(SegmentName::parse)
        .and_then(|s| {
            catalog
                .archive
                .uploaded(s.timeline, s.segno(catalog.segment_size))
        });
    Some(Window {
        first_point: oldest.end_time?,
        last_backup_end: newest.end_time?,
        last_wal,
        last_lsn: reach.and_then(|c| c.reaches_lsn),
        last_archived_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::wal::parse_wal_key;

    fn listing(segments: &[&str], histories: Vec<(u32, Result<String, String>)>) -> Listing {
        let info = "begin_time=2026-01-01 10:00:00+00:00\nend_time=2026-01-01 10:05:00+00:00\n\
                    begin_wal=000000010000000000000005\nend_wal=000000010000000000000005\nstatus=DONE\ntimeline=1\n";
        Listing {
            server_name: "app".into(),
            backup_folders: vec!["b1".into()],
            backup_infos: vec![("b1".into(), Ok(info.into()))],
            wal: segments
                .iter()
                .map(|s| (parse_wal_key(&format!("{}/{s}", &s[..16])).unwrap(), None))
                .collect(),
            histories,
            unrecognized: Vec::new(),
        }
    }

    #[test]
    fn a_hole_that_covers_the_backup_start_affects_recovery() {
        // Present 2 and 7..8; the backup needs 5 onwards, inside the hole 3..6.
        let c = LineageCatalog::build(listing(
            &[
                "000000010000000000000002",
                "000000010000000000000007",
                "000000010000000000000008",
            ],
            vec![],
        ));
        assert_eq!(c.gaps.len(), 1);
        assert!(c.gaps[0].affects_recovery, "{:?}", c.gaps[0]);
    }

    #[test]
    fn segment_numbers_that_cannot_exist_are_not_counted() {
        // With 16 MiB segments there is no segment 0x100 within a log.
        let c = LineageCatalog::build(listing(
            &["000000010000000000000005", "000000010000000000000100"],
            vec![],
        ));
        assert_eq!(c.wal.segments, 1);
        assert!(
            c.warnings.iter().any(|w| w.contains("not WAL files")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn an_unreadable_history_is_reported_once_as_unreadable() {
        let c = LineageCatalog::build(listing(
            &["000000010000000000000005", "000000020000000000000006"],
            vec![(
                2,
                Err("bz2 compression is not supported for history files".into()),
            )],
        ));
        let tl2 = c.timelines.iter().find(|t| t.timeline == 2).unwrap();
        assert_eq!(tl2.history, "unreadable");
        assert!(
            !c.warnings.iter().any(|w| w.contains("no 00000002.history")),
            "{:?}",
            c.warnings
        );
    }
}
