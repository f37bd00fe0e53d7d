//! Terminal, Markdown and JUnit renderings of a run report.

use std::fmt::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{DrillReport, RunReport, Verdict};

fn outcome(d: &DrillReport) -> String {
    let base = match (&d.cause, d.verdict) {
        (Some(c), v) if v != Verdict::Pass => format!("{} ({c})", v.as_str()),
        (_, v) => v.as_str().to_string(),
    };
    match d.met_expectation {
        Some(true) if d.verdict != Verdict::Pass => format!("{base}, as expected"),
        Some(false) => format!("{base}, NOT as expected"),
        _ => base,
    }
}

fn secs(s: f64) -> String {
    format!("{s:.1}s")
}

pub fn terminal(r: &RunReport) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["lineage", "target", "backup", "verdict", "RTO", "checks"]);
    for d in &r.drills {
        let passed = d.checks.iter().filter(|c| c.passed).count();
        t.add_row([
            d.lineage.clone(),
            d.target.clone(),
            d.backup_id.clone().unwrap_or_else(|| "-".into()),
            outcome(d),
            secs(d.durations.rto),
            format!("{passed}/{}", d.checks.len()),
        ]);
    }
    let mut out = format!("Scenario {} (run {})\n{t}\n", r.scenario, r.run_id);
    for d in r.drills.iter().filter(|d| d.verdict != Verdict::Pass) {
        if let Some(e) = &d.evidence {
            let _ = writeln!(out, "  {} {}: {e}", d.lineage, d.target);
        }
    }
    let _ = writeln!(out, "{}", r.summary);
    out
}

pub fn markdown(r: &RunReport) -> String {
    let mut out = format!(
        "# Drill report: {}\n\nRun `{}`, {} to {}, destination `{}`.\n\n",
        r.scenario, r.run_id, r.started_at, r.finished_at, r.destination_path
    );
    out.push_str(
        "| lineage | target | backup | verdict | RTO | checks |\n|---|---|---|---|---|---|\n",
    );
    for d in &r.drills {
        let passed = d.checks.iter().filter(|c| c.passed).count();
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | **{}** | {} | {passed}/{} |",
            d.lineage,
            d.target,
            d.backup_id.as_deref().unwrap_or("-"),
            outcome(d),
            secs(d.durations.rto),
            d.checks.len()
        );
    }
    for d in &r.drills {
        let _ = writeln!(out, "\n## {} → `{}`: {}\n", d.lineage, d.target, outcome(d));
        if let Some(e) = &d.evidence {
            let _ = writeln!(out, "Evidence: `{e}`\n");
        }
        if !d.checks.is_empty() {
            out.push_str("| check | expected | actual | |\n|---|---|---|---|\n");
            for c in &d.checks {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    c.name,
                    c.expected,
                    c.actual,
                    if c.passed { "✅" } else { "❌" }
                );
            }
        }
    }
    let _ = writeln!(out, "\n{}.", r.summary);
    out
}

/// A test case per drill and per check.
pub fn junit(r: &RunReport) -> String {
    let mut report = Report::new(format!("pgdrill {}", r.scenario));
    let mut suite = TestSuite::new(r.scenario.clone());
    for d in &r.drills {
        let name = format!("{} {}", d.lineage, d.target);
        let status = match d.effective() {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(outcome(d));
                s.set_type(d.cause.map(|c| c.as_str()).unwrap_or("fail"));
                s.set_description(d.evidence.clone().unwrap_or_default());
                s
            }
            Verdict::Error => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(outcome(d));
                s.set_description(d.evidence.clone().unwrap_or_default());
                s
            }
        };
        let mut case = TestCase::new(name.clone(), status);
        case.set_classname(format!("drill.{}", d.lineage));
        case.set_time(std::time::Duration::from_secs_f64(
            d.durations.total.max(0.0),
        ));
        suite.add_test_case(case);
        for c in &d.checks {
            let status = if c.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("expected {}, got {}", c.expected, c.actual));
                s
            };
            let mut case = TestCase::new(format!("{name}: {}", c.name), status);
            case.set_classname(format!("check.{}", c.kind.as_str()));
            suite.add_test_case(case);
        }
    }
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

/// One short message for chat webhooks (Slack-compatible `text`).
pub fn chat_message(r: &RunReport) -> String {
    let mut text = format!("pgdrill {}: {}", r.scenario, r.summary);
    for d in &r.drills {
        let _ = write!(text, "\n• {} {}: {}", d.lineage, d.target, outcome(d));
    }
    text
}
