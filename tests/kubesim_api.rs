//! The Kubernetes API server simulator (`tests/kubesim/`) against the real clients: the
//! kube-rs 5 client the crate uses, and kubectl when it is installed.

mod kubesim;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{AsyncBufReadExt, FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::discovery::{Discovery, Scope};
use kubesim::{KubeSim, RequestRecord, ResourceKey, SimOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

/// A client built from the kubeconfig file exactly as the brief of the simulator says.
async fn client_from_kubeconfig(path: &Path) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    kube::Client::try_from(config).unwrap()
}

fn clusters_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"),
        "clusters",
    )
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<DynamicObject>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Unpin,
{
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("watch event in time")
        .expect("watch stream open")
        .expect("watch event ok")
}

fn pod(name: &str, ns: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"cnpg.io/cluster": "pg"}},
        "spec": {"containers": [{"name": "postgres", "image": "postgres:17"}]},
        "status": {"phase": "Running"},
    })
}

/// Named checks played in turn. A check that returns `Err` or panics is recorded with its name
/// and the next one still runs; `finish` asserts once, at the end, that none failed. A check
/// whose prerequisite (a check that created the state it works on) failed is not run and is
/// recorded as skipped, by name.
#[derive(Default)]
struct Cases {
    ran: Vec<String>,
    failed: Vec<String>,
    messages: Vec<String>,
}

/// `case!(cases, [prerequisites], check(args))` runs the function `check` as the case of that
/// name; `async_case!` awaits it.
macro_rules! case {
    ($cases:ident, [$($need:ident),*], $check:ident($($arg:expr),*)) => {
        $cases.run(stringify!($check), &[$(stringify!($need)),*], || $check($($arg),*))
    };
}

macro_rules! async_case {
    ($cases:ident, [$($need:ident),*], $check:ident($($arg:expr),*)) => {
        $cases
            .run_async(stringify!($check), &[$(stringify!($need)),*], $check($($arg),*))
            .await
    };
}

impl Cases {
    /// Whether `name` must be skipped because one of `needs` failed (or was skipped).
    fn blocked(&mut self, name: &str, needs: &[&str]) -> bool {
        for need in needs {
            assert!(
                self.ran.iter().any(|r| r == need),
                "{name} runs before {need}"
            );
        }
        self.ran.push(name.to_string());
        let Some(need) = needs.iter().find(|n| self.failed.iter().any(|f| f == *n)) else {
            return false;
        };
        self.failed.push(name.to_string());
        self.messages
            .push(format!("{name}: skipped, its prerequisite {need} failed"));
        true
    }

    fn record(&mut self, name: &str, outcome: std::thread::Result<Result<(), String>>) {
        let message = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(panic) => panic_message(panic),
        };
        self.failed.push(name.to_string());
        self.messages.push(format!("{name}: {message}"));
    }

    fn run(&mut self, name: &str, needs: &[&str], case: impl FnOnce() -> Result<(), String>) {
        if !self.blocked(name, needs) {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(case));
            self.record(name, outcome);
        }
    }

    async fn run_async(
        &mut self,
        name: &str,
        needs: &[&str],
        case: impl Future<Output = Result<(), String>>,
    ) {
        if !self.blocked(name, needs) {
            let outcome = AssertUnwindSafe(case).catch_unwind().await;
            self.record(name, outcome);
        }
    }

    fn finish(self, test: &str) {
        assert!(
            self.messages.is_empty(),
            "{test}: {} case(s) failed:\n{}",
            self.messages.len(),
            self.messages.join("\n")
        );
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => match panic.downcast::<&str>() {
            Ok(s) => s.to_string(),
            Err(_) => "panicked".to_string(),
        },
    }
}

/// What the CRUD/apply/watch cases share: the simulator, the APIs of the drill namespace, and
/// the state earlier cases leave for later ones.
struct Crud {
    sim: KubeSim,
    namespaces: Api<Namespace>,
    secrets: Api<Secret>,
    clusters: Api<DynamicObject>,
    /// The Cluster manifest applied server-side.
    cluster: DynamicObject,
    /// The Cluster as the first apply returned it.
    applied: Option<DynamicObject>,
    /// The Cluster after the merge patch of its spec.
    patched: Option<DynamicObject>,
    /// The watch on Clusters opened from "0".
    events: Option<BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>>,
}

impl Crud {
    /// A simulator, and a client of it built from its kubeconfig file.
    async fn start() -> Crud {
        let sim = KubeSim::start(SimOptions::default());
        let client = client_from_kubeconfig(&sim.kubeconfig).await;
        let ar = clusters_resource();
        Crud {
            sim,
            namespaces: Api::all(client.clone()),
            secrets: Api::namespaced(client.clone(), "drill-1"),
            clusters: Api::namespaced_with(client.clone(), "drill-1", &ar),
            cluster: DynamicObject::new("pg", &ar)
                .within("drill-1")
                .data(json!({"spec": {"instances": 1, "storage": {"size": "1Gi"}},
                             "status": {"phase": "ignored on the main resource"}})),
            applied: None,
            patched: None,
            events: None,
        }
    }
}

fn secret_names(l: kube::core::ObjectList<Secret>) -> Vec<String> {
    l.items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

/// The cases share one simulator and run in this order: each works on the objects the earlier
/// ones created (the namespace, its Secrets, the Cluster and its watch), so a case whose
/// prerequisite failed is reported as skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_crud_apply_watch_and_namespace_deletion() {
    let mut c = Crud::start().await;
    let mut cases = Cases::default();
    async_case!(cases, [], namespace_is_created_active_and_listed(&c));
    // Secrets: stringData becomes data, label selectors filter, duplicates conflict.
    async_case!(
        cases,
        [namespace_is_created_active_and_listed],
        secrets_are_created(&c)
    );
    async_case!(cases, [secrets_are_created], string_data_becomes_data(&c));
    async_case!(
        cases,
        [secrets_are_created],
        label_and_field_selectors_filter(&c)
    );
    async_case!(
        cases,
        [secrets_are_created],
        paging_with_limit_and_continue(&c)
    );
    async_case!(cases, [secrets_are_created], duplicate_create_conflicts(&c));
    async_case!(
        cases,
        [namespace_is_created_active_and_listed],
        missing_secret_is_not_found(&c)
    );
    // A CNPG Cluster through server-side apply of a DynamicObject, watched, then patched.
    async_case!(
        cases,
        [namespace_is_created_active_and_listed],
        cluster_is_server_side_applied(&mut c)
    );
    async_case!(
        cases,
        [cluster_is_server_side_applied],
        reapplying_is_a_no_op(&c)
    );
    async_case!(
        cases,
        [cluster_is_server_side_applied],
        watch_sees_current_state_and_status_change(&mut c)
    );
    async_case!(
        cases,
        [watch_sees_current_state_and_status_change],
        main_resource_ignores_status_and_bumps_generation(&mut c)
    );
    async_case!(
        cases,
        [main_resource_ignores_status_and_bumps_generation],
        status_subresource_changes_only_status(&c)
    );
    async_case!(
        cases,
        [main_resource_ignores_status_and_bumps_generation],
        stale_replace_conflicts(&c)
    );
    async_case!(
        cases,
        [status_subresource_changes_only_status],
        watch_sees_both_modifications(&mut c)
    );
    // Deleting the namespace: Terminating at once, new content refused, then all gone.
    async_case!(
        cases,
        [namespace_is_created_active_and_listed],
        namespace_deletion_starts_terminating(&c)
    );
    async_case!(
        cases,
        [namespace_deletion_starts_terminating],
        terminating_namespace_refuses_content(&c)
    );
    async_case!(
        cases,
        [
            watch_sees_both_modifications,
            namespace_deletion_starts_terminating
        ],
        watch_sees_cluster_deleted(&mut c)
    );
    async_case!(
        cases,
        [namespace_deletion_starts_terminating],
        namespace_contents_are_removed(&c)
    );
    async_case!(cases, [], shutdown_ends_open_watches(&mut c));
    cases.finish("kube_client_crud_apply_watch_and_namespace_deletion");
}

async fn namespace_is_created_active_and_listed(c: &Crud) -> Result<(), String> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("drill-1".into()),
            labels: Some(BTreeMap::from([("pgdrill.io/drill".into(), "1".into())])),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = c
        .namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    assert!(created.metadata.uid.is_some());
    let listed = c.namespaces.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(names, ["default", "drill-1", "kube-system"]);
    Ok(())
}

async fn secrets_are_created(c: &Crud) -> Result<(), String> {
    let labelled = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            labels: Some(BTreeMap::from([("app".into(), "pgdrill".into())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("password".into(), "s3cret".into())])),
        ..Default::default()
    };
    c.secrets
        .create(&PostParams::default(), &labelled)
        .await
        .unwrap();
    c.secrets
        .create(&PostParams::default(), &other_secret())
        .await
        .unwrap();
    Ok(())
}

/// The unlabelled Secret "other".
fn other_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("other".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn string_data_becomes_data(c: &Crud) -> Result<(), String> {
    let got = c.secrets.get("creds").await.unwrap();
    assert_eq!(
        got.data.unwrap()["password"],
        ByteString(b"s3cret".to_vec())
    );
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    Ok(())
}

async fn label_and_field_selectors_filter(c: &Crud) -> Result<(), String> {
    let names = secret_names;
    let secrets = &c.secrets;
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(secrets.list(&sel("app=pgdrill")).await.unwrap()),
        ["creds"]
    );
    assert_eq!(
        names(secrets.list(&sel("app!=pgdrill")).await.unwrap()),
        ["other"]
    );
    assert_eq!(names(secrets.list(&sel("!app")).await.unwrap()), ["other"]);
    assert_eq!(
        names(secrets.list(&sel("app in (x,pgdrill)")).await.unwrap()),
        ["creds"]
    );
    let by_name = ListParams::default().fields("metadata.name=other");
    assert_eq!(names(secrets.list(&by_name).await.unwrap()), ["other"]);
    Ok(())
}

async fn paging_with_limit_and_continue(c: &Crud) -> Result<(), String> {
    let secrets = &c.secrets;
    let first = secrets.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = secrets
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert!(
        second
            .metadata
            .continue_
            .as_deref()
            .unwrap_or("")
            .is_empty()
    );
    assert_eq!(
        (secret_names(first), secret_names(second)),
        (vec!["creds".to_string()], vec!["other".to_string()])
    );
    Ok(())
}

async fn duplicate_create_conflicts(c: &Crud) -> Result<(), String> {
    let dup = c
        .secrets
        .create(&PostParams::default(), &other_secret())
        .await
        .unwrap_err();
    assert!(matches!(&dup, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));
    Ok(())
}

async fn missing_secret_is_not_found(c: &Crud) -> Result<(), String> {
    let missing = c.secrets.get("missing").await.unwrap_err();
    match &missing {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "secrets \"missing\" not found");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(c.secrets.get_opt("missing").await.unwrap().is_none());
    Ok(())
}

async fn apply_cluster(c: &Crud) -> DynamicObject {
    c.clusters
        .patch(
            "pg",
            &PatchParams::apply("pgdrill").force(),
            &Patch::Apply(&c.cluster),
        )
        .await
        .unwrap()
}

async fn cluster_is_server_side_applied(c: &mut Crud) -> Result<(), String> {
    let applied = apply_cluster(c).await;
    c.applied = Some(applied.clone());
    assert_eq!(applied.metadata.generation, Some(1));
    assert_eq!(applied.data["spec"]["instances"], 1);
    assert!(applied.data.get("status").is_none(), "{:?}", applied.data);
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(managers, [("pgdrill".to_string(), "Apply".to_string())]);
    Ok(())
}

/// Re-applying the same configuration is a no-op (same resourceVersion).
async fn reapplying_is_a_no_op(c: &Crud) -> Result<(), String> {
    let applied = c.applied.as_ref().ok_or("no first apply")?;
    let again = apply_cluster(c).await;
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );
    Ok(())
}

/// Watch from "0": the current state, then the status change a controller makes.
async fn watch_sees_current_state_and_status_change(c: &mut Crud) -> Result<(), String> {
    let wp = WatchParams::default().timeout(30);
    let events = c
        .events
        .insert(c.clusters.watch(&wp, "0").await.unwrap().boxed());
    match next_event(events).await {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("pg")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    c.sim
        .store
        .patch_status(
            &ResourceKey::cnpg_clusters(),
            "drill-1",
            "pg",
            json!({"phase": "Cluster in healthy state", "readyInstances": 1}),
        )
        .unwrap();
    match next_event(events).await {
        WatchEvent::Modified(o) => {
            assert_eq!(o.data["status"]["phase"], "Cluster in healthy state");
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    Ok(())
}

/// Status written through the main resource is ignored; a spec change bumps generation.
async fn main_resource_ignores_status_and_bumps_generation(c: &mut Crud) -> Result<(), String> {
    let patched = c
        .clusters
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"instances": 3}, "status": {"phase": "bogus"}})),
        )
        .await
        .unwrap();
    c.patched = Some(patched.clone());
    assert_eq!(patched.data["status"]["phase"], "Cluster in healthy state");
    assert_eq!(patched.data["spec"]["instances"], 3);
    assert_eq!(patched.metadata.generation, Some(2));
    Ok(())
}

/// ... while /status changes only status.
async fn status_subresource_changes_only_status(c: &Crud) -> Result<(), String> {
    let status = c
        .clusters
        .patch_status(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"instances": 9}, "status": {"phase": "Switchover"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            status.data["spec"]["instances"].clone(),
            status.data["status"]["phase"].clone()
        ),
        (json!(3), json!("Switchover"))
    );
    Ok(())
}

/// Stale resourceVersion on replace: 409 Conflict.
async fn stale_replace_conflicts(c: &Crud) -> Result<(), String> {
    let mut stale = c.patched.clone().ok_or("no patched Cluster")?;
    stale.data["spec"]["instances"] = json!(5);
    let conflict = c
        .clusters
        .replace("pg", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(&conflict, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"));
    Ok(())
}

async fn watch_sees_both_modifications(c: &mut Crud) -> Result<(), String> {
    let events = c.events.as_mut().ok_or("no watch")?;
    for _ in 0..2 {
        assert!(matches!(next_event(events).await, WatchEvent::Modified(_)));
    }
    Ok(())
}

async fn namespace_deletion_starts_terminating(c: &Crud) -> Result<(), String> {
    let deleted = c
        .namespaces
        .delete("drill-1", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = deleted.left().expect("the namespace object");
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    Ok(())
}

async fn terminating_namespace_refuses_content(c: &Crud) -> Result<(), String> {
    let late = Secret {
        metadata: ObjectMeta {
            name: Some("late".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let refused = c
        .secrets
        .create(&PostParams::default(), &late)
        .await
        .unwrap_err();
    match &refused {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert!(
                s.message.contains("because it is being terminated"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    Ok(())
}

async fn watch_sees_cluster_deleted(c: &mut Crud) -> Result<(), String> {
    let events = c.events.as_mut().ok_or("no watch")?;
    match next_event(events).await {
        WatchEvent::Deleted(o) => assert_eq!(o.metadata.name.as_deref(), Some("pg")),
        other => panic!("expected DELETED, got {other:?}"),
    }
    Ok(())
}

async fn namespace_contents_are_removed(c: &Crud) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.namespaces.get_opt("drill-1").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = ListParams::default();
    assert!(c.secrets.list(&all).await.unwrap().items.is_empty());
    assert!(c.clusters.list(&all).await.unwrap().items.is_empty());
    assert!(
        c.sim
            .store
            .list(&ResourceKey::secrets(), Some("drill-1"))
            .is_empty()
    );
    let err = c.namespaces.get("drill-1").await.unwrap_err();
    assert_eq!(api_code(&err), Some(404));
    Ok(())
}

/// Shutting the simulator down ends open watches promptly (and cleanly).
async fn shutdown_ends_open_watches(c: &mut Crud) -> Result<(), String> {
    let mut open = c
        .namespaces
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(open.next().await, Some(Ok(WatchEvent::Added(_)))));
    let started = std::time::Instant::now();
    tokio::task::block_in_place(|| c.sim.shutdown());
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(e) = open.next().await {
            e.expect("no error while the stream ends");
        }
    })
    .await;
    assert!(end.is_ok(), "the watch did not end after shutdown");
    assert!(started.elapsed() < Duration::from_secs(3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_plain_tail_and_follow() {
    let sim = KubeSim::start(SimOptions::default());
    let client = sim.client().await;
    sim.store
        .create(&ResourceKey::pods(), pod("pg-1", "default"))
        .unwrap();
    sim.store
        .append_log("default", "pg-1", "line one\nline two\n");
    let pods: Api<Pod> = Api::default_namespaced(client);

    assert_eq!(
        pods.logs("pg-1", &LogParams::default()).await.unwrap(),
        "line one\nline two\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        container: Some("postgres".into()),
        ..Default::default()
    };
    assert_eq!(pods.logs("pg-1", &tail).await.unwrap(), "line two\n");
    let wrong = LogParams {
        container: Some("sidecar".into()),
        ..Default::default()
    };
    assert_eq!(
        api_code(&pods.logs("pg-1", &wrong).await.unwrap_err()),
        Some(400)
    );
    assert_eq!(
        api_code(&pods.logs("nope", &LogParams::default()).await.unwrap_err()),
        Some(404)
    );

    // Events are plain objects, selectable by the object they are about.
    for (name, about) in [("e1", "pg-1"), ("e2", "pg-2")] {
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": about, "namespace": "default"},
            "reason": "Started", "message": format!("started {about}"), "type": "Normal",
        });
        sim.store.create(&ResourceKey::events(), event).unwrap();
    }
    let events: Api<Event> = Api::default_namespaced(sim.client().await);
    let about = ListParams::default().fields("involvedObject.name=pg-1");
    let got = events.list(&about).await.unwrap();
    let messages: Vec<_> = got.items.iter().filter_map(|e| e.message.clone()).collect();
    assert_eq!(messages, ["started pg-1"]);

    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream("pg-1", &follow).await.unwrap().lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.try_next())
            .await
            .expect("log line in time")
            .unwrap()
    };
    assert_eq!(next().await.as_deref(), Some("line one"));
    assert_eq!(next().await.as_deref(), Some("line two"));
    sim.store.append_log("default", "pg-1", "line three\n");
    assert_eq!(next().await.as_deref(), Some("line three"));
    sim.store
        .patch_status(
            &ResourceKey::pods(),
            "default",
            "pg-1",
            json!({"phase": "Succeeded"}),
        )
        .unwrap();
    assert_eq!(next().await, None, "the stream ends when the pod finishes");
}

/// A TCP echo server standing in for PostgreSQL; counts the connections it served.
async fn echo_server() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<usize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let done = done_tx.clone();
            tokio::spawn(async move {
                let mut total = 0;
                let mut buf = vec![0u8; 8192];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            total += n;
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = done.send(total);
            });
        }
    });
    (addr, done_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_round_trips_bytes() {
    let sim = KubeSim::start(SimOptions::default());
    let client = sim.client().await;
    let (echo, mut finished) = echo_server().await;
    sim.store
        .create(&ResourceKey::pods(), pod("pg-1", "default"))
        .unwrap();
    sim.store
        .create(&ResourceKey::pods(), pod("pg-2", "default"))
        .unwrap();
    sim.store.set_port_target("default", "pg-1", 5432, echo);
    let pods: Api<Pod> = Api::default_namespaced(client);

    for round in 0..2 {
        let mut pf = pods.portforward("pg-1", &[5432]).await.unwrap();
        let mut stream = pf.take_stream(5432).unwrap();
        let hello = format!("hello from round {round}");
        stream.write_all(hello.as_bytes()).await.unwrap();
        let mut back = vec![0u8; hello.len()];
        tokio::time::timeout(WAIT, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, hello.as_bytes());
        // Bigger than one WebSocket message and one TCP read.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        stream.write_all(&big).await.unwrap();
        let mut back = vec![0u8; big.len()];
        tokio::time::timeout(WAIT, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert!(back == big, "payload corrupted in round {round}");
        drop(stream);
        tokio::time::timeout(WAIT, pf.join())
            .await
            .expect("forwarder ends")
            .unwrap();
        let served = tokio::time::timeout(WAIT, finished.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            served,
            hello.len() + big.len(),
            "the target saw EOF after all bytes"
        );
    }

    // No target: the error channel says so, like the kubelet's "connection refused".
    let mut pf = pods.portforward("pg-2", &[5432]).await.unwrap();
    let err = tokio::time::timeout(WAIT, pf.take_error(5432).unwrap())
        .await
        .unwrap();
    assert!(
        err.as_deref().unwrap_or("").contains("connection refused"),
        "{err:?}"
    );
    drop(pf);

    // No pod: 404 before any upgrade.
    let missing = pods.portforward("nope", &[5432]).await.err().expect("404");
    assert_eq!(api_code(&missing), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crds_are_404_and_absent_from_discovery() {
    let sim = KubeSim::start(SimOptions {
        cnpg_crds_installed: false,
        ..Default::default()
    });
    let client = sim.client().await;
    let clusters: Api<DynamicObject> = Api::all_with(client.clone(), &clusters_resource());
    let err = clusters.list(&ListParams::default()).await.unwrap_err();
    match &err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(
                s.message,
                "the server could not find the requested resource"
            );
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let err = client
        .list_api_group_resources("postgresql.cnpg.io/v1")
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(404));
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<_> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["barmancloud.cnpg.io"]);
    // Both discovery flavours (aggregated v2, as a 1.33 server serves it, and legacy).
    for discovery in [
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .unwrap(),
        Discovery::new(client.clone()).run().await.unwrap(),
    ] {
        assert!(!discovery.has_group("postgresql.cnpg.io"));
        assert!(discovery.has_group("barmancloud.cnpg.io"));
        let gvk = GroupVersionKind::gvk("barmancloud.cnpg.io", "v1", "ObjectStore");
        let (ar, caps) = discovery.resolve_gvk(&gvk).expect("ObjectStore discovered");
        assert_eq!(
            (ar.plural.as_str(), caps.scope),
            ("objectstores", Scope::Namespaced)
        );
        let (pods, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
            .expect("pods discovered");
        assert_eq!(pods.plural, "pods");
        assert!(
            caps.subresources.iter().any(|(s, _)| s.plural == "log"),
            "{caps:?}"
        );
    }
    let stores = client
        .list_api_group_resources("barmancloud.cnpg.io/v1")
        .await
        .unwrap();
    assert!(stores.resources.iter().any(|r| r.name == "objectstores"));
    let core = client.list_core_api_resources("v1").await.unwrap();
    for sub in ["pods/log", "pods/portforward", "namespaces"] {
        assert!(
            core.resources.iter().any(|r| r.name == sub),
            "{sub} in discovery"
        );
    }
    assert_eq!(client.apiserver_version().await.unwrap().minor, "33");

    // A wrong token is refused.
    let text = std::fs::read_to_string(&sim.kubeconfig).unwrap();
    let bad = sim.dir().join("bad-kubeconfig");
    std::fs::write(&bad, text.replace(&sim.token, "not-the-token")).unwrap();
    let bad_client = client_from_kubeconfig(&bad).await;
    let err = Api::<Namespace>::all(bad_client)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 401 && s.reason == "Unauthorized"));
    // No credentials at all: anonymous (what kubectl over http is), refused on demand.
    let none = sim.dir().join("anonymous-kubeconfig");
    std::fs::write(&none, text.replace(&format!("token: {}", sim.token), "{}")).unwrap();
    let anonymous = Api::<Namespace>::all(client_from_kubeconfig(&none).await);
    anonymous.list(&ListParams::default()).await.unwrap();
    sim.require_token(true);
    let err = anonymous.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_code(&err), Some(401));
    Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let users: Vec<String> = sim.store.requests().into_iter().map(|r| r.user).collect();
    assert_eq!(users.last().map(String::as_str), Some("kubesim-admin"));
    assert!(users.iter().any(|u| u == "system:anonymous"));
}

fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The cases share one simulator and run in this order: the ones after
/// `server_side_apply_creates_namespace_and_cluster` read, then delete, what it applied, so they
/// are reported as skipped when it fails.
#[test]
fn kubectl_against_the_simulator() {
    if !Path::new("/usr/bin/kubectl").exists() {
        eprintln!("note: /usr/bin/kubectl is missing; skipping the kubectl checks");
        return;
    }
    // Started from sync code: the simulator brings its own runtime.
    let sim = KubeSim::start(SimOptions::default());
    let mut cases = Cases::default();
    case!(cases, [], get_ns_lists_the_namespaces(&sim));
    case!(
        cases,
        [],
        server_side_apply_creates_namespace_and_cluster(&sim)
    );
    case!(
        cases,
        [server_side_apply_creates_namespace_and_cluster],
        reapplying_changes_nothing(&sim)
    );
    case!(
        cases,
        [server_side_apply_creates_namespace_and_cluster],
        get_clusters_as_json(&sim)
    );
    case!(
        cases,
        [server_side_apply_creates_namespace_and_cluster],
        the_store_has_the_managed_fields(&sim)
    );
    case!(
        cases,
        [server_side_apply_creates_namespace_and_cluster],
        get_clusters_by_label(&sim)
    );
    case!(
        cases,
        [server_side_apply_creates_namespace_and_cluster],
        delete_ns_removes_its_clusters(&sim)
    );
    case!(
        cases,
        [delete_ns_removes_its_clusters],
        deleted_ns_is_not_found(&sim)
    );
    case!(cases, [], port_forward_upgrades_are_refused(&sim));
    case!(
        cases,
        [server_side_apply_creates_namespace_and_cluster],
        apply_is_recorded_as_a_patch(&sim)
    );
    case!(cases, [], plain_http_requests_are_anonymous(&sim));
    cases.finish("kubectl_against_the_simulator");
}

fn get_ns_lists_the_namespaces(sim: &KubeSim) -> Result<(), String> {
    let (ok, out, err) = run(sim.kubectl().args(["get", "ns"]));
    assert!(ok, "kubectl get ns: {err}");
    assert!(out.contains("NAME") && out.contains("STATUS"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("default") && l.contains("Active")),
        "{out}"
    );
    assert!(out.contains("kube-system"), "{out}");
    Ok(())
}

/// `kubectl apply --server-side` of `cluster.yaml` in the simulator's directory (no OpenAPI
/// documents are served, so client-side validation must be off).
fn kubectl_apply(sim: &KubeSim) -> std::process::Command {
    let mut c = sim.kubectl();
    c.args(["apply", "--server-side", "--validate=false", "-f"])
        .arg(sim.dir().join("cluster.yaml"));
    c
}

fn cluster_resource_version(sim: &KubeSim) -> Value {
    sim.store
        .get(&ResourceKey::cnpg_clusters(), Some("kc-test"), "pg-kubectl")
        .unwrap()["metadata"]["resourceVersion"]
        .clone()
}

/// Server-side apply of a namespace and a Cluster.
fn server_side_apply_creates_namespace_and_cluster(sim: &KubeSim) -> Result<(), String> {
    std::fs::write(
        sim.dir().join("cluster.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kc-test\n---\n\
         apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg-kubectl\n  \
         namespace: kc-test\n  labels:\n    app: drill\nspec:\n  instances: 1\n  storage:\n    \
         size: 1Gi\n",
    )
    .unwrap();
    let (ok, out, err) = run(&mut kubectl_apply(sim));
    assert!(ok, "kubectl apply --server-side: {err}");
    assert!(
        out.contains("namespace/kc-test serverside-applied"),
        "{out}"
    );
    assert!(
        out.contains("cluster.postgresql.cnpg.io/pg-kubectl serverside-applied"),
        "{out}"
    );
    Ok(())
}

fn reapplying_changes_nothing(sim: &KubeSim) -> Result<(), String> {
    let before = cluster_resource_version(sim);
    let (ok, _, err) = run(&mut kubectl_apply(sim));
    assert!(ok, "second kubectl apply --server-side: {err}");
    assert_eq!(
        cluster_resource_version(sim),
        before,
        "re-applying the same manifest changes nothing"
    );
    Ok(())
}

fn get_clusters_as_json(sim: &KubeSim) -> Result<(), String> {
    let (ok, out, err) =
        run(sim
            .kubectl()
            .args(["get", "clusters.postgresql.cnpg.io", "-A", "-o", "json"]));
    assert!(ok, "kubectl get clusters -A -o json: {err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{out}");
    assert_eq!(items[0]["metadata"]["name"], "pg-kubectl");
    assert_eq!(items[0]["metadata"]["namespace"], "kc-test");
    assert_eq!(items[0]["spec"]["storage"]["size"], "1Gi");
    Ok(())
}

/// kubectl hides managedFields in its output; the store has them.
fn the_store_has_the_managed_fields(sim: &KubeSim) -> Result<(), String> {
    let stored = sim
        .store
        .get(&ResourceKey::cnpg_clusters(), Some("kc-test"), "pg-kubectl")
        .unwrap();
    assert_eq!(stored["metadata"]["managedFields"][0]["manager"], "kubectl");
    Ok(())
}

fn get_clusters_by_label(sim: &KubeSim) -> Result<(), String> {
    let (ok, out, err) =
        run(sim
            .kubectl()
            .args(["get", "clusters", "-n", "kc-test", "-l", "app=drill"]));
    assert!(ok, "kubectl get clusters: {err}");
    assert!(
        out.contains("pg-kubectl") && out.contains("INSTANCES"),
        "{out}"
    );
    Ok(())
}

fn delete_ns_removes_its_clusters(sim: &KubeSim) -> Result<(), String> {
    let (ok, out, err) = run(sim
        .kubectl()
        .args(["delete", "ns", "kc-test", "--timeout=20s"]));
    assert!(ok, "kubectl delete ns: {err}");
    assert!(out.contains("namespace \"kc-test\" deleted"), "{out}");
    assert!(
        sim.store
            .get(&ResourceKey::namespaces(), None, "kc-test")
            .is_none()
    );
    assert!(
        sim.store
            .list(&ResourceKey::cnpg_clusters(), None)
            .is_empty()
    );
    Ok(())
}

fn deleted_ns_is_not_found(sim: &KubeSim) -> Result<(), String> {
    let (ok, _, err) = run(sim.kubectl().args(["get", "ns", "kc-test"]));
    assert!(!ok && err.contains("NotFound"), "{err}");
    Ok(())
}

/// kubectl port-forward first tries WebSockets with the SPDY-tunnelling subprotocol (refused:
/// 403), then falls back to a SPDY upgrade (refused: 400); only kube-rs's v4.channel.k8s.io
/// protocol is simulated.
fn port_forward_upgrades_are_refused(sim: &KubeSim) -> Result<(), String> {
    sim.store
        .create(&ResourceKey::pods(), pod("pg-1", "default"))
        .unwrap();
    let (ok, _, err) = run(sim.kubectl().args([
        "port-forward",
        "pod/pg-1",
        ":5432",
        "--pod-running-timeout=5s",
    ]));
    assert!(!ok && err.contains("error upgrading connection"), "{err}");
    let pf: Vec<(String, u16)> = sim
        .store
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("portforward"))
        .map(|r| (r.verb, r.code))
        .collect();
    assert_eq!(
        pf,
        [("create".to_string(), 403), ("create".to_string(), 400)]
    );
    Ok(())
}

fn apply_is_recorded_as_a_patch(sim: &KubeSim) -> Result<(), String> {
    assert!(
        sim.store
            .requests()
            .iter()
            .any(|r| r.verb == "patch" && r.resource == "clusters")
    );
    Ok(())
}

/// client-go sends no kubeconfig credentials over plain http.
fn plain_http_requests_are_anonymous(sim: &KubeSim) -> Result<(), String> {
    let requests = sim.store.requests();
    assert!(requests.iter().all(|r| r.user == "system:anonymous"));
    Ok(())
}

/// What the request-recording cases share: the simulator (its pod pg-1 forwarding to an echo
/// server) and a client of it.
struct Recorded {
    sim: KubeSim,
    client: kube::Client,
}

/// The cases run in this order and each makes requests the simulator records: the last ones
/// check the record of all the earlier ones (so they run even when one of those failed, and
/// then report the difference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_recorded_with_rbac_verbs() {
    let sim = KubeSim::start(SimOptions::default());
    let client = sim.client().await;
    sim.store
        .create(&ResourceKey::pods(), pod("pg-1", "default"))
        .unwrap();
    let (echo, _finished) = echo_server().await;
    sim.store.set_port_target("default", "pg-1", 5432, echo);
    // Discovery is not recorded.
    client.list_api_groups().await.unwrap();
    client.list_core_api_resources("v1").await.unwrap();
    sim.store.clear_requests();
    let r = Recorded { sim, client };
    let mut cases = Cases::default();
    async_case!(cases, [], configmap_create_read_watch_patch_delete(&r));
    async_case!(cases, [], pod_logs_and_port_forward(&r));
    async_case!(cases, [], status_patch_of_a_missing_cluster_fails(&r));
    case!(cases, [], the_record_has_verb_resource_name_and_code(&r));
    case!(cases, [], every_request_is_in_the_default_namespace(&r));
    case!(cases, [], every_request_is_by_the_admin(&r));
    cases.finish("requests_are_recorded_with_rbac_verbs");
}

async fn configmap_create_read_watch_patch_delete(r: &Recorded) -> Result<(), String> {
    let cms: Api<ConfigMap> = Api::default_namespaced(r.client.clone());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.get("c").await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    let mut w = cms
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    assert!(w.next().await.is_some());
    drop(w);
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v2"}})),
    )
    .await
    .unwrap();
    cms.delete("c", &DeleteParams::default()).await.unwrap();
    cms.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    Ok(())
}

async fn pod_logs_and_port_forward(r: &Recorded) -> Result<(), String> {
    let pods: Api<Pod> = Api::default_namespaced(r.client.clone());
    pods.logs("pg-1", &LogParams::default()).await.unwrap();
    let mut pf = pods.portforward("pg-1", &[5432]).await.unwrap();
    drop(pf.take_stream(5432));
    tokio::time::timeout(WAIT, pf.join())
        .await
        .unwrap()
        .unwrap();
    Ok(())
}

async fn status_patch_of_a_missing_cluster_fails(r: &Recorded) -> Result<(), String> {
    let clusters: Api<DynamicObject> =
        Api::default_namespaced_with(r.client.clone(), &clusters_resource());
    clusters
        .patch_status(
            "nope",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {}})),
        )
        .await
        .unwrap_err();
    Ok(())
}

type Row = (String, String, String, Option<String>, Option<String>, u16);

fn the_record_has_verb_resource_name_and_code(r: &Recorded) -> Result<(), String> {
    let got: Vec<Row> = r
        .sim
        .store
        .requests()
        .into_iter()
        .map(|r: RequestRecord| {
            (
                r.verb,
                r.api_group,
                r.resource,
                r.subresource,
                r.name,
                r.code,
            )
        })
        .collect();
    assert_eq!(got, expected_requests());
    Ok(())
}

/// The requests the cases above make: (verb, API group, resource, subresource, name, code).
fn expected_requests() -> Vec<Row> {
    let s = |v: &str| v.to_string();
    vec![
        (s("create"), s(""), s("configmaps"), None, None, 201),
        (s("get"), s(""), s("configmaps"), None, Some(s("c")), 200),
        (s("list"), s(""), s("configmaps"), None, None, 200),
        (s("watch"), s(""), s("configmaps"), None, None, 200),
        (s("patch"), s(""), s("configmaps"), None, Some(s("c")), 200),
        (s("delete"), s(""), s("configmaps"), None, Some(s("c")), 200),
        (
            s("deletecollection"),
            s(""),
            s("configmaps"),
            None,
            None,
            200,
        ),
        (
            s("get"),
            s(""),
            s("pods"),
            Some(s("log")),
            Some(s("pg-1")),
            200,
        ),
        (
            s("create"),
            s(""),
            s("pods"),
            Some(s("portforward")),
            Some(s("pg-1")),
            101,
        ),
        (
            s("patch"),
            s("postgresql.cnpg.io"),
            s("clusters"),
            Some(s("status")),
            Some(s("nope")),
            404,
        ),
    ]
}

fn every_request_is_in_the_default_namespace(r: &Recorded) -> Result<(), String> {
    let requests = r.sim.store.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.namespace.as_deref() == Some("default"))
    );
    Ok(())
}

fn every_request_is_by_the_admin(r: &Recorded) -> Result<(), String> {
    let requests = r.sim.store.requests();
    assert!(requests.iter().all(|r| r.user == "kubesim-admin"));
    Ok(())
}

/// A debugging aid, not a check: `KUBESIM_SERVE_SECS=60 cargo test --test kubesim_api --
/// --ignored --nocapture serve_for_manual_use` prints a kubeconfig to point kubectl at.
#[test]
#[ignore = "manual debugging aid"]
fn serve_for_manual_use() {
    let secs = std::env::var("KUBESIM_SERVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let sim = KubeSim::start(SimOptions::default());
    sim.store
        .create(&ResourceKey::pods(), pod("pg-1", "default"))
        .unwrap();
    println!("KUBECONFIG={} ({})", sim.kubeconfig.display(), sim.url);
    std::thread::sleep(Duration::from_secs(secs));
    for r in sim.store.requests() {
        println!("{r:?}");
    }
}
