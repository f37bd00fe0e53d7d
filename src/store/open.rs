//! Opening the store a `destinationPath` names: one client builder per provider, with
//! credentials from the CNPG block's Secrets or the environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::{
    Location, Provider, Store, StoreError, StoreSpec, install_tls_provider, parse_connection_string,
};

/// A client and where its requests go, for error messages (never includes credentials).
type Opened = (Arc<dyn ObjectStore>, String);

/// Few, quick retries: a drill tool must report an unreachable store promptly, not after minutes.
fn client_options() -> (ClientOptions, RetryConfig) {
    let options = ClientOptions::new()
        .with_allow_http(true)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
    };
    (options, retry)
}

impl StoreSpec {
    pub fn open(&self) -> Result<Store, StoreError> {
        install_tls_provider();
        let location = Location::parse(&self.destination_path)?;
        let (inner, endpoint) = match &location.provider {
            Provider::S3 { bucket } => self.open_s3(bucket)?,
            Provider::Azure {
                account,
                container,
                endpoint,
            } => self.open_azure(account, container, endpoint.as_deref())?,
            Provider::Gcs { bucket } => self.open_gcs(bucket)?,
            Provider::File { root } => self.open_file(root)?,
        };
        Ok(Store {
            inner,
            prefix: location.prefix.clone(),
            location,
            destination_path: self.destination_path.clone(),
            endpoint,
        })
    }

    fn build_error(&self, source: object_store::Error) -> StoreError {
        StoreError::Build {
            destination: self.destination_path.clone(),
            source,
        }
    }

    /// S3 with path-style requests; keys from the block's Secrets, else the environment.
    fn open_s3(&self, bucket: &str) -> Result<Opened, StoreError> {
        let (options, retry) = client_options();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(options)
            .with_retry(retry)
            .with_virtual_hosted_style_request(false);
        let creds = self
            .block
            .as_ref()
            .and_then(|b| b.s3_credentials.clone())
            .unwrap_or_default();
        if let Some(v) = self.secret(&creds.access_key_id)? {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = self.secret(&creds.secret_access_key)? {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = self.secret(&creds.session_token)? {
            b = b.with_token(v);
        }
        let region = self
            .region
            .clone()
            .or(self.secret(&creds.region)?)
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
        b = b.with_region(region.unwrap_or_else(|| "us-east-1".into()));
        let endpoint = self.endpoint_url();
        if let Some(ep) = &endpoint {
            b = b.with_endpoint(ep.trim_end_matches('/'));
        }
        let ep = endpoint.unwrap_or_else(|| format!("s3://{bucket}"));
        let store = b.build().map_err(|e| self.build_error(e))?;
        Ok((Arc::new(store), ep))
    }

    /// Azure Blob: a connection string, then the block's storage key or SAS token; the
    /// endpoint named in an emulator-style destinationPath wins over every other.
    fn open_azure(
        &self,
        account: &str,
        container: &str,
        path_endpoint: Option<&str>,
    ) -> Result<Opened, StoreError> {
        let (options, retry) = client_options();
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_account(account)
            .with_container_name(container)
            .with_client_options(options)
            .with_retry(retry);
        let creds = self
            .block
            .as_ref()
            .and_then(|b| b.azure_credentials.clone());
        let conn = match &creds {
            Some(c) => self.secret(&c.connection_string)?,
            None => std::env::var("AZURE_STORAGE_CONNECTION_STRING").ok(),
        };
        let mut from_conn = BTreeMap::new();
        if let Some(conn) = conn {
            from_conn = parse_connection_string(&conn);
            if let Some(key) = from_conn.get("AccountKey") {
                b = b.with_access_key(key);
            }
            if let Some(sas) = from_conn.get("SharedAccessSignature") {
                b = b.with_config(AzureConfigKey::SasKey, sas);
            }
        }
        if let Some(c) = &creds {
            if let Some(key) = self.secret(&c.storage_key)? {
                b = b.with_access_key(key);
            }
            if let Some(sas) = self.secret(&c.storage_sas_token)? {
                b = b.with_config(AzureConfigKey::SasKey, sas);
            }
        }
        let endpoint = path_endpoint
            .map(str::to_string)
            .or_else(|| self.endpoint_url())
            .or_else(|| from_conn.get("BlobEndpoint").cloned());
        let shown = endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        if let Some(ep) = endpoint {
            b = b.with_endpoint(ep.trim_end_matches('/').to_string());
        }
        let store = b.build().map_err(|e| self.build_error(e))?;
        Ok((Arc::new(store), shown))
    }

    /// Google Cloud Storage with the block's service-account key, else the environment's.
    fn open_gcs(&self, bucket: &str) -> Result<Opened, StoreError> {
        let (options, retry) = client_options();
        let mut b = GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(options)
            .with_retry(retry);
        let creds = self
            .block
            .as_ref()
            .and_then(|b| b.google_credentials.clone())
            .unwrap_or_default();
        if let Some(json) = self.secret(&creds.application_credentials)? {
            b = b.with_service_account_key(json);
        }
        if let Some(ep) = self.endpoint_url() {
            b = b.with_url(ep);
        }
        let store = b.build().map_err(|e| self.build_error(e))?;
        Ok((Arc::new(store), format!("gs://{bucket}")))
    }

    /// A `file://` tree, which must already exist.
    fn open_file(&self, root: &Path) -> Result<Opened, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::Config(format!(
                "{}: no such directory",
                root.display()
            )));
        }
        let fs = LocalFileSystem::new_with_prefix(root).map_err(|e| self.build_error(e))?;
        Ok((Arc::new(fs), root.display().to_string()))
    }
}
