//! The `local` backend: the path CNPG's full-recovery job takes, on this machine.
//! barman-cloud-restore of the chosen backup, recovery settings, PostgreSQL on a loopback port
//! as a non-root user, a deadline for promotion, and teardown on every exit path.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::pglog::{RecoveryEnd, classify_fatal, read_recovery_end};
use super::settings::{PG_HBA, recovery_conf};
use super::{Failure, Stage, error, fail};
use crate::outcome::Cause;
use crate::preflight::Target;
use crate::proc::postmaster_pid;
use crate::store::StoreSpec;
use crate::store::barman::{barman_args, barman_env};
use crate::tools;

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
}

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
struct DirGuard {
    dir: PathBuf,
    data_dir: PathBuf,
    pg_bin: PathBuf,
    child_group: Option<u32>,
    armed: bool,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pgid) = self.child_group.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
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
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Restores and recovers; on success the scratch server is promoted and running.
pub async fn recover(req: &LocalRequest) -> Result<ScratchServer, Failure> {
    let pg_bin = tools::pg_bin().ok_or_else(|| {
        error(
            Stage::Restore,
            "PostgreSQL server binaries not found (see `pgdrill doctor`)",
        )
    })?;
    let barman = tools::barman_bin().ok_or_else(|| {
        error(
            Stage::Restore,
            "barman-cloud not found (see `pgdrill doctor`)",
        )
    })?;
    let dir = req.work_root.join(format!("pgdrill-{}", req.drill_id));
    let data_dir = dir.join("pgdata");
    std::fs::create_dir_all(&dir)
        .map_err(|e| error(Stage::Restore, format!("creating {}: {e}", dir.display())))?;
    let mut guard = DirGuard {
        dir: dir.clone(),
        data_dir: data_dir.clone(),
        pg_bin: pg_bin.clone(),
        child_group: None,
        armed: true,
    };
    crate::proc::set_mode(&dir, 0o755)
        .map_err(|e| error(Stage::Restore, format!("chmod {}: {e}", dir.display())))?;
    tools::give_to_postgres(&dir)
        .map_err(|e| error(Stage::Restore, format!("chown {}: {e}", dir.display())))?;
    let args = barman_args(&req.store).map_err(|e| error(Stage::Restore, e.to_string()))?;
    let env = barman_env(&req.store, &dir).map_err(|e| error(Stage::Restore, e.to_string()))?;

    // 1. Base backup.
    let started = Instant::now();
    let mut cmd = tools::as_postgres(&barman.join("barman-cloud-restore"));
    cmd.args(&args)
        .args([
            &req.store.destination_path,
            &req.server_name,
            &req.backup_id,
        ])
        .arg(&data_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
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
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        let code = out.status.code().unwrap_or(-1);
        // barman-cloud exit codes: 1 operation error, 2 network, 3 CLI, 4 general.
        return Err(match code {
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
        });
    }
    let restore_time = started.elapsed();

    // 2. Recovery settings, as CNPG writes them.
    let mut restore_cmd = vec![quote_arg(
        &barman
            .join("barman-cloud-wal-restore")
            .display()
            .to_string(),
    )];
    restore_cmd.extend(args.iter().map(|a| quote_arg(a)));
    restore_cmd.extend([
        quote_arg(&req.store.destination_path),
        quote_arg(&req.server_name),
        "%f".into(),
        "%p".into(),
    ]);
    let port = crate::proc::free_port()
        .map_err(|e| error(Stage::Recover, format!("finding a free port: {e}")))?;
    let conf = recovery_conf(&req.target, &restore_cmd.join(" "), port, &dir, &data_dir);
    let write = |name: &str, content: &str, append: bool| -> Result<(), Failure> {
        use std::io::Write;
        let path = data_dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&path)
            .map_err(|e| error(Stage::Recover, format!("{}: {e}", path.display())))?;
        f.write_all(content.as_bytes())
            .map_err(|e| error(Stage::Recover, format!("{}: {e}", path.display())))?;
        tools::give_to_postgres(&path)
            .map_err(|e| error(Stage::Recover, format!("chown {}: {e}", path.display())))
    };
    write("postgresql.auto.conf", &conf, true)?;
    write("pg_hba.conf", PG_HBA, false)?;
    write("pg_ident.conf", "", true)?;
    write("recovery.signal", "", false)?;

    // 3. Start, then wait for promotion under the deadline.
    let started = Instant::now();
    let log_path = dir.join("postgres.log");
    let mut start = tools::as_postgres(&pg_bin.join("pg_ctl"));
    start
        .arg("-D")
        .arg(&data_dir)
        .arg("-l")
        .arg(&log_path)
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
    let started_ok = tokio::process::Command::from(start)
        .status()
        .await
        .map_err(|e| error(Stage::Recover, format!("starting PostgreSQL: {e}")))?
        .success();
    let deadline = started + req.recovery_timeout;
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let failed = |log: String| {
        let end = read_recovery_end(&log);
        match end.first_fatal {
            Some(f) => fail(Stage::Recover, classify_fatal(&f), format!("FATAL: {f}")),
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
    };
    // keepOnFailure: leave the directory (and a server still running) for a human.
    let give_up = |mut f: Failure, guard: &mut DirGuard| {
        if req.keep_on_failure {
            guard.armed = false;
            if let Failure::Fail { evidence, .. } = &mut f {
                evidence.push_str(&format!(" (kept at {})", dir.display()));
            }
        }
        f
    };
    if !started_ok && postmaster_pid(&data_dir).is_none() {
        return Err(give_up(failed(read_log()), &mut guard));
    }
    loop {
        if postmaster_pid(&data_dir).is_none() {
            return Err(give_up(failed(read_log()), &mut guard));
        }
        if promoted(port).await {
            break;
        }
        if Instant::now() >= deadline {
            let timeout = fail(
                Stage::Recover,
                Cause::RecoveryTimeout,
                format!("not promoted within {:?}", req.recovery_timeout),
            );
            return Err(give_up(timeout, &mut guard));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = read_recovery_end(&read_log());
    let server = ScratchServer {
        dir: dir.clone(),
        data_dir: data_dir.clone(),
        port,
        log_path,
        end,
        restore_time,
        recovery_time: started.elapsed(),
        pg_bin: pg_bin.clone(),
        torn_down: false,
    };
    // The server owns the directory now.
    guard.armed = false;
    Ok(server)
}

fn quote_arg(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=%@".contains(c))
    {
        a.to_string()
    } else {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

async fn promoted(port: u16) -> bool {
    let conn =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2");
    let Ok((client, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await
    else {
        return false;
    };
    let task = tokio::spawn(connection);
    let done = client
        .query_one("select not pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    drop(client);
    let _ = task.await;
    done
}
