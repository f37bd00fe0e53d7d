//! One drill end to end: preflight decision → restore and recover (local or cnpg backend) →
//! verify → teardown, always ending in a report with a verdict.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::cnpg::{CnpgRequest, CnpgServer, ConnectMode, secret_copies};
use crate::backend::local::{LocalRequest, ScratchServer, recover};
use crate::baseline::Tables;
use crate::catalog::LineageCatalog;
use crate::k8s::LiveDrills;
use crate::outcome::{Cause, Failure, RecoveryEnd, Stage, Verdict};
use crate::pg::PgConn;
use crate::pg::verify::{VerifyRequest, verify};
use crate::preflight::{Preflight, Ready, Refusal, choose_backup, last_present_on_chain};
use crate::report::{DrillReport, Durations};
use crate::scenario::Loaded;
use crate::scenario::plan::DrillPlan;
use crate::scenario::types::TablesSpec;
use crate::source::ResolvedSource;
use crate::store::StoreSpec;

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

/// A recovered server, whichever backend made it.
enum Provisioned {
    Local(Box<ScratchServer>),
    Cnpg(Box<CnpgServer>),
}

impl Provisioned {
    fn conn(&self) -> PgConn {
        match self {
            Provisioned::Local(s) => PgConn::local(s.port),
            Provisioned::Cnpg(s) => s.conn.clone(),
        }
    }

    fn end(&self) -> &RecoveryEnd {
        match self {
            Provisioned::Local(s) => &s.end,
            Provisioned::Cnpg(s) => &s.end,
        }
    }

    /// (restore, recovery); the cnpg backend counts its whole bootstrap as restore.
    fn times(&self) -> (Duration, Duration) {
        match self {
            Provisioned::Local(s) => (s.restore_time, s.recovery_time),
            Provisioned::Cnpg(s) => (s.ready_time, Duration::ZERO),
        }
    }

    fn keep(self) -> String {
        match self {
            Provisioned::Local(s) => (*s).keep().display().to_string(),
            Provisioned::Cnpg(s) => (*s).keep(),
        }
    }

    async fn teardown(self) -> Result<(), String> {
        match self {
            Provisioned::Local(mut s) => {
                s.teardown();
                Ok(())
            }
            Provisioned::Cnpg(s) => (*s).teardown().await,
        }
    }
}

fn phase_progress(phase: &str, reason: &str) {
    eprintln!(
        "      CNPG: {phase}{}",
        if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        }
    );
}

/// Restores and recovers with the scenario's backend.
async fn provision(
    loaded: &Loaded,
    store: &StoreSpec,
    catalog: &LineageCatalog,
    plan: &DrillPlan,
    ready: &Ready,
    opts: &DrillOptions,
) -> Result<Provisioned, Failure> {
    let scenario = &loaded.scenario;
    let keep_on_failure = opts.keep_on_failure || scenario.keep_on_failure;
    let Some(ctx) = &opts.cnpg else {
        let request = LocalRequest {
            store: store.clone(),
            server_name: plan.lineage.clone(),
            backup_id: ready.backup_id.clone(),
            target: ready.target.unpinned(),
            work_root: opts.work_root.clone(),
            drill_id: plan.drill_id.clone(),
            restore_timeout: scenario.timeouts.restore.0,
            recovery_timeout: scenario.timeouts.recovery.0,
            keep_on_failure,
        };
        return recover(&request)
            .await
            .map(|s| Provisioned::Local(Box::new(s)));
    };
    let plan_error = |message: String| Failure::Error {
        stage: Stage::Plan,
        message,
    };
    let spec = crate::cnpg::plan::drill_spec(
        loaded,
        &ctx.source.block,
        ctx.source.cluster.as_ref(),
        catalog,
        plan,
        ready,
        jiff::Timestamp::now(),
    )
    .map_err(plan_error)?;
    let manifests = crate::cnpg::plan::safe_manifests(&spec).map_err(plan_error)?;
    let values = ctx.source.spec.secret_values.clone().unwrap_or_default();
    let missing: Vec<&String> = manifests
        .secret_copies
        .iter()
        .map(|(source, _)| source)
        .filter(|s| !values.contains_key(*s))
        .collect();
    if !missing.is_empty() {
        return Err(plan_error(format!(
            "the store references Secret(s) {missing:?}, which pgdrill could not read: set source.secretsNamespace (or use source.cluster)"
        )));
    }
    let request = CnpgRequest {
        client: ctx.client.clone(),
        secrets: secret_copies(&manifests.secret_copies, &values),
        manifests,
        drill_id: plan.drill_id.clone(),
        deadline: scenario.timeouts.restore.0 + scenario.timeouts.recovery.0,
        connect: ctx.connect,
        superuser: scenario.cnpg.enable_superuser_access,
        keep_on_failure,
        live: ctx.live.clone(),
        progress: phase_progress,
    };
    crate::backend::cnpg::recover(&request)
        .await
        .map(|s| Provisioned::Cnpg(Box::new(s)))
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

fn finish(mut r: DrillReport, started: Instant) -> DrillReport {
    r.durations.total = started.elapsed().as_secs_f64();
    r.met_expectation = r.expected.as_ref().map(|e| e.met_by(r.verdict, r.cause));
    r
}

fn stop(
    mut r: DrillReport,
    verdict: Verdict,
    stage: Stage,
    cause: Option<Cause>,
    evidence: String,
) -> DrillReport {
    r.verdict = verdict;
    r.stage = Some(stage);
    r.cause = cause;
    r.evidence = Some(evidence);
    r
}

/// What replay must reach when preflight is skipped: the newest segment of the chain.
fn ready_without_preflight(catalog: &LineageCatalog, plan: &DrillPlan) -> Result<Ready, Refusal> {
    let backup = choose_backup(catalog, &plan.target)?;
    let begin = backup.begin_segment().ok_or_else(|| Refusal {
        cause: Cause::NoCompletedBackup,
        message: format!("backup {} has no begin_wal", backup.backup_id),
        missing_wal: None,
        backup_id: Some(backup.backup_id.clone()),
    })?;
    let archive = &catalog.archive;
    let legs = archive.chain(begin, archive.latest_descendant(begin));
    let last =
        last_present_on_chain(catalog, &legs).map(|(leg, segno)| (legs[leg].timeline, segno));
    Ok(Ready {
        backup_id: backup.backup_id.clone(),
        target: plan.target.pin(&backup.backup_id),
        backup_end_time: backup.end_time,
        timelines: legs.iter().map(|l| l.timeline).collect(),
        expected_last_wal: last.map(|(tl, s)| archive.segment(tl, s).to_string()),
        expected_end_lsn: last.map(|(_, s)| archive.segment_end(s)),
        notes: vec!["preflight skipped".into()],
    })
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
    let scenario = &loaded.scenario;
    let ready = match (&plan.preflight, opts.skip_preflight) {
        (Preflight::Ready(ready), _) => ready.clone(),
        (Preflight::Refused(refusal), false) => {
            r.backup_id = refusal.backup_id.clone();
            let evidence = match &refusal.missing_wal {
                Some(w) => format!("{} (missing {w})", refusal.message),
                None => refusal.message.clone(),
            };
            r.durations.preflight = started.elapsed().as_secs_f64();
            return finish(
                stop(
                    r,
                    Verdict::Fail,
                    Stage::Preflight,
                    Some(refusal.cause),
                    evidence,
                ),
                started,
            );
        }
        (Preflight::Refused(_), true) => match ready_without_preflight(catalog, plan) {
            Ok(ready) => ready,
            Err(refusal) => {
                return finish(
                    stop(
                        r,
                        Verdict::Fail,
                        Stage::Preflight,
                        Some(refusal.cause),
                        refusal.message,
                    ),
                    started,
                );
            }
        },
    };
    r.backup_id = Some(ready.backup_id.clone());
    r.durations.preflight = started.elapsed().as_secs_f64();

    let target = ready.target.clone();
    let server = match provision(loaded, store, catalog, plan, &ready, opts).await {
        Ok(s) => s,
        Err(Failure::Fail {
            stage,
            cause,
            evidence,
        }) => {
            return finish(
                stop(r, Verdict::Fail, stage, Some(cause), evidence),
                started,
            );
        }
        Err(Failure::Error { stage, message }) => {
            return finish(stop(r, Verdict::Error, stage, None, message), started);
        }
    };
    let (restore, recovery) = server.times();
    r.durations.restore = restore.as_secs_f64();
    r.durations.recovery = recovery.as_secs_f64();
    r.durations.rto = r.durations.restore + r.durations.recovery;
    r.recovery = Some(server.end().clone());

    let verify_started = Instant::now();
    let tables = match &scenario.checks.tables {
        Some(TablesSpec::List(l)) => Tables::Only(l.clone()),
        _ => Tables::All,
    };
    let req = VerifyRequest {
        conn: server.conn(),
        database: scenario.checks.database.clone(),
        target: target.clone(),
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
                r = stop(r, Verdict::Fail, Stage::Verify, Some(cause), evidence);
            }
        }
        Err(e) => r = stop(r, Verdict::Error, Stage::Verify, None, e),
    }
    if r.verdict == Verdict::Pass
        && let Some(rto) = &scenario.rto
        && r.durations.rto > rto.value.0.as_secs_f64()
    {
        let evidence = format!(
            "restore and recovery took {:.1}s, objective {}s",
            r.durations.rto,
            rto.value.0.as_secs()
        );
        r = stop(
            r,
            Verdict::Fail,
            Stage::Recover,
            Some(Cause::RtoExceeded),
            evidence,
        );
    }
    r.durations.verify = verify_started.elapsed().as_secs_f64();

    let teardown_started = Instant::now();
    if r.verdict == Verdict::Fail && (opts.keep_on_failure || scenario.keep_on_failure) {
        r.kept_at = Some(server.keep());
    } else if let Err(e) = server.teardown().await {
        // Something may be left behind: never a pass.
        let message = match r.evidence.take() {
            Some(ev) => format!("{ev}; {e}"),
            None => e,
        };
        if r.verdict == Verdict::Pass {
            r = stop(r, Verdict::Error, Stage::Teardown, None, message);
        } else {
            r.evidence = Some(message);
        }
    }
    r.durations.teardown = teardown_started.elapsed().as_secs_f64();
    finish(r, started)
}

/// Default parent for drill directories.
pub fn default_work_root() -> PathBuf {
    std::env::temp_dir()
}
