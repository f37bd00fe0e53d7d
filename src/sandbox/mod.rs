//! A self-contained source system on loopback: an object store (S3 via moto, or Azure via
//! Azurite), a PostgreSQL server archiving WAL with barman-cloud into `<name>-v1`, base backups,
//! a recorded workload, and a second lineage grown the way a real DR grows one.

mod objstore;
mod postgres;
mod state;
mod workload;

use std::path::{Path, PathBuf};

pub use state::{ServerState, State, StoreKind};
pub use workload::{BatchRecord, read_workload};

use crate::tools;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Missing(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Step(String),
    #[error("no sandbox in {0} (run `pgdrill sandbox up --dir {0}` first)")]
    NoSandbox(String),
}

pub type Result<T> = std::result::Result<T, SandboxError>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// Options for `sandbox up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub name: String,
    pub store: StoreKind,
    pub bucket: String,
}

/// Starts the object store and a source server archiving into `<name>-v1`. On any failure,
/// whatever was started is stopped again.
pub async fn up(opts: &UpOptions) -> Result<State> {
    let barman = tools::barman_bin().ok_or_else(|| missing("barman-cloud"))?;
    let pg_bin = tools::pg_bin().ok_or_else(|| missing("PostgreSQL server binaries"))?;
    if opts.dir.join(state::STATE_FILE).exists() {
        return Err(SandboxError::Step(format!(
            "{} already holds a sandbox; run `pgdrill sandbox down --dir {}` first",
            opts.dir.display(),
            opts.dir.display()
        )));
    }
    std::fs::create_dir_all(opts.dir.join("logs"))
        .map_err(io(format!("creating {}", opts.dir.display())))?;
    let dir = opts
        .dir
        .canonicalize()
        .map_err(io("resolving the sandbox directory"))?;
    // The PostgreSQL user must be able to reach its data and socket directories.
    crate::proc::set_mode(&dir, 0o755).map_err(io(format!("chmod {}", dir.display())))?;
    let mut st = State::new(&dir, &opts.name, barman, pg_bin);
    let result = async {
        st.store = objstore::start(&dir, opts.store).await?;
        st.bucket = opts.bucket.clone();
        st.save()?;
        st.destination_path = st.store.destination_path(&opts.bucket);
        objstore::create_bucket(&st).await?;
        let server = format!("{}-v1", opts.name);
        let data = postgres::init(&st, &server).await?;
        st.servers.push(data);
        st.lineages.push(server);
        st.save()?;
        postgres::start(&st, st.active()).await?;
        postgres::wait_ready(st.active()).await?;
        st.write_env_file()?;
        st.write_drill_files()?;
        st.save()?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = down(&dir).await;
        return Err(e);
    }
    Ok(st)
}

fn missing(what: &str) -> SandboxError {
    SandboxError::Missing(format!(
        "{what} not found: run scripts/prereqs.sh (see `pgdrill doctor`)"
    ))
}

/// Takes a base backup of the active server into its lineage and returns the backup id.
pub async fn backup(dir: &Path) -> Result<String> {
    let st = State::load(dir)?;
    postgres::base_backup(&st).await
}

/// Writes `batches` batches of rows and records each batch's commit time, LSN and counts.
pub async fn workload(
    dir: &Path,
    batches: u32,
    rows: u32,
    interval: std::time::Duration,
) -> Result<Vec<BatchRecord>> {
    let st = State::load(dir)?;
    workload::run(&st, batches, rows, interval).await
}

/// Grows lineage v(n+1) as a real DR does: the active server is lost, the newest lineage is
/// restored to its latest point and promoted, the new server archives into the next lineage,
/// and a base backup is taken there.
pub async fn new_lineage(dir: &Path) -> Result<(String, String)> {
    let mut st = State::load(dir)?;
    let from = st.active().server_name.clone();
    postgres::stop(&st, st.active())?;
    let next = format!("{}-v{}", st.name, st.lineages.len() + 1);
    let server = postgres::restore_and_promote(&st, &from, &next).await?;
    st.servers.push(server);
    st.lineages.push(next.clone());
    st.write_env_file()?;
    st.save()?;
    workload::switch_and_wait(st.active()).await?;
    let backup_id = postgres::base_backup(&st).await?;
    Ok((next, backup_id))
}

/// Stops every server and the object store. Data stays in the directory.
pub async fn down(dir: &Path) -> Result<Vec<String>> {
    let st = State::load(dir)?;
    let mut stopped = Vec::new();
    for server in &st.servers {
        if server.is_running() {
            postgres::stop(&st, server)?;
            stopped.push(format!("postgres {}", server.server_name));
        }
    }
    if objstore::stop(&st.store)? {
        stopped.push(format!("{} endpoint", st.store.kind.as_str()));
    }
    Ok(stopped)
}

pub fn status(dir: &Path) -> Result<State> {
    State::load(dir)
}
