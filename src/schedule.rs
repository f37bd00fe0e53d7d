//! The scheduler behind `pgdrill schedule`: cron fire times per scenario, no overlapping runs
//! of the same scenario, a global concurrency limit, jitter, and a shutdown that waits for
//! running drills to finish their teardown. Time comes from a [`Clock`], so tests can drive it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, watch};

/// One scheduled scenario.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub schedule: cron::Schedule,
    /// Each fire is delayed by up to this much (spreads load when many fire at once).
    pub jitter: Duration,
}

/// Wall-clock time for the scheduler: real, or driven by tokio's paused clock in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// `base` plus the tokio time elapsed since `start`: real time normally, virtual time under
/// `tokio::time::pause`.
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default();
        self.base + elapsed
    }
}

/// The next `count` fire times of every entry after `from`, in time order.
pub fn upcoming(
    entries: &[Entry],
    from: DateTime<Utc>,
    count: usize,
) -> Vec<(DateTime<Utc>, String)> {
    let mut all: Vec<(DateTime<Utc>, String)> = entries
        .iter()
        .flat_map(|e| {
            e.schedule
                .after(&from)
                .take(count)
                .map(|t| (t, e.name.clone()))
        })
        .collect();
    all.sort();
    all.truncate(count);
    all
}

/// A deterministic jitter in `[0, max)` from the entry name and fire time.
fn jitter(entry: &Entry, at: DateTime<Utc>) -> Duration {
    let max = entry.jitter.as_millis() as u64;
    if max == 0 {
        return Duration::ZERO;
    }
    let seed = entry.name.bytes().fold(at.timestamp() as u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    Duration::from_millis(seed % max)
}

/// What happened to one fire, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Started(String),
    Finished(String),
    /// The previous run of the same scenario was still going.
    Skipped(String),
}

/// Runs `run(name)` at every fire time until `shutdown` turns true, then waits for the runs in
/// flight. At most `max_concurrent` runs at once; never two of the same scenario.
pub async fn run_loop(
    entries: Vec<Entry>,
    clock: Arc<dyn Clock>,
    max_concurrent: usize,
    run: Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
    mut shutdown: watch::Receiver<bool>,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
) {
    let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next: Vec<Option<DateTime<Utc>>> = entries
        .iter()
        .map(|e| e.schedule.after(&clock.now()).next())
        .collect();
    let soonest = |next: &[Option<DateTime<Utc>>]| {
        next.iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
    };
    while let Some((i, at)) = soonest(&next) {
        let wait = (at - clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
        let entry = entries[i].clone();
        next[i] = entry.schedule.after(&at).next();
        if !running
            .lock()
            .expect("not poisoned")
            .insert(entry.name.clone())
        {
            on_event(Event::Skipped(entry.name.clone()));
            continue;
        }
        let (permits, running, run, on_event) = (
            permits.clone(),
            running.clone(),
            run.clone(),
            on_event.clone(),
        );
        let delay = jitter(&entry, at);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            // A fire still waiting (jitter, or for a permit) when shutdown came never starts.
            if *stop.borrow() {
                running.lock().expect("not poisoned").remove(&entry.name);
                return;
            }
            on_event(Event::Started(entry.name.clone()));
            run(entry.name.clone()).await;
            on_event(Event::Finished(entry.name.clone()));
            running.lock().expect("not poisoned").remove(&entry.name);
        });
    }
    // Shutdown: running drills finish, including their teardown.
    while tasks.join_next().await.is_some() {}
}
