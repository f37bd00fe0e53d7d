//! `pgdrill baseline record`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::baseline::Tables;
use crate::exit::{self, Failure};
use crate::pg::baseline::record;
use crate::scenario::load::load_with;
use crate::scenario::types::TablesSpec;

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Record exact row counts on the live source, with the LSN and time they hold at.
    #[command(long_about = "\
Connect to the live source (PGDRILL_SOURCE_URL, or the `uri` key of a mounted Secret folder
given with --source-secret; never a flag value), count the rows of every table the scenario
checks (or every user table) in one snapshot, and record the LSN and time. With
--restore-point, create a named restore point (pg_create_restore_point) and use its LSN, so a
drill can target the baseline exactly. The file goes where the scenario's checks.baseline
points, or to --out; with --configmap it is also stored in that ConfigMap as <name>.json.

Examples:
  PGDRILL_SOURCE_URL=postgresql://postgres@db:5432/app \\
    pgdrill baseline record -f weekly.yaml --name nightly --restore-point
  pgdrill baseline record --name weekly --source-secret /etc/secrets/app-superuser \\
    --configmap pgdrill-baselines --restore-point --switch-wal")]
    Record(RecordArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Scenario whose checks.tables and checks.baseline to use.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Baseline name (and restore point name).
    #[arg(long)]
    pub name: String,
    /// Output file (default: the scenario's checks.baseline).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Create a named restore point and use its LSN.
    #[arg(long)]
    pub restore_point: bool,
    /// Close the current WAL segment afterwards, so the archive holds the point at once.
    #[arg(long)]
    pub switch_wal: bool,
    /// A mounted Secret folder (such as CNPG's `<cluster>-app` or `-superuser`) whose `uri` key
    /// is the source's connection URL; used when PGDRILL_SOURCE_URL is not set.
    #[arg(long, value_name = "DIR")]
    pub source_secret: Option<PathBuf>,
    /// Also store the baseline in this ConfigMap, under `<name>.json` (in a cluster, mount it
    /// where the scenario's checks.baseline points).
    #[arg(long, value_name = "NAME")]
    pub configmap: Option<String>,
    /// Namespace of --configmap (default: the kubeconfig's or the pod's namespace).
    #[arg(long, value_name = "NS", requires = "configmap")]
    pub namespace: Option<String>,
    /// The environment variable that holds the source's connection URL (the URL holds a
    /// password, so it never comes from a flag's value).
    #[arg(
        long = "source-url-env",
        value_name = "VAR",
        default_value = "PGDRILL_SOURCE_URL"
    )]
    pub source_url_env: String,
}

/// The source's connection URL: from the environment variable, else a mounted Secret's `uri`.
fn source_url(args: &RecordArgs) -> Result<String, Failure> {
    if let Some(url) = super::secret_from_env("--source-url-env", &args.source_url_env)? {
        return Ok(url);
    }
    let dir = args.source_secret.as_ref().ok_or_else(|| {
        Failure::usage(format!(
            "{} is not set and no --source-secret was given",
            args.source_url_env
        ))
    })?;
    let file = dir.join("uri");
    std::fs::read_to_string(&file)
        .map(|u| u.trim().to_string())
        .map_err(|e| {
            Failure::usage(format!(
                "{}: {e} (expected the Secret's `uri` key)",
                file.display()
            ))
        })
}

pub async fn run(cmd: BaselineCommand) -> Result<i32, Failure> {
    let BaselineCommand::Record(args) = cmd;
    let url = source_url(&args)?;
    let loaded = args
        .file
        .as_deref()
        .map(|f| load_with(f, false).map_err(Failure::usage))
        .transpose()?;
    let tables = match loaded
        .as_ref()
        .and_then(|l| l.scenario.checks.tables.clone())
    {
        Some(TablesSpec::List(l)) => Tables::Only(l),
        _ => Tables::All,
    };
    let out = args.out.clone().or_else(|| {
        loaded
            .as_ref()
            .and_then(|l| l.scenario.checks.baseline.as_deref().map(|b| l.relative(b)))
    });
    if out.is_none() && args.configmap.is_none() {
        return Err(Failure::usage(
            "no output: give --out or --configmap, or -f with a scenario that sets checks.baseline",
        ));
    }
    let b = record(
        &url,
        &args.name,
        &tables,
        args.restore_point,
        args.switch_wal,
    )
    .await
    .map_err(Failure::error)?;
    let mut places = Vec::new();
    if let Some(out) = &out {
        b.save(out).map_err(Failure::error)?;
        places.push(out.display().to_string());
    }
    if let Some(name) = &args.configmap {
        let client = crate::k8s::client().await.map_err(Failure::error)?;
        let ns = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let key = format!("{}.json", b.name);
        let text = serde_json::to_string_pretty(&b).expect("baseline serializes") + "\n";
        crate::k8s::configmap::update_key(&client, &ns, name, &key, |_| text.clone())
            .await
            .map_err(Failure::error)?;
        places.push(format!("ConfigMap {ns}/{name} key {key}"));
    }
    println!(
        "baseline {} at {} (LSN {}): {} table(s) → {}",
        b.name,
        b.recorded_at,
        b.lsn,
        b.counts.len(),
        places.join(", ")
    );
    Ok(exit::OK)
}
