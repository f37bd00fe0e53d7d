//! Prometheus text exposition of run reports, `pgdrill_` prefixed and labelled by scenario and
//! lineage.

use std::fmt::Write;

use crate::report::{RunReport, Verdict};

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
    let mut family = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let drill_labels = |r: &RunReport, d: &crate::report::DrillReport| {
        format!(
            "scenario=\"{}\",lineage=\"{}\",target=\"{}\"",
            escape(&r.scenario),
            escape(&d.lineage),
            escape(&d.target)
        )
    };
    let drills = || {
        reports
            .iter()
            .flat_map(|r| r.drills.iter().map(move |d| (r, d)))
    };
    family(
        "pgdrill_drill_last_success_timestamp_seconds",
        "When the drill last passed (Unix time).",
        "gauge",
        drills()
            .filter(|(_, d)| d.effective() == Verdict::Pass)
            .map(|(r, d)| (drill_labels(r, d), secs(r.finished_at)))
            .collect(),
    );
    family(
        "pgdrill_drill_verdict",
        "1 for the drill's verdict (pass, fail, error) in its last run; an expected failure counts as pass.",
        "gauge",
        drills()
            .flat_map(|(r, d)| {
                [Verdict::Pass, Verdict::Fail, Verdict::Error].map(|v| {
                    let labels = format!("{},verdict=\"{}\"", drill_labels(r, d), v.as_str());
                    // The effective verdict: a drill that failed as the scenario expected is a pass.
                    (labels, if d.effective() == v { 1.0 } else { 0.0 })
                })
            })
            .collect(),
    );
    family(
        "pgdrill_drill_rto_seconds",
        "Restore plus recovery time of the drill's last run.",
        "gauge",
        drills()
            .filter(|(_, d)| d.durations.rto > 0.0)
            .map(|(r, d)| (drill_labels(r, d), d.durations.rto))
            .collect(),
    );
    let lineages = || {
        reports
            .iter()
            .flat_map(|r| r.lineages.iter().map(move |l| (r, l)))
    };
    let lineage_labels = |r: &RunReport, name: &str| {
        format!(
            "scenario=\"{}\",lineage=\"{}\"",
            escape(&r.scenario),
            escape(name)
        )
    };
    family(
        "pgdrill_lineage_recovery_window_seconds",
        "Span from the first recoverability point to the last archived WAL.",
        "gauge",
        lineages()
            .filter_map(|(r, l)| {
                Some((
                    lineage_labels(r, &l.lineage),
                    secs(l.last_archived_at?) - secs(l.first_point?),
                ))
            })
            .collect(),
    );
    family(
        "pgdrill_lineage_last_wal_age_seconds",
        "Age of the last archived WAL segment reachable without a gap.",
        "gauge",
        lineages()
            .filter_map(|(r, l)| {
                Some((
                    lineage_labels(r, &l.lineage),
                    secs(now) - secs(l.last_archived_at?),
                ))
            })
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a \"b\"\\\n"), "a \\\"b\\\"\\\\\\n");
    }
}
