//! Verification queries (edge): counts every table over a small pool of connections and runs
//! the scenario's SQL checks; `checks` decides what the values mean.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{PgConn, connect, db_message, read_only_value};
use crate::baseline::{Baseline, Tables, USER_TABLES_SQL, quote_table};
use crate::checks::{
    CountPolicy, SqlCheck, Verification, count_checks, recovery_end_checks, sql_check,
};
use crate::outcome::{Cause, RecoveryEnd};
use crate::preflight::Ready;
use crate::target::PinnedTarget;

/// What verification needs to know.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    pub conn: PgConn,
    pub database: String,
    pub target: PinnedTarget,
    pub ready: Ready,
    pub segment_size: u64,
    pub baseline: Option<Baseline>,
    pub policy: CountPolicy,
    pub tables: Tables,
    pub sql_checks: Vec<SqlCheck>,
    pub statement_timeout: Duration,
    pub pool: usize,
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
    v.note(
        recovery_end_checks(&req.target, &req.ready, req.segment_size, end),
        end.truncation_cause(),
    );
    if let (Some((Cause::WalCorrupt, evidence)), Some(problem)) = (&mut v.failure, &end.wal_problem)
    {
        *evidence = format!("{problem}; {evidence}");
    }
    let counts = count_tables(req).await?;
    v.note(
        count_checks(&counts, req.baseline.as_ref(), req.policy),
        Cause::RowCountMismatch,
    );
    if !req.sql_checks.is_empty() {
        let client = connect(&req.conn, &req.database).await?;
        let mut checks = Vec::new();
        for c in &req.sql_checks {
            let actual = read_only_value(&client, &c.query, req.statement_timeout)
                .await
                .map_err(|e| format!("check {:?}: {e}", c.name))?
                .unwrap_or_else(|| "NULL".into());
            checks.push(sql_check(c, actual));
        }
        v.note(checks, Cause::CheckFailed);
    }
    Ok(v)
}
