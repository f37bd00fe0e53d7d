//! Verification decisions (pure): where recovery had to end, how counts compare with the
//! baseline, how a SQL check's value compares, and which failure a drill reports first. The
//! queries that produce the values live in `pg::verify`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::Baseline;
use crate::catalog::wal::SegmentName;
use crate::outcome::{Cause, Check, CheckKind, RecoveryEnd};
use crate::preflight::Ready;
use crate::target::{PinnedTarget, TargetPoint};

/// How restored counts must relate to the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CountPolicy {
    /// Equal to the baseline (a restore to the baseline's own point).
    Exact,
    /// At least the baseline (a restore to a later point).
    AtLeast,
    /// Counted and reported, not compared.
    Report,
}

/// A user check: one value from a query, compared with an expected value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlCheck {
    pub name: String,
    /// Returns one row; its first column is compared.
    pub query: String,
    /// One of ==, !=, >=, <=, >, <.
    #[serde(default = "default_op")]
    pub op: String,
    /// A number or a string (strings allow == and != only).
    #[schemars(with = "serde_json::Value")]
    pub expect: serde_json::Value,
}

fn default_op() -> String {
    "==".into()
}

pub const OPS: [&str; 6] = ["==", "!=", ">=", "<=", ">", "<"];

/// The checks of one drill, and the first failing one's cause and evidence.
#[derive(Clone, Debug, Default)]
pub struct Verification {
    pub checks: Vec<Check>,
    pub failure: Option<(Cause, String)>,
}

impl Verification {
    /// Adds a group of checks; the first failing check of the first failing group decides.
    pub fn note(&mut self, checks: Vec<Check>, cause: Cause) {
        if self.failure.is_none()
            && let Some(bad) = checks.iter().find(|c| !c.passed)
        {
            self.failure = Some((
                cause,
                format!(
                    "{}: expected {}, got {}",
                    bad.name, bad.expected, bad.actual
                ),
            ));
        }
        self.checks.extend(checks);
    }
}

/// (a) Where recovery ended, from the server log: for `latest` the segment holding the end of
/// replay must be the archive's last; for a target, PostgreSQL must have stopped at it.
pub fn recovery_end_checks(
    target: &PinnedTarget,
    ready: &Ready,
    segment_size: u64,
    end: &RecoveryEnd,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let last_tl = ready.timelines.last().copied().unwrap_or(1);
    checks.push(Check {
        name: "promoted to a new timeline".into(),
        kind: CheckKind::RecoveryEnd,
        expected: format!("> {last_tl}"),
        actual: end
            .new_timeline
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none logged".into()),
        passed: end.new_timeline.is_some_and(|t| t > last_tl),
    });
    match &target.point {
        TargetPoint::Latest => {
            let expected = ready
                .expected_last_wal
                .as_deref()
                .and_then(SegmentName::parse);
            let expected_segno = expected.map(|s| s.segno(segment_size));
            let actual_segno = end.redo_done.map(|l| l.0 / segment_size);
            let actual = match (end.redo_done, expected) {
                (Some(lsn), Some(exp)) => format!(
                    "redo done at {lsn} in {}",
                    SegmentName::from_segno(exp.timeline, lsn.0 / segment_size, segment_size)
                ),
                (Some(lsn), None) => format!("redo done at {lsn}"),
                _ => "no 'redo done' line in the log".into(),
            };
            checks.push(Check {
                name: "replay reached the end of the archive".into(),
                kind: CheckKind::RecoveryEnd,
                expected: ready
                    .expected_last_wal
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                actual,
                passed: matches!((actual_segno, expected_segno), (Some(a), Some(e)) if a >= e),
            });
        }
        _ => checks.push(Check {
            name: "recovery stopped at the target".into(),
            kind: CheckKind::RecoveryEnd,
            expected: target.to_string(),
            actual: end
                .stop_reason
                .clone()
                .unwrap_or_else(|| "no 'recovery stopping' line in the log".into()),
            passed: end.stop_reason.is_some(),
        }),
    }
    checks
}

/// Compares counts with the baseline under the policy.
pub fn count_checks(
    counts: &BTreeMap<String, i64>,
    baseline: Option<&Baseline>,
    policy: CountPolicy,
) -> Vec<Check> {
    counts
        .iter()
        .map(|(table, actual)| {
            let expected = baseline.and_then(|b| b.counts.get(table)).copied();
            let (expected_text, passed) = match (expected, policy) {
                (None, _) | (_, CountPolicy::Report) => ("-".to_string(), true),
                (Some(e), CountPolicy::Exact) => (e.to_string(), *actual == e),
                (Some(e), CountPolicy::AtLeast) => (format!(">= {e}"), *actual >= e),
            };
            Check {
                name: format!("rows in {table}"),
                kind: CheckKind::RowCount,
                expected: expected_text,
                actual: actual.to_string(),
                passed,
            }
        })
        .chain(baseline.into_iter().flat_map(|b| {
            b.counts
                .keys()
                .filter(|t| !counts.contains_key(*t))
                .map(|t| Check {
                    name: format!("rows in {t}"),
                    kind: CheckKind::RowCount,
                    expected: b.counts[t].to_string(),
                    actual: "table missing".into(),
                    passed: false,
                })
        }))
        .collect()
}

/// Compares one value with `op` and the expected value.
pub fn compare(actual: &str, op: &str, expect: &serde_json::Value) -> bool {
    let expected_num = expect.as_f64();
    match (actual.trim().parse::<f64>(), expected_num) {
        (Ok(a), Some(e)) => match op {
            "==" => a == e,
            "!=" => a != e,
            ">=" => a >= e,
            "<=" => a <= e,
            ">" => a > e,
            "<" => a < e,
            _ => false,
        },
        _ => {
            let e = expect
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| expect.to_string());
            match op {
                "==" => actual == e,
                "!=" => actual != e,
                _ => false,
            }
        }
    }
}

/// A SQL check's result as a check.
pub fn sql_check(c: &SqlCheck, actual: String) -> Check {
    let expect = c
        .expect
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| c.expect.to_string());
    Check {
        name: c.name.clone(),
        kind: CheckKind::Sql,
        expected: format!("{} {expect}", c.op),
        passed: compare(&actual, &c.op, &c.expect),
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numbers_and_strings() {
        assert!(compare("10", ">=", &serde_json::json!(10)));
        assert!(!compare("9", ">=", &serde_json::json!(10)));
        assert!(compare("abc", "==", &serde_json::json!("abc")));
        assert!(!compare("abc", ">", &serde_json::json!("abc")));
    }

    #[test]
    fn the_first_failing_group_decides() {
        let check = |passed| Check {
            name: "c".into(),
            kind: CheckKind::Sql,
            expected: "1".into(),
            actual: "2".into(),
            passed,
        };
        let mut v = Verification::default();
        v.note(vec![check(true)], Cause::RecoveryTruncated);
        v.note(vec![check(true), check(false)], Cause::RowCountMismatch);
        v.note(vec![check(false)], Cause::CheckFailed);
        assert_eq!(v.checks.len(), 4);
        assert_eq!(v.failure.unwrap().0, Cause::RowCountMismatch);
    }

    #[test]
    fn counts_follow_the_policy() {
        let b = Baseline {
            schema: crate::baseline::SCHEMA.into(),
            name: "b".into(),
            database: "postgres".into(),
            recorded_at: jiff::Timestamp::UNIX_EPOCH,
            lsn: Default::default(),
            restore_point: None,
            counts: BTreeMap::from([("public.a".into(), 10), ("public.gone".into(), 1)]),
        };
        let counts = BTreeMap::from([("public.a".to_string(), 12)]);
        let exact = count_checks(&counts, Some(&b), CountPolicy::Exact);
        assert!(!exact[0].passed);
        assert!(!exact[1].passed, "a table missing after restore fails");
        let at_least = count_checks(&counts, Some(&b), CountPolicy::AtLeast);
        assert!(at_least[0].passed);
    }
}
