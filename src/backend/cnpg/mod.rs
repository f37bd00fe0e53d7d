//! The `cnpg` backend: a scratch CloudNativePG recovery cluster. Create the namespace (or use
//! the fixed one), copy the credential Secrets, apply the ObjectStore and the Cluster
//! server-side, watch the Cluster until `Ready` or a decisive failure, read the full-recovery
//! job's log, and connect for verification through the `-rw` Service or a port-forward.

mod apply;
mod connect;
mod diagnose;
pub mod joblog;
mod observe;
pub mod status;
mod wait;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Failure;
use super::pglog::RecoveryEnd;
use crate::cnpg::manifest::Manifests;
use crate::k8s::forward::PortForward;
use crate::k8s::{DrillObjects, LiveDrills};
use crate::pg::PgConn;

/// How verification reaches the restored primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectMode {
    /// The `-rw` Service inside a cluster, a port-forward outside.
    #[default]
    Auto,
    /// Through the API server to the primary pod (a laptop, a CI runner).
    PortForward,
    /// `<cluster>-rw.<namespace>.svc:5432` (pgdrill runs in a pod).
    Service,
}

/// A Secret to create in the drill's namespace: its name there and its keys.
#[derive(Clone)]
pub struct SecretCopy {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCopy")
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Clone)]
pub struct CnpgRequest {
    pub client: kube::Client,
    pub manifests: Manifests,
    pub secrets: Vec<SecretCopy>,
    pub drill_id: String,
    /// From apply to `Ready`.
    pub deadline: Duration,
    pub connect: ConnectMode,
    pub superuser: bool,
    pub keep_on_failure: bool,
    pub live: LiveDrills,
    /// Progress lines (phase changes) go here.
    pub progress: fn(&str, &str),
}

/// A ready recovery cluster and the way to its primary. `teardown` deletes it all.
pub struct CnpgServer {
    pub conn: PgConn,
    pub end: RecoveryEnd,
    pub ready_time: Duration,
    pub objects: DrillObjects,
    client: kube::Client,
    live: LiveDrills,
    _forward: Option<PortForward>,
}

impl CnpgServer {
    pub async fn teardown(self) -> Result<(), String> {
        let CnpgServer {
            objects,
            client,
            live,
            _forward,
            ..
        } = self;
        drop(_forward);
        let result = objects.delete(&client).await;
        if result.is_ok() {
            live.remove(&objects.drill_id);
        }
        result
    }

    /// Leaves everything in place for a human; says where.
    pub fn keep(self) -> String {
        self.live.remove(&self.objects.drill_id);
        format!(
            "Cluster {}/{}",
            self.objects.namespace, self.objects.cluster
        )
    }
}

/// The objects a drill creates, known before anything is created.
pub fn drill_objects(req: &CnpgRequest) -> DrillObjects {
    let m = &req.manifests;
    DrillObjects {
        drill_id: req.drill_id.clone(),
        namespace: m.cluster.metadata.namespace.clone().unwrap_or_default(),
        scratch_namespace: m.namespace.is_some(),
        cluster: m.cluster.metadata.name.clone().unwrap_or_default(),
        object_store: m
            .object_store
            .as_ref()
            .and_then(|o| o.metadata.name.clone()),
        secrets: req.secrets.iter().map(|s| s.name.clone()).collect(),
    }
}

/// Everything up to a Ready cluster and a way to reach it; on failure, the objects are gone
/// (or kept for a human with keepOnFailure).
pub async fn recover(req: &CnpgRequest) -> Result<CnpgServer, Failure> {
    let objects = drill_objects(req);
    apply::check_namespace_is_new(req, &objects).await?;
    req.live.add(&objects);
    match ready_server(req, &objects).await {
        Ok(server) => Ok(server),
        Err(f) => Err(after_failure(req, &objects, f).await),
    }
}

/// Apply, wait for Ready, read where recovery ended, connect.
async fn ready_server(req: &CnpgRequest, objects: &DrillObjects) -> Result<CnpgServer, Failure> {
    let started = Instant::now();
    let rv = apply::create_objects(req, objects).await?;
    wait::wait_ready(req, objects, rv).await?;
    let ready_time = started.elapsed();
    let end = observe::recovery_end(&req.client, &objects.namespace, &objects.cluster).await?;
    let (conn, forward) = connect::connect(req, objects).await?;
    Ok(CnpgServer {
        conn,
        end,
        ready_time,
        objects: objects.clone(),
        client: req.client.clone(),
        live: req.live.clone(),
        _forward: forward,
    })
}

/// Deletes the objects (a deletion error joins the failure's text), or keeps them for a human
/// when the backup failed and keepOnFailure asks so.
async fn after_failure(req: &CnpgRequest, objects: &DrillObjects, mut f: Failure) -> Failure {
    if req.keep_on_failure && matches!(f, Failure::Fail { .. }) {
        req.live.remove(&objects.drill_id);
        if let Failure::Fail { evidence, .. } = &mut f {
            evidence.push_str(&format!(
                " (kept: Cluster {}/{})",
                objects.namespace, objects.cluster
            ));
        }
        return f;
    }
    match objects.delete(&req.client).await {
        Ok(()) => req.live.remove(&objects.drill_id),
        Err(e) => match &mut f {
            Failure::Fail { evidence, .. } => evidence.push_str(&format!("; {e}")),
            Failure::Error { message, .. } => message.push_str(&format!("; {e}")),
        },
    }
    f
}

/// The Secrets a drill needs in its namespace, under the names the manifests use.
pub fn secret_copies(
    renames: &[(String, String)],
    values: &crate::store::SecretValues,
) -> Vec<SecretCopy> {
    renames
        .iter()
        .map(|(source, copy)| SecretCopy {
            name: copy.clone(),
            data: values.get(source).cloned().unwrap_or_default(),
        })
        .collect()
}
