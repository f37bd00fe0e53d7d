//! The report: one JSON document per run (`pgdrill.report/v1`), rendered for terminals,
//! Markdown and JUnit.

pub mod render;

use std::path::PathBuf;

use serde::Serialize;

pub use crate::outcome::Verdict;
use crate::outcome::{Cause, Check, Expectation, RecoveryEnd, Stage};
use crate::preflight::Target;

pub const SCHEMA: &str = "pgdrill.report/v1";

/// Seconds spent per stage; `rto` is restore plus recovery, what a real DR would wait for.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Durations {
    pub preflight: f64,
    pub restore: f64,
    pub recovery: f64,
    pub verify: f64,
    pub teardown: f64,
    pub rto: f64,
    pub total: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub drill_id: String,
    pub lineage: String,
    pub backup_id: Option<String>,
    /// The target as the scenario names it.
    pub target: String,
    pub target_detail: Target,
    pub verdict: Verdict,
    pub cause: Option<Cause>,
    /// The stage where the drill stopped, when it did not pass.
    pub stage: Option<Stage>,
    pub evidence: Option<String>,
    /// What the scenario said this drill should end in, and whether it did.
    pub expected: Option<Expectation>,
    pub met_expectation: Option<bool>,
    pub recovery: Option<RecoveryEnd>,
    pub durations: Durations,
    pub checks: Vec<Check>,
    /// Where a failed drill's server was kept (`keepOnFailure`).
    pub kept_at: Option<String>,
}

impl DrillReport {
    /// The verdict that decides the exit code: an expected outcome counts as a pass; an
    /// unexpected one is a fail, unless pgdrill could not tell (an error stays an error).
    pub fn effective(&self) -> Verdict {
        match self.met_expectation {
            Some(true) => Verdict::Pass,
            Some(false) if self.verdict == Verdict::Error => Verdict::Error,
            Some(false) => Verdict::Fail,
            None => self.verdict,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub expected_failures: usize,
}

/// What the catalog said of a drilled lineage, for trends and monitoring.
#[derive(Clone, Debug, Serialize)]
pub struct LineageFacts {
    pub lineage: String,
    pub backups: usize,
    pub first_point: Option<jiff::Timestamp>,
    pub last_wal: Option<String>,
    pub last_archived_at: Option<jiff::Timestamp>,
    pub gaps: usize,
}

impl LineageFacts {
    pub fn from_catalog(c: &crate::catalog::LineageCatalog) -> Self {
        Self {
            lineage: c.server_name.clone(),
            backups: c.backups.len(),
            first_point: c.window.as_ref().map(|w| w.first_point),
            last_wal: c.window.as_ref().and_then(|w| w.last_wal.clone()),
            last_archived_at: c.window.as_ref().and_then(|w| w.last_archived_at),
            gaps: c.gaps.len(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub schema: &'static str,
    pub run_id: String,
    pub scenario: String,
    pub scenario_file: PathBuf,
    pub backend: &'static str,
    pub destination_path: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    pub drills: Vec<DrillReport>,
    pub lineages: Vec<LineageFacts>,
    pub summary: Summary,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pass, {} fail, {} error ({} expected failures)",
            self.pass, self.fail, self.error, self.expected_failures
        )
    }
}

impl RunReport {
    pub fn summarize(drills: &[DrillReport]) -> Summary {
        let mut s = Summary::default();
        for d in drills {
            match d.effective() {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Error => s.error += 1,
            }
            if d.met_expectation == Some(true) && d.verdict != Verdict::Pass {
                s.expected_failures += 1;
            }
        }
        s
    }

    /// 0 all pass, 1 any fail, 2 any error and no fail.
    pub fn exit_code(reports: &[RunReport]) -> i32 {
        let all = reports.iter().flat_map(|r| &r.drills);
        let verdicts: Vec<Verdict> = all.map(DrillReport::effective).collect();
        if verdicts.contains(&Verdict::Fail) {
            crate::exit::FAIL
        } else if verdicts.contains(&Verdict::Error) {
            crate::exit::ERROR
        } else {
            crate::exit::OK
        }
    }
}
