//! The `local` backend: the path CNPG's full-recovery job takes, on this machine.
//! barman-cloud-restore of the chosen backup, recovery settings, PostgreSQL on a loopback port
//! as a non-root user, a deadline for promotion, and teardown on every exit path.

mod configure;
mod restore;
mod scratch;
mod start;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use self::configure::configure;
use self::restore::restore;
use self::scratch::DirGuard;
use self::start::start_and_wait;
use super::{Failure, Stage, error};
use crate::preflight::Target;
use crate::store::StoreSpec;
use crate::store::barman::{barman_args, barman_env};
use crate::tools;

pub use self::scratch::ScratchServer;

/// What to restore, and how long it may take.
#[derive(Clone, Debug)]
pub struct LocalRequest {
    pub store: StoreSpec,
    pub server_name: String,
    pub backup_id: String,
    pub target: Target,
    /// Parent of the per-drill directory (default: the system temp dir).
    pub work_root: PathBuf,
    pub drill_id: String,
    pub restore_timeout: Duration,
    pub recovery_timeout: Duration,
    /// Keep the directory (and the server) when recovery fails.
    pub keep_on_failure: bool,
    /// Also listen on 127.0.0.1 with trust: only for a server that stands in for a pod behind
    /// a port-forward (a simulated cluster). A drill's server listens on its socket only.
    pub listen_on_loopback: bool,
}

/// How barman-cloud reaches the store: its bin directory, the arguments before
/// `<destinationPath> <serverName>`, and the environment that carries the credentials.
struct BarmanCloud {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Every program the drill will execute runs as the user it will run as: a missing or
/// unusable tool is pgdrill's problem (`error`), never the backup's. Checked once per process.
fn usable(pg_bin: &Path, barman_bin: &Path) -> Result<(), String> {
    static CHECKED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let key = (pg_bin.to_path_buf(), barman_bin.to_path_buf());
    if CHECKED.lock().is_ok_and(|c| c.contains(&key)) {
        return Ok(());
    }
    for program in tools::drill_programs(pg_bin, barman_bin) {
        tools::runs_as_postgres(&program)?;
    }
    if let Ok(mut checked) = CHECKED.lock() {
        checked.push(key);
    }
    Ok(())
}

/// Restores and recovers; on success the scratch server is promoted and running.
pub async fn recover(req: &LocalRequest) -> Result<ScratchServer, Failure> {
    let pg_bin = tools::pg_bin().ok_or_else(|| {
        error(
            Stage::Restore,
            "PostgreSQL server binaries not found (see `pgdrill doctor`)",
        )
    })?;
    let bin = tools::barman_bin().ok_or_else(|| {
        error(
            Stage::Restore,
            "barman-cloud not found (see `pgdrill doctor`)",
        )
    })?;
    usable(&pg_bin, &bin).map_err(|e| error(Stage::Restore, e))?;
    let mut guard = DirGuard::create(
        req.work_root.join(format!("pgdrill-{}", req.drill_id)),
        pg_bin,
    )?;
    tools::postgres_can_use(&guard.dir).map_err(|e| error(Stage::Restore, e))?;
    let barman = BarmanCloud {
        bin,
        args: barman_args(&req.store).map_err(|e| error(Stage::Restore, e.to_string()))?,
        env: barman_env(&req.store, &guard.dir)
            .map_err(|e| error(Stage::Restore, e.to_string()))?,
    };
    let restore_time = restore(req, &barman, &mut guard).await?;
    let port = configure(req, &barman, &guard)?;
    let promoted = start_and_wait(req, &barman.env, port, &mut guard).await?;
    Ok(guard.hand_over(port, promoted, restore_time))
}
