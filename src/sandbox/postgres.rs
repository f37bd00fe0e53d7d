//! The sandbox's PostgreSQL servers: init, start, stop, base backups, restore and promote.

use std::path::Path;
use std::time::Duration;

use super::objstore::free_port;
use super::state::{ServerState, State};
use super::{Result, SandboxError, io};
use crate::tools;

/// Runs a command to completion; on failure, the error quotes the end of its output.
pub async fn run(cmd: std::process::Command, what: &str) -> Result<String> {
    let mut cmd = tokio::process::Command::from(cmd);
    let out = cmd.output().await.map_err(io(what.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let tail = tail
        .iter()
        .rev()
        .take(3)
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join(" | ");
    Err(SandboxError::Step(format!(
        "{what} failed ({}): {tail}",
        out.status
    )))
}

fn pg(st: &State, tool: &str) -> std::process::Command {
    let mut c = tools::as_postgres(&st.pg_bin.join(tool));
    c.envs(st.store_env());
    c
}

fn barman(st: &State, tool: &str) -> std::process::Command {
    let mut c = tools::as_postgres(&st.barman(tool));
    c.envs(st.store_env()).args(st.barman_args());
    c
}

fn pg_dir(st: &State) -> Result<std::path::PathBuf> {
    let root = st.dir.join("pg");
    std::fs::create_dir_all(root.join("sock")).map_err(io("creating the PostgreSQL folder"))?;
    for d in [root.clone(), root.join("sock")] {
        tools::give_to_postgres(&d).map_err(io(format!("chown {}", d.display())))?;
    }
    // The servers listen on their socket only; its folder keeps other local users out.
    crate::proc::set_mode(&root.join("sock"), 0o700).map_err(io("chmod the socket folder"))?;
    Ok(root)
}

fn archive_command(st: &State, server: &str) -> String {
    let mut parts = vec![st.barman("barman-cloud-wal-archive").display().to_string()];
    parts.extend(st.barman_args());
    parts.extend([
        "--gzip".to_string(),
        st.destination_path.clone(),
        server.to_string(),
        "%p".to_string(),
    ]);
    parts.join(" ")
}

fn restore_command(st: &State, server: &str) -> String {
    let mut parts = vec![st.barman("barman-cloud-wal-restore").display().to_string()];
    parts.extend(st.barman_args());
    parts.extend([
        st.destination_path.clone(),
        server.to_string(),
        "%f".to_string(),
        "%p".to_string(),
    ]);
    parts.join(" ")
}

fn append(file: &Path, lines: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .map_err(io(format!("opening {}", file.display())))?;
    f.write_all(lines.as_bytes())
        .map_err(io(format!("writing {}", file.display())))
}

/// initdb a source server that archives into `server`.
pub async fn init(st: &State, server: &str) -> Result<ServerState> {
    let root = pg_dir(st)?;
    let data = root.join(server);
    let mut c = pg(st, "initdb");
    c.args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    run(c, "initdb").await?;
    let port = free_port()?;
    let conf = format!(
        "\n# pgdrill sandbox\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{sock}'\n\
         wal_level = replica\narchive_mode = on\narchive_command = '{archive}'\nfsync = off\n",
        sock = root.join("sock").display(),
        archive = archive_command(st, server),
    );
    append(&data.join("postgresql.conf"), &conf)?;
    Ok(ServerState {
        server_name: server.to_string(),
        data_dir: data,
        port,
    })
}

pub async fn start(st: &State, server: &ServerState) -> Result<()> {
    let log = st
        .dir
        .join("logs")
        .join(format!("{}.log", server.server_name));
    std::fs::File::create(&log).map_err(io("creating the server log"))?;
    tools::give_to_postgres(&log).map_err(io("chown server log"))?;
    let mut c = pg(st, "pg_ctl");
    c.arg("-D")
        .arg(&server.data_dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "120", "start"]);
    run(
        c,
        &format!("starting PostgreSQL for {}", server.server_name),
    )
    .await
    .map(|_| ())
}

pub fn stop(st: &State, server: &ServerState) -> Result<()> {
    if !server.is_running() {
        return Ok(());
    }
    let mut c = pg(st, "pg_ctl");
    c.arg("-D")
        .arg(&server.data_dir)
        .args(["-m", "fast", "-w", "-t", "60", "stop"]);
    let out = c.output().map_err(io("stopping PostgreSQL"))?;
    if !out.status.success() && server.is_running() {
        return Err(SandboxError::Step(format!(
            "stopping PostgreSQL {}: {}",
            server.server_name,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

pub async fn connect(server: &ServerState) -> Result<tokio_postgres::Client> {
    let conn = format!(
        "host={} port={} user=postgres dbname=postgres connect_timeout=5",
        server.socket_dir().display(),
        server.port
    );
    crate::pg::connect_str(&conn)
        .await
        .map_err(|e| SandboxError::Step(format!("connecting to {}: {e}", server.server_name)))
}

pub fn sql_err(what: &str) -> impl FnOnce(tokio_postgres::Error) -> SandboxError + '_ {
    move |e| SandboxError::Step(format!("{what}: {}", crate::pg::db_message(&e)))
}

/// Waits until the server accepts connections and has left recovery.
pub async fn wait_ready(server: &ServerState) -> Result<()> {
    let mut last = String::new();
    for _ in 0..600 {
        if !server.is_running() {
            return Err(SandboxError::Step(format!(
                "PostgreSQL {} exited during start-up",
                server.server_name
            )));
        }
        match connect(server).await {
            Ok(c) => match c.query_one("select pg_is_in_recovery()", &[]).await {
                Ok(row) if !row.get::<_, bool>(0) => return Ok(()),
                Ok(_) => last = "still in recovery".into(),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(SandboxError::Step(format!(
        "PostgreSQL {} not ready after 120 s: {last}",
        server.server_name
    )))
}

/// barman-cloud-backup of the active server; returns the new backup id.
pub async fn base_backup(st: &State) -> Result<String> {
    let server = st.active();
    let before = backup_ids(st, &server.server_name).await?;
    let name = format!("backup-{}", jiff::Timestamp::now().strftime("%Y%m%d%H%M%S"));
    let mut c = barman(st, "barman-cloud-backup");
    c.args([
        "--gzip",
        "--immediate-checkpoint",
        "-h",
        &server.socket_dir().display().to_string(),
        "-p",
        &server.port.to_string(),
        "-U",
        "postgres",
    ])
    .args(["--name", &name, &st.destination_path, &server.server_name]);
    run(c, &format!("barman-cloud-backup of {}", server.server_name)).await?;
    let after = backup_ids(st, &server.server_name).await?;
    after
        .into_iter()
        .find(|id| !before.contains(id))
        .ok_or_else(|| {
            SandboxError::Step("barman-cloud-backup finished but no new backup is listed".into())
        })
}

/// Backup ids as barman-cloud-backup-list reports them.
pub async fn backup_ids(st: &State, server: &str) -> Result<Vec<String>> {
    let mut c = barman(st, "barman-cloud-backup-list");
    c.args(["--format", "json", &st.destination_path, server]);
    let out = run(c, "barman-cloud-backup-list").await?;
    let doc: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| SandboxError::Step(format!("barman-cloud-backup-list output: {e}")))?;
    Ok(doc["backups_list"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["backup_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Restores `from` at its latest point into a new server that, once promoted, archives into `to`.
pub async fn restore_and_promote(st: &State, from: &str, to: &str) -> Result<ServerState> {
    let root = pg_dir(st)?;
    let data = root.join(to);
    let mut c = barman(st, "barman-cloud-restore");
    c.args([&st.destination_path, from, "latest"]).arg(&data);
    run(c, &format!("barman-cloud-restore of {from}")).await?;
    let port = free_port()?;
    let conf = format!(
        "\n# pgdrill sandbox: recovery of {from}, then archiving into {to}\nport = {port}\n\
         restore_command = '{restore}'\nrecovery_target_timeline = 'latest'\nrecovery_target_action = 'promote'\n\
         archive_mode = on\narchive_command = '{archive}'\n",
        restore = restore_command(st, from),
        archive = archive_command(st, to),
    );
    append(&data.join("postgresql.auto.conf"), &conf)?;
    let signal = data.join("recovery.signal");
    std::fs::write(&signal, "").map_err(io("writing recovery.signal"))?;
    tools::give_to_postgres(&signal).map_err(io("chown recovery.signal"))?;
    let server = ServerState {
        server_name: to.to_string(),
        data_dir: data,
        port,
    };
    start(st, &server).await?;
    wait_ready(&server).await?;
    Ok(server)
}
