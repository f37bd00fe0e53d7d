//! The sandbox's record of itself (`sandbox.json`) and the env file it writes for others.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Result, SandboxError, io};
use crate::proc::pid_alive;

pub const STATE_FILE: &str = "sandbox.json";
pub const ENV_FILE: &str = "sandbox.env";
/// Fixed, throw-away credentials of the loopback S3 endpoint.
pub const S3_ACCESS_KEY: &str = "pgdrill-sandbox";
pub const S3_SECRET_KEY: &str = "pgdrill-sandbox-secret";
pub const S3_REGION: &str = "us-east-1";
/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    S3,
    Azure,
}

impl StoreKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Azure => "azure",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreState {
    pub kind: StoreKind,
    pub endpoint: String,
    pub pid: u32,
}

impl StoreState {
    pub fn destination_path(&self, bucket: &str) -> String {
        match self.kind {
            StoreKind::S3 => format!("s3://{bucket}/sandbox"),
            StoreKind::Azure => format!("{}/{AZURITE_ACCOUNT}/{bucket}/sandbox", self.endpoint),
        }
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={}/{AZURITE_ACCOUNT};",
            self.endpoint
        )
    }

    pub fn is_running(&self) -> bool {
        pid_alive(self.pid)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerState {
    pub server_name: String,
    pub data_dir: PathBuf,
    pub port: u16,
}

impl ServerState {
    /// Where the server's socket is: it listens on nothing else.
    pub fn socket_dir(&self) -> PathBuf {
        self.data_dir
            .parent()
            .map(|root| root.join("sock"))
            .unwrap_or_default()
    }

    /// A libpq connection string to the server, through its socket.
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Running when its postmaster.pid names a live process.
    pub fn is_running(&self) -> bool {
        crate::proc::postmaster_pid(&self.data_dir).is_some()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub dir: PathBuf,
    pub name: String,
    pub barman_bin: PathBuf,
    pub pg_bin: PathBuf,
    pub store: StoreState,
    pub bucket: String,
    pub destination_path: String,
    /// Every lineage in order; the last one is where the active server archives.
    pub lineages: Vec<String>,
    /// Every server ever started; the last one is active.
    pub servers: Vec<ServerState>,
}

impl State {
    pub fn new(dir: &Path, name: &str, barman_bin: PathBuf, pg_bin: PathBuf) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            barman_bin,
            pg_bin,
            store: StoreState {
                kind: StoreKind::S3,
                endpoint: String::new(),
                pid: 0,
            },
            bucket: String::new(),
            destination_path: String::new(),
            lineages: Vec::new(),
            servers: Vec::new(),
        }
    }

    pub fn active(&self) -> &ServerState {
        self.servers.last().expect("a sandbox has a server once up")
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&file)
            .map_err(|_| SandboxError::NoSandbox(dir.display().to_string()))?;
        serde_json::from_str(&text)
            .map_err(|e| SandboxError::Step(format!("{}: {e}", file.display())))
    }

    pub fn save(&self) -> Result<()> {
        let file = self.dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        std::fs::write(&file, text).map_err(io(format!("writing {}", file.display())))
    }

    /// Environment for barman-cloud commands and object-store clients.
    pub fn store_env(&self) -> Vec<(&'static str, String)> {
        match self.store.kind {
            StoreKind::S3 => vec![
                ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
                ("AWS_DEFAULT_REGION", S3_REGION.into()),
            ],
            StoreKind::Azure => vec![(
                "AZURE_STORAGE_CONNECTION_STRING",
                self.store.connection_string(),
            )],
        }
    }

    /// Connection arguments barman-cloud needs before the destination.
    pub fn barman_args(&self) -> Vec<String> {
        match self.store.kind {
            StoreKind::S3 => vec!["--endpoint-url".into(), self.store.endpoint.clone()],
            StoreKind::Azure => vec!["--cloud-provider".into(), "azure-blob-storage".into()],
        }
    }

    pub fn barman(&self, tool: &str) -> PathBuf {
        self.barman_bin.join(tool)
    }

    /// The archive as a CNPG `barmanObjectStore` block, credentials referencing the Secrets
    /// written under `<dir>/secrets` (YAML, indented for a scenario's `source:`).
    pub fn store_block_yaml(&self) -> String {
        let creds = match self.store.kind {
            StoreKind::S3 => format!(
                "    endpointURL: {}\n    s3Credentials:\n      accessKeyId: {{name: sandbox-s3, key: ACCESS_KEY_ID}}\n      \
                 secretAccessKey: {{name: sandbox-s3, key: ACCESS_SECRET_KEY}}\n",
                self.store.endpoint
            ),
            StoreKind::Azure => {
                "    azureCredentials:\n      connectionString: {name: sandbox-azure, key: CONNECTION_STRING}\n".to_string()
            }
        };
        format!(
            "  barmanObjectStore:\n    destinationPath: {}\n{creds}  secretsDir: secrets\n",
            self.destination_path
        )
    }

    /// Mounted-Secret layout for the sandbox credentials, and `drill.yaml`, a scenario that
    /// drills every lineage of the sandbox to its latest point.
    pub fn write_drill_files(&self) -> Result<()> {
        let secrets = self.dir.join("secrets");
        let files: Vec<(String, String)> = match self.store.kind {
            StoreKind::S3 => vec![
                ("sandbox-s3/ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
                ("sandbox-s3/ACCESS_SECRET_KEY".into(), S3_SECRET_KEY.into()),
            ],
            StoreKind::Azure => vec![(
                "sandbox-azure/CONNECTION_STRING".into(),
                self.store.connection_string(),
            )],
        };
        for (rel, value) in files {
            let path = secrets.join(rel);
            std::fs::create_dir_all(path.parent().expect("has a parent"))
                .map_err(io("creating the secrets folder"))?;
            std::fs::write(&path, value).map_err(io(format!("writing {}", path.display())))?;
        }
        let scenario = format!(
            "apiVersion: pgdrill/v1\nname: sandbox-latest\nsource:\n{}lineages: all\ntargets:\n  - latest\n",
            self.store_block_yaml()
        );
        let path = self.dir.join("drill.yaml");
        std::fs::write(&path, scenario).map_err(io(format!("writing {}", path.display())))
    }

    pub fn write_env_file(&self) -> Result<()> {
        let active = self.active();
        let mut env = String::from("# Written by `pgdrill sandbox`; source it: `. sandbox.env`\n");
        let mut put = |k: &str, v: &str| {
            let _ = writeln!(env, "export {k}='{v}'");
        };
        put("PGDRILL_STORE", self.store.kind.as_str());
        put("PGDRILL_ENDPOINT_URL", &self.store.endpoint);
        put("PGDRILL_BUCKET", &self.bucket);
        for (k, v) in self.store_env() {
            put(k, &v);
        }
        put("PGDRILL_DESTINATION_PATH", &self.destination_path);
        put("PGDRILL_SERVER_NAME", &active.server_name);
        put("PGDRILL_LINEAGES", &self.lineages.join(" "));
        put("PGDRILL_SOURCE_URL", &active.url());
        put("PGDRILL_BARMAN_BIN", &self.barman_bin.display().to_string());
        let file = self.dir.join(ENV_FILE);
        std::fs::write(&file, env).map_err(io(format!("writing {}", file.display())))
    }
}
