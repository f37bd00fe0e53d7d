//! The scheduler with a controllable clock (tokio's paused time): fire times, no overlap, the
//! concurrency limit, and shutdown that lets running drills finish their teardown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use pgdrill::scenario::types::cron_schedule;
use pgdrill::schedule::{Entry, Event, TokioClock, run_loop, upcoming};
use tokio::sync::watch;

fn entry(name: &str, cron: &str) -> Entry {
    Entry {
        name: name.into(),
        schedule: cron_schedule(cron).unwrap(),
        jitter: Duration::ZERO,
    }
}

fn base() -> DateTime<Utc> {
    "2026-11-22T00:00:30Z".parse().unwrap()
}

#[test]
fn fire_times_follow_both_cron_forms() {
    let fires = upcoming(
        &[entry("weekly", "0 3 * * 0"), entry("cnpg", "0 0 4 * * 1-5")],
        base(),
        4,
    );
    let weekly: Vec<_> = fires
        .iter()
        .filter(|(_, n)| n == "weekly")
        .map(|(t, _)| *t)
        .collect();
    assert!(
        weekly
            .iter()
            .all(|t| t.weekday() == chrono::Weekday::Sun && t.hour() == 3 && t.minute() == 0),
        "{weekly:?}"
    );
    let cnpg: Vec<_> = fires
        .iter()
        .filter(|(_, n)| n == "cnpg")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        cnpg.first().unwrap().to_rfc3339(),
        "2026-11-23T04:00:00+00:00"
    );
    assert!(fires.windows(2).all(|w| w[0].0 <= w[1].0));
}

type Log = Arc<Mutex<Vec<Event>>>;

async fn drive(
    entries: Vec<Entry>,
    limit: usize,
    job: Duration,
    run_for: Duration,
    log: Log,
    done: Arc<Mutex<Vec<String>>>,
) {
    let clock = Arc::new(TokioClock::starting_at(base()));
    let (tx, rx) = watch::channel(false);
    let run: Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync> =
        Arc::new(move |name| {
            let done = done.clone();
            Box::pin(async move {
                tokio::time::sleep(job).await;
                // The "teardown" at the end of a drill.
                done.lock().unwrap().push(name);
            })
        });
    let on_event: Arc<dyn Fn(Event) + Send + Sync> = Arc::new(move |e| log.lock().unwrap().push(e));
    let handle = tokio::spawn(run_loop(entries, clock, limit, run, rx, on_event));
    tokio::time::sleep(run_for).await;
    tx.send(true).unwrap();
    handle.await.unwrap();
}

fn max_concurrent(log: &[Event]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for e in log {
        match e {
            Event::Started(_) => {
                now += 1;
                max = max.max(now)
            }
            Event::Finished(_) => now -= 1,
            Event::Skipped(_) => {}
        }
    }
    max
}

#[tokio::test(start_paused = true)]
async fn a_scenario_never_overlaps_itself() {
    let log: Log = Arc::default();
    let done = Arc::default();
    // Fires every minute; each run takes 150 s.
    drive(
        vec![entry("slow", "* * * * *")],
        4,
        Duration::from_secs(150),
        Duration::from_secs(600),
        log.clone(),
        done,
    )
    .await;
    let log = log.lock().unwrap();
    assert_eq!(max_concurrent(&log), 1, "{log:?}");
    let skipped = log
        .iter()
        .filter(|e| matches!(e, Event::Skipped(_)))
        .count();
    let started = log
        .iter()
        .filter(|e| matches!(e, Event::Started(_)))
        .count();
    assert!(
        skipped >= 5 && started >= 3,
        "started {started}, skipped {skipped}: {log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_global_concurrency_limit_holds() {
    let log: Log = Arc::default();
    let done: Arc<Mutex<Vec<String>>> = Arc::default();
    let entries = vec![
        entry("a", "*/5 * * * *"),
        entry("b", "*/5 * * * *"),
        entry("c", "*/5 * * * *"),
    ];
    drive(
        entries,
        2,
        Duration::from_secs(60),
        Duration::from_secs(450),
        log.clone(),
        done.clone(),
    )
    .await;
    let log = log.lock().unwrap();
    assert_eq!(max_concurrent(&log), 2, "{log:?}");
    assert_eq!(
        done.lock().unwrap().len(),
        3,
        "all three ran, two at a time"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_running_drills_to_tear_down() {
    let log: Log = Arc::default();
    let done: Arc<Mutex<Vec<String>>> = Arc::default();
    // The first fire is at 00:01:00 (30 s in); the run takes 10 minutes; shutdown comes at 2 min.
    drive(
        vec![entry("long", "* * * * *")],
        1,
        Duration::from_secs(600),
        Duration::from_secs(120),
        log.clone(),
        done.clone(),
    )
    .await;
    assert_eq!(
        *done.lock().unwrap(),
        vec!["long".to_string()],
        "the running drill finished before the loop returned"
    );
    assert!(
        log.lock()
            .unwrap()
            .contains(&Event::Finished("long".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn a_fire_still_queued_at_shutdown_never_starts() {
    let log: Log = Arc::default();
    let done: Arc<Mutex<Vec<String>>> = Arc::default();
    // Both fire at 00:01:00; one permit; shutdown at 00:01:40 while b waits for the permit.
    drive(
        vec![entry("a", "* * * * *"), entry("b", "* * * * *")],
        1,
        Duration::from_secs(300),
        Duration::from_secs(70),
        log.clone(),
        done.clone(),
    )
    .await;
    let started: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Started(_)))
        .cloned()
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(done.lock().unwrap().len(), 1);
}

/// GET over plain HTTP/1.0; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn the_scheduler_serves_health_and_the_last_results_as_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let info = "begin_time=2026-01-01 10:00:00+00:00\nbegin_wal=000000010000000000000002\n\
                end_time=2026-01-01 10:05:00+00:00\nend_wal=000000010000000000000002\nstatus=DONE\n\
                timeline=1\nversion=150000\n";
    let write = |rel: &str, body: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    write("app-v1/base/20260101T100000/backup.info", info.as_bytes());
    for seg in 2..=4 {
        write(
            &format!("app-v1/wals/0000000100000000/00000001000000000000000{seg}"),
            b"x",
        );
    }
    // Every second; the target is past the archive, so each run fails at preflight at once.
    let scenario = dir.path().join("every-second.yaml");
    std::fs::write(
        &scenario,
        format!(
            "apiVersion: pgdrill/v1\nname: every-second\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
             targets:\n  - time: \"2999-01-01T00:00:00Z\"\nschedule: \"* * * * * *\"\n",
            root.display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args([
            "schedule",
            "-f",
            scenario.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .args(["--report-dir", dir.path().join("reports").to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut metrics = String::new();
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(&addr).is_ok() {
            metrics = http_get(&addr, "/metrics").1;
            if metrics.contains("pgdrill_drill_verdict{") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = http_get(&addr, "/healthz");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "ok");
    assert!(http_get(&addr, "/nope").0.contains("404"));
    let parsed =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
    let verdict = parsed
        .samples
        .iter()
        .find(|s| s.metric == "pgdrill_drill_verdict" && s.labels.get("verdict") == Some("fail"))
        .unwrap_or_else(|| panic!("no verdict sample: {metrics}"));
    assert_eq!(verdict.labels.get("scenario"), Some("every-second"));
    assert!(matches!(verdict.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    assert!(
        parsed
            .samples
            .iter()
            .any(|s| s.metric == "pgdrill_scheduler_next_run_timestamp_seconds")
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
