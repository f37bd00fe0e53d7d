//! The drill directory and the scratch server in it, and their teardown on every exit path.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::start::Promoted;
use crate::backend::pglog::RecoveryEnd;
use crate::backend::{Failure, Stage, error};
use crate::proc::postmaster_pid;
use crate::tools;

/// A promoted scratch server. Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct ScratchServer {
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    pub log_path: PathBuf,
    pub end: RecoveryEnd,
    pub restore_time: Duration,
    pub recovery_time: Duration,
    pg_bin: PathBuf,
    torn_down: bool,
}

impl ScratchServer {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Leaves the server running and its directory in place for a human; returns the directory.
    pub fn keep(mut self) -> PathBuf {
        self.torn_down = true;
        self.dir.clone()
    }

    /// Stops the server and removes the drill directory; safe to call more than once.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        stop_server(&self.pg_bin, &self.data_dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        self.torn_down = true;
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The drill directory until a server owns it: removed on drop (and any server in it stopped).
pub(super) struct DirGuard {
    pub(super) dir: PathBuf,
    pub(super) data_dir: PathBuf,
    pub(super) pg_bin: PathBuf,
    /// The process group of a running barman-cloud-restore, killed on drop.
    pub(super) child_group: Option<u32>,
    pub(super) armed: bool,
}

impl DirGuard {
    /// Creates `dir` (owned by the postgres user, closed to everyone else: the server's socket
    /// lives in it) and guards it.
    pub(super) fn create(dir: PathBuf, pg_bin: PathBuf) -> Result<Self, Failure> {
        let data_dir = dir.join("pgdata");
        std::fs::create_dir_all(&dir)
            .map_err(|e| error(Stage::Restore, format!("creating {}: {e}", dir.display())))?;
        let guard = DirGuard {
            dir,
            data_dir,
            pg_bin,
            child_group: None,
            armed: true,
        };
        let dir = &guard.dir;
        crate::proc::set_mode(dir, 0o700)
            .map_err(|e| error(Stage::Restore, format!("chmod {}: {e}", dir.display())))?;
        tools::give_to_postgres(dir)
            .map_err(|e| error(Stage::Restore, format!("chown {}: {e}", dir.display())))?;
        Ok(guard)
    }

    /// The promoted server owns the directory from now on.
    pub(super) fn hand_over(
        mut self,
        port: u16,
        promoted: Promoted,
        restore_time: Duration,
    ) -> ScratchServer {
        let server = ScratchServer {
            dir: self.dir.clone(),
            data_dir: self.data_dir.clone(),
            port,
            log_path: promoted.log_path,
            end: promoted.end,
            restore_time,
            recovery_time: promoted.recovery_time,
            pg_bin: self.pg_bin.clone(),
            torn_down: false,
        };
        self.armed = false;
        server
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pgid) = self.child_group.take() {
            crate::proc::kill(pgid, true);
        }
        stop_server(&self.pg_bin, &self.data_dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stop_server(pg_bin: &Path, data_dir: &Path) {
    let Some(pid) = postmaster_pid(data_dir) else {
        return;
    };
    let _ = tools::as_postgres(&pg_bin.join("pg_ctl"))
        .arg("-D")
        .arg(data_dir)
        .args(["-m", "immediate", "-w", "-t", "30", "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if crate::proc::pid_alive(pid) {
        crate::proc::kill(pid, false);
    }
}
