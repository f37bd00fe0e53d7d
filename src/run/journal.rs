//! What a run has done so far, kept outside the work a signal cancels: the finished scenarios'
//! reports, and for the scenario under way its report header and the drills that finished.
//! After a signal the journal still writes every report, the unfinished drills as
//! `error`/`interrupted`.

use std::path::PathBuf;
use std::sync::Mutex;

use super::Finished;
use super::reports;
use crate::drill::interrupted;
use crate::report::{DrillReport, LineageFacts, RunReport, SCHEMA};
use crate::scenario::plan::DrillPlan;
use crate::scenario::types::ReportFormat;

/// Everything of a scenario's report but its drills.
#[derive(Clone, Debug)]
pub struct Head {
    pub run_id: String,
    pub scenario: String,
    pub scenario_file: PathBuf,
    pub backend: &'static str,
    pub destination_path: String,
    pub started_at: jiff::Timestamp,
    pub lineages: Vec<LineageFacts>,
}

impl Head {
    pub fn report(&self, drills: Vec<DrillReport>) -> RunReport {
        RunReport {
            schema: SCHEMA,
            run_id: self.run_id.clone(),
            scenario: self.scenario.clone(),
            scenario_file: self.scenario_file.clone(),
            backend: self.backend,
            destination_path: self.destination_path.clone(),
            started_at: self.started_at,
            finished_at: jiff::Timestamp::now(),
            summary: RunReport::summarize(&drills),
            lineages: self.lineages.clone(),
            drills,
        }
    }
}

/// The scenario under way.
struct Open {
    head: Head,
    dir: PathBuf,
    formats: Vec<ReportFormat>,
    plans: Vec<DrillPlan>,
    done: Vec<Option<DrillReport>>,
}

#[derive(Default)]
struct State {
    finished: Finished,
    open: Option<Open>,
}

#[derive(Default)]
pub struct Journal(Mutex<State>);

impl Journal {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere must not lose the reports: the state stays usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self, head: Head, dir: PathBuf, formats: Vec<ReportFormat>, plans: &[DrillPlan]) {
        self.state().open = Some(Open {
            head,
            dir,
            formats,
            done: vec![None; plans.len()],
            plans: plans.to_vec(),
        });
    }

    pub fn record(&self, index: usize, report: &DrillReport) {
        if let Some(open) = &mut self.state().open
            && let Some(slot) = open.done.get_mut(index)
        {
            *slot = Some(report.clone());
        }
    }

    /// The scenario under way ends: its report is written and kept, with what went wrong
    /// around it (an Event not posted).
    pub fn close(&self, report: RunReport, problems: Vec<String>) {
        let mut state = self.state();
        state.finished.problems.extend(problems);
        let Some(open) = state.open.take() else {
            return;
        };
        write_into(&mut state.finished, &open.dir, &open.formats, report);
    }

    pub fn into_finished(self) -> Finished {
        self.0
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .finished
    }

    /// After a signal or a panic: the scenario under way is reported with its unfinished
    /// drills as `error`/`interrupted`, and the run says why it stopped.
    pub fn interrupt(self, why: &str) -> Finished {
        let mut state = self.0.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = state.open.take() {
            let drills = open
                .plans
                .iter()
                .zip(open.done)
                .map(|(plan, done)| done.unwrap_or_else(|| interrupted(plan, why)))
                .collect();
            let report = open.head.report(drills);
            write_into(&mut state.finished, &open.dir, &open.formats, report);
        }
        state.finished.interrupted = Some(why.to_string());
        state.finished
    }
}

/// A report that cannot be written is a failed sink, not a lost run.
fn write_into(
    finished: &mut Finished,
    dir: &std::path::Path,
    formats: &[ReportFormat],
    report: RunReport,
) {
    match reports::write(dir, &report, formats) {
        Ok(paths) => finished.written.push(paths),
        Err(e) => {
            finished.problems.push(format!("reports: {e}"));
            finished.written.push(Vec::new());
        }
    }
    finished.reports.push(report);
}
