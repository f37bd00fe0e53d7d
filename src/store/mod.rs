//! Opening a barman-cloud object store (S3, Azure Blob, GCS, local files) with object_store.

pub mod barman;
pub mod catalog_reader;
mod open;

pub use crate::barman::{config, location};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Once};

use object_store::ObjectStore;

pub use crate::barman::config::{BarmanObjectStore, SecretsDir};
pub use crate::barman::location::{Location, Provider};
pub use catalog_reader::{CatalogReader, ReadError, read_catalog};

/// How to reach an archive: its destinationPath plus what CNPG's block or the CLI adds.
#[derive(Clone, Debug, Default)]
pub struct StoreSpec {
    pub destination_path: String,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    /// The CNPG-shaped block, when credentials come from Secrets rather than the environment.
    pub block: Option<BarmanObjectStore>,
    pub secrets_dir: Option<PathBuf>,
    /// Secret values read through the Kubernetes API (`name → key → value`); consulted before
    /// `secrets_dir`.
    pub secret_values: Option<Arc<SecretValues>>,
}

/// Secret contents by Secret name, then key. Its `Debug` shows names and keys, never values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(pub BTreeMap<String, BTreeMap<String, String>>);

impl std::ops::Deref for SecretValues {
    type Target = BTreeMap<String, BTreeMap<String, String>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for SecretValues {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl FromIterator<(String, BTreeMap<String, String>)> for SecretValues {
    fn from_iter<I: IntoIterator<Item = (String, BTreeMap<String, String>)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(name, keys)| (name, keys.keys().collect::<Vec<_>>())),
            )
            .finish()
    }
}

/// An opened store and the key prefix under which lineages sit.
#[derive(Clone, Debug)]
pub struct Store {
    pub inner: Arc<dyn ObjectStore>,
    pub prefix: String,
    pub location: Location,
    pub destination_path: String,
    /// Where requests go, for error messages (never includes credentials).
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Location(#[from] location::LocationError),
    #[error(transparent)]
    Secret(#[from] config::SecretError),
    #[error("{0}")]
    Config(String),
    #[error("cannot set up the client for {destination}: {source}")]
    Build {
        destination: String,
        source: object_store::Error,
    },
}

/// Installs the ring TLS provider for every HTTPS client in the process, once.
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `Key=Value;…` as in `AZURE_STORAGE_CONNECTION_STRING`.
pub fn parse_connection_string(s: &str) -> BTreeMap<String, String> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl StoreSpec {
    /// How to reach the archive when the scenario file gives the block (not for
    /// `source.cluster`), with Secrets from `secretsDir`.
    pub fn for_scenario(loaded: &crate::scenario::Loaded) -> Option<Self> {
        let source = &loaded.scenario.source;
        let block = source.barman_object_store.as_ref()?;
        Some(Self {
            destination_path: block.destination_path.clone(),
            block: Some(block.clone()),
            secrets_dir: source.secrets_dir.as_deref().map(|d| loaded.relative(d)),
            ..Default::default()
        })
    }

    fn secret(
        &self,
        sel: &Option<config::SecretKeySelector>,
    ) -> Result<Option<String>, StoreError> {
        sel.as_ref()
            .map(|s| self.read_secret(s))
            .transpose()
            .map_err(Into::into)
    }

    /// One Secret key: from the values read through the API, else the mounted-Secret folder.
    pub fn read_secret(
        &self,
        selector: &config::SecretKeySelector,
    ) -> Result<String, config::SecretError> {
        if let Some(values) = &self.secret_values {
            return values
                .get(&selector.name)
                .and_then(|keys| keys.get(&selector.key))
                .cloned()
                .ok_or_else(|| config::SecretError::NotInSecret {
                    name: selector.name.clone(),
                    key: selector.key.clone(),
                });
        }
        SecretsDir::read(self.secrets_dir.as_deref(), selector)
    }

    /// `--endpoint-url`, else the block's `endpointURL`.
    pub fn endpoint_url(&self) -> Option<String> {
        self.endpoint_url
            .clone()
            .or_else(|| self.block.as_ref().and_then(|b| b.endpoint_url.clone()))
    }
}

/// The kind of failure behind an object-store error, for one clear line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Unreachable,
    Denied,
    MissingBucket,
    NotFound,
    Other,
}

impl FailureKind {
    pub fn describe(&self) -> &'static str {
        match self {
            FailureKind::Unreachable => "the object store is unreachable",
            FailureKind::Denied => "the object store refused the credentials",
            FailureKind::MissingBucket => "the bucket or container does not exist",
            FailureKind::NotFound => "not found",
            FailureKind::Other => "the object store returned an error",
        }
    }
}

/// Sorts an object_store error by what the user must fix.
pub fn classify(err: &object_store::Error) -> FailureKind {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" {s}"));
        source = s.source();
    }
    let t = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if has(&[
        "nosuchbucket",
        "containernotfound",
        "the specified container does not exist",
        "bucket does not exist",
    ]) {
        FailureKind::MissingBucket
    } else if matches!(
        err,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || has(&[
        // Status codes with their reason, so that digits in a URL or a key never match.
        "403 forbidden",
        "401 unauthorized",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "authenticationfailed",
        "accessdenied",
        "authorizationfailure",
    ]) {
        FailureKind::Denied
    } else if has(&[
        "connection refused",
        "error sending request",
        "dns error",
        "timed out",
        "connect error",
        "tcp connect",
    ]) {
        FailureKind::Unreachable
    } else if matches!(err, object_store::Error::NotFound { .. }) {
        FailureKind::NotFound
    } else {
        FailureKind::Other
    }
}
