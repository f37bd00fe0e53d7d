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
use super::{Failure, Stage, error, fail};
use crate::cnpg::manifest::Manifests;
use crate::k8s::forward::PortForward;
use crate::k8s::{DrillObjects, FIELD_MANAGER, LiveDrills, clusters, describe, object_stores};
use crate::outcome::Cause;
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

/// A full-recovery job pod: name, phase, and why a container cannot start (if it cannot).
struct RecoveryPod {
    name: String,
    phase: String,
    stuck: Option<String>,
}

/// Reasons a container waits that waiting will not cure.
const STUCK_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The full-recovery job pods of a cluster, oldest first.
async fn recovery_pods(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
) -> Result<Vec<RecoveryPod>, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "cnpg.io/cluster={cluster},cnpg.io/jobRole=full-recovery"
    ));
    let mut pods = api
        .list(&lp)
        .await
        .map_err(|e| format!("listing the full-recovery pods in {ns}: {}", describe(&e)))?
        .items;
    pods.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });
    Ok(pods
        .into_iter()
        .map(|p| {
            let status = p.status.unwrap_or_default();
            let stuck = status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .find_map(|c| {
                    let w = c.state.as_ref()?.waiting.as_ref()?;
                    let reason = w.reason.as_deref()?;
                    STUCK_REASONS.contains(&reason).then(|| {
                        format!(
                            "container {}: {reason} {}",
                            c.name,
                            w.message.as_deref().unwrap_or("")
                        )
                    })
                });
            RecoveryPod {
                name: p.metadata.name.unwrap_or_default(),
                phase: status.phase.unwrap_or_default(),
                stuck,
            }
        })
        .collect())
}

/// The job's log: the `full-recovery` container's, plus the Barman Cloud plugin sidecar's
/// (where the plugin path reports catalog and restore errors) when there is one.
async fn pod_log(client: &kube::Client, ns: &str, pod: &str) -> Result<joblog::JobLog, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let main = LogParams {
        container: Some("full-recovery".into()),
        ..Default::default()
    };
    let mut text = api
        .logs(pod, &main)
        .await
        .map_err(|e| format!("reading the log of pod {ns}/{pod}: {}", describe(&e)))?;
    let sidecar = LogParams {
        container: Some("plugin-barman-cloud".into()),
        ..Default::default()
    };
    if let Ok(more) = api.logs(pod, &sidecar).await {
        text.push('\n');
        text.push_str(&more);
    }
    Ok(joblog::read(&text))
}

/// The last few Warning events about the drill's objects, for evidence.
async fn warnings(client: &kube::Client, ns: &str, cluster: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let events = api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let prefix = format!("{cluster}-");
    let lines: Vec<String> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n == cluster || n.starts_with(&prefix))
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

/// What the failed full-recovery pods say, for pods not examined yet.
async fn failed_pods(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    seen: &mut Vec<String>,
) -> Result<Option<Failure>, String> {
    for pod in recovery_pods(client, ns, cluster).await? {
        if let Some(stuck) = &pod.stuck {
            return Ok(Some(error(
                Stage::Restore,
                format!("pod {ns}/{} cannot start: {stuck}", pod.name),
            )));
        }
        if pod.phase != "Failed" || seen.contains(&pod.name) {
            continue;
        }
        seen.push(pod.name.clone());
        let log = pod_log(client, ns, &pod.name).await?;
        if let Some((cause, evidence)) = log.decisive_failure() {
            return Ok(Some(fail(
                Stage::Recover,
                cause,
                format!("{evidence} (pod {})", pod.name),
            )));
        }
    }
    Ok(None)
}

/// Why CNPG gave up, from every attempt's log: the first decisive failure, else an
/// infrastructure error (the store was unreachable), else CNPG's own reason.
async fn unrecoverable(client: &kube::Client, ns: &str, cluster: &str, reason: &str) -> Failure {
    let pods = match recovery_pods(client, ns, cluster).await {
        Ok(p) => p,
        Err(e) => return error(Stage::Recover, e),
    };
    let mut infrastructure = None;
    for pod in &pods {
        match pod_log(client, ns, &pod.name).await {
            Ok(log) => {
                if let Some((cause, evidence)) = log.decisive_failure() {
                    return fail(
                        Stage::Recover,
                        cause,
                        format!("{evidence} (pod {})", pod.name),
                    );
                }
                if infrastructure.is_none() {
                    infrastructure = log.infrastructure_error().map(str::to_string);
                }
            }
            Err(e) => return error(Stage::Recover, e),
        }
    }
    if let Some(e) = infrastructure {
        return error(
            Stage::Restore,
            format!("the recovery job could not reach the object store: {e}"),
        );
    }
    let events = warnings(client, ns, cluster).await;
    fail(
        Stage::Recover,
        Cause::RecoveryFailed,
        format!("{}: {reason}{events}", status::PHASE_UNRECOVERABLE),
    )
}

/// What one look at the Cluster says: done (Ready or a failure), or keep waiting.
async fn evaluate(
    req: &CnpgRequest,
    objects: &DrillObjects,
    cluster: &DynamicObject,
    last: &mut (String, String),
) -> Option<Result<(), Failure>> {
    let (ns, name) = (objects.namespace.as_str(), objects.cluster.as_str());
    match status::progress(&cluster.data["status"]) {
        Progress::Ready => Some(Ok(())),
        Progress::Waiting { phase, reason } => {
            if (phase.clone(), reason.clone()) != *last && !phase.is_empty() {
                (req.progress)(&phase, &reason);
                *last = (phase, reason);
            }
            None
        }
        Progress::Broken { phase, reason } => {
            Some(Err(error(Stage::Restore, format!("{phase}: {reason}"))))
        }
        Progress::Unrecoverable { reason } => {
            Some(Err(unrecoverable(&req.client, ns, name, &reason).await))
        }
    }
}

/// Waits for the Cluster: Ready, or the reason it never will be, within the deadline.
async fn wait_ready(req: &CnpgRequest, objects: &DrillObjects, rv: String) -> Result<(), Failure> {
    let mut last = (String::new(), String::new());
    let watch = watch_until_done(req, objects, rv, &mut last);
    match tokio::time::timeout(req.deadline, watch).await {
        Ok(result) => result,
        Err(_) => {
            let events = warnings(&req.client, &objects.namespace, &objects.cluster).await;
            Err(fail(
                Stage::Recover,
                Cause::RecoveryTimeout,
                format!(
                    "not Ready within {:?}; last phase {:?} ({}){events}",
                    req.deadline, last.0, last.1
                ),
            ))
        }
    }
}

async fn watch_until_done(
    req: &CnpgRequest,
    objects: &DrillObjects,
    mut rv: String,
    last: &mut (String, String),
) -> Result<(), Failure> {
    let (client, ns, name) = (
        &req.client,
        objects.namespace.as_str(),
        objects.cluster.as_str(),
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &clusters());
    let mut seen_failed = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(55);
    // The state right after apply, then every change.
    if let Ok(obj) = api.get(name).await
        && let Some(done) = evaluate(req, objects, &obj, last).await
    {
        return done;
    }
    loop {
        let stream = match api.watch(&wp, &rv).await {
            Ok(s) => s.boxed(),
            Err(e) => {
                tracing::warn!("watching Cluster {ns}/{name}: {}", describe(&e));
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Ok(obj) = api.get(name).await {
                    rv = obj.metadata.resource_version.clone().unwrap_or(rv);
                    if let Some(done) = evaluate(req, objects, &obj, last).await {
                        return done;
                    }
                }
                continue;
            }
        };
        tokio::pin!(stream);
        loop {
            tokio::select! {
                ev = stream.try_next() => match ev {
                    Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        rv = o.metadata.resource_version.clone().unwrap_or(rv);
                        if let Some(done) = evaluate(req, objects, &o, last).await {
                            return done;
                        }
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Ok(Some(WatchEvent::Deleted(_))) => {
                        return Err(error(Stage::Recover, format!("Cluster {ns}/{name} was deleted by someone else")));
                    }
                    Ok(Some(WatchEvent::Error(e))) => {
                        // 410 Gone and the like: start again from the current state.
                        tracing::debug!("watch error {}: {}", e.code, e.message);
                        if let Ok(obj) = api.get(name).await {
                            rv = obj.metadata.resource_version.clone().unwrap_or_default();
                            if let Some(done) = evaluate(req, objects, &obj, last).await {
                                return done;
                            }
                        }
                        break;
                    }
                    // The server ended the watch (timeoutSeconds) or the connection dropped.
                    Ok(None) | Err(_) => break,
                },
                _ = tick.tick() => {
                    // CNPG retries a broken restore several times; the first decisive failure
                    // is the answer. A pod that cannot start is an error.
                    match failed_pods(client, ns, name, &mut seen_failed).await {
                        Ok(Some(f)) => return Err(f),
                        Ok(None) => {}
                        Err(e) => tracing::warn!("{e}"),
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
    // A scratch namespace is the drill's own: never adopt (and later delete) one that exists.
    if objects.scratch_namespace {
        let api: Api<Namespace> = Api::all(req.client.clone());
        match api.get_opt(&objects.namespace).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(error(
                    Stage::Restore,
                    format!(
                        "namespace {} already exists; pgdrill only uses namespaces it creates",
                        objects.namespace
                    ),
                ));
            }
            Err(e) => {
                return Err(error(
                    Stage::Restore,
                    format!("checking namespace {}: {}", objects.namespace, describe(&e)),
                ));
            }
        }
    }
    req.live.add(&objects);
    let started = Instant::now();
    let outcome = async {
        let rv = create_objects(req, &objects).await?;
        wait_ready(req, &objects, rv).await?;
        let ready_time = started.elapsed();
        // Where recovery ended, from the job that did it.
        let pods = recovery_pods(&req.client, &objects.namespace, &objects.cluster)
            .await
            .map_err(|e| error(Stage::Verify, e))?;
        let done = pods
            .iter()
            .rev()
            .find(|p| p.phase == "Succeeded")
            .ok_or_else(|| {
                error(
                    Stage::Verify,
                    format!(
                        "no succeeded full-recovery pod in {} to read where recovery ended",
                        objects.namespace
                    ),
                )
            })?;
        let end = pod_log(&req.client, &objects.namespace, &done.name)
            .await
            .map_err(|e| error(Stage::Verify, e))?
            .recovery_end();
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
