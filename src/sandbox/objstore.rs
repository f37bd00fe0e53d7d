//! The loopback object store: moto (S3) or Azurite (Azure Blob), tracked by pid.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::state::{State, StoreKind, StoreState};
use super::{Result, SandboxError, io};
use crate::proc::pid_alive;
use crate::tools;

pub fn free_port() -> Result<u16> {
    crate::proc::free_port().map_err(io("finding a free port"))
}

pub async fn wait_for_port(port: u16, pid: u32, what: &str, log: &Path) -> Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if !pid_alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    Err(SandboxError::Step(format!(
        "{what} did not start on port {port}; log {}: {}",
        log.display(),
        tail.join(" | ")
    )))
}

pub async fn start(dir: &Path, kind: StoreKind) -> Result<StoreState> {
    let port = free_port()?;
    let log_path = dir.join("logs").join(format!("{}.log", kind.as_str()));
    let log =
        std::fs::File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
    let mut cmd = match kind {
        StoreKind::S3 => {
            let moto =
                tools::moto_server().ok_or_else(|| super::missing("moto_server (S3 endpoint)"))?;
            let mut c = Command::new(moto);
            c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            c
        }
        StoreKind::Azure => {
            let azurite = tools::azurite_blob()
                .ok_or_else(|| super::missing("azurite-blob (Azure endpoint)"))?;
            let data = dir.join("azurite");
            std::fs::create_dir_all(&data).map_err(io("creating the Azurite folder"))?;
            let mut c = Command::new(azurite);
            c.args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
            ])
            .arg(&data)
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--loose"]);
            c
        }
    };
    let err_log = log.try_clone().map_err(io("opening the store log"))?;
    // Its own process group: a Ctrl-C aimed at pgdrill does not take the store down, and
    // `down` stops the whole group.
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(io(format!("starting the {} endpoint", kind.as_str())))?;
    let pid = child.id();
    let state = StoreState {
        kind,
        endpoint: format!("http://127.0.0.1:{port}"),
        pid,
    };
    wait_for_port(
        port,
        pid,
        &format!("the {} endpoint", kind.as_str()),
        &log_path,
    )
    .await?;
    Ok(state)
}

/// Creates the bucket (S3) or container (Azure) with the SDK that ships with barman-cloud.
pub async fn create_bucket(st: &State) -> Result<()> {
    let python = st.barman_bin.join("python");
    let script = match st.store.kind {
        StoreKind::S3 => {
            "import sys, boto3\nboto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])\n"
        }
        StoreKind::Azure => {
            "import os, sys\nfrom azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient.from_connection_string(os.environ['AZURE_STORAGE_CONNECTION_STRING']).create_container(sys.argv[2])\n"
        }
    };
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(["-c", script, &st.store.endpoint, &st.bucket])
        .envs(st.store_env());
    let out = cmd.output().await.map_err(io("creating the bucket"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        return Err(SandboxError::Step(format!(
            "creating bucket {}: {last}",
            st.bucket
        )));
    }
    Ok(())
}

/// Stops the store's process group; true when something was running.
pub fn stop(store: &StoreState) -> Result<bool> {
    if store.pid == 0 || !pid_alive(store.pid) {
        return Ok(false);
    }
    crate::proc::terminate(store.pid, true);
    for i in 0..100 {
        if !pid_alive(store.pid) {
            return Ok(true);
        }
        if i == 50 {
            crate::proc::kill(store.pid, true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(SandboxError::Step(format!(
        "the object store (pid {}) did not stop",
        store.pid
    )))
}
