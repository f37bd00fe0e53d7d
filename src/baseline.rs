//! Baselines: exact row counts recorded on the live source, with the LSN and time they were
//! taken at, so a restored database can be checked against them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;

pub const SCHEMA: &str = "pgdrill.baseline/v1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub schema: String,
    pub name: String,
    pub database: String,
    pub recorded_at: jiff::Timestamp,
    /// The WAL position of the counts: the restore point's LSN when one was created.
    pub lsn: Lsn,
    pub restore_point: Option<String>,
    pub counts: BTreeMap<String, i64>,
}

impl Baseline {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let b: Baseline = serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
        if b.schema != SCHEMA {
            return Err(format!(
                "{}: schema {:?}, expected {SCHEMA:?}",
                path.display(),
                b.schema
            ));
        }
        Ok(b)
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("baseline serializes");
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Which tables to count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tables {
    All,
    Only(Vec<String>),
}

/// Every ordinary or partitioned user table, as `schema.table`.
pub const USER_TABLES_SQL: &str = "select n.nspname || '.' || c.relname from pg_class c \
     join pg_namespace n on n.oid = c.relnamespace \
     where c.relkind in ('r', 'p') and not c.relispartition \
       and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' \
       and n.nspname not like 'pg_temp%' order by 1";

/// `"schema"."table"` for SQL, from `schema.table` (or `table`, in public).
pub fn quote_table(name: &str) -> String {
    let (schema, table) = name.split_once('.').unwrap_or(("public", name));
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

/// Connects to the live source and records counts (in one repeatable-read snapshot), the LSN
/// and the time; with `restore_point`, creates a named restore point and uses its LSN. With
/// `switch_wal`, closes the segment so the archive holds the point at once.
pub async fn record(
    url: &str,
    name: &str,
    tables: &Tables,
    restore_point: bool,
    switch_wal: bool,
) -> Result<Baseline, String> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            format!(
                "connecting to the source: {}",
                crate::verify::db_message(&e)
            )
        })?;
    tokio::spawn(connection);
    let sql = |e: tokio_postgres::Error| crate::verify::db_message(&e);
    let database: String = client
        .query_one("select current_database()", &[])
        .await
        .map_err(sql)?
        .get(0);
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(sql)?;
    let names: Vec<String> = match tables {
        Tables::All => tx
            .query(USER_TABLES_SQL, &[])
            .await
            .map_err(sql)?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        Tables::Only(list) => list.clone(),
    };
    let mut counts = BTreeMap::new();
    for t in &names {
        let n: i64 = tx
            .query_one(&format!("select count(*) from {}", quote_table(t)), &[])
            .await
            .map_err(|e| format!("counting {t}: {}", sql(e)))?
            .get(0);
        counts.insert(t.clone(), n);
    }
    tx.commit().await.map_err(sql)?;
    let row = if restore_point {
        client
            .query_one("select pg_create_restore_point($1)::text, now()", &[&name])
            .await
            .map_err(sql)?
    } else {
        client
            .query_one("select pg_current_wal_lsn()::text, now()", &[])
            .await
            .map_err(sql)?
    };
    let lsn: Lsn = row
        .get::<_, String>(0)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let recorded_at = row.get::<_, std::time::SystemTime>(1);
    if switch_wal {
        client
            .query_one("select pg_switch_wal()", &[])
            .await
            .map_err(sql)?;
    }
    Ok(Baseline {
        schema: SCHEMA.to_string(),
        name: name.to_string(),
        database,
        recorded_at: jiff::Timestamp::try_from(recorded_at).map_err(|e| e.to_string())?,
        lsn,
        restore_point: restore_point.then(|| name.to_string()),
        counts,
    })
}
