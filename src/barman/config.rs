//! The object-store block in CNPG's shape (`barmanObjectStore`, or an ObjectStore's
//! `spec.configuration`), and the Secrets its credentials point at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A reference to one key of a Secret, as CNPG writes it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretKeySelector>,
    #[serde(rename = "inheritFromIAMRole", skip_serializing_if = "Option::is_none")]
    pub inherit_from_iam_role: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureCredentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_sas_token: Option<SecretKeySelector>,
    #[serde(rename = "inheritFromAzureAD", skip_serializing_if = "Option::is_none")]
    pub inherit_from_azure_ad: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_default_azure_credentials: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoogleCredentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_credentials: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gke_environment: Option<bool>,
}

/// CNPG's `barmanObjectStore` block. `wal`, `data` and tags are carried as given: the catalog
/// does not need them, a restore does.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BarmanObjectStore {
    /// `s3://…`, `gs://…`, `https://<account>.blob.core.windows.net/<container>/…` or `file:///…`.
    #[serde(deserialize_with = "destination_path")]
    pub destination_path: String,
    #[serde(rename = "endpointURL", skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(rename = "endpointCA", skip_serializing_if = "Option::is_none")]
    pub endpoint_ca: Option<SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_credentials: Option<S3Credentials>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure_credentials: Option<AzureCredentials>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_credentials: Option<GoogleCredentials>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_tags: Option<BTreeMap<String, String>>,
}

impl BarmanObjectStore {
    /// Every Secret key the block references (credentials and the endpoint CA).
    pub fn secret_refs(&self) -> Vec<&SecretKeySelector> {
        let mut out: Vec<&SecretKeySelector> = Vec::new();
        if let Some(c) = &self.s3_credentials {
            out.extend(
                [
                    &c.access_key_id,
                    &c.secret_access_key,
                    &c.region,
                    &c.session_token,
                ]
                .into_iter()
                .flatten(),
            );
        }
        if let Some(c) = &self.azure_credentials {
            out.extend(
                [
                    &c.connection_string,
                    &c.storage_account,
                    &c.storage_key,
                    &c.storage_sas_token,
                ]
                .into_iter()
                .flatten(),
            );
        }
        if let Some(c) = &self.google_credentials {
            out.extend(c.application_credentials.iter());
        }
        out.extend(self.endpoint_ca.iter());
        out
    }

    /// Renames every referenced Secret with `rename`; returns `(old, new)` pairs, once each.
    pub fn rename_secrets(&mut self, rename: impl Fn(&str) -> String) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut apply = |sel: &mut Option<SecretKeySelector>| {
            if let Some(s) = sel {
                let new = rename(&s.name);
                if !pairs.iter().any(|(old, _)| *old == s.name) {
                    pairs.push((s.name.clone(), new.clone()));
                }
                s.name = new;
            }
        };
        if let Some(c) = &mut self.s3_credentials {
            apply(&mut c.access_key_id);
            apply(&mut c.secret_access_key);
            apply(&mut c.region);
            apply(&mut c.session_token);
        }
        if let Some(c) = &mut self.azure_credentials {
            apply(&mut c.connection_string);
            apply(&mut c.storage_account);
            apply(&mut c.storage_key);
            apply(&mut c.storage_sas_token);
        }
        if let Some(c) = &mut self.google_credentials {
            apply(&mut c.application_credentials);
        }
        apply(&mut self.endpoint_ca);
        pairs
    }
}

/// Resolves Secret keys. Outside Kubernetes, Secrets are read from a directory laid out as
/// Kubernetes mounts them (`<dir>/<secret name>/<key>`).
#[derive(Clone, Debug)]
pub struct SecretsDir(pub PathBuf);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "secret {name:?} key {key:?} was not found under {dir} (expected a file {dir}/{name}/{key})"
    )]
    Missing {
        name: String,
        key: String,
        dir: String,
    },
    #[error("secret {name:?} key {key:?} is referenced but no --secrets-dir was given")]
    NoSource { name: String, key: String },
    #[error("secret {name:?} has no key {key:?} (or the Secret does not exist)")]
    NotInSecret { name: String, key: String },
}

impl SecretsDir {
    pub fn read(dir: Option<&Path>, selector: &SecretKeySelector) -> Result<String, SecretError> {
        let Some(dir) = dir else {
            return Err(SecretError::NoSource {
                name: selector.name.clone(),
                key: selector.key.clone(),
            });
        };
        let file = dir.join(&selector.name).join(&selector.key);
        std::fs::read_to_string(&file)
            .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|_| SecretError::Missing {
                name: selector.name.clone(),
                key: selector.key.clone(),
                dir: dir.display().to_string(),
            })
    }
}

/// Reads a YAML file holding a `barmanObjectStore` block, either bare or as the
/// `barmanObjectStore:` key of a larger document. Errors name the file, line and column.
pub fn load_store_file(path: &Path) -> Result<BarmanObjectStore, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Wrapped {
        barman_object_store: BarmanObjectStore,
    }
    let wrapped = text
        .lines()
        .any(|l| l.trim_start().starts_with("barmanObjectStore:"));
    let parsed = if wrapped {
        serde_saphyr::from_str::<Wrapped>(&text).map(|w| w.barman_object_store)
    } else {
        serde_saphyr::from_str::<BarmanObjectStore>(&text)
    };
    parsed.map_err(|e| yaml_error(path, &e.to_string()))
}

/// serde-saphyr's message as one `file:line:column: problem` line.
pub fn yaml_error(path: &Path, message: &str) -> String {
    let first = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    if let Some(rest) = first.strip_prefix("line ")
        && let Some((line, rest)) = rest.split_once(" column ")
        && let Some((col, problem)) = rest.split_once(": ")
    {
        return format!("{}:{line}:{col}: {problem}", path.display());
    }
    format!("{}: {first}", path.display())
}

/// A destinationPath pgdrill can read, checked when the block is read.
fn destination_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let path = String::deserialize(d)?;
    super::location::Location::parse(&path)
        .map_err(|e| serde::de::Error::custom(format!("destinationPath {path:?}: {}", e.reason)))?;
    Ok(path)
}
