//! Property-based fuzzing of everything pgdrill parses from outside: scenario files, and the
//! catalog's `backup.info`, WAL object names, `.history` files and LSNs. None may panic or
//! hang, whatever the input; the well-formed forms must parse back to what they say.
//! `make test` runs a short smoke (2 000 cases each); `make fuzz` runs 1 000 000 each
//! (`PGDRILL_FUZZ_CASES`).

use std::path::Path;

use pgdrill::catalog::backup_info::BackupInfo;
use pgdrill::catalog::history::parse_history;
use pgdrill::catalog::wal::{SegmentName, parse_wal_key};
use pgdrill::lsn::Lsn;
use pgdrill::scenario::load::from_text;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PGDRILL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const SCENARIO: &str = "apiVersion: pgdrill/v1\nname: fuzz\nsource:\n  barmanObjectStore:\n    \
    destinationPath: s3://bucket/pg\n    endpointURL: http://127.0.0.1:9000\nlineages: {pattern: \"app-*\"}\n\
    targets:\n  - latest\n  - {time: \"2026-01-01 10:00:00+00\", expect: {verdict: fail, cause: wal_gap}}\n  \
    - {random: {within: 7d}}\n  - everyBackup\ntimeouts: {restore: 10m, recovery: 10m, statement: 30s}\n\
    checks:\n  counts: {latest: atLeast}\n  sql:\n    - {name: n, query: select 1, op: \">=\", expect: 1}\n\
    schedule: \"0 3 * * 0\"\nrto: 15m\n";

/// Replaces a slice of `text` (at a byte index rounded to a char boundary) with `insert`.
fn splice(text: &str, at: usize, len: usize, insert: &str) -> String {
    let mut start = at % (text.len() + 1);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{insert}{}", &text[..start], &text[end..])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_as_a_scenario(text in any::<String>()) {
        let _ = from_text(Path::new("fuzz.yaml"), &text, false);
    }

    #[test]
    fn an_edited_valid_scenario(at in any::<usize>(), len in 0usize..12, insert in "[ -~\n]{0,16}") {
        prop_assert!(from_text(Path::new("fuzz.yaml"), SCENARIO, false).is_ok());
        let _ = from_text(Path::new("fuzz.yaml"), &splice(SCENARIO, at, len, &insert), false);
    }

    #[test]
    fn any_text_as_backup_info(id in "[0-9A-Za-z]{0,20}", text in any::<String>()) {
        let _ = BackupInfo::parse(&id, &text);
    }

    #[test]
    fn backup_info_shaped_lines(lines in prop::collection::vec(
        "(status|begin_wal|end_wal|begin_time|end_time|begin_xlog|end_xlog|timeline|xlog_segment_size|version|size|backup_name)=[ -~]{0,40}",
        0..16,
    )) {
        let _ = BackupInfo::parse("20260101T000000", &lines.join("\n"));
    }

    #[test]
    fn any_text_as_a_wal_object_name(key in any::<String>(), shaped in "[0-9A-F]{16}/[0-9A-F]{24}(\\.[a-z0-9]{0,8})?") {
        let _ = parse_wal_key(&key);
        let _ = parse_wal_key(&shaped);
    }

    #[test]
    fn segment_names_round_trip(timeline in 1u32.., segno in any::<u64>(), shift in 20u32..=30) {
        let size = 1u64 << shift;
        // A name holds 32 bits of log and `4 GiB / size` segments per log.
        let segno = segno % (1u64 << (64 - shift));
        let name = SegmentName::from_segno(timeline, segno, size);
        let parsed = SegmentName::parse(&name.to_string());
        prop_assert_eq!(parsed.map(|p| p.segno(size)), Some(segno));
    }

    #[test]
    fn any_text_as_a_history_file(text in any::<String>(), shaped in prop::collection::vec("[0-9]{1,3}\t[0-9A-F]{1,8}/[0-9A-F]{1,8}\t[ -~]{0,20}", 0..6)) {
        let _ = parse_history(&text);
        let _ = parse_history(&shaped.join("\n"));
    }

    #[test]
    fn lsns_round_trip(text in any::<String>(), value in any::<u64>()) {
        let _ = text.parse::<Lsn>();
        prop_assert_eq!(Lsn(value).to_string().parse::<Lsn>().ok(), Some(Lsn(value)));
    }
}
