//! Recording a baseline from the live source (edge): counts in one snapshot, then an LSN or a
//! named restore point.

use std::collections::BTreeMap;

use crate::baseline::{Baseline, SCHEMA, Tables, USER_TABLES_SQL, quote_table};
use crate::lsn::Lsn;

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
    let mut client = super::connect_str(url)
        .await
        .map_err(|e| format!("connecting to the source: {}", super::db_message(&e)))?;
    let sql = |e: tokio_postgres::Error| super::db_message(&e);
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
