//! Preflight decided from catalog fixtures alone: which backup a target restores from, and
//! every cause of refusal. Each table collects its failures, so one bad case hides no other.

mod common;

use common::{backup_info, wal_range};
use jiff::Timestamp;
use pgdrill::catalog::lineage::{LineageCatalog, Listing};
use pgdrill::catalog::wal::parse_wal_key;
use pgdrill::lsn::Lsn;
use pgdrill::outcome::Cause;
use pgdrill::preflight::{Preflight, Target, TargetPoint, choose_backup, preflight};

/// Backup A: WAL segment 2, 10:00–10:05 UTC, ends at LSN 0/2000100.
const A: &str = "20260101T100000";
/// Backup B: WAL segments 6–7, 12:00–12:05 UTC, ends at LSN 0/7000100.
const B: &str = "20260101T120000";
const UNKNOWN: &str = "20990101T000000";

fn time(hh_mm_ss: &str) -> Timestamp {
    format!("2026-01-01T{hh_mm_ss}Z").parse().unwrap()
}

/// Segment `segno` (on any timeline) was uploaded at 09:10 + 30 min per segment: segment 2 at
/// 10:10, segment 7 at 12:40, segment 9 at 13:40.
fn uploaded_at(segno: u64) -> Timestamp {
    time("09:10:00") + jiff::SignedDuration::from_mins(30 * segno as i64)
}

fn segment(timeline: u32, segno: u64) -> String {
    wal_range(timeline, segno, segno).remove(0)
}

/// One lineage, `app`, as the catalog reader would list it.
#[derive(Clone, Default)]
struct Fixture {
    backups: Vec<(String, String)>,
    segments: Vec<(u32, u64)>,
    histories: Vec<(u32, String)>,
}

impl Fixture {
    /// Backups A and B on timeline 1, with WAL from segment 2 to 9 (the last upload at 13:40).
    fn two_backups() -> Self {
        Self::default()
            .backup(
                A,
                backup_info(
                    &segment(1, 2),
                    &segment(1, 2),
                    "2026-01-01 10:00:00+00:00",
                    "2026-01-01 10:05:00+00:00",
                    "",
                ),
            )
            .backup(
                B,
                backup_info(
                    &segment(1, 6),
                    &segment(1, 7),
                    "2026-01-01 12:00:00+00:00",
                    "2026-01-01 12:05:00+00:00",
                    "",
                ),
            )
            .segments(1, 2, 9)
    }

    fn backup(mut self, id: &str, info: String) -> Self {
        self.backups.push((id.to_string(), info));
        self
    }

    fn segments(mut self, timeline: u32, first: u64, last: u64) -> Self {
        self.segments.extend((first..=last).map(|s| (timeline, s)));
        self
    }

    fn without(mut self, timeline: u32, segno: u64) -> Self {
        self.segments.retain(|s| *s != (timeline, segno));
        self
    }

    fn history(mut self, timeline: u32, text: &str) -> Self {
        self.histories.push((timeline, text.to_string()));
        self
    }

    fn build(&self) -> LineageCatalog {
        let mut wal: Vec<_> = self
            .segments
            .iter()
            .map(|(tl, segno)| {
                let name = segment(*tl, *segno);
                let file = parse_wal_key(&format!("{}/{name}", &name[..16])).unwrap();
                (file, Some(uploaded_at(*segno)))
            })
            .collect();
        for (tl, _) in &self.histories {
            wal.push((parse_wal_key(&format!("{tl:08X}.history")).unwrap(), None));
        }
        LineageCatalog::build(Listing {
            server_name: "app".into(),
            backup_folders: self.backups.iter().map(|(id, _)| id.clone()).collect(),
            backup_infos: self
                .backups
                .iter()
                .map(|(id, info)| (id.clone(), Ok(info.clone())))
                .collect(),
            wal,
            histories: self
                .histories
                .iter()
                .map(|(tl, text)| (*tl, Ok(text.clone())))
                .collect(),
            unrecognized: Vec::new(),
        })
    }
}

fn target(s: &str) -> Target {
    s.parse().unwrap_or_else(|e| panic!("target {s}: {e}"))
}

/// A target point restricted to one backup, as CNPG's `recoveryTarget.backupID` does.
fn with_backup(s: &str, id: &str) -> Target {
    Target {
        backup_id: Some(id.to_string()),
        ..target(s)
    }
}

fn lsn(s: &str) -> Lsn {
    s.parse().unwrap()
}

enum Expect {
    /// Ready from this backup; with `last_wal`, replay must end at that segment.
    Ready {
        backup: &'static str,
        last_wal: Option<String>,
    },
    /// Refused for this cause; with `missing`, naming that segment.
    Refused {
        cause: Cause,
        missing: Option<String>,
    },
}

fn ready(backup: &'static str) -> Expect {
    Expect::Ready {
        backup,
        last_wal: None,
    }
}

fn ready_to(backup: &'static str, last_wal: String) -> Expect {
    Expect::Ready {
        backup,
        last_wal: Some(last_wal),
    }
}

fn refused(cause: Cause) -> Expect {
    Expect::Refused {
        cause,
        missing: None,
    }
}

fn gap_at(missing: String) -> Expect {
    Expect::Refused {
        cause: Cause::WalGap,
        missing: Some(missing),
    }
}

struct Case {
    name: &'static str,
    catalog: LineageCatalog,
    target: Target,
    expect: Expect,
}

fn case(name: &'static str, fixture: &Fixture, target: Target, expect: Expect) -> Case {
    Case {
        name,
        catalog: fixture.build(),
        target,
        expect,
    }
}

/// What is wrong with `got` for `case`, if anything.
fn check(case: &Case, got: &Preflight) -> Option<String> {
    let name = case.name;
    match (&case.expect, got) {
        (Expect::Ready { backup, last_wal }, Preflight::Ready(r)) => {
            if r.backup_id != *backup {
                return Some(format!(
                    "{name}: ready from {}, expected {backup}",
                    r.backup_id
                ));
            }
            match last_wal {
                Some(w) if r.expected_last_wal.as_ref() != Some(w) => Some(format!(
                    "{name}: expected_last_wal {:?}, expected {w}",
                    r.expected_last_wal
                )),
                _ => None,
            }
        }
        (Expect::Refused { cause, missing }, Preflight::Refused(r)) => {
            if r.cause != *cause {
                return Some(format!(
                    "{name}: refused as {:?} ({}), expected {cause:?}",
                    r.cause, r.message
                ));
            }
            match missing {
                Some(m) if r.missing_wal.as_ref() != Some(m) => Some(format!(
                    "{name}: missing_wal {:?}, expected {m} ({})",
                    r.missing_wal, r.message
                )),
                _ => None,
            }
        }
        (Expect::Ready { .. }, Preflight::Refused(r)) => {
            Some(format!("{name}: refused as {:?}: {}", r.cause, r.message))
        }
        (Expect::Refused { cause, .. }, Preflight::Ready(r)) => Some(format!(
            "{name}: ready from {}, expected a refusal as {cause:?}",
            r.backup_id
        )),
    }
}

fn run(cases: &[Case]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c, &preflight(&c.catalog, &c.target)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn preflight_refuses_for_every_cause() {
    let full = Fixture::two_backups();
    let gap_at_8 = Fixture::two_backups().without(1, 8);
    let no_backup = Fixture::default().segments(1, 2, 9);
    let no_wal_bounds = Fixture::default()
        .backup(
            A,
            "begin_time=2026-01-01 10:00:00+00:00\nend_time=2026-01-01 10:05:00+00:00\n\
             status=DONE\ntimeline=1\nversion=150018\n"
                .into(),
        )
        .segments(1, 2, 9);
    let cases = vec![
        // Before the first recoverability point.
        case(
            "time before the end of the first backup",
            &full,
            target("time:2026-01-01T10:04:59Z"),
            refused(Cause::TargetBeforeFirstRecoverabilityPoint),
        ),
        case(
            "LSN at the end of the first backup",
            &full,
            target("lsn:0/2000100"),
            refused(Cause::TargetBeforeFirstRecoverabilityPoint),
        ),
        case(
            "LSN before the first backup",
            &full,
            target("lsn:0/1000000"),
            refused(Cause::TargetBeforeFirstRecoverabilityPoint),
        ),
        case(
            "time before the end of the named backup",
            &full,
            with_backup("time:2026-01-01T12:00:00Z", B),
            refused(Cause::TargetBeforeFirstRecoverabilityPoint),
        ),
        // Beyond the archive.
        case(
            "time after the last upload",
            &full,
            target("time:2026-01-01T14:00:00Z"),
            refused(Cause::TargetBeyondArchive),
        ),
        case(
            "LSN in the segment after the last",
            &full,
            target("lsn:0/A000000"),
            refused(Cause::TargetBeyondArchive),
        ),
        case(
            "LSN at the last byte of the last segment",
            &full,
            target("lsn:0/9FFFFFF"),
            ready(B),
        ),
        // WAL gaps.
        case(
            "segment missing before consistency",
            &Fixture::two_backups().without(1, 7),
            target("immediate"),
            gap_at(segment(1, 7)),
        ),
        case(
            "segment missing between the backup and the end, latest",
            &gap_at_8,
            target("latest"),
            gap_at(segment(1, 8)),
        ),
        case(
            "LSN target after the gap",
            &gap_at_8,
            target("lsn:0/9000000"),
            gap_at(segment(1, 8)),
        ),
        case(
            "time target after the gap",
            &gap_at_8,
            target("time:2026-01-01T13:30:00Z"),
            gap_at(segment(1, 8)),
        ),
        case(
            "LSN target before the gap",
            &gap_at_8,
            target("lsn:0/7800000"),
            ready(B),
        ),
        case(
            "time target before the gap",
            &gap_at_8,
            target("time:2026-01-01T12:30:00Z"),
            ready(B),
        ),
        case(
            "immediate with a gap after consistency",
            &gap_at_8,
            target("immediate"),
            ready(B),
        ),
        case(
            "latest when the last segment is missing: the archive just ends",
            &Fixture::two_backups().without(1, 9),
            target("latest"),
            ready_to(B, segment(1, 8)),
        ),
        // No completed backup.
        case(
            "no backup at all",
            &no_backup,
            target("latest"),
            refused(Cause::NoCompletedBackup),
        ),
        case(
            "backup.info without begin_wal and end_wal",
            &no_wal_bounds,
            target("latest"),
            refused(Cause::NoCompletedBackup),
        ),
        // Unknown backup id.
        case(
            "backup id not in the lineage",
            &full,
            target(&format!("backup:{UNKNOWN}")),
            refused(Cause::UnknownBackupId),
        ),
    ];
    run(&cases);
}

#[test]
fn latest_must_replay_to_the_last_segment_of_the_archive() {
    // Timeline 2 forks from 1 at 0/8000000: segments up to 7 come from timeline 1, then
    // timeline 2 from 8 to 0xB.
    let switched = Fixture::two_backups()
        .without(1, 8)
        .without(1, 9)
        .segments(2, 8, 0xB)
        .history(2, "1\t0/8000000\tno recovery target specified\n");
    let cases = vec![
        case(
            "one timeline",
            &Fixture::two_backups(),
            target("latest"),
            ready_to(B, segment(1, 9)),
        ),
        case(
            "across a timeline switch",
            &switched,
            target("latest"),
            ready_to(B, segment(2, 0xB)),
        ),
        case(
            "across a timeline switch, from the older backup",
            &switched,
            with_backup("latest", A),
            ready_to(A, segment(2, 0xB)),
        ),
    ];
    run(&cases);
    let catalog = switched.build();
    match preflight(&catalog, &target("latest")) {
        Preflight::Ready(r) => {
            assert_eq!(r.timelines, vec![1, 2], "timelines replayed");
            assert_eq!(
                r.expected_end_lsn,
                Some(lsn("0/C000000")),
                "end of the last segment"
            );
        }
        Preflight::Refused(r) => panic!("across a timeline switch: refused: {}", r.message),
    }
}

#[test]
fn choose_backup_follows_cnpg_rules() {
    let catalog = Fixture::two_backups().build();
    let empty = Fixture::default().segments(1, 2, 9).build();
    let incomplete = Fixture::default()
        .backup(
            A,
            "begin_time=2026-01-01 10:00:00+00:00\nbegin_wal=000000010000000000000002\n\
             status=STARTED\ntimeline=1\n"
                .into(),
        )
        .segments(1, 2, 9)
        .build();
    let time_point = |t: &str| Target {
        point: TargetPoint::Time { time: time(t) },
        backup_id: None,
    };
    // (case, catalog, target, the backup chosen or the cause of refusal)
    let cases: Vec<(&str, &LineageCatalog, Target, Result<&str, Cause>)> = vec![
        (
            "time at the end of the newer backup",
            &catalog,
            time_point("12:05:00"),
            Ok(B),
        ),
        (
            "time just before the end of the newer backup",
            &catalog,
            time_point("12:04:59"),
            Ok(A),
        ),
        (
            "time after both backups",
            &catalog,
            time_point("13:00:00"),
            Ok(B),
        ),
        (
            "time before both backups",
            &catalog,
            time_point("10:04:59"),
            Err(Cause::TargetBeforeFirstRecoverabilityPoint),
        ),
        (
            "LSN equal to the newer backup's end",
            &catalog,
            target("lsn:0/7000100"),
            Ok(A),
        ),
        (
            "LSN just after the newer backup's end",
            &catalog,
            target("lsn:0/7000101"),
            Ok(B),
        ),
        (
            "LSN just after the older backup's end",
            &catalog,
            target("lsn:0/2000101"),
            Ok(A),
        ),
        (
            "LSN equal to the older backup's end",
            &catalog,
            target("lsn:0/2000100"),
            Err(Cause::TargetBeforeFirstRecoverabilityPoint),
        ),
        ("latest", &catalog, target("latest"), Ok(B)),
        ("xid", &catalog, target("xid:1234"), Ok(B)),
        (
            "restore point name",
            &catalog,
            target("name:before-upgrade"),
            Ok(B),
        ),
        ("immediate", &catalog, target("immediate"), Ok(B)),
        (
            "explicit older backup",
            &catalog,
            target(&format!("backup:{A}")),
            Ok(A),
        ),
        (
            "explicit older backup with a later time",
            &catalog,
            with_backup("time:2026-01-01T13:00:00Z", A),
            Ok(A),
        ),
        (
            "explicit older backup with latest",
            &catalog,
            with_backup("latest", A),
            Ok(A),
        ),
        (
            "explicit unknown backup",
            &catalog,
            target(&format!("backup:{UNKNOWN}")),
            Err(Cause::UnknownBackupId),
        ),
        (
            "no backup",
            &empty,
            target("latest"),
            Err(Cause::NoCompletedBackup),
        ),
        (
            "only a backup without an end",
            &incomplete,
            target("latest"),
            Err(Cause::NoCompletedBackup),
        ),
    ];
    let mut failures = Vec::new();
    for (name, catalog, target, expected) in &cases {
        let got = choose_backup(catalog, target)
            .map(|b| b.backup_id.as_str())
            .map_err(|r| r.cause);
        if got != *expected {
            failures.push(format!("{name}: chose {got:?}, expected {expected:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
