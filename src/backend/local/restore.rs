//! barman-cloud-restore of the base backup into the drill's data directory.

use std::os::unix::process::CommandExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::scratch::DirGuard;
use super::{BarmanCloud, LocalRequest};
use crate::backend::{Failure, Stage, error, fail};
use crate::outcome::Cause;
use crate::tools;

/// Restores the base backup under the restore deadline; returns how long it took. While it
/// runs, the guard holds its process group, so an early exit kills it.
pub(super) async fn restore(
    req: &LocalRequest,
    barman: &BarmanCloud,
    guard: &mut DirGuard,
) -> Result<Duration, Failure> {
    let started = Instant::now();
    let mut cmd = tools::as_postgres(&barman.bin.join("barman-cloud-restore"));
    cmd.args(&barman.args)
        .args([
            &req.store.destination_path,
            &req.server_name,
            &req.backup_id,
        ])
        .arg(&guard.data_dir)
        .envs(barman.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = tokio::process::Command::from(cmd).spawn().map_err(|e| {
        error(
            Stage::Restore,
            format!("starting barman-cloud-restore: {e}"),
        )
    })?;
    guard.child_group = child.id();
    let out = tokio::time::timeout(req.restore_timeout, child.wait_with_output()).await;
    let out = match out {
        Err(_) => {
            return Err(fail(
                Stage::Restore,
                Cause::RestoreTimeout,
                format!(
                    "barman-cloud-restore did not finish within {:?}",
                    req.restore_timeout
                ),
            ));
        }
        Ok(Err(e)) => return Err(error(Stage::Restore, format!("barman-cloud-restore: {e}"))),
        Ok(Ok(out)) => out,
    };
    guard.child_group = None;
    if !out.status.success() {
        return Err(restore_failure(&out));
    }
    Ok(started.elapsed())
}

/// A failed barman-cloud-restore, by its exit code, with its last line of stderr.
fn restore_failure(out: &Output) -> Failure {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    let code = out.status.code().unwrap_or(-1);
    // barman-cloud exit codes: 1 operation error, 2 network, 3 CLI, 4 general.
    match code {
        2 => error(
            Stage::Restore,
            format!("barman-cloud-restore could not reach the object store (exit 2): {last}"),
        ),
        3 => error(
            Stage::Restore,
            format!("barman-cloud-restore rejected its arguments (exit 3): {last}"),
        ),
        _ => fail(
            Stage::Restore,
            Cause::BaseBackupUnreadable,
            format!("barman-cloud-restore exit {code}: {last}"),
        ),
    }
}
