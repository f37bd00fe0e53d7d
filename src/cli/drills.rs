//! `pgdrill validate`, `schema`, `plan` and `run`.

use std::path::{Path, PathBuf};

use clap::Args;
use futures::StreamExt;

use crate::backend::cnpg::ConnectMode;
use crate::catalog::LineageCatalog;
use crate::drill::{CnpgContext, DrillOptions, default_work_root, run_drill};
use crate::exit::{self, Failure};
use crate::k8s::LiveDrills;
use crate::preflight::{Preflight, Target};
use crate::report::{RunReport, SCHEMA, render};
use crate::scenario::plan::{DrillPlan, plan, select_lineages};
use crate::scenario::types::{BackendKind, ReportFormat};
use crate::scenario::{Loaded, load};
use crate::source::{ResolvedSource, resolve};
use crate::store::Store;

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
    /// Replace the scenario's targets with this one (latest, time:…, lsn:…, backup:<id>…).
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
    /// The scheduler's view of the last results (for its /metrics).
    #[arg(skip)]
    pub on_reports: Option<crate::status_server::SchedulerState>,
}

/// Where results are published (shared by `run` and `schedule`).
#[derive(Debug, Clone, Default, Args)]
pub struct PublishArgs {
    /// Write Prometheus metrics to this file (node_exporter textfile collector).
    #[arg(long, env = "PGDRILL_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push metrics to this Prometheus Pushgateway.
    #[arg(long, env = "PGDRILL_PUSHGATEWAY_URL", value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Slack-compatible webhook, from PGDRILL_WEBHOOK_URL only (the URL is a secret).
    #[arg(
        long = "webhook-url-env",
        hide = true,
        env = "PGDRILL_WEBHOOK_URL",
        hide_env_values = true
    )]
    pub webhook: Option<String>,
    /// GitHub Actions step summary file (set by Actions as GITHUB_STEP_SUMMARY).
    #[arg(long = "github-step-summary", hide = true, env = "GITHUB_STEP_SUMMARY")]
    pub github_summary: Option<PathBuf>,
}

impl PublishArgs {
    pub fn sinks(&self) -> crate::publish::Sinks {
        crate::publish::Sinks {
            metrics_file: self.metrics_file.clone(),
            pushgateway: self.pushgateway.clone(),
            webhook: self.webhook.clone(),
            github_summary: self.github_summary.clone(),
        }
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

/// Everything a run needs from the archive, for one scenario.
struct Prepared {
    loaded: Loaded,
    source: ResolvedSource,
    store: Store,
    catalogs: Vec<LineageCatalog>,
    drills: Vec<DrillPlan>,
}

/// Reads the archive for one scenario and plans its drills; `id_prefix` keeps drill ids unique
/// across the scenarios of one run.
async fn prepare(
    loaded: Loaded,
    args: &PlanArgs,
    id_prefix: &str,
    kube: &mut Option<kube::Client>,
) -> Result<Prepared, Failure> {
    if loaded.source_needs_kubernetes() && kube.is_none() {
        *kube = Some(crate::k8s::client().await.map_err(Failure::error)?);
    }
    let source = resolve(&loaded, kube.as_ref())
        .await
        .map_err(Failure::error)?;
    let store = source
        .spec
        .open()
        .map_err(|e| Failure::error(format!("{}: {e}", loaded.path.display())))?;
    let reader = crate::store::CatalogReader::new(&store);
    let available = reader
        .lineages()
        .await
        .map_err(|e| Failure::error(e.to_string()))?;
    let mut names = select_lineages(&loaded, &available).map_err(Failure::usage)?;
    if !args.lineages.is_empty() {
        if let Some(bad) = args.lineages.iter().find(|l| !names.contains(l)) {
            return Err(Failure::usage(format!(
                "--lineage {bad}: not among the scenario's lineages ({})",
                names.join(", ")
            )));
        }
        names.retain(|n| args.lineages.contains(n));
    }
    let mut catalogs = Vec::new();
    for n in &names {
        catalogs.push(
            reader
                .read(n)
                .await
                .map_err(|e| Failure::error(e.to_string()))?,
        );
    }
    let target: Option<Target> = args
        .target
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(Failure::usage)?;
    let override_target = args.target.as_deref().zip(target.as_ref());
    let drills = plan(&loaded, &catalogs, id_prefix, override_target);
    Ok(Prepared {
        loaded,
        source,
        store,
        catalogs,
        drills,
    })
}

pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{}-{:04x}",
        now.strftime("%Y%m%dT%H%M%S"),
        (now.subsec_nanosecond() as u32 ^ std::process::id()) & 0xffff
    )
}

/// For `backend: cnpg`, the manifests of each drill preflight lets through, safety-checked.
fn cnpg_manifests(p: &Prepared, d: &DrillPlan) -> Result<Option<String>, Failure> {
    let (BackendKind::Cnpg, Preflight::Ready(ready)) = (p.loaded.scenario.backend, &d.preflight)
    else {
        return Ok(None);
    };
    let catalog = p
        .catalogs
        .iter()
        .find(|c| c.server_name == d.lineage)
        .expect("planned from these catalogs");
    let spec = crate::cnpg::plan::drill_spec(
        &p.loaded,
        &p.source.block,
        p.source.cluster.as_ref(),
        catalog,
        d,
        ready,
        jiff::Timestamp::now(),
    )
    .map_err(Failure::usage)?;
    let manifests = crate::cnpg::plan::safe_manifests(&spec).map_err(Failure::error)?;
    Ok(Some(manifests.to_yaml()))
}

pub async fn plan_cmd(args: PlanArgs) -> Result<i32, Failure> {
    let run_id = new_run_id();
    let mut out = Vec::new();
    let mut kube = None;
    for (i, loaded) in load_all(&args.files)?.into_iter().enumerate() {
        let p = prepare(loaded, &args, &format!("{run_id}-{}", i + 1), &mut kube).await?;
        let manifests = p
            .drills
            .iter()
            .map(|d| cnpg_manifests(&p, d))
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

fn write_reports(
    dir: &Path,
    report: &RunReport,
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::error(format!("creating {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for f in formats {
        let (name, body) = match f {
            ReportFormat::Json => (
                "report.json",
                serde_json::to_string_pretty(report).expect("serializes") + "\n",
            ),
            ReportFormat::Markdown => ("report.md", render::markdown(report)),
            ReportFormat::Junit => ("junit.xml", render::junit(report)),
        };
        let path = dir.join(name);
        std::fs::write(&path, body)
            .map_err(|e| Failure::error(format!("writing {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

async fn run_scenario(
    p: Prepared,
    args: &RunArgs,
    run_id: &str,
    cluster: Option<(&kube::Client, &LiveDrills)>,
) -> Result<(RunReport, Vec<String>), Failure> {
    let started_at = jiff::Timestamp::now();
    let cnpg = match (p.loaded.scenario.backend, cluster) {
        (BackendKind::Cnpg, Some((client, live))) => Some(CnpgContext {
            client: client.clone(),
            source: p.source.clone(),
            live: live.clone(),
            connect: args.connect,
        }),
        _ => None,
    };
    let backend = if cnpg.is_some() { "cnpg" } else { "local" };
    let opts = DrillOptions {
        work_root: args.work_dir.clone().unwrap_or_else(default_work_root),
        skip_preflight: args.skip_preflight,
        keep_on_failure: args.keep_on_failure,
        cnpg,
    };
    let source_cluster = p
        .source
        .cluster
        .as_ref()
        .zip(p.loaded.scenario.source.cluster.as_ref())
        .map(|(c, r)| (c.namespace.clone(), r.name.clone()));
    let spec = p.source.spec.clone();
    let total = p.drills.len();
    let drills: Vec<_> = futures::stream::iter(p.drills.iter().enumerate())
        .map(|(i, d)| {
            let catalog = p
                .catalogs
                .iter()
                .find(|c| c.server_name == d.lineage)
                .expect("planned from these catalogs");
            let (loaded, spec, opts) = (&p.loaded, &spec, &opts);
            async move {
                eprintln!(
                    "[{}/{total}] {} → {}: {}",
                    i + 1,
                    d.lineage,
                    d.target_label,
                    match &d.preflight {
                        Preflight::Ready(r) => format!("restoring backup {}…", r.backup_id),
                        Preflight::Refused(r) => format!("refused by preflight ({})", r.cause),
                    }
                );
                let r = with_heartbeat(run_drill(loaded, spec, catalog, d, opts), |secs| {
                    eprintln!(
                        "[{}/{total}] {} → {}: still working ({secs}s)…",
                        i + 1,
                        d.lineage,
                        d.target_label
                    )
                })
                .await;
                eprintln!(
                    "[{}/{total}] {} → {}: {}{}",
                    i + 1,
                    d.lineage,
                    d.target_label,
                    r.verdict.as_str(),
                    r.cause.map(|c| format!(" ({c})")).unwrap_or_default()
                );
                (i, r)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut drills = drills;
    drills.sort_by_key(|(i, _)| *i);
    let drills: Vec<_> = drills.into_iter().map(|(_, r)| r).collect();
    let report = RunReport {
        schema: SCHEMA,
        run_id: run_id.to_string(),
        scenario: p.loaded.scenario.name.clone(),
        scenario_file: p.loaded.path.clone(),
        backend,
        destination_path: p.store.destination_path.clone(),
        started_at,
        finished_at: jiff::Timestamp::now(),
        summary: RunReport::summarize(&drills),
        lineages: p
            .catalogs
            .iter()
            .map(crate::report::LineageFacts::from_catalog)
            .collect(),
        drills,
    };
    // The source Cluster shows how its last drill went (`kubectl describe cluster`).
    let mut problems = Vec::new();
    if let (Some((client, _)), Some((ns, name))) = (cluster, &source_cluster)
        && let Err(e) = crate::k8s::history::post_cluster_event(client, &report, ns, name).await
    {
        problems.push(e);
    }
    Ok((report, problems))
}

/// Awaits `work`, calling `beat` every 15 seconds until it is done: progress on long waits.
async fn with_heartbeat<T>(work: impl std::future::Future<Output = T>, beat: impl Fn(u64)) -> T {
    let started = std::time::Instant::now();
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(15),
        std::time::Duration::from_secs(15),
    );
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticker.tick() => beat(started.elapsed().as_secs()),
        }
    }
}

/// For `backend: cnpg`: the CRDs are served, and drill objects left by earlier runs that have
/// expired are swept first.
async fn cluster_ready(client: &kube::Client, prepared: &[Prepared]) -> Result<(), Failure> {
    let plugin = prepared.iter().any(|p| {
        p.loaded.scenario.backend == BackendKind::Cnpg
            && p.loaded.scenario.cnpg.recovery_path == crate::cnpg::manifest::RecoveryPath::Plugin
    });
    crate::k8s::require_crds(client, plugin)
        .await
        .map_err(Failure::error)?;
    // Only the fixed namespaces when no drill needs a scratch namespace: pgdrill may hold
    // Roles there and nothing cluster-wide.
    let cnpg: Vec<&Loaded> = prepared
        .iter()
        .map(|p| &p.loaded)
        .filter(|l| l.scenario.backend == BackendKind::Cnpg)
        .collect();
    let scope = match cnpg
        .iter()
        .map(|l| l.scenario.cnpg.namespace.clone())
        .collect::<Option<Vec<String>>>()
    {
        Some(mut fixed) => {
            fixed.sort();
            fixed.dedup();
            crate::k8s::cleanup::Scope::Namespaces(fixed)
        }
        None => crate::k8s::cleanup::Scope::Cluster,
    };
    // Leftovers of earlier runs must not stop this one: a problem is reported, not fatal.
    let swept = match crate::k8s::cleanup::sweep(client, &scope, None, false).await {
        Ok(swept) => swept,
        Err(e) => {
            eprintln!("warning: sweeping expired drill objects: {e}");
            Vec::new()
        }
    };
    for s in swept {
        eprintln!("swept {} {}/{} ({})", s.kind, s.namespace, s.name, s.why);
    }
    Ok(())
}

/// Runs every drill of the scenarios; Ctrl-C and SIGTERM tear the running drills down.
pub async fn run(args: RunArgs) -> Result<i32, Failure> {
    let run_id = new_run_id();
    let mut prepared = Vec::new();
    let scenarios = load_all(&args.plan.files)?;
    let mut kube = None;
    if scenarios
        .iter()
        .any(|l| l.scenario.backend == BackendKind::Cnpg)
    {
        kube = Some(crate::k8s::client().await.map_err(Failure::error)?);
    }
    for loaded in scenarios {
        let id_prefix = format!("{run_id}-{}", prepared.len() + 1);
        prepared.push(prepare(loaded, &args.plan, &id_prefix, &mut kube).await?);
    }
    let live = LiveDrills::default();
    let uses_cnpg = prepared
        .iter()
        .any(|p| p.loaded.scenario.backend == BackendKind::Cnpg);
    if uses_cnpg && let Some(client) = &kube {
        cluster_ready(client, &prepared).await?;
    }
    let cluster = kube.as_ref().map(|c| (c, &live));
    let mut sink_problems: Vec<String> = Vec::new();
    let work = async {
        let mut reports = Vec::new();
        for p in prepared {
            let formats = p.loaded.scenario.report.formats.clone();
            let dir = args
                .report_dir
                .clone()
                .or_else(|| p.loaded.scenario.report.dir.clone())
                .unwrap_or_else(|| PathBuf::from("pgdrill-reports"))
                .join(format!("{}-{run_id}", p.loaded.scenario.name));
            let (report, problems) = run_scenario(p, &args, &run_id, cluster).await?;
            // A report that cannot be written is a failed sink, not a lost run.
            let written = write_reports(&dir, &report, &formats).map_err(|e| e.message);
            sink_problems.extend(problems);
            reports.push((report, written));
        }
        Ok::<_, Failure>(reports)
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::error(format!("installing the SIGTERM handler: {e}")))?;
    // A panic in a drill still tears the cluster objects down (local drills clean up as
    // their futures drop).
    let work = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work));
    let interrupted = tokio::select! {
        r = work => match r {
            Ok(r) => Ok(r?),
            Err(_) => Err("a drill panicked"),
        },
        _ = tokio::signal::ctrl_c() => Err("interrupted"),
        _ = sigterm.recv() => Err("terminated"),
    };
    let reports = match interrupted {
        Ok(reports) => reports,
        Err(why) => {
            // Local drills were torn down when their futures dropped; cluster objects need
            // the API.
            let mut problems = Vec::new();
            if let Some(client) = &kube {
                problems = live.teardown_all(client).await;
            }
            return Err(Failure::error(if problems.is_empty() {
                format!("{why}: running drills were torn down")
            } else {
                format!("{why}: teardown incomplete: {}", problems.join("; "))
            }));
        }
    };
    for (report, written) in &reports {
        match args.plan.output {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(report).expect("serializes")
            ),
            Output::Table => print!("{}", render::terminal(report)),
        }
        for w in written.iter().flatten() {
            eprintln!("report: {}", w.display());
        }
    }
    let (all, reports_written): (Vec<RunReport>, Vec<_>) = reports.into_iter().unzip();
    if let Some(state) = &args.on_reports {
        state.record(&all);
    }
    let sinks = args.publish.sinks();
    let mut failures: Vec<String> = reports_written
        .into_iter()
        .filter_map(Result::err)
        .map(|e| format!("reports: {e}"))
        .collect();
    failures.extend(sink_problems);
    failures.extend(crate::publish::publish(&sinks, &all).await);
    if let Some(name) = &args.history_configmap {
        let recorded = async {
            let client = match kube {
                Some(c) => c,
                None => crate::k8s::client().await?,
            };
            let ns = args
                .history_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string());
            crate::k8s::history::record(&client, &ns, name, &all).await
        };
        if let Err(e) = recorded.await {
            failures.push(format!("history: {e}"));
        }
    }
    for f in &failures {
        eprintln!("error: publishing failed: {f}");
    }
    // A failed sink is an error; it never hides a failed drill.
    Ok(match RunReport::exit_code(&all) {
        exit::OK if !failures.is_empty() => exit::ERROR,
        code => code,
    })
}
