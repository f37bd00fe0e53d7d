//! The `cnpg` backend: a scratch CloudNativePG recovery cluster. Create the namespace (or use
//! the fixed one), copy the credential Secrets, apply the ObjectStore and the Cluster
//! server-side, watch the Cluster until `Ready` or a decisive failure, read the full-recovery
//! job's log, and connect for verification through the `-rw` Service or a port-forward.

pub mod joblog;
pub mod status;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::WatchParams;
use kube::api::{Api, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::core::WatchEvent;

use self::status::Progress;
use super::pglog::RecoveryEnd;
use super::{Failure, Stage};
use crate::cnpg::manifest::{DRILL_ID_LABEL, MANAGED_BY, Manifests};
use crate::k8s::forward::PortForward;
use crate::k8s::{DrillObjects, FIELD_MANAGER, LiveDrills, clusters, describe, object_stores};
use crate::verify::PgConn;

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
#[derive(Clone, Debug)]
pub struct SecretCopy {
    pub name: String,
    pub data: BTreeMap<String, String>,
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

fn error(stage: Stage, message: impl Into<String>) -> Failure {
    Failure::Error {
        stage,
        message: message.into(),
    }
}

fn fail(stage: Stage, cause: &str, evidence: impl Into<String>) -> Failure {
    Failure::Fail {
        stage,
        cause: cause.to_string(),
        evidence: evidence.into(),
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

fn labels(req: &CnpgRequest) -> BTreeMap<String, String> {
    req.manifests.cluster.metadata.labels.clone()
}

async fn create_objects(req: &CnpgRequest, objects: &DrillObjects) -> Result<String, Failure> {
    let client = &req.client;
    let ns = objects.namespace.as_str();
    if let Some(manifest) = &req.manifests.namespace {
        let api: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: manifest.metadata.name.clone(),
                labels: Some(manifest.metadata.labels.clone()),
                annotations: Some(manifest.metadata.annotations.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| {
                error(
                    Stage::Restore,
                    format!("creating namespace {ns}: {}", describe(&e)),
                )
            })?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for copy in &req.secrets {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(copy.name.clone()),
                labels: Some(labels(req)),
                annotations: Some(req.manifests.cluster.metadata.annotations.clone()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                copy.data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|e| {
                error(
                    Stage::Restore,
                    format!("creating Secret {ns}/{}: {}", copy.name, describe(&e)),
                )
            })?;
    }
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(os) = &req.manifests.object_store {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &object_stores());
        let name = os.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &apply, &Patch::Apply(os))
            .await
            .map_err(|e| {
                error(
                    Stage::Restore,
                    format!("applying ObjectStore {ns}/{name}: {}", describe(&e)),
                )
            })?;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &clusters());
    let applied = api
        .patch(
            &objects.cluster,
            &apply,
            &Patch::Apply(&req.manifests.cluster),
        )
        .await
        .map_err(|e| {
            error(
                Stage::Restore,
                format!(
                    "applying Cluster {ns}/{}: {}",
                    objects.cluster,
                    describe(&e)
                ),
            )
        })?;
    Ok(applied.metadata.resource_version.unwrap_or_default())
}

/// The full-recovery job pods of a cluster, oldest first, with their phase.
async fn recovery_pods(client: &kube::Client, ns: &str, cluster: &str) -> Vec<(String, String)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "cnpg.io/cluster={cluster},cnpg.io/jobRole=full-recovery"
    ));
    let mut pods: Vec<_> = api
        .list(&lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                p.metadata.creation_timestamp.clone(),
                p.metadata.name.clone().unwrap_or_default(),
                p.status.and_then(|s| s.phase).unwrap_or_default(),
            )
        })
        .collect();
    pods.sort();
    pods.into_iter().map(|(_, n, p)| (n, p)).collect()
}

async fn pod_log(client: &kube::Client, ns: &str, pod: &str) -> Option<joblog::JobLog> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = LogParams {
        container: Some("full-recovery".into()),
        ..Default::default()
    };
    api.logs(pod, &lp).await.ok().map(|t| joblog::read(&t))
}

/// The last few Warning events about the drill's objects, for evidence.
async fn warnings(client: &kube::Client, ns: &str, cluster: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let events = api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let lines: Vec<String> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(cluster))
        })
        .map(|e| {
            format!(
                "{} {}: {}",
                e.involved_object.name.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("; events: {}", tail.join(" | "))
    }
}

/// The first decisive failure among the failed full-recovery pods.
async fn failed_pod_cause(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    seen: &mut Vec<String>,
) -> Option<(&'static str, String)> {
    for (pod, phase) in recovery_pods(client, ns, cluster).await {
        if phase != "Failed" || seen.contains(&pod) {
            continue;
        }
        seen.push(pod.clone());
        if let Some((cause, evidence)) = pod_log(client, ns, &pod)
            .await
            .and_then(|l| l.decisive_failure())
        {
            return Some((cause, format!("{evidence} (pod {pod})")));
        }
    }
    None
}

/// Waits for the Cluster: Ready, or the reason it never will be.
async fn wait_ready(
    req: &CnpgRequest,
    objects: &DrillObjects,
    mut rv: String,
) -> Result<(), Failure> {
    let (client, ns, name) = (
        &req.client,
        objects.namespace.as_str(),
        objects.cluster.as_str(),
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &clusters());
    let deadline = Instant::now() + req.deadline;
    let mut last = (String::new(), String::new());
    let mut seen_failed = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(55);
    // The state right after apply, then every change.
    let mut current = api.get(name).await.ok();
    loop {
        if let Some(obj) = current.take() {
            match status::progress(&obj.data["status"]) {
                Progress::Ready => return Ok(()),
                Progress::Waiting { phase, reason } => {
                    if (phase.clone(), reason.clone()) != last && !phase.is_empty() {
                        (req.progress)(&phase, &reason);
                        last = (phase, reason);
                    }
                }
                Progress::Broken { phase, reason } => {
                    return Err(error(Stage::Restore, format!("{phase}: {reason}")));
                }
                Progress::Unrecoverable { reason } => {
                    // Every recovery pod's log, for the first decisive failure.
                    seen_failed.clear();
                    if let Some((cause, evidence)) =
                        failed_pod_cause(client, ns, name, &mut seen_failed).await
                    {
                        return Err(fail(Stage::Recover, cause, evidence));
                    }
                    let events = warnings(client, ns, name).await;
                    return Err(fail(
                        Stage::Recover,
                        "recovery_failed",
                        format!("{}: {reason}{events}", status::PHASE_UNRECOVERABLE),
                    ));
                }
            }
        }
        let stream = match api.watch(&wp, &rv).await {
            Ok(s) => s.boxed(),
            Err(e) => {
                tracing::warn!("watching Cluster {ns}/{name}: {}", describe(&e));
                tokio::time::sleep(Duration::from_secs(1)).await;
                current = api.get(name).await.ok();
                continue;
            }
        };
        tokio::pin!(stream);
        loop {
            tokio::select! {
                ev = stream.try_next() => match ev {
                    Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        rv = o.metadata.resource_version.clone().unwrap_or(rv);
                        current = Some(o);
                        break;
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Ok(Some(WatchEvent::Deleted(_))) => {
                        return Err(error(Stage::Recover, format!("Cluster {ns}/{name} was deleted by someone else")));
                    }
                    Ok(Some(WatchEvent::Error(e))) => {
                        // 410 Gone: start again from the current state.
                        tracing::debug!("watch error {}: {}", e.code, e.message);
                        current = api.get(name).await.ok();
                        if let Some(o) = &current {
                            rv = o.metadata.resource_version.clone().unwrap_or_default();
                        }
                        break;
                    }
                    Ok(None) | Err(_) => break,
                },
                _ = tick.tick() => {
                    // CNPG retries a broken restore several times; the first decisive failure
                    // is the answer.
                    if let Some((cause, evidence)) = failed_pod_cause(client, ns, name, &mut seen_failed).await {
                        return Err(fail(Stage::Recover, cause, evidence));
                    }
                    if Instant::now() >= deadline {
                        let events = warnings(client, ns, name).await;
                        return Err(fail(
                            Stage::Recover,
                            "recovery_timeout",
                            format!(
                                "not Ready within {:?}; last phase {:?} ({}){events}",
                                req.deadline, last.0, last.1
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// Whom to connect as: the owner from `<cluster>-app`, or `postgres` from
/// `<cluster>-superuser`.
async fn credentials(
    req: &CnpgRequest,
    objects: &DrillObjects,
) -> Result<(String, String), Failure> {
    let suffix = if req.superuser { "superuser" } else { "app" };
    let name = format!("{}-{suffix}", objects.cluster);
    let api: Api<Secret> = Api::namespaced(req.client.clone(), &objects.namespace);
    let secret = api.get(&name).await.map_err(|e| {
        error(
            Stage::Verify,
            format!(
                "reading Secret {}/{name}: {}",
                objects.namespace,
                describe(&e)
            ),
        )
    })?;
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| {
                error(
                    Stage::Verify,
                    format!("Secret {}/{name} has no key {k:?}", objects.namespace),
                )
            })
    };
    Ok((get("username")?, get("password")?))
}

/// Everything up to a Ready cluster and a way to reach it; on failure, the objects are gone
/// (or kept for a human with keepOnFailure).
pub async fn recover(req: &CnpgRequest) -> Result<CnpgServer, Failure> {
    let objects = drill_objects(req);
    req.live.add(&objects);
    let started = Instant::now();
    let outcome = async {
        let rv = create_objects(req, &objects).await?;
        wait_ready(req, &objects, rv).await?;
        let ready_time = started.elapsed();
        let end = match recovery_pods(&req.client, &objects.namespace, &objects.cluster)
            .await
            .into_iter()
            .rev()
            .find(|(_, phase)| phase == "Succeeded")
        {
            Some((pod, _)) => pod_log(&req.client, &objects.namespace, &pod)
                .await
                .map(|l| l.recovery_end())
                .unwrap_or_default(),
            None => RecoveryEnd::default(),
        };
        let (user, password) = credentials(req, &objects).await?;
        let mode = match req.connect {
            ConnectMode::Auto if crate::k8s::in_cluster() => ConnectMode::Service,
            ConnectMode::Auto => ConnectMode::PortForward,
            m => m,
        };
        let (host, port, forward) = match mode {
            ConnectMode::Service => (
                format!("{}-rw.{}.svc", objects.cluster, objects.namespace),
                5432,
                None,
            ),
            _ => {
                let clusters_api: Api<DynamicObject> =
                    Api::namespaced_with(req.client.clone(), &objects.namespace, &clusters());
                let primary = clusters_api
                    .get(&objects.cluster)
                    .await
                    .ok()
                    .and_then(|c| {
                        c.data["status"]["currentPrimary"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| format!("{}-1", objects.cluster));
                let pods: Api<Pod> = Api::namespaced(req.client.clone(), &objects.namespace);
                let forward = PortForward::start(pods, primary, 5432)
                    .await
                    .map_err(|e| error(Stage::Verify, e))?;
                ("127.0.0.1".to_string(), forward.local.port(), Some(forward))
            }
        };
        Ok(CnpgServer {
            conn: PgConn {
                host,
                port,
                user,
                password: Some(password),
            },
            end,
            ready_time,
            objects: objects.clone(),
            client: req.client.clone(),
            live: req.live.clone(),
            _forward: forward,
        })
    }
    .await;
    match outcome {
        Ok(server) => Ok(server),
        Err(mut f) => {
            if req.keep_on_failure && matches!(f, Failure::Fail { .. }) {
                req.live.remove(&objects.drill_id);
                if let Failure::Fail { evidence, .. } = &mut f {
                    evidence.push_str(&format!(
                        " (kept: Cluster {}/{})",
                        objects.namespace, objects.cluster
                    ));
                }
                return Err(f);
            }
            match objects.delete(&req.client).await {
                Ok(()) => req.live.remove(&objects.drill_id),
                Err(e) => match &mut f {
                    Failure::Fail { evidence, .. } => evidence.push_str(&format!("; {e}")),
                    Failure::Error { message, .. } => message.push_str(&format!("; {e}")),
                },
            }
            Err(f)
        }
    }
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

/// The label pair marking drill objects (for selectors).
pub fn managed_selector() -> String {
    format!("{}={},{}", MANAGED_BY.0, MANAGED_BY.1, DRILL_ID_LABEL)
}
