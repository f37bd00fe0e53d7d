//! The barman-cloud catalog (pure): what each lineage under a destinationPath holds, from a
//! listing that `store::catalog_reader` fetches.

pub mod archive;
pub mod backup_info;
pub mod history;
pub mod lineage;
pub mod render;
pub mod wal;

pub use lineage::LineageCatalog;
