//! The object store going away mid-drill is pgdrill's problem, not the backup's: whatever
//! PostgreSQL then logs (an unreadable base backup, a missing checkpoint, an early end of
//! replay), the drill is `error` (exit 2) with evidence naming the store. Real sandbox:
//! PostgreSQL, barman-cloud, moto on loopback; the store is killed at a chosen moment.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The moment to kill the store: a file that appears in the drill folder.
fn reached(work: &Path, marker: &str) -> bool {
    std::fs::read_dir(work)
        .map(|d| d.flatten().any(|e| e.path().join(marker).exists()))
        .unwrap_or(false)
}

/// Runs a `latest` drill on a fresh sandbox and kills the store when `marker` appears.
fn drill_losing_the_store(marker: &str) -> Result<(), String> {
    let sb = Sandbox::up("s3");
    sb.cmd(&["backup"]);
    sb.cmd(&["workload", "--batches", "6", "--rows", "200"]);
    let file = sb.scenario("outage", "targets: [latest]\n");
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-f", file.to_str().unwrap(), "--output", "json"])
        .args(["--work-dir", work.path().to_str().unwrap()])
        .args([
            "--report-dir",
            sb.dir.path().join("reports").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !reached(work.path(), marker) {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{marker} never appeared"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let store = sb.pids()[0];
    Command::new("kill")
        .args(["-KILL", "--", &format!("-{store}")])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let d = &report["drills"][0];
    let evidence = d["evidence"].as_str().unwrap_or_default();
    if out.status.code() == Some(2)
        && d["verdict"] == "error"
        && evidence.contains("object store stopped answering")
    {
        Ok(())
    } else {
        Err(format!(
            "exit {:?}, drill {d}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_store_that_dies_mid_drill_is_an_error_at_any_stage() {
    let failures: Vec<String> = [
        ("during barman-cloud-restore", "pgdata"),
        ("during WAL replay", "pgdata/postmaster.pid"),
    ]
    .iter()
    .filter_map(|(moment, marker)| {
        drill_losing_the_store(marker)
            .err()
            .map(|e| format!("{moment}: {e}"))
    })
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
