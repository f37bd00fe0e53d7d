//! Broken backups fail with the cause that names what broke, on a real archive: rows deleted
//! on the source after the baseline (`row_count_mismatch`), and a WAL segment with a flipped
//! page header (`wal_corrupt`, with PostgreSQL's line, not `recovery_truncated`). Real sandbox:
//! PostgreSQL, barman-cloud, S3 on loopback.

mod common;

use std::io::{Read, Write};

use common::*;
use serde_json::Value;

/// Flips the magic number of the second page of a gzip-compressed WAL segment in the store.
fn corrupt_segment(sb: &Sandbox, key: &str) {
    use object_store::ObjectStoreExt;
    let store = sb.store();
    let path = object_store::path::Path::from(key);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let gz = store.inner.get(&path).await.unwrap().bytes().await.unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        raw[8192] ^= 0xFF;
        raw[8193] ^= 0xFF;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&raw).unwrap();
        let body = enc.finish().unwrap();
        store.inner.put(&path, body.into()).await.unwrap();
    });
}

/// Runs the scenario; (exit code, its only drill, stderr).
fn run(sb: &Sandbox, file: &std::path::Path) -> (Option<i32>, Value, String) {
    let work = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "-f",
        file.to_str().unwrap(),
        "--output",
        "json",
        "--work-dir",
        work.path().to_str().unwrap(),
        "--report-dir",
        sb.dir.path().join("reports").to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report["drills"][0].clone(), stderr(&out))
}

fn psql(sb: &Sandbox, sql: &str) {
    let out = std::process::Command::new("psql")
        .arg(sb.var("PGDRILL_SOURCE_URL"))
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deleted_rows_and_corrupt_wal_fail_with_their_cause() {
    let sb = Sandbox::up("s3");
    sb.cmd(&["backup"]);
    sb.cmd(&["workload", "--batches", "2", "--rows", "300"]);
    let file = sb.scenario(
        "faults",
        "lineages: [app-v1]\ntargets: [latest]\nchecks:\n  baseline: baseline.json\n",
    );
    let recorded = pgdrill_env(
        &[
            "baseline",
            "record",
            "-f",
            file.to_str().unwrap(),
            "--name",
            "b",
            "--switch-wal",
        ],
        &[("PGDRILL_SOURCE_URL", &sb.var("PGDRILL_SOURCE_URL"))],
    );
    assert!(recorded.status.success(), "{}", stderr(&recorded));
    let mut failures = Vec::new();
    // Rows deleted after the baseline: latest has fewer than the baseline recorded.
    psql(&sb, "delete from events where id % 2 = 0");
    psql(&sb, "select pg_switch_wal()");
    sb.cmd(&["workload", "--batches", "1", "--rows", "10"]);
    let (code, d, err) = run(&sb, &file);
    if code != Some(1) || d["cause"] != "row_count_mismatch" {
        failures.push(format!("rows deleted: exit {code:?}, {d}\n{err}"));
    }
    // A segment after the backup with a flipped page header: replay stops there.
    let catalog: Value = {
        let loaded = pgdrill::scenario::load(&file).unwrap();
        let dest = loaded
            .scenario
            .source
            .barman_object_store
            .unwrap()
            .destination_path;
        let out = sb.run(&["catalog", &dest, "--server", "app-v1", "--output", "json"]);
        json(&out)
    };
    let lineage = &catalog["lineages"][0];
    let end_wal = lineage["backups"][0]["end_wal"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let segno = u64::from_str_radix(&end_wal[16..], 16).unwrap() + 1;
    let victim = format!("{}{:08X}", &end_wal[..16], segno);
    corrupt_segment(
        &sb,
        &format!("sandbox/app-v1/wals/{}/{victim}.gz", &victim[..16]),
    );
    let (code, d, err) = run(&sb, &file);
    let evidence = d["evidence"].as_str().unwrap_or_default();
    if code != Some(1) || d["cause"] != "wal_corrupt" || !evidence.contains("invalid magic number")
    {
        failures.push(format!("corrupt {victim}: exit {code:?}, {d}\n{err}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
