//! The command line: a thin layer that parses, calls the library and maps results to exit codes.

mod baseline;
mod catalog;
mod cleanup;
mod demo;
mod doctor;
mod drills;
mod history;
mod sandbox;
mod schedule;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::{self, Failure};
use crate::store::{StoreSpec, config::load_store_file};

const ABOUT: &str = "Disaster-recovery drills for CloudNativePG and Barman Cloud backups";

const LONG_ABOUT: &str = "\
pgdrill proves that PostgreSQL backups taken by CloudNativePG with Barman Cloud can be restored,
to the point that matters, with the data that matters.

See everything work on this machine, with no cloud and no Kubernetes (about 30 seconds):
  pgdrill demo
Look at what an archive holds, and whether a target is reachable before you need it:
  pgdrill catalog s3://backups/pg --endpoint-url http://minio:9000
  pgdrill preflight s3://backups/pg --server app-v1 --target 'time:2025-01-15 12:00:00+00'
Drill it: restore, recover, verify against a baseline, tear down, report:
  pgdrill run -f scenario.yaml

Exit codes: 0 success, 1 a drill or preflight failed, 2 pgdrill could not verify
(store unreachable, bad credentials, missing tools), 64 bad usage or an invalid scenario.";

#[derive(Debug, Parser)]
#[command(name = "pgdrill", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    /// Log filter for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "PGDRILL_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every lineage of a barman-cloud archive: backups, WAL, timelines, gaps, window.
    #[command(long_about = "\
List what a barman-cloud archive holds, per lineage (serverName folder): base backups and their
state, the recoverability window (from the end of the oldest completed backup to the last WAL
reachable without a gap), WAL per timeline, timeline history, and WAL gaps.

Examples:
  pgdrill catalog s3://backups/pg --endpoint-url http://127.0.0.1:9000
  pgdrill catalog s3://backups/pg --server app-v2 --output json
  pgdrill catalog --store-file store.yaml --secrets-dir ./secrets
  pgdrill catalog https://acct.blob.core.windows.net/backups/pg   # AZURE_STORAGE_* in the env
  pgdrill catalog file:///srv/barman-copy")]
    Catalog(CatalogArgs),
    /// Decide whether recovery can reach a target, and which backup CNPG would restore.
    #[command(long_about = "\
Decide from the catalog alone whether recovery of a lineage can reach a target, which backup
CloudNativePG would pick, and if it cannot, why (a stable cause, as in the README's table of
causes). Nothing is restored. Exit code 1 when the target is refused.

Targets: latest, immediate, time:<RFC 3339 or '2025-01-15 12:00:00+00'>, lsn:<X/Y>, xid:<n>,
name:<restore point>, backup:<id>. --backup-id pins the backup, as recoveryTarget.backupID does.

Examples:
  pgdrill preflight s3://backups/pg --server app-v1 --target latest
  pgdrill preflight s3://backups/pg --server app-v1 --target 'time:2025-01-15T12:00:00Z' --output json")]
    Preflight(PreflightArgs),
    /// Check scenario files (strict: unknown keys, types, times, cron) and touch nothing.
    Validate(drills::ValidateArgs),
    /// Print the JSON Schema of scenario files.
    Schema,
    /// Show the drills a scenario would run, the ones preflight refuses, and for backend cnpg
    /// the manifests; reads the archive (and a source Cluster), changes nothing.
    Plan(drills::PlanArgs),
    /// Run every drill of the scenarios: restore, recover, verify, tear down, report.
    #[command(long_about = "\
Run every drill of the scenarios: for each lineage and target, preflight against the catalog,
restore the chosen backup with barman-cloud-restore, recover with the settings CloudNativePG
uses, verify where recovery ended, the row counts against the baseline and the SQL checks, tear
everything down, and write reports (JSON, Markdown, JUnit). With `backend: cnpg` each drill is a
scratch CloudNativePG recovery cluster instead (KUBECONFIG or in-cluster): applied, watched
until Ready, verified through the -rw Service or a port-forward, deleted with its PVCs.

Exit codes: 0 every drill passed (or ended as the scenario expected), 1 a drill failed,
2 a drill could not be verified (and none failed), 64 an invalid scenario.

Examples:
  pgdrill run -f scenarios/sandbox.yaml
  pgdrill run -f weekly.yaml --lineage app-v2 --target 'time:2025-01-15 12:00:00+00'
  pgdrill run -f cnpg.yaml --history-configmap pgdrill-history   # backend: cnpg")]
    Run(drills::RunArgs),
    /// Run scenarios on their `schedule:` (cron), with a concurrency limit and no overlap.
    #[command(long_about = "\
Run scenarios on their `schedule:` (5-field Kubernetes or 6-field CNPG cron). Scenario runs
never overlap themselves; --concurrency bounds them across scenarios; SIGTERM stops scheduling
and lets running drills finish their teardown.

Examples:
  pgdrill schedule -f scenarios/ --dry-run
  pgdrill schedule -f weekly.yaml --concurrency 2 --metrics-file /var/lib/node_exporter/pgdrill.prom")]
    Schedule(schedule::ScheduleArgs),
    /// Delete drill objects (backend cnpg) left by crashed runs (expired, or older than --older-than).
    #[command(long_about = "\
Delete what drills of the cnpg backend left in the cluster: scratch namespaces and, in fixed
namespaces, drill Clusters with their PVCs, ObjectStores and copied Secrets. Only objects
labelled app.kubernetes.io/managed-by=pgdrill are considered, and only once their
pgdrill.io/expires-at annotation has passed (cnpg.ttl, default 6h) or, with --older-than, once
they are older than that. Every `pgdrill run` with backend cnpg sweeps expired objects first.

Examples:
  pgdrill cleanup --dry-run
  pgdrill cleanup --older-than 1h")]
    Cleanup(cleanup::CleanupArgs),
    /// Show the drills recorded by `run --history-configmap`: verdicts, RTO and rows over time.
    History(history::HistoryArgs),
    /// Record baselines: exact row counts on the live source.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// The whole product on this machine: sandbox, workload, backups, baseline, drills, reports.
    Demo(demo::DemoArgs),
    /// Report which prerequisites (PostgreSQL, barman-cloud, S3 and Azure emulators) are present.
    Doctor(doctor::DoctorArgs),
    /// A local source system on loopback: object store, PostgreSQL archiving with barman-cloud.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
}

/// The value of a flag that names an environment variable holding a secret. The value is
/// never echoed: a user who pasted the secret itself must not see it in an error.
pub fn secret_from_env(flag: &str, var: &str) -> Result<Option<String>, crate::exit::Failure> {
    let is_name = !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(crate::exit::Failure::usage(format!(
            "{flag} takes the name of an environment variable (letters, digits and _), not the secret itself"
        )));
    }
    Ok(std::env::var(var).ok().filter(|v| !v.is_empty()))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Where the archive is and how to authenticate. Credentials come from the environment
/// (AWS_*, AZURE_STORAGE_*, GOOGLE_APPLICATION_CREDENTIALS) or from Secrets named by a
/// CNPG-shaped block; never from flags.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// destinationPath: s3://bucket/path, gs://bucket/path,
    /// https://<account>.blob.core.windows.net/<container>/path, or file:///dir.
    #[arg(value_name = "DESTINATION_PATH", env = "PGDRILL_DESTINATION_PATH")]
    pub destination_path: Option<String>,
    /// S3-compatible endpoint (MinIO, Ceph, B2…), as barmanObjectStore.endpointURL.
    #[arg(long, env = "PGDRILL_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// S3 region (default: AWS_DEFAULT_REGION, then us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// YAML file with a CNPG barmanObjectStore block (destinationPath, endpointURL, s3Credentials…).
    #[arg(long, value_name = "FILE")]
    pub store_file: Option<PathBuf>,
    /// Directory of mounted Secrets (<dir>/<secret>/<key>) for the block's credential references.
    #[arg(long, value_name = "DIR", env = "PGDRILL_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
}

impl StoreArgs {
    pub fn spec(&self) -> Result<StoreSpec, Failure> {
        let block = self
            .store_file
            .as_deref()
            .map(load_store_file)
            .transpose()
            .map_err(Failure::usage)?;
        let destination_path = self
            .destination_path
            .clone()
            .or_else(|| block.as_ref().map(|b| b.destination_path.clone()))
            .ok_or_else(|| {
                Failure::usage(
                    "a DESTINATION_PATH (or --store-file with destinationPath) is required",
                )
            })?;
        Ok(StoreSpec {
            destination_path,
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            block,
            secrets_dir: self.secrets_dir.clone(),
            secret_values: None,
        })
    }
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only these lineages (serverName folders); repeatable. Default: every lineage.
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The lineage (serverName folder) to recover.
    #[arg(long = "server", value_name = "NAME")]
    pub server: String,
    /// Recovery target (see above).
    #[arg(long, default_value = "latest")]
    pub target: String,
    /// Restore this backup (recoveryTarget.backupID).
    #[arg(long)]
    pub backup_id: Option<String>,
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub fn init_tracing(filter: &str) {
    let level = filter
        .parse::<tracing::Level>()
        .unwrap_or(tracing::Level::WARN);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .try_init();
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Catalog(args) => catalog::catalog(args).await,
        Command::Preflight(args) => catalog::preflight(args).await,
        Command::Doctor(args) => doctor::doctor(args),
        Command::Validate(args) => drills::validate(args),
        Command::Schema => drills::schema(),
        Command::Plan(args) => drills::plan_cmd(args).await,
        Command::Run(args) => drills::run(args).await,
        Command::Cleanup(args) => cleanup::cleanup(args).await,
        Command::History(args) => history::history(args).await,
        Command::Baseline(cmd) => baseline::run(cmd).await,
        Command::Schedule(args) => schedule::schedule(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Sandbox(cmd) => sandbox::run(cmd).await,
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

pub(crate) fn ok() -> Result<i32, Failure> {
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
