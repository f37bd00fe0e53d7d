//! Prometheus text exposition of run reports, `pgdrill_` prefixed and labelled by scenario and
//! lineage.

use std::fmt::Write;

use crate::report::{DrillReport, LineageFacts, RunReport, Verdict};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn secs(t: jiff::Timestamp) -> f64 {
    t.as_second() as f64 + f64::from(t.subsec_nanosecond()) / 1e9
}

pub fn render(reports: &[RunReport], now: jiff::Timestamp) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "pgdrill_drill_last_success_timestamp_seconds",
        "When the drill last passed (Unix time).",
        last_successes(reports),
    );
    family(
        &mut out,
        "pgdrill_drill_verdict",
        "1 for the drill's verdict (pass, fail, error) in its last run; an expected failure counts as pass.",
        verdicts(reports),
    );
    family(
        &mut out,
        "pgdrill_drill_rto_seconds",
        "Restore plus recovery time of the drill's last run.",
        rtos(reports),
    );
    family(
        &mut out,
        "pgdrill_lineage_recovery_window_seconds",
        "Span from the first recoverability point to the last archived WAL.",
        recovery_windows(reports),
    );
    family(
        &mut out,
        "pgdrill_lineage_last_wal_age_seconds",
        "Age of the last archived WAL segment reachable without a gap.",
        last_wal_ages(reports, now),
    );
    out
}

/// One metric family: its HELP and TYPE lines, then a sample per (labels, value). Every
/// pgdrill metric is a gauge.
fn family(out: &mut String, name: &str, help: &str, samples: Vec<(String, f64)>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn drills(reports: &[RunReport]) -> impl Iterator<Item = (&RunReport, &DrillReport)> {
    reports
        .iter()
        .flat_map(|r| r.drills.iter().map(move |d| (r, d)))
}

fn lineages(reports: &[RunReport]) -> impl Iterator<Item = (&RunReport, &LineageFacts)> {
    reports
        .iter()
        .flat_map(|r| r.lineages.iter().map(move |l| (r, l)))
}

fn drill_labels(r: &RunReport, d: &DrillReport) -> String {
    format!(
        "scenario=\"{}\",lineage=\"{}\",target=\"{}\"",
        escape(&r.scenario),
        escape(&d.lineage),
        escape(&d.target)
    )
}

fn lineage_labels(r: &RunReport, name: &str) -> String {
    format!(
        "scenario=\"{}\",lineage=\"{}\"",
        escape(&r.scenario),
        escape(name)
    )
}

fn last_successes(reports: &[RunReport]) -> Vec<(String, f64)> {
    drills(reports)
        .filter(|(_, d)| d.effective() == Verdict::Pass)
        .map(|(r, d)| (drill_labels(r, d), secs(r.finished_at)))
        .collect()
}

/// A sample per possible verdict, so that an alert can match the one set to 1.
fn verdicts(reports: &[RunReport]) -> Vec<(String, f64)> {
    drills(reports)
        .flat_map(|(r, d)| {
            [Verdict::Pass, Verdict::Fail, Verdict::Error].map(|v| {
                let labels = format!("{},verdict=\"{}\"", drill_labels(r, d), v.as_str());
                // The effective verdict: a drill that failed as the scenario expected is a pass.
                (labels, if d.effective() == v { 1.0 } else { 0.0 })
            })
        })
        .collect()
}

/// Drills that stopped before restoring have no RTO to report.
fn rtos(reports: &[RunReport]) -> Vec<(String, f64)> {
    drills(reports)
        .filter(|(_, d)| d.durations.rto > 0.0)
        .map(|(r, d)| (drill_labels(r, d), d.durations.rto))
        .collect()
}

fn recovery_windows(reports: &[RunReport]) -> Vec<(String, f64)> {
    lineages(reports)
        .filter_map(|(r, l)| {
            Some((
                lineage_labels(r, &l.lineage),
                secs(l.last_archived_at?) - secs(l.first_point?),
            ))
        })
        .collect()
}

fn last_wal_ages(reports: &[RunReport], now: jiff::Timestamp) -> Vec<(String, f64)> {
    lineages(reports)
        .filter_map(|(r, l)| {
            Some((
                lineage_labels(r, &l.lineage),
                secs(now) - secs(l.last_archived_at?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a \"b\"\\\n"), "a \\\"b\\\"\\\\\\n");
    }
}
