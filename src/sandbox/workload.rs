//! Batches of rows with their commit times and counts, so drills have exact expectations.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::postgres::{connect, sql_err};
use super::state::{ServerState, State};
use super::{Result, SandboxError, io};

pub const WORKLOAD_FILE: &str = "workload.jsonl";

/// One committed batch: a time after its commit (and before the next batch), the LSN then,
/// and the exact row counts per table at that point.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BatchRecord {
    pub lineage: String,
    pub batch: u32,
    pub committed_at: jiff::Timestamp,
    pub lsn: String,
    pub wal: String,
    pub counts: BTreeMap<String, i64>,
}

pub const TABLES: [&str; 2] = ["public.accounts", "public.events"];

pub async fn run(
    st: &State,
    batches: u32,
    rows: u32,
    interval: Duration,
) -> Result<Vec<BatchRecord>> {
    let server = st.active();
    let client = connect(server).await?;
    client
        .batch_execute(
            "create table if not exists accounts(id bigserial primary key, batch int not null, \
               created_at timestamptz not null default clock_timestamp());
             create table if not exists events(id bigserial primary key, account_id bigint not null, \
               kind text not null, created_at timestamptz not null default clock_timestamp());",
        )
        .await
        .map_err(sql_err("creating the workload tables"))?;
    let first: i32 = client
        .query_one("select coalesce(max(batch), 0) + 1 from accounts", &[])
        .await
        .map_err(sql_err("reading the last batch"))?
        .get(0);
    let file = st.dir.join(WORKLOAD_FILE);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .map_err(io(format!("opening {}", file.display())))?;
    let mut records = Vec::new();
    for batch in first..first + batches as i32 {
        let rows = rows as i64;
        client
            .batch_execute(&format!(
                "begin;
                 insert into accounts(batch) select {batch} from generate_series(1, {rows});
                 insert into events(account_id, kind) select a.id, k from accounts a, (values ('open'), ('update')) v(k) \
                   where a.batch = {batch};
                 commit;"
            ))
            .await
            .map_err(sql_err("writing a batch"))?;
        let row = client
            .query_one(
                "select clock_timestamp()::text, pg_current_wal_lsn()::text, \
                 (select count(*) from accounts), (select count(*) from events)",
                &[],
            )
            .await
            .map_err(sql_err("reading batch counts"))?;
        let committed_at = crate::catalog::backup_info::parse_time(row.get::<_, &str>(0))
            .ok_or_else(|| SandboxError::Step("unreadable clock_timestamp()".into()))?;
        let wal = switch_and_wait(server).await?;
        let record = BatchRecord {
            lineage: server.server_name.clone(),
            batch: batch as u32,
            committed_at,
            lsn: row.get::<_, String>(1),
            wal,
            counts: BTreeMap::from([
                (TABLES[0].to_string(), row.get(2)),
                (TABLES[1].to_string(), row.get(3)),
            ]),
        };
        let line = serde_json::to_string(&record).expect("record serializes");
        writeln!(out, "{line}").map_err(io(format!("writing {}", file.display())))?;
        records.push(record);
        // Keeps the next batch's commit strictly after this record's time; a longer interval
        // puts batches in different WAL upload seconds, which time targets can tell apart.
        tokio::time::sleep(interval.max(Duration::from_millis(50))).await;
    }
    Ok(records)
}

/// Closes the current WAL segment and waits until barman-cloud has archived it.
pub async fn switch_and_wait(server: &ServerState) -> Result<String> {
    let client = connect(server).await?;
    let seg: String = client
        .query_one("select pg_walfile_name(pg_switch_wal())", &[])
        .await
        .map_err(sql_err("switching WAL"))?
        .get(0);
    for _ in 0..600 {
        let row = client
            .query_one("select coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''), failed_count from pg_stat_archiver", &[])
            .await
            .map_err(sql_err("reading pg_stat_archiver"))?;
        let archived: String = row.get(0);
        if archived.len() >= 24 && archived[..24] >= seg[..] {
            return Ok(seg);
        }
        let failed: i64 = row.get(2);
        if failed > 20 {
            let last: String = row.get(1);
            return Err(SandboxError::Step(format!(
                "archiving keeps failing (last failed WAL {last}); see the server log"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(SandboxError::Step(format!(
        "WAL {seg} was not archived within 60 s"
    )))
}

pub fn read_workload(dir: &Path) -> Result<Vec<BatchRecord>> {
    let file = dir.join(WORKLOAD_FILE);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| SandboxError::Step(format!("{}: {e}", file.display())))
        })
        .collect()
}
