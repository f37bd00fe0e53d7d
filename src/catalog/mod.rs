//! The barman-cloud catalog: what each lineage under a destinationPath holds.

pub mod archive;
pub mod backup_info;
pub mod history;
pub mod lineage;
pub mod reader;
pub mod render;
pub mod wal;

pub use lineage::LineageCatalog;
pub use reader::{CatalogReader, ReadError};

use crate::store::Store;

/// Reads the named lineages, or every lineage under the path when `servers` is empty.
pub async fn read_catalog(
    store: &Store,
    servers: &[String],
) -> Result<Vec<LineageCatalog>, ReadError> {
    let reader = CatalogReader::new(store);
    let names = if servers.is_empty() {
        reader.lineages().await?
    } else {
        servers.to_vec()
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(reader.read(&name).await?);
    }
    Ok(out)
}
