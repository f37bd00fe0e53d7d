//! Pointing barman-cloud at the same store pgdrill reads: its command-line arguments and the
//! environment that carries the credentials (never the command line).

use std::path::Path;

use super::{Location, StoreError, StoreSpec};
use crate::barman::location::Provider;

/// Arguments barman-cloud takes before `<destinationPath> <serverName>`.
pub fn barman_args(spec: &StoreSpec) -> Result<Vec<String>, StoreError> {
    let location = Location::parse(&spec.destination_path)?;
    let endpoint = spec.endpoint_url();
    Ok(match location.provider {
        Provider::S3 { .. } | Provider::File { .. } => endpoint
            .map(|ep| vec!["--endpoint-url".to_string(), ep])
            .unwrap_or_default(),
        Provider::Azure { .. } => vec!["--cloud-provider".into(), "azure-blob-storage".into()],
        Provider::Gcs { .. } => vec!["--cloud-provider".into(), "google-cloud-storage".into()],
    })
}

/// Environment for barman-cloud. Without a CNPG block, the process environment is inherited
/// as is; with one, its Secret references are resolved. A Google key is written to `scratch`
/// (mode 0600), since barman reads it from a file.
pub fn barman_env(spec: &StoreSpec, scratch: &Path) -> Result<Vec<(String, String)>, StoreError> {
    let mut env = Vec::new();
    // The same precedence as the catalog reader: --region, then the block's Secret.
    let region = spec.region.clone();
    let Some(block) = &spec.block else {
        env.extend(region.map(|r| ("AWS_DEFAULT_REGION".to_string(), r)));
        return Ok(env);
    };
    let read = |sel: &Option<crate::barman::config::SecretKeySelector>| {
        sel.as_ref().map(|s| spec.read_secret(s)).transpose()
    };
    let secret_region = match &block.s3_credentials {
        Some(c) => read(&c.region)?,
        None => None,
    };
    env.extend(
        region
            .or(secret_region)
            .map(|r| ("AWS_DEFAULT_REGION".to_string(), r)),
    );
    if let Some(c) = &block.s3_credentials {
        for (var, sel) in [
            ("AWS_ACCESS_KEY_ID", &c.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &c.secret_access_key),
            ("AWS_SESSION_TOKEN", &c.session_token),
        ] {
            if let Some(v) = read(sel)? {
                env.push((var.to_string(), v));
            }
        }
    }
    if let Some(c) = &block.azure_credentials {
        for (var, sel) in [
            ("AZURE_STORAGE_CONNECTION_STRING", &c.connection_string),
            ("AZURE_STORAGE_ACCOUNT", &c.storage_account),
            ("AZURE_STORAGE_KEY", &c.storage_key),
            ("AZURE_STORAGE_SAS_TOKEN", &c.storage_sas_token),
        ] {
            if let Some(v) = read(sel)? {
                env.push((var.to_string(), v));
            }
        }
    }
    if let Some(c) = &block.google_credentials
        && let Some(json) = read(&c.application_credentials)?
    {
        use std::os::unix::fs::OpenOptionsExt;
        let file = scratch.join("gcs-credentials.json");
        let write = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, json.as_bytes()));
        write
            .map_err(|e| StoreError::Config(format!("writing the Google credentials file: {e}")))?;
        crate::tools::give_to_postgres(&file)
            .map_err(|e| StoreError::Config(format!("chown {}: {e}", file.display())))?;
        env.push((
            "GOOGLE_APPLICATION_CREDENTIALS".to_string(),
            file.display().to_string(),
        ));
    }
    Ok(env)
}
