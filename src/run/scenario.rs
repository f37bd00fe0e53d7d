//! One scenario's drills, `concurrency` at a time, into its report.

use futures::StreamExt;

use super::RunOptions;
use super::journal::{Head, Journal};
use super::prepare::Prepared;
use super::progress::DrillLine;
use super::reports;
use crate::drill::{CnpgContext, DrillOptions, default_work_root, run_drill};
use crate::k8s::LiveDrills;
use crate::report::{LineageFacts, RunReport};
use crate::scenario::types::BackendKind;

/// The cluster a run talks to, when it has one.
#[derive(Clone, Copy)]
pub struct Cluster<'a> {
    pub client: &'a kube::Client,
    pub live: &'a LiveDrills,
}

fn drill_options(p: &Prepared, opts: &RunOptions, cluster: Option<Cluster>) -> DrillOptions {
    let cnpg = match (p.loaded.scenario.backend, cluster) {
        (BackendKind::Cnpg, Some(c)) => Some(CnpgContext {
            client: c.client.clone(),
            source: p.source.clone(),
            live: c.live.clone(),
            connect: opts.connect,
        }),
        _ => None,
    };
    DrillOptions {
        work_root: opts.work_dir.clone().unwrap_or_else(default_work_root),
        skip_preflight: opts.skip_preflight,
        keep_on_failure: opts.keep_on_failure,
        cnpg,
    }
}

fn head(p: &Prepared, run_id: &str, backend: &'static str) -> Head {
    Head {
        run_id: run_id.to_string(),
        scenario: p.loaded.scenario.name.clone(),
        scenario_file: p.loaded.path.clone(),
        backend,
        destination_path: p.store.destination_path.clone(),
        started_at: jiff::Timestamp::now(),
        lineages: p.catalogs.iter().map(LineageFacts::from_catalog).collect(),
    }
}

/// Runs the drills, `concurrency` at a time, each recorded in the journal as it finishes;
/// then the report is written (and the source Cluster gets an Event).
pub async fn run_scenario(
    p: Prepared,
    opts: &RunOptions,
    run_id: &str,
    cluster: Option<Cluster<'_>>,
    journal: &Journal,
) {
    let drill_opts = drill_options(&p, opts, cluster);
    let backend = if drill_opts.cnpg.is_some() {
        "cnpg"
    } else {
        "local"
    };
    let head = head(&p, run_id, backend);
    let (formats, dir) = reports::destination(&p, opts, run_id);
    journal.open(head.clone(), dir, formats, &p.drills);
    let total = p.drills.len();
    let mut drills: Vec<_> = futures::stream::iter(p.drills.iter().enumerate())
        .map(|(i, d)| {
            let (p, drill_opts) = (&p, &drill_opts);
            async move {
                let line = DrillLine {
                    n: i + 1,
                    total,
                    plan: d,
                };
                line.starting(drill_opts.skip_preflight);
                let work = run_drill(&p.loaded, &p.source.spec, p.catalog_of(d), d, drill_opts);
                let r = line.while_running(work).await;
                line.finished(&r);
                journal.record(i, &r);
                (i, r)
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    drills.sort_by_key(|(i, _)| *i);
    let report = head.report(drills.into_iter().map(|(_, r)| r).collect());
    let problems = post_event(&p, &report, cluster).await;
    journal.close(report, problems);
}

/// The source Cluster shows how its last drill went (`kubectl describe cluster`).
async fn post_event(p: &Prepared, report: &RunReport, cluster: Option<Cluster<'_>>) -> Vec<String> {
    let source = p
        .source
        .cluster
        .as_ref()
        .zip(p.loaded.scenario.source.cluster.as_ref());
    let (Some(c), Some((cluster_source, cluster_ref))) = (cluster, source) else {
        return Vec::new();
    };
    let posted = crate::k8s::history::post_cluster_event(
        c.client,
        report,
        &cluster_source.namespace,
        &cluster_ref.name,
    )
    .await;
    posted.err().into_iter().collect()
}
