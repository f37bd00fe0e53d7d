//! A run: the scenarios' drills end to end, for `pgdrill run`, `schedule` and `demo` alike.
//! Reads every archive and plans first, then drills scenario by scenario, writes the reports,
//! publishes them, and tears running drills down on Ctrl-C, SIGTERM or a panic.

mod cluster;
mod journal;
pub mod prepare;
mod progress;
mod reports;
mod runner;
mod scenario;
pub mod signals;

use std::path::PathBuf;

use crate::backend::cnpg::ConnectMode;
use crate::exit::{self, Failure};
use crate::k8s::LiveDrills;
use crate::publish::Sinks;
use crate::report::RunReport;
use crate::scenario::Loaded;
use crate::scenario::types::BackendKind;

use journal::Journal;
pub use prepare::{Prepared, Selection, new_run_id, prepare};
pub use runner::Runner;
use scenario::{Cluster, run_scenario};

/// How to run (the library's own options; the CLI fills them from flags).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub selection: Selection,
    /// Parent of each scenario's report folder (default: the scenario's report.dir, else
    /// `./pgdrill-reports`).
    pub report_dir: Option<PathBuf>,
    pub concurrency: usize,
    pub skip_preflight: bool,
    pub keep_on_failure: bool,
    pub connect: ConnectMode,
    /// Parent folder of the scratch data directories.
    pub work_dir: Option<PathBuf>,
    pub sinks: Sinks,
    /// Append every drill to this ConfigMap's history.
    pub history: Option<HistoryConfigMap>,
}

/// A ConfigMap that keeps run history (`pgdrill history` reads it).
#[derive(Clone, Debug)]
pub struct HistoryConfigMap {
    pub name: String,
    /// Default: the kubeconfig's or the pod's namespace.
    pub namespace: Option<String>,
}

/// What a run produced: one report per scenario, where each was written, and every sink that
/// failed.
#[derive(Debug, Default)]
pub struct Finished {
    pub reports: Vec<RunReport>,
    pub written: Vec<Vec<PathBuf>>,
    pub problems: Vec<String>,
    /// Why the run stopped early (a signal, a panic): its unfinished drills are `error`.
    pub interrupted: Option<String>,
}

impl Finished {
    /// 0 all pass, 1 any fail, 2 any error and no fail; a failed sink is an error and never
    /// hides a failed drill.
    pub fn exit_code(&self) -> i32 {
        match RunReport::exit_code(&self.reports) {
            exit::OK if !self.problems.is_empty() || self.interrupted.is_some() => exit::ERROR,
            code => code,
        }
    }
}

/// Runs every drill of the scenarios.
pub async fn run(scenarios: Vec<Loaded>, opts: &RunOptions) -> Result<Finished, Failure> {
    let run_id = new_run_id();
    let uses_cnpg = scenarios
        .iter()
        .any(|l| l.scenario.backend == BackendKind::Cnpg);
    let mut kube = None;
    if uses_cnpg {
        kube = Some(crate::k8s::client().await.map_err(Failure::error)?);
    }
    let mut prepared = Vec::new();
    for loaded in scenarios {
        let id_prefix = format!("{run_id}-{}", prepared.len() + 1);
        prepared.push(prepare(loaded, &opts.selection, &id_prefix, &mut kube).await?);
    }
    if uses_cnpg && let Some(client) = &kube {
        cluster::ready(client, &prepared).await?;
    }
    let live = LiveDrills::default();
    let cluster = kube.as_ref().map(|client| Cluster {
        client,
        live: &live,
    });
    let mut finished = drill_or_stop(prepared, opts, &run_id, cluster).await;
    finished
        .problems
        .extend(reports::publish(opts, &finished.reports, kube).await);
    Ok(finished)
}

/// Drills every scenario unless a signal or a panic comes first; then the running drills are
/// torn down (local ones as their futures drop, cluster objects through the API) and the
/// journal still writes every report.
async fn drill_or_stop(
    prepared: Vec<Prepared>,
    opts: &RunOptions,
    run_id: &str,
    cluster: Option<Cluster<'_>>,
) -> Finished {
    let journal = Journal::default();
    let work = async {
        for p in prepared {
            run_scenario(p, opts, run_id, cluster, &journal).await;
        }
    };
    let work = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work));
    let why = tokio::select! {
        r = work => match r {
            Ok(()) => return journal.into_finished(),
            Err(_) => "a drill panicked".to_string(),
        },
        stop = signals::stop_requested() => stop.map(str::to_string).unwrap_or_else(|e| e),
    };
    let problems = match cluster {
        Some(c) => c.live.teardown_all(c.client).await,
        None => Vec::new(),
    };
    let mut finished = journal.interrupt(&why);
    finished
        .problems
        .extend(problems.into_iter().map(|p| format!("teardown: {p}")));
    finished
}
