//! A lineage grown by a real DR (`sandbox new-lineage`: restore, promote to timeline 2,
//! archive into the next lineage) drills to `pass` — and still passes when its `.history`
//! file is gone, as PostgreSQL restores a backup already on that timeline without it (failing
//! that drill would blame the backup falsely). Real sandbox: PostgreSQL, barman-cloud, S3.

mod common;

use common::*;
use serde_json::Value;

/// Drills `app-v2` to latest; (exit code, the drill's JSON, stderr).
fn drill_v2(sb: &Sandbox) -> (Option<i32>, Value, String) {
    let file = sb.scenario("v2", "lineages: [app-v2]\ntargets: [latest]\n");
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

#[test]
fn a_new_lineage_passes_with_and_without_its_history_file() {
    let sb = Sandbox::up("s3");
    sb.cmd(&["backup"]);
    sb.cmd(&["workload", "--batches", "1", "--rows", "100"]);
    sb.cmd(&["new-lineage"]);
    sb.cmd(&["workload", "--batches", "2", "--rows", "100"]);
    let mut failures = Vec::new();
    let (code, d, err) = drill_v2(&sb);
    if code != Some(0) || d["verdict"] != "pass" {
        failures.push(format!("with its history: exit {code:?}, {d}\n{err}"));
    }
    if d["recovery"]["new_timeline"] != 3 {
        failures.push(format!(
            "with its history: promoted to {}, want timeline 3",
            d["recovery"]["new_timeline"]
        ));
    }
    assert!(
        sb.delete_object("sandbox/app-v2/wals/00000002.history.gz"),
        "the new lineage has its history file"
    );
    let (code, d, err) = drill_v2(&sb);
    if code != Some(0) || d["verdict"] != "pass" {
        failures.push(format!("without its history: exit {code:?}, {d}\n{err}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
