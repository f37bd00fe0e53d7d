//! Starting PostgreSQL on the restored data directory and waiting for promotion under the
//! recovery deadline; a server that stops is judged by its log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::LocalRequest;
use super::scratch::DirGuard;
use crate::backend::pglog::{RecoveryEnd, classify, read_recovery_end};
use crate::backend::{Failure, Stage, error, fail};
use crate::outcome::Cause;
use crate::proc::postmaster_pid;
use crate::tools;

/// A server that left recovery: where its log is, how recovery ended, and how long it took.
pub(super) struct Promoted {
    pub(super) log_path: PathBuf,
    pub(super) end: RecoveryEnd,
    pub(super) recovery_time: Duration,
}

/// Starts PostgreSQL and polls until it is promoted, stops, or the deadline passes.
pub(super) async fn start_and_wait(
    req: &LocalRequest,
    env: &[(String, String)],
    port: u16,
    guard: &mut DirGuard,
) -> Result<Promoted, Failure> {
    let started = Instant::now();
    let log_path = guard.dir.join("postgres.log");
    let started_ok = start_postgres(req, env, guard, &log_path).await?;
    let deadline = started + req.recovery_timeout;
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    if !started_ok && postmaster_pid(&guard.data_dir).is_none() {
        return Err(give_up(req, guard, recovery_failure(&read_log())));
    }
    loop {
        if postmaster_pid(&guard.data_dir).is_none() {
            return Err(give_up(req, guard, recovery_failure(&read_log())));
        }
        if crate::pg::promoted(&crate::pg::PgConn::local(&guard.dir, port)).await {
            break;
        }
        if Instant::now() >= deadline {
            let timeout = fail(
                Stage::Recover,
                Cause::RecoveryTimeout,
                format!("not promoted within {:?}", req.recovery_timeout),
            );
            return Err(give_up(req, guard, timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = read_recovery_end(&read_log());
    Ok(Promoted {
        log_path,
        end,
        recovery_time: started.elapsed(),
    })
}

/// `pg_ctl start -w` with the recovery deadline as its own timeout; true when it succeeded.
async fn start_postgres(
    req: &LocalRequest,
    env: &[(String, String)],
    guard: &DirGuard,
    log_path: &Path,
) -> Result<bool, Failure> {
    let mut start = tools::as_postgres(&guard.pg_bin.join("pg_ctl"));
    start
        .arg("-D")
        .arg(&guard.data_dir)
        .arg("-l")
        .arg(log_path)
        .args([
            "-w",
            "-t",
            &req.recovery_timeout.as_secs().max(1).to_string(),
            "start",
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(tokio::process::Command::from(start)
        .status()
        .await
        .map_err(|e| error(Stage::Recover, format!("starting PostgreSQL: {e}")))?
        .success())
}

/// Why PostgreSQL stopped: its first FATAL line, else its last line.
fn recovery_failure(log: &str) -> Failure {
    match classify(&read_recovery_end(log)) {
        Some((cause, evidence)) => fail(Stage::Recover, cause, evidence),
        None => {
            let last = log
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("(empty log)");
            let evidence =
                format!("PostgreSQL stopped without a FATAL line; its last line: {last}");
            fail(Stage::Recover, Cause::RecoveryFailed, evidence)
        }
    }
}

/// keepOnFailure: leave the directory (and a server still running) for a human.
fn give_up(req: &LocalRequest, guard: &mut DirGuard, mut f: Failure) -> Failure {
    if req.keep_on_failure {
        guard.armed = false;
        if let Failure::Fail { evidence, .. } = &mut f {
            evidence.push_str(&format!(" (kept at {})", guard.dir.display()));
        }
    }
    f
}
