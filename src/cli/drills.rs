//! `pgdrill validate`, `schema`, `plan` and `run`.

use std::path::PathBuf;

use clap::Args;

use crate::backend::cnpg::ConnectMode;
use crate::exit::{self, Failure};
use crate::preflight::Preflight;
use crate::report::render;
use crate::run::{Finished, HistoryConfigMap, RunOptions, Selection, new_run_id, prepare};
use crate::scenario::plan::DrillPlan;
use crate::scenario::{Loaded, load};
use crate::target::TargetRequest;

use super::Output;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check (nothing is contacted).
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Scenario files (repeatable).
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<PathBuf>,
    /// Only this lineage (repeatable).
    #[arg(long = "lineage")]
    pub lineages: Vec<String>,
    /// Replace the scenario's targets with this one: latest, immediate, oldest, everyBackup,
    /// time:<t>, lsn:<X/Y>, xid:<n>, name:<restore point>, backup:<id>, baseline:<name>,
    /// random:<7d>.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Where reports go (default: the scenario's report.dir, else ./pgdrill-reports).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Drills run at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Restore even when preflight refuses (shows what PostgreSQL itself does).
    #[arg(long)]
    pub skip_preflight: bool,
    /// Keep a failed drill's server and directory for inspection.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// How the cnpg backend reaches the restored primary: the -rw Service in a pod, else a
    /// port-forward through the API server.
    #[arg(long, value_enum, default_value_t)]
    pub connect: ConnectMode,
    /// Parent folder of the scratch data directories.
    #[arg(long, env = "PGDRILL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// Append every drill's verdict, RTO and row counts to this ConfigMap (history.jsonl), so
    /// trends survive the CronJob's pods; `pgdrill history` reads it.
    #[arg(long, value_name = "NAME", env = "PGDRILL_HISTORY_CONFIGMAP")]
    pub history_configmap: Option<String>,
    /// Namespace of the history ConfigMap (default: the kubeconfig's or the pod's namespace).
    #[arg(long, value_name = "NS", requires = "history_configmap")]
    pub history_namespace: Option<String>,
}

const WEBHOOK_ENV: &str = "PGDRILL_WEBHOOK_URL";

/// Where results are published (shared by `run` and `schedule`).
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Write Prometheus metrics to this file (node_exporter textfile collector).
    #[arg(long, env = "PGDRILL_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push metrics to this Prometheus Pushgateway.
    #[arg(long, env = "PGDRILL_PUSHGATEWAY_URL", value_name = "URL")]
    pub pushgateway: Option<String>,
    /// The environment variable that holds a Slack-compatible webhook URL (the URL is a
    /// secret, so it never comes from a flag's value).
    #[arg(long = "webhook-url-env", value_name = "VAR", default_value = WEBHOOK_ENV)]
    pub webhook_url_env: String,
    /// GitHub Actions step summary file (set by Actions as GITHUB_STEP_SUMMARY).
    #[arg(long = "github-step-summary", hide = true, env = "GITHUB_STEP_SUMMARY")]
    pub github_summary: Option<PathBuf>,
}

impl PublishArgs {
    pub fn sinks(&self) -> Result<crate::publish::Sinks, Failure> {
        Ok(crate::publish::Sinks {
            metrics_file: self.metrics_file.clone(),
            pushgateway: self.pushgateway.clone(),
            webhook: super::secret_from_env("--webhook-url-env", &self.webhook_url_env)?,
            github_summary: self.github_summary.clone(),
        })
    }
}

fn load_all(files: &[PathBuf]) -> Result<Vec<Loaded>, Failure> {
    files
        .iter()
        .map(|f| load(f).map_err(Failure::usage))
        .collect()
}

pub fn validate(args: ValidateArgs) -> Result<i32, Failure> {
    for l in load_all(&args.files)? {
        println!(
            "{}: valid ({} target(s))",
            l.path.display(),
            l.scenario.targets.len()
        );
    }
    Ok(exit::OK)
}

pub fn schema() -> Result<i32, Failure> {
    print!("{}", crate::scenario::json_schema());
    Ok(exit::OK)
}

/// The `--lineage` and `--target` flags as the library's selection.
fn selection(args: &PlanArgs) -> Result<Selection, Failure> {
    let target = args
        .target
        .as_deref()
        .map(str::parse::<TargetRequest>)
        .transpose()
        .map_err(|e| Failure::usage(format!("--target: {e}")))?;
    Ok(Selection {
        lineages: args.lineages.clone(),
        target,
    })
}

pub async fn plan_cmd(args: PlanArgs) -> Result<i32, Failure> {
    let run_id = new_run_id();
    let selection = selection(&args)?;
    let mut out = Vec::new();
    let mut kube = None;
    for (i, loaded) in load_all(&args.files)?.into_iter().enumerate() {
        let p = prepare(
            loaded,
            &selection,
            &format!("{run_id}-{}", i + 1),
            &mut kube,
        )
        .await?;
        let manifests = p
            .drills
            .iter()
            .map(|d| p.manifests(d))
            .collect::<Result<Vec<_>, _>>()?;
        let drills: Vec<(DrillPlan, Option<String>)> =
            p.drills.iter().cloned().zip(manifests).collect();
        out.push((
            p.loaded.scenario.name.clone(),
            p.store.destination_path.clone(),
            drills,
        ));
    }
    match args.output {
        Output::Json => {
            let doc: Vec<_> = out
                .iter()
                .map(|(name, dest, drills)| {
                    let drills: Vec<_> = drills
                        .iter()
                        .map(|(d, m)| {
                            let mut v = serde_json::to_value(d).expect("serializes");
                            v["manifests"] = serde_json::json!(m);
                            v
                        })
                        .collect();
                    serde_json::json!({"scenario": name, "destination_path": dest, "drills": drills})
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"schema": "pgdrill.plan/v1", "scenarios": doc})
                )
                .expect("serializes")
            );
        }
        Output::Table => {
            for (name, dest, drills) in &out {
                println!("Scenario {name} ({dest})");
                for (d, manifests) in drills {
                    match &d.preflight {
                        Preflight::Ready(r) => println!(
                            "  run     {} → {} from backup {}",
                            d.lineage, d.target_label, r.backup_id
                        ),
                        Preflight::Refused(r) => println!(
                            "  refuse  {} → {}: {} ({})",
                            d.lineage, d.target_label, r.cause, r.message
                        ),
                    }
                    if let Some(yaml) = manifests {
                        print!("{yaml}");
                    }
                }
            }
        }
    }
    Ok(exit::OK)
}

impl RunArgs {
    /// The library's options from the flags.
    pub fn options(&self) -> Result<RunOptions, Failure> {
        Ok(RunOptions {
            selection: selection(&self.plan)?,
            report_dir: self.report_dir.clone(),
            concurrency: self.concurrency,
            skip_preflight: self.skip_preflight,
            keep_on_failure: self.keep_on_failure,
            connect: self.connect,
            work_dir: self.work_dir.clone(),
            sinks: self.publish.sinks()?,
            history: self.history_configmap.clone().map(|name| HistoryConfigMap {
                name,
                namespace: self.history_namespace.clone(),
            }),
        })
    }
}

/// Prints the reports and where they were written, and every sink that failed.
pub fn render_finished(finished: &Finished, output: Output) {
    for (report, written) in finished.reports.iter().zip(&finished.written) {
        match output {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(report).expect("serializes")
            ),
            Output::Table => print!("{}", render::terminal(report)),
        }
        for w in written {
            eprintln!("report: {}", w.display());
        }
    }
    for f in &finished.problems {
        eprintln!("error: publishing failed: {f}");
    }
    if let Some(why) = &finished.interrupted {
        eprintln!("error: {why}: running drills were torn down; the reports say which");
    }
}

/// Runs every drill of the scenarios; Ctrl-C and SIGTERM tear the running drills down.
pub async fn run(args: RunArgs) -> Result<i32, Failure> {
    let opts = args.options()?;
    let finished = crate::run::run(load_all(&args.plan.files)?, &opts).await?;
    render_finished(&finished, args.plan.output);
    Ok(finished.exit_code())
}
