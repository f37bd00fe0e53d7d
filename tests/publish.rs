//! Publishing sinks: Prometheus textfile (parsed with a Prometheus text-format parser), a
//! webhook against a local HTTP receiver, the GitHub step summary; a failing sink is an error
//! and never hides a failed drill. Drills here end at preflight, so no server is needed.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use common::*;

/// An archive with one lineage and a scenario whose drill is refused (past the archive).
fn setup(expect_fail: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    one_backup_archive(&root, "", 5);
    let expect = if expect_fail {
        "\n    expect: {verdict: fail, cause: target_beyond_archive}"
    } else {
        ""
    };
    let f = dir.path().join("s.yaml");
    let text = format!(
        "apiVersion: pgdrill/v1\nname: nightly drill\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
         targets:\n  - lsn: 0/F000000{expect}\n",
        root.display()
    );
    std::fs::write(&f, text).unwrap();
    (dir, f)
}

/// Accepts one HTTP request and returns its body.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/services/T000/B000/secret-token",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .unwrap();
                    tx.send(body.to_string()).unwrap();
                    return;
                }
            }
            if n == 0 {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn metrics_webhook_and_step_summary() {
    let (dir, scenario) = setup(true);
    let metrics = dir.path().join("pgdrill.prom");
    let summary = dir.path().join("summary.md");
    let (url, rx) = receiver();
    let out = pgdrill_env(
        &[
            "run",
            "-f",
            scenario.to_str().unwrap(),
            "--report-dir",
            dir.path().join("r").to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
        &[
            ("PGDRILL_WEBHOOK_URL", &url),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let text = std::fs::read_to_string(&metrics).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |name: &str, extra: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("lineage") == Some("app-v1")
                    && extra.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no {name} {extra:?} in\n{text}"))
            .value
            .clone()
    };
    let gauge = |v: prometheus_parse::Value| match v {
        prometheus_parse::Value::Gauge(g) | prometheus_parse::Value::Untyped(g) => g,
        other => panic!("{other:?}"),
    };
    // Failed exactly as the scenario expected: an effective pass.
    assert_eq!(
        gauge(find("pgdrill_drill_verdict", &[("verdict", "fail")])),
        0.0
    );
    assert_eq!(
        gauge(find("pgdrill_drill_verdict", &[("verdict", "pass")])),
        1.0
    );
    // Refused as the scenario expected: an effective pass, so a last-success timestamp.
    assert!(gauge(find("pgdrill_drill_last_success_timestamp_seconds", &[])) > 1.7e9);
    assert!(gauge(find("pgdrill_lineage_recovery_window_seconds", &[])) > 0.0);
    assert!(gauge(find("pgdrill_lineage_last_wal_age_seconds", &[])) >= 0.0);
    let escaped = scrape
        .samples
        .iter()
        .find(|s| s.metric == "pgdrill_drill_verdict")
        .unwrap();
    assert_eq!(escaped.labels.get("scenario"), Some("nightly drill"));

    let body: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
            .unwrap();
    let message = body["text"].as_str().unwrap();
    assert!(
        message.contains("0 fail") && message.contains("as expected"),
        "{message}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("# Drill report") && md.contains("target_beyond_archive"),
        "{md}"
    );
}

#[test]
fn the_last_success_survives_a_failed_run_in_the_metrics_file() {
    let metrics = tempfile::tempdir().unwrap().keep().join("pgdrill.prom");
    let run = |expect_fail: bool| {
        let (dir, scenario) = setup(expect_fail);
        let reports = dir.path().join("r");
        let out = pgdrill(&[
            "run",
            "-f",
            scenario.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            std::fs::read_to_string(&metrics).unwrap(),
        )
    };
    let (code, first) = run(true);
    assert_eq!(code, Some(0));
    let success = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("pgdrill_drill_last_success_timestamp_seconds{"))
            .map(str::to_string)
    };
    let before = success(&first).expect("a success sample");
    let (code, second) = run(false);
    assert_eq!(code, Some(1));
    assert_eq!(success(&second), Some(before), "carried over:\n{second}");
    assert!(second.contains("verdict=\"fail\"} 1"), "{second}");
    prometheus_parse::Scrape::parse(second.lines().map(|l| Ok(l.to_string()))).unwrap();
}

#[test]
fn a_failing_sink_is_an_error_and_never_hides_a_failure() {
    // Every drill passes (as expected) but the webhook is down: exit 2, and the token is not printed.
    let (dir, scenario) = setup(true);
    let reports = dir.path().join("r");
    let args = [
        "run",
        "-f",
        scenario.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ];
    let down = "http://127.0.0.1:9/services/T000/B000/secret-token";
    let out = pgdrill_env(&args, &[("PGDRILL_WEBHOOK_URL", down)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("publishing failed: webhook http://127.0.0.1/"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("secret-token"), "{}", stderr(&out));
    // A drill that fails stays a failure (exit 1), whatever the sinks do.
    let (dir, scenario) = setup(false);
    let reports = dir.path().join("r");
    let out = pgdrill_env(
        &[
            "run",
            "-f",
            scenario.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        &[("PGDRILL_WEBHOOK_URL", down)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
