//! Restore and recovery with the scenario's backend, and the server it leaves.

use std::time::Duration;

use super::DrillOptions;
use crate::backend::cnpg::{CnpgRequest, CnpgServer, secret_copies};
use crate::backend::local::{LocalRequest, ScratchServer, recover};
use crate::catalog::LineageCatalog;
use crate::outcome::{Failure, RecoveryEnd, Stage};
use crate::pg::PgConn;
use crate::preflight::Ready;
use crate::scenario::Loaded;
use crate::scenario::plan::DrillPlan;
use crate::store::StoreSpec;

/// A recovered server, whichever backend made it.
pub enum Provisioned {
    Local(Box<ScratchServer>),
    Cnpg(Box<CnpgServer>),
}

impl Provisioned {
    pub fn conn(&self) -> PgConn {
        match self {
            Provisioned::Local(s) => PgConn::local(&s.dir, s.port),
            Provisioned::Cnpg(s) => s.conn.clone(),
        }
    }

    pub fn end(&self) -> &RecoveryEnd {
        match self {
            Provisioned::Local(s) => &s.end,
            Provisioned::Cnpg(s) => &s.end,
        }
    }

    /// (restore, recovery); the cnpg backend counts its whole bootstrap as restore.
    pub fn times(&self) -> (Duration, Duration) {
        match self {
            Provisioned::Local(s) => (s.restore_time, s.recovery_time),
            Provisioned::Cnpg(s) => (s.ready_time, Duration::ZERO),
        }
    }

    pub fn keep(self) -> String {
        match self {
            Provisioned::Local(s) => (*s).keep().display().to_string(),
            Provisioned::Cnpg(s) => (*s).keep(),
        }
    }

    pub async fn teardown(self) -> Result<(), String> {
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
pub async fn provision(
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
            listen_on_loopback: false,
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
