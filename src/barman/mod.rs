//! The archive's address and credentials as CNPG writes them (pure): the `barmanObjectStore`
//! block, the destinationPath it points at, and the Secret keys its credentials name.

pub mod config;
pub mod location;

pub use config::{BarmanObjectStore, SecretsDir};
pub use location::{Location, Provider};
