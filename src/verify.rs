//! Verification of a recovered server, in order: where recovery ended, row counts against the
//! baseline, then the scenario's SQL checks. Every query runs in a read-only transaction with a
//! statement timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::pglog::RecoveryEnd;
use crate::baseline::{Baseline, Tables, USER_TABLES_SQL, quote_table};
use crate::catalog::wal::SegmentName;
use crate::preflight::{Ready, Target, TargetPoint};

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    /// `recovery_end`, `row_count` or `sql`.
    pub kind: &'static str,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

/// Where the restored server listens and whom to connect as.
#[derive(Clone)]
pub struct PgConn {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PgConn {
    /// The local backend's scratch server: trust authentication on loopback.
    pub fn local(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            password: None,
        }
    }
}

/// What verification needs to know.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    pub conn: PgConn,
    pub database: String,
    pub target: Target,
    pub ready: Ready,
    pub segment_size: u64,
    pub baseline: Option<Baseline>,
    pub policy: CountPolicy,
    pub tables: Tables,
    pub sql_checks: Vec<SqlCheck>,
    pub statement_timeout: Duration,
    pub pool: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Verification {
    pub checks: Vec<Check>,
    /// The first failing check's cause and evidence.
    pub failure: Option<(String, String)>,
}

pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// (a) Where recovery ended, from the server log: for `latest` the segment holding the end of
/// replay must be the archive's last; for a target, PostgreSQL must have stopped at it.
pub fn recovery_end_checks(req: &VerifyRequest, end: &RecoveryEnd) -> Vec<Check> {
    let mut checks = Vec::new();
    let last_tl = req.ready.timelines.last().copied().unwrap_or(1);
    checks.push(Check {
        name: "promoted to a new timeline".into(),
        kind: "recovery_end",
        expected: format!("> {last_tl}"),
        actual: end
            .new_timeline
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none logged".into()),
        passed: end.new_timeline.is_some_and(|t| t > last_tl),
    });
    match &req.target.point {
        TargetPoint::Latest => {
            let expected = req
                .ready
                .expected_last_wal
                .as_deref()
                .and_then(SegmentName::parse);
            let expected_segno = expected.map(|s| s.segno(req.segment_size));
            let actual_segno = end.redo_done.map(|l| l.0 / req.segment_size);
            let actual = match (end.redo_done, expected) {
                (Some(lsn), Some(exp)) => format!(
                    "redo done at {lsn} in {}",
                    SegmentName::from_segno(
                        exp.timeline,
                        lsn.0 / req.segment_size,
                        req.segment_size
                    )
                ),
                (Some(lsn), None) => format!("redo done at {lsn}"),
                _ => "no 'redo done' line in the log".into(),
            };
            checks.push(Check {
                name: "replay reached the end of the archive".into(),
                kind: "recovery_end",
                expected: req
                    .ready
                    .expected_last_wal
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                actual,
                passed: matches!((actual_segno, expected_segno), (Some(a), Some(e)) if a >= e),
            });
        }
        _ => checks.push(Check {
            name: "recovery stopped at the target".into(),
            kind: "recovery_end",
            expected: req.target.to_string(),
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
                kind: "row_count",
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
                    kind: "row_count",
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

async fn connect(conn: &PgConn, database: &str) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&conn.host)
        .port(conn.port)
        .user(&conn.user)
        .dbname(database)
        .connect_timeout(Duration::from_secs(10))
        // Read-only by default for the whole session, so a check cannot commit its way out of
        // the read-only transaction it runs in.
        .options("-c default_transaction_read_only=on");
    if let Some(p) = &conn.password {
        config.password(p);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to {database}: {}", db_message(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs one statement in `BEGIN READ ONLY` with a statement timeout; returns the first column
/// of the first row as text.
async fn read_only_value(
    client: &tokio_postgres::Client,
    sql: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    client
        .batch_execute(&format!(
            "begin read only; set local statement_timeout = {}",
            timeout.as_millis()
        ))
        .await
        .map_err(|e| db_message(&e))?;
    let result = client.simple_query(sql).await;
    let _ = client.batch_execute("commit").await;
    let messages = result.map_err(|e| db_message(&e))?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten())
}

/// Counts every table, spread over a small pool of connections.
async fn count_tables(req: &VerifyRequest) -> Result<BTreeMap<String, i64>, String> {
    let first = connect(&req.conn, &req.database).await?;
    let tables: Vec<String> = match (&req.tables, &req.baseline) {
        (Tables::Only(list), _) => list.clone(),
        (Tables::All, Some(b)) => b.counts.keys().cloned().collect(),
        (Tables::All, None) => first
            .query(USER_TABLES_SQL, &[])
            .await
            .map_err(|e| db_message(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    };
    let pool = req.pool.clamp(1, tables.len().max(1));
    let mut clients = vec![first];
    for _ in 1..pool {
        clients.push(connect(&req.conn, &req.database).await?);
    }
    let jobs = clients.iter().enumerate().map(|(i, client)| {
        let mine: Vec<&String> = tables.iter().skip(i).step_by(pool).collect();
        async move {
            let mut out = Vec::new();
            for t in mine {
                let sql = format!("select count(*) from {}", quote_table(t));
                match read_only_value(client, &sql, req.statement_timeout).await {
                    Ok(v) => out.push((t.clone(), v.and_then(|v| v.parse().ok()).unwrap_or(-1))),
                    // A table that does not exist is reported by the comparison, not as an error.
                    Err(e) if e.contains("does not exist") => {}
                    Err(e) => return Err(format!("counting {t}: {e}")),
                }
            }
            Ok(out)
        }
    });
    let mut counts = BTreeMap::new();
    for part in futures::future::join_all(jobs).await {
        counts.extend(part?);
    }
    Ok(counts)
}

/// Runs (a), (b), (c). An `Err` means the checks could not run (an error, not a fail).
pub async fn verify(req: &VerifyRequest, end: &RecoveryEnd) -> Result<Verification, String> {
    let mut v = Verification::default();
    let note = |checks: Vec<Check>, cause: &str, v: &mut Verification| {
        if v.failure.is_none()
            && let Some(bad) = checks.iter().find(|c| !c.passed)
        {
            v.failure = Some((
                cause.to_string(),
                format!(
                    "{}: expected {}, got {}",
                    bad.name, bad.expected, bad.actual
                ),
            ));
        }
        v.checks.extend(checks);
    };
    note(recovery_end_checks(req, end), "recovery_truncated", &mut v);
    let counts = count_tables(req).await?;
    note(
        count_checks(&counts, req.baseline.as_ref(), req.policy),
        "row_count_mismatch",
        &mut v,
    );
    if !req.sql_checks.is_empty() {
        let client = connect(&req.conn, &req.database).await?;
        let mut checks = Vec::new();
        for c in &req.sql_checks {
            let actual = read_only_value(&client, &c.query, req.statement_timeout)
                .await
                .map_err(|e| format!("check {:?}: {e}", c.name))?
                .unwrap_or_else(|| "NULL".into());
            let expect = c
                .expect
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c.expect.to_string());
            checks.push(Check {
                name: c.name.clone(),
                kind: "sql",
                expected: format!("{} {expect}", c.op),
                passed: compare(&actual, &c.op, &c.expect),
                actual,
            });
        }
        note(checks, "check_failed", &mut v);
    }
    Ok(v)
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
