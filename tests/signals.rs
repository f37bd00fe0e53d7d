//! Every signal that ends pgdrill (INT, TERM, HUP, QUIT) tears the running drill down and still
//! writes the reports: drills that finished keep their verdicts, the one in flight is
//! `error`/`interrupted`. Real sandbox: PostgreSQL, barman-cloud, S3 on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A scenario whose first drill fails at preflight at once and whose second restores.
fn scenario(sb: &Sandbox) -> PathBuf {
    sb.scenario(
        "signals",
        "targets:\n  - time: \"2999-01-01T00:00:00Z\"\n    expect: {verdict: fail}\n  - latest\n",
    )
}

/// Starts a run, waits until its second drill's folder holds `marker` (`pgdata`: restoring;
/// `pgdata/postmaster.pid`: PostgreSQL started, replaying), sends `signal`, and returns (exit
/// code, stderr, the report).
fn interrupt(
    file: &Path,
    work: &Path,
    reports: &Path,
    signal: &str,
    marker: &str,
) -> (Option<i32>, String, Value) {
    let child = Command::new(BIN)
        .args(["run", "-f", file.to_str().unwrap()])
        .args(["--work-dir", work.to_str().unwrap()])
        .args(["--report-dir", reports.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::read_dir(work)
        .unwrap()
        .flatten()
        .all(|e| !e.path().join(marker).exists())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the drill never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let report_file = std::fs::read_dir(reports)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("report.json"))
        .find(|p| p.exists());
    let report = report_file
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .unwrap_or(Value::Null);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        report,
    )
}

/// What must hold after `signal`; every problem found, not only the first.
fn check(signal: &str, marker: &str, file: &Path, root: &Path) -> Vec<String> {
    let work = root.join(format!("work-{signal}"));
    let reports = root.join(format!("reports-{signal}"));
    std::fs::create_dir_all(&work).unwrap();
    let (code, err, report) = interrupt(file, &work, &reports, signal, marker);
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("SIG{signal} at {marker}: {what}"));
        }
    };
    expect(code == Some(2), format!("exit {code:?}, want 2: {err}"));
    let drills = report["drills"].as_array().cloned().unwrap_or_default();
    expect(
        drills.len() == 2,
        format!("report has {} drills: {report}", drills.len()),
    );
    if let [first, second] = drills.as_slice() {
        expect(
            first["verdict"] == "fail" && first["cause"] == "target_beyond_archive",
            format!("the finished drill lost its verdict: {first}"),
        );
        expect(
            second["verdict"] == "error" && second["cause"] == "interrupted",
            format!("the drill in flight is not error/interrupted: {second}"),
        );
    }
    // A killed restore's process group may take a moment to exit; then nothing may remain.
    std::thread::sleep(Duration::from_millis(500));
    let running = postgres_under(&work);
    expect(
        running.is_empty(),
        format!("servers left running: {running:?}"),
    );
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    expect(left.is_empty(), format!("drill directories left: {left:?}"));
    for name in ["report.md", "junit.xml"] {
        let found = std::fs::read_dir(&reports)
            .map(|d| d.flatten().any(|e| e.path().join(name).exists()))
            .unwrap_or(false);
        expect(found, format!("no {name}"));
    }
    problems
}

#[test]
fn every_ending_signal_tears_down_and_reports_the_drill_in_flight() {
    let sb = Sandbox::up("s3");
    sb.cmd(&["backup"]);
    // Enough WAL that replay (a barman-cloud-wal-restore per segment) lasts seconds.
    sb.cmd(&["workload", "--batches", "6", "--rows", "300"]);
    let file = scenario(&sb);
    let root = tempfile::tempdir().unwrap();
    let restoring = "pgdata";
    let replaying = "pgdata/postmaster.pid";
    let problems: Vec<String> = [
        ("INT", restoring),
        ("TERM", replaying),
        ("HUP", restoring),
        ("QUIT", replaying),
    ]
    .iter()
    .flat_map(|(signal, marker)| check(signal, marker, &file, root.path()))
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
