//! One drill end to end: preflight decision → restore and recover (local or cnpg backend) →
//! verify → teardown, always ending in a report with a verdict.

mod gate;
mod provision;

use std::path::PathBuf;
use std::time::Instant;

use crate::backend::cnpg::ConnectMode;
use crate::baseline::Tables;
use crate::catalog::LineageCatalog;
use crate::k8s::LiveDrills;
use crate::outcome::{Cause, Failure, Stage, Verdict};
use crate::pg::verify::{VerifyRequest, verify};
use crate::preflight::Ready;
use crate::report::{DrillReport, Durations};
use crate::scenario::Loaded;
use crate::scenario::plan::DrillPlan;
use crate::scenario::types::{Scenario, TablesSpec};
use crate::source::ResolvedSource;
use crate::store::StoreSpec;

use provision::{Provisioned, provision};

#[derive(Clone)]
pub struct DrillOptions {
    pub work_root: PathBuf,
    /// Run even when preflight refuses (to see what PostgreSQL does at a gap).
    pub skip_preflight: bool,
    pub keep_on_failure: bool,
    /// Set for `backend: cnpg`.
    pub cnpg: Option<CnpgContext>,
}

/// What the `cnpg` backend needs besides the plan: the API client, the resolved source, the
/// registry of live drills (for signals), and how to connect.
#[derive(Clone)]
pub struct CnpgContext {
    pub client: kube::Client,
    pub source: ResolvedSource,
    pub live: LiveDrills,
    pub connect: ConnectMode,
}

fn report(plan: &DrillPlan) -> DrillReport {
    DrillReport {
        drill_id: plan.drill_id.clone(),
        lineage: plan.lineage.clone(),
        backup_id: None,
        target: plan.target_label.clone(),
        target_detail: plan.target.clone(),
        verdict: Verdict::Pass,
        cause: None,
        stage: None,
        evidence: None,
        expected: plan.expect.clone(),
        met_expectation: None,
        recovery: None,
        durations: Durations::default(),
        checks: Vec::new(),
        kept_at: None,
    }
}

/// A drill a signal (or a panic) stopped before it finished: pgdrill could not tell.
pub fn interrupted(plan: &DrillPlan, why: &str) -> DrillReport {
    let mut r = report(plan);
    r.verdict = Verdict::Error;
    r.cause = Some(Cause::Interrupted);
    r.evidence = Some(format!("{why} before the drill finished; it was torn down"));
    r
}

fn finish(mut r: DrillReport, started: Instant) -> DrillReport {
    r.durations.total = started.elapsed().as_secs_f64();
    r.met_expectation = r.expected.as_ref().map(|e| e.met_by(r.verdict, r.cause));
    r
}

/// The drill stops with `failure`: its verdict, stage, cause and evidence.
fn stop(mut r: DrillReport, failure: Failure) -> DrillReport {
    r.verdict = failure.verdict();
    r.stage = Some(failure.stage());
    (r.cause, r.evidence) = match failure {
        Failure::Fail {
            cause, evidence, ..
        } => (Some(cause), Some(evidence)),
        Failure::Error { message, .. } => (None, Some(message)),
    };
    r
}

pub async fn run_drill(
    loaded: &Loaded,
    store: &StoreSpec,
    catalog: &LineageCatalog,
    plan: &DrillPlan,
    opts: &DrillOptions,
) -> DrillReport {
    let started = Instant::now();
    let mut r = report(plan);
    let ready = gate::ready_or_refused(catalog, plan, opts.skip_preflight);
    r.durations.preflight = started.elapsed().as_secs_f64();
    let ready = match ready {
        Ok(ready) => ready,
        Err((backup_id, failure)) => {
            r.backup_id = backup_id;
            return finish(stop(r, failure), started);
        }
    };
    r.backup_id = Some(ready.backup_id.clone());
    let provision_started = Instant::now();
    let server = match provision(loaded, store, catalog, plan, &ready, opts).await {
        Ok(s) => s,
        Err(failure) => {
            let spent = provision_started.elapsed().as_secs_f64();
            r.durations.rto = spent;
            if failure.stage() == Stage::Restore {
                r.durations.restore = spent;
            }
            let keep = opts.keep_on_failure || loaded.scenario.keep_on_failure;
            let local_dir = opts.work_root.join(format!("pgdrill-{}", plan.drill_id));
            if keep && opts.cnpg.is_none() && local_dir.exists() {
                r.kept_at = Some(local_dir.display().to_string());
            }
            let failure = unless_store_gone(failure, store, &plan.lineage).await;
            return finish(stop(r, failure), started);
        }
    };
    let (restore, recovery) = server.times();
    r.durations.restore = restore.as_secs_f64();
    r.durations.recovery = recovery.as_secs_f64();
    r.durations.rto = r.durations.restore + r.durations.recovery;
    r.recovery = Some(server.end().clone());

    let verify_started = Instant::now();
    r = verify_server(r, loaded, catalog, plan, ready, &server).await;
    if r.verdict == Verdict::Fail
        && let Some(why) = store_gone(store, &plan.lineage).await
    {
        let evidence = r.evidence.take().unwrap_or_default();
        r = stop(r, store_error(Stage::Verify, &why, &evidence));
    }
    r = check_rto(r, &loaded.scenario);
    r.durations.verify = verify_started.elapsed().as_secs_f64();

    let teardown_started = Instant::now();
    let keep = opts.keep_on_failure || loaded.scenario.keep_on_failure;
    r = tear_down(r, server, keep).await;
    r.durations.teardown = teardown_started.elapsed().as_secs_f64();
    finish(r, started)
}

/// Why the store no longer answers for the lineage, if it does not.
async fn store_gone(store: &StoreSpec, lineage: &str) -> Option<String> {
    let opened = match store.open() {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    let reader = crate::store::CatalogReader::new(&opened);
    match tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.reachable(lineage),
    )
    .await
    {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("{}: no answer within 30s", store.destination_path)),
    }
}

fn store_error(stage: Stage, why: &str, evidence: &str) -> Failure {
    Failure::error(
        stage,
        format!(
            "the object store stopped answering during the drill ({why}), so what PostgreSQL saw proves nothing about the backup: {evidence}"
        ),
    )
}

/// A failure while restoring or recovering is the backup's only if the store still answers:
/// a store that went away mid-drill looks to PostgreSQL like missing WAL.
async fn unless_store_gone(failure: Failure, store: &StoreSpec, lineage: &str) -> Failure {
    let Failure::Fail {
        stage, evidence, ..
    } = &failure
    else {
        return failure;
    };
    match store_gone(store, lineage).await {
        Some(why) => store_error(*stage, &why, evidence),
        None => failure,
    }
}

/// Where recovery ended, the counts and the SQL checks, on the recovered server.
async fn verify_server(
    mut r: DrillReport,
    loaded: &Loaded,
    catalog: &LineageCatalog,
    plan: &DrillPlan,
    ready: Ready,
    server: &Provisioned,
) -> DrillReport {
    let scenario = &loaded.scenario;
    let tables = match &scenario.checks.tables {
        Some(TablesSpec::List(l)) => Tables::Only(l.clone()),
        _ => Tables::All,
    };
    let req = VerifyRequest {
        conn: server.conn(),
        database: scenario.checks.database.clone(),
        target: ready.target.clone(),
        ready,
        segment_size: catalog.segment_size,
        baseline: loaded.baseline.clone(),
        policy: plan.policy,
        tables,
        sql_checks: scenario.checks.sql.clone(),
        statement_timeout: scenario.timeouts.statement.0,
        pool: 4,
    };
    match verify(&req, server.end()).await {
        Ok(v) => {
            r.checks = v.checks;
            if let Some((cause, evidence)) = v.failure {
                r = stop(r, Failure::fail(Stage::Verify, cause, evidence));
            }
            r
        }
        Err(e) => stop(r, Failure::error(Stage::Verify, e)),
    }
}

/// A drill that passed but took longer than the scenario's `rto` fails.
fn check_rto(r: DrillReport, scenario: &Scenario) -> DrillReport {
    match &scenario.rto {
        Some(rto) if r.verdict == Verdict::Pass && r.durations.rto > rto.value.0.as_secs_f64() => {
            let evidence = format!(
                "restore and recovery took {:.1}s, objective {}s",
                r.durations.rto,
                rto.value.0.as_secs()
            );
            stop(
                r,
                Failure::fail(Stage::Recover, Cause::RtoExceeded, evidence),
            )
        }
        _ => r,
    }
}

/// Stops and removes the server, or keeps a failed one for a human. Something left behind
/// is never a pass.
async fn tear_down(mut r: DrillReport, server: Provisioned, keep: bool) -> DrillReport {
    if r.verdict == Verdict::Fail && keep {
        r.kept_at = Some(server.keep());
        return r;
    }
    if let Err(e) = server.teardown().await {
        let message = match r.evidence.take() {
            Some(ev) => format!("{ev}; {e}"),
            None => e,
        };
        if r.verdict == Verdict::Pass {
            r = stop(r, Failure::error(Stage::Teardown, message));
        } else {
            r.evidence = Some(message);
        }
    }
    r
}

/// Default parent for drill directories.
pub fn default_work_root() -> PathBuf {
    std::env::temp_dir()
}
