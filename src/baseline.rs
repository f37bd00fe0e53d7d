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
