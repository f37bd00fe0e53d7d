//! `pgdrill schedule`: run scenarios on their `schedule:`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::Output;
use super::drills::{PublishArgs, render_finished};
use crate::exit::{self, Failure};
use crate::run::{HistoryConfigMap, RunOptions, Runner};
use crate::scenario::load;
use crate::scenario::types::{cron_schedule, parse_duration};
use crate::schedule::{Entry, Event, TokioClock, run_loop, upcoming};
use crate::status_server::SchedulerState;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Scenario files, or folders of `*.yaml` scenarios; each needs a `schedule:`.
    #[arg(short = 'f', long = "file", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the next fire times and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// How many fire times --dry-run prints.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Scenario runs at once, across all scenarios.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Delay each fire by up to this much (30s, 5m…), to spread load.
    #[arg(long, default_value = "0s")]
    pub jitter: String,
    /// Where reports go (as for `run`).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Parent folder of the local backend's scratch data directories.
    #[arg(long, env = "PGDRILL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Append every run's drills to this ConfigMap (as `run --history-configmap`).
    #[arg(long, value_name = "NAME", env = "PGDRILL_HISTORY_CONFIGMAP")]
    pub history_configmap: Option<String>,
    /// Namespace of the history ConfigMap (default: the kubeconfig's or the pod's namespace).
    #[arg(long, value_name = "NS", requires = "history_configmap")]
    pub history_namespace: Option<String>,
    /// Serve /healthz and /metrics (each scenario's last run, next fire times) on this address,
    /// such as 0.0.0.0:9187.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub publish: PublishArgs,
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(Failure::usage("no scenario files found"));
    }
    Ok(files)
}

/// Every scenario with its cron schedule; a file without `schedule:` is a usage error.
fn entries(args: &ScheduleArgs) -> Result<Vec<Entry>, Failure> {
    let jitter =
        parse_duration(&args.jitter).map_err(|e| Failure::usage(format!("--jitter: {e}")))?;
    let mut entries = Vec::new();
    for file in scenario_files(&args.paths)? {
        let loaded = load(&file).map_err(Failure::usage)?;
        let Some(cron) = &loaded.scenario.schedule else {
            return Err(Failure::usage(format!(
                "{}: no schedule: to run it on",
                file.display()
            )));
        };
        let schedule = cron_schedule(&cron.value.0).map_err(Failure::usage)?;
        entries.push(Entry {
            name: file.display().to_string(),
            schedule,
            jitter,
        });
    }
    Ok(entries)
}

fn print_upcoming(entries: &[Entry], count: usize, prefix: &str) {
    for (at, name) in upcoming(entries, chrono::Utc::now(), count) {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if prefix.is_empty() {
            println!("{at}  {name}");
        } else {
            eprintln!("{prefix}{name} at {at}");
        }
    }
}

pub async fn schedule(args: ScheduleArgs) -> Result<i32, Failure> {
    let entries = entries(&args)?;
    if args.dry_run {
        print_upcoming(&entries, args.count, "");
        return Ok(exit::OK);
    }
    let state = crate::status_server::SchedulerState::default();
    for e in &entries {
        if let Some(at) = e.schedule.after(&chrono::Utc::now()).next() {
            state.set_next(&e.name, crate::time::from_chrono(at));
        }
    }
    let _server = match args.listen {
        Some(addr) => {
            let (bound, task) = crate::status_server::serve(addr, state.clone())
                .await
                .map_err(Failure::usage)?;
            eprintln!("serving /healthz and /metrics on http://{bound}");
            Some(task)
        }
        None => None,
    };
    let runner = runner(&args, state.clone())?;
    let on_event = on_event(&entries, state);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if let Err(e) = crate::run::signals::stop_requested().await {
            eprintln!("warning: {e}");
            return;
        }
        eprintln!("stopping: running drills finish their teardown");
        let _ = tx.send(true);
    });
    print_upcoming(&entries, entries.len(), "next: ");
    let clock = Arc::new(TokioClock::starting_at(chrono::Utc::now()));
    run_loop(entries, clock, args.concurrency, runner, rx, on_event).await;
    Ok(exit::OK)
}

type Fire = Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What a fire does: run the scenario, print its results, and keep them for /metrics.
fn runner(args: &ScheduleArgs, state: SchedulerState) -> Result<Fire, Failure> {
    let runs = Runner::start(RunOptions {
        report_dir: args.report_dir.clone(),
        concurrency: 1,
        work_dir: args.work_dir.clone(),
        sinks: args.publish.sinks()?,
        history: args.history_configmap.clone().map(|name| HistoryConfigMap {
            name,
            namespace: args.history_namespace.clone(),
        }),
        ..Default::default()
    })
    .map_err(Failure::error)?;
    Ok(Arc::new(move |file| {
        let runs = runs.clone();
        let state = state.clone();
        Box::pin(async move {
            match scheduled_run(&file, &runs).await {
                Ok(finished) => {
                    render_finished(&finished, Output::Table);
                    state.record(&finished.reports);
                    eprintln!("{file}: finished, exit {}", finished.exit_code());
                }
                Err(e) => eprintln!("{file}: {e}"),
            }
        })
    }))
}

/// Logs the scheduler's events and keeps each scenario's next fire time for /metrics.
fn on_event(entries: &[Entry], state: SchedulerState) -> Arc<dyn Fn(Event) + Send + Sync> {
    let schedules: Vec<(String, cron::Schedule)> = entries
        .iter()
        .map(|e| (e.name.clone(), e.schedule.clone()))
        .collect();
    Arc::new(move |e| match e {
        Event::Started(n) => {
            eprintln!("{n}: starting");
            if let Some((_, sched)) = schedules.iter().find(|(name, _)| *name == n)
                && let Some(at) = sched.after(&chrono::Utc::now()).next()
            {
                state.set_next(&n, crate::time::from_chrono(at));
            }
        }
        Event::Finished(_) => {}
        Event::Skipped(n) => eprintln!("{n}: skipped, the previous run is still going"),
    })
}

/// One fire: the scenario is read afresh, so an edited file takes effect at its next run.
async fn scheduled_run(file: &str, runs: &Runner) -> Result<crate::run::Finished, Failure> {
    let loaded = load(std::path::Path::new(file)).map_err(Failure::usage)?;
    runs.run(loaded).await
}
