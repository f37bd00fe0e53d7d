//! The `cnpg` backend's pure half: CloudNativePG types, the manifests of a scratch recovery
//! cluster for either recovery path, and the safety check every manifest passes before apply.

pub mod manifest;
pub mod plan;
pub mod safety;
pub mod source;
pub mod types;
