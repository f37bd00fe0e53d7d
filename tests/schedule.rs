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
