//! `pgdrill catalog` over `file://` fixture trees: layout edge cases without any server.

mod common;

use std::io::Write;

use common::*;
use serde_json::Value;

const T1: &str = "2026-01-01 10:00:00.000000+00:00";
const T2: &str = "2026-01-01 10:05:00.000000+00:00";

/// A done backup whose WAL starts and ends in `wal`.
fn put_done_backup(root: &std::path::Path, server: &str, id: &str, wal: &str) {
    let info = backup_info(wal, wal, T1, T2, "");
    put(
        root,
        &format!("{server}/base/{id}/backup.info"),
        info.as_bytes(),
    );
}

fn catalog_json(root: &std::path::Path, server: Option<&str>) -> Value {
    let url = format!("file://{}", root.display());
    let mut args = vec!["catalog", url.as_str(), "--output", "json"];
    if let Some(s) = server {
        args.extend(["--server", s]);
    }
    let out = pgdrill(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["schema"], "pgdrill.catalog/v1");
    doc
}

fn lineage<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["lineages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["server_name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn segment_numbers_wrap_after_ff_with_16_mib_segments() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put_done_backup(root, "app", "20260101T100000", "0000000100000000000000FE");
    for name in wal_range(1, 0xFE, 0x101) {
        put_wal(root, "app", &name, ".gz");
    }
    let doc = catalog_json(root, None);
    let l = lineage(&doc, "app");
    assert_eq!(l["wal"]["segments"], 4);
    assert_eq!(
        l["gaps"].as_array().unwrap().len(),
        0,
        "FF → 1/00 is not a gap: {}",
        l["gaps"]
    );
    assert_eq!(l["window"]["last_wal"], "000000010000000100000001");
    assert_eq!(l["window"]["last_lsn"], "1/2000000");
    assert_eq!(l["continuity"][0]["continuous"], true);
}

#[test]
fn segment_size_comes_from_backup_info() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 64 MiB segments: 64 per log, so 0/3F is followed by 1/00.
    let info = backup_info(
        "00000001000000000000003E",
        "00000001000000000000003E",
        T1,
        T2,
        "xlog_segment_size=67108864\n",
    );
    put(
        root,
        "big/base/20260101T100000/backup.info",
        info.as_bytes(),
    );
    for name in [
        "00000001000000000000003E",
        "00000001000000000000003F",
        "000000010000000100000000",
    ] {
        put_wal(root, "big", name, "");
    }
    let l = catalog_json(root, Some("big"))["lineages"][0].clone();
    assert_eq!(l["segment_size"], 67108864);
    assert!(l["gaps"].as_array().unwrap().is_empty(), "{}", l["gaps"]);
    assert_eq!(l["window"]["last_wal"], "000000010000000100000000");
    assert_eq!(l["window"]["last_lsn"], "1/4000000");
}

#[test]
fn timeline_switch_is_followed_through_its_history_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put_done_backup(root, "db", "20260101T100000", "000000010000000000000002");
    for name in wal_range(1, 2, 7).into_iter().chain(wal_range(2, 8, 10)) {
        put_wal(root, "db", &name, ".gz");
    }
    put_wal(root, "db", "000000010000000000000008", ".partial.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"1\t0/8000000\tno recovery target specified\n")
        .unwrap();
    put(root, "db/wals/00000002.history.gz", &gz.finish().unwrap());
    let l = catalog_json(root, None)["lineages"][0].clone();
    let tl2 = l["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timeline"] == 2)
        .unwrap()
        .clone();
    assert_eq!(tl2["parent"], 1);
    assert_eq!(tl2["switch_lsn"], "0/8000000");
    assert_eq!(tl2["history"], "present");
    assert_eq!(tl2["last_wal"], "00000002000000000000000A");
    let c = &l["continuity"][0];
    assert_eq!(c["timelines"], serde_json::json!([1, 2]));
    assert_eq!(c["reaches_wal"], "00000002000000000000000A");
    assert_eq!(l["wal"]["partial"], 1);
    assert_eq!(
        l["timelines"][0]["partial"][0],
        "000000010000000000000008.partial"
    );
    assert!(l["gaps"].as_array().unwrap().is_empty());
}

#[test]
fn every_compression_suffix_and_partial_files_are_understood() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put_done_backup(root, "z", "20260101T100000", "000000010000000000000001");
    let suffixes = ["", ".gz", ".bz2", ".xz", ".snappy", ".zst", ".lz4"];
    for (name, suffix) in wal_range(1, 1, 7).iter().zip(suffixes) {
        put_wal(root, "z", name, suffix);
    }
    put_wal(root, "z", "000000010000000000000008", ".partial");
    put(
        root,
        "z/wals/0000000100000000/000000010000000000000001.00000028.backup",
        b"label",
    );
    let l = catalog_json(root, None)["lineages"][0].clone();
    assert_eq!(l["wal"]["segments"], 7);
    assert_eq!(l["wal"]["partial"], 1);
    assert_eq!(l["wal"]["backup_labels"], 1);
    for s in ["gz", "bz2", "xz", "snappy", "zst", "lz4"] {
        assert_eq!(l["wal"]["by_compression"][s], 1, "{s}");
    }
    assert_eq!(
        l["window"]["last_wal"], "000000010000000000000007",
        "a .partial does not extend the window"
    );
}

#[test]
fn unreadable_backup_info_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put_done_backup(root, "u", "20260101T100000", "000000010000000000000002");
    put(
        root,
        "u/base/20260102T100000/backup.info",
        b"\xff\xfe not text",
    );
    put(
        root,
        "u/base/20260103T100000/backup.info",
        b"status=DONE\nend_xlog=banana\n",
    );
    put(
        root,
        "u/base/20260104T100000/data.tar.gz",
        b"still uploading",
    );
    put_wal(root, "u", "000000010000000000000002", "");
    let l = catalog_json(root, None)["lineages"][0].clone();
    assert_eq!(l["backups"].as_array().unwrap().len(), 1);
    let bad = l["unreadable_backups"].as_array().unwrap();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad.iter()
            .any(|b| b["reason"].as_str().unwrap().contains("end_xlog"))
    );
    assert_eq!(
        l["incomplete_backups"],
        serde_json::json!(["20260104T100000"])
    );
    assert!(l["window"].is_object());
}

#[test]
fn empty_lineage_has_no_window() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("empty/base")).unwrap();
    std::fs::create_dir_all(root.join("empty/wals")).unwrap();
    let l = catalog_json(root, None)["lineages"][0].clone();
    assert_eq!(l["server_name"], "empty");
    assert!(l["backups"].as_array().unwrap().is_empty());
    assert!(l["window"].is_null());
    assert_eq!(l["wal"]["segments"], 0);
    // And preflight says why nothing can be restored.
    let url = format!("file://{}", root.display());
    let out = pgdrill(&["preflight", &url, "--server", "empty", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["result"]["cause"], "no_completed_backup");
}

#[test]
fn gaps_and_preflight_causes_on_a_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put_done_backup(root, "g", "20260101T100000", "000000010000000000000002");
    for name in wal_range(1, 2, 9)
        .into_iter()
        .filter(|n| !n.ends_with("05"))
    {
        put_wal(root, "g", &name, ".gz");
    }
    let url = format!("file://{}", root.display());
    let l = catalog_json(root, None)["lineages"][0].clone();
    assert_eq!(l["gaps"][0]["first_missing"], "000000010000000000000005");
    assert_eq!(l["gaps"][0]["next_present"], "000000010000000000000006");
    assert_eq!(l["gaps"][0]["affects_recovery"], true);
    assert_eq!(l["continuity"][0]["continuous"], false);
    let cause = |target: &str, extra: &[&str]| {
        let mut args = vec![
            "preflight",
            url.as_str(),
            "--server",
            "g",
            "--target",
            target,
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = pgdrill(&args);
        let doc = json(&out);
        (
            out.status.code(),
            doc["result"]["cause"].as_str().map(str::to_string),
            doc,
        )
    };
    let (code, c, doc) = cause("latest", &[]);
    assert_eq!((code, c.as_deref()), (Some(1), Some("wal_gap")));
    assert_eq!(doc["result"]["missing_wal"], "000000010000000000000005");
    assert_eq!(
        cause("lsn:0/4800000", &[]).1,
        None,
        "a target before the gap is reachable"
    );
    assert_eq!(cause("lsn:0/7000010", &[]).1.as_deref(), Some("wal_gap"));
    assert_eq!(
        cause("lsn:0/F000000", &[]).1.as_deref(),
        Some("target_beyond_archive")
    );
    assert_eq!(
        cause("lsn:0/1000000", &[]).1.as_deref(),
        Some("target_before_first_recoverability_point")
    );
    assert_eq!(
        cause("time:2025-06-01T00:00:00Z", &[]).1.as_deref(),
        Some("target_before_first_recoverability_point")
    );
    assert_eq!(
        cause("backup:19990101T000000", &[]).1.as_deref(),
        Some("unknown_backup_id")
    );
    assert_eq!(cause("backup:20260101T100000", &[]).0, Some(0));
}

#[test]
fn a_path_without_barman_layout_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("not-a-lineage/photos")).unwrap();
    let url = format!("file://{}", dir.path().display());
    let out = pgdrill(&["catalog", &url]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no barman-cloud lineage"), "{err}");
    let out = pgdrill(&["catalog", &url, "--server", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("lineage \"nope\" not found"),
        "{}",
        stderr(&out)
    );
}
