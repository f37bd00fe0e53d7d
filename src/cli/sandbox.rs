//! `pgdrill sandbox …`: a source system on loopback for drills, demos and tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::exit::{self, Failure};
use crate::sandbox::{self, SandboxError, State, StoreKind, UpOptions};

use super::Output;

#[derive(Debug, Args)]
pub struct DirArg {
    /// The sandbox directory (state, data, logs, sandbox.env).
    #[arg(long, env = "PGDRILL_SANDBOX_DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start an object store on loopback and a PostgreSQL server archiving WAL into <name>-v1.
    #[command(long_about = "\
Start an object store on loopback (moto for S3, or Azurite for Azure Blob) with a bucket, and a
source PostgreSQL that archives WAL with barman-cloud into lineage <name>-v1. Writes
<dir>/sandbox.env with the endpoint, bucket, credentials, destinationPath, serverName and source
URL; source it to point other commands at the sandbox.

Example:
  pgdrill sandbox up --dir /tmp/sbx && . /tmp/sbx/sandbox.env
  pgdrill sandbox backup --dir /tmp/sbx
  pgdrill sandbox workload --dir /tmp/sbx --batches 3
  pgdrill catalog \"$PGDRILL_DESTINATION_PATH\"
  pgdrill sandbox down --dir /tmp/sbx")]
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Base name of the lineages (<name>-v1, <name>-v2…).
        #[arg(long, default_value = "app")]
        name: String,
        /// Which object store to run.
        #[arg(long, value_enum, default_value = "s3")]
        store: StoreKind,
        /// Bucket (S3) or container (Azure) to create.
        #[arg(long, default_value = "pgdrill")]
        bucket: String,
    },
    /// Show the sandbox: store, servers, lineages, and whether each process runs.
    Status {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Take a base backup (barman-cloud-backup) of the active server into its lineage.
    Backup {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Write rows in batches; record each batch's commit time, LSN and row counts.
    Workload {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long, default_value_t = 3)]
        batches: u32,
        /// Rows per batch in `accounts` (twice as many go to `events`).
        #[arg(long, default_value_t = 1000)]
        rows: u32,
        /// Pause between batches, in milliseconds.
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
    },
    /// Grow the next lineage like a real DR: restore the newest lineage, promote, archive into
    /// <name>-v(N+1), and take a base backup there.
    NewLineage {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Stop every process of the sandbox (data stays in the directory).
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
}

fn fail(e: SandboxError) -> Failure {
    match e {
        SandboxError::NoSandbox(_) => Failure::usage(e.to_string()),
        other => Failure::error(other.to_string()),
    }
}

pub async fn run(cmd: SandboxCommand) -> Result<i32, Failure> {
    match cmd {
        SandboxCommand::Up {
            dir,
            name,
            store,
            bucket,
        } => {
            up(UpOptions {
                dir: dir.dir,
                name,
                store,
                bucket,
            })
            .await?
        }
        SandboxCommand::Status { dir, output } => status(&dir.dir, output)?,
        SandboxCommand::Backup { dir } => {
            eprintln!("taking a base backup…");
            let id = sandbox::backup(&dir.dir).await.map_err(fail)?;
            println!("{id}");
        }
        SandboxCommand::Workload {
            dir,
            batches,
            rows,
            interval_ms,
        } => workload(&dir.dir, batches, rows, interval_ms).await?,
        SandboxCommand::NewLineage { dir } => {
            eprintln!("restoring the newest lineage, promoting, and archiving into the next one…");
            let (lineage, backup) = sandbox::new_lineage(&dir.dir).await.map_err(fail)?;
            println!("lineage {lineage} with backup {backup}");
        }
        SandboxCommand::Down { dir } => down(&dir.dir).await?,
    }
    Ok(exit::OK)
}

async fn up(options: UpOptions) -> Result<(), Failure> {
    eprintln!(
        "starting the {} endpoint and PostgreSQL…",
        options.store.as_str()
    );
    let st = sandbox::up(&options).await.map_err(fail)?;
    println!("sandbox up in {}", st.dir.display());
    println!(
        "  object store   {} ({})",
        st.store.endpoint,
        st.store.kind.as_str()
    );
    println!("  destination    {}", st.destination_path);
    println!("  lineage        {}", st.active().server_name);
    println!("  source         {}", st.active().url());
    println!("  env file       {}", st.dir.join("sandbox.env").display());
    Ok(())
}

fn status(dir: &Path, output: Output) -> Result<(), Failure> {
    let st = sandbox::status(dir).map_err(fail)?;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&status_json(&st)).expect("serializes")
        ),
        Output::Table => print_status_table(&st),
    }
    Ok(())
}

fn status_json(st: &State) -> serde_json::Value {
    let servers: Vec<_> = st
        .servers
        .iter()
        .map(|s| serde_json::json!({"server_name": s.server_name, "port": s.port, "running": s.is_running(), "data_dir": s.data_dir}))
        .collect();
    serde_json::json!({
        "dir": st.dir,
        "store": {"kind": st.store.kind.as_str(), "endpoint": st.store.endpoint, "pid": st.store.pid, "running": st.store.is_running()},
        "destination_path": st.destination_path,
        "lineages": st.lineages,
        "active": st.active().server_name,
        "servers": servers,
        "workload_batches": sandbox::read_workload(&st.dir).map(|w| w.len()).unwrap_or(0),
    })
}

fn print_status_table(st: &State) {
    let run = |b: bool| if b { "running" } else { "stopped" };
    println!("sandbox {}", st.dir.display());
    println!(
        "  store {} {} ({})",
        st.store.kind.as_str(),
        st.store.endpoint,
        run(st.store.is_running())
    );
    println!("  destination {}", st.destination_path);
    for s in &st.servers {
        println!(
            "  postgres {} port {} ({})",
            s.server_name,
            s.port,
            run(s.is_running())
        );
    }
    println!("  active lineage {}", st.active().server_name);
}

async fn workload(dir: &Path, batches: u32, rows: u32, interval_ms: u64) -> Result<(), Failure> {
    let records = sandbox::workload(dir, batches, rows, Duration::from_millis(interval_ms))
        .await
        .map_err(fail)?;
    for r in records {
        let counts: Vec<String> = r.counts.iter().map(|(t, n)| format!("{t}={n}")).collect();
        println!(
            "batch {} at {} lsn {} wal {} {}",
            r.batch,
            r.committed_at,
            r.lsn,
            r.wal,
            counts.join(" ")
        );
    }
    Ok(())
}

async fn down(dir: &Path) -> Result<(), Failure> {
    let stopped = sandbox::down(dir).await.map_err(fail)?;
    if stopped.is_empty() {
        println!("nothing was running");
    }
    for s in stopped {
        println!("stopped {s}");
    }
    Ok(())
}
