//! Progress on the terminal while drills run: a line when a drill starts, a heartbeat on long
//! waits, and its verdict.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::preflight::Preflight;
use crate::report::DrillReport;
use crate::scenario::plan::DrillPlan;

const HEARTBEAT: Duration = Duration::from_secs(15);

/// Where one drill stands among the run's: `[n/total] lineage → target`.
pub struct DrillLine<'a> {
    pub n: usize,
    pub total: usize,
    pub plan: &'a DrillPlan,
}

impl DrillLine<'_> {
    fn say(&self, what: &str) {
        eprintln!(
            "[{}/{}] {} → {}: {what}",
            self.n, self.total, self.plan.lineage, self.plan.target_label
        );
    }

    pub fn starting(&self, skip_preflight: bool) {
        self.say(&match &self.plan.preflight {
            Preflight::Ready(r) => format!("restoring backup {}…", r.backup_id),
            Preflight::Refused(r) if skip_preflight => {
                format!("preflight refuses ({}); restoring anyway…", r.cause)
            }
            Preflight::Refused(r) => format!("refused by preflight ({})", r.cause),
        });
    }

    pub fn finished(&self, r: &DrillReport) {
        let cause = r.cause.map(|c| format!(" ({c})")).unwrap_or_default();
        self.say(&format!("{}{cause}", r.verdict.as_str()));
    }

    /// Awaits `work`, saying every 15 seconds that it is still going.
    pub async fn while_running<T>(&self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = ticker.tick() => {
                    self.say(&format!("still working ({}s)…", started.elapsed().as_secs()));
                }
            }
        }
    }
}
