//! One Cluster's bootstrap from a backup, step by step as CNPG takes it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use pgdrill::backend::Failure;
use pgdrill::backend::local::{LocalRequest, ScratchServer, recover};
use pgdrill::preflight::Target;
use pgdrill::store::{BarmanObjectStore, SecretValues, StoreSpec};

use super::{OperatorOptions, joblog, objects};
use crate::kubesim::{ResourceKey, Store};

const PHASE_SETTING_UP: &str = "Setting up primary";
const PHASE_HEALTHY: &str = "Cluster in healthy state";
const PHASE_UNRECOVERABLE: &str = "Cluster is unrecoverable and needs manual intervention";
const PHASE_UNKNOWN_PLUGIN: &str =
    "Cluster cannot proceed to reconciliation due to an unknown plugin being required";

fn set_status(store: &Store, ns: &str, name: &str, status: Value) {
    let _ = store.patch_status(&ResourceKey::cnpg_clusters(), ns, name, status);
}

fn not_ready(phase: &str, reason: &str, cluster: &str) -> Value {
    json!({
        "phase": phase, "phaseReason": reason, "instances": 0, "readyInstances": 0,
        "targetPrimary": format!("{cluster}-1"), "currentPrimary": "",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "ClusterIsNotReady", "message": "Cluster Is Not Ready"},
            {"type": "Initialized", "status": "False", "reason": "BootstrapPending", "message": "Cluster has not been bootstrapped yet"},
        ],
    })
}

/// The Secrets of a namespace as `name → key → value`.
fn secrets(store: &Store, ns: &str) -> SecretValues {
    store
        .list(&ResourceKey::secrets(), Some(ns))
        .into_iter()
        .filter_map(|v| serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(v).ok())
        .map(|s| {
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            (s.metadata.name.unwrap_or_default(), data)
        })
        .collect()
}

/// The recovery source: store block and serverName, with CNPG's defaults.
fn recovery_store(
    store: &Store,
    ns: &str,
    cluster: &Value,
) -> Result<(BarmanObjectStore, String, Option<String>), String> {
    let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &cluster["spec"];
    let source = spec["bootstrap"]["recovery"]["source"]
        .as_str()
        .unwrap_or_default();
    let external = spec["externalClusters"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["name"].as_str() == Some(source)))
        .ok_or_else(|| format!("External cluster {source} not found"))?;
    if let Some(plugin) = external["plugin"].as_object() {
        let plugin_name = plugin["name"].as_str().unwrap_or_default().to_string();
        let os_name = plugin["parameters"]["barmanObjectName"]
            .as_str()
            .unwrap_or_default();
        let os = store
            .get(&ResourceKey::object_stores(), Some(ns), os_name)
            .ok_or_else(|| format!("ObjectStore {ns}/{os_name} not found"))?;
        let block: BarmanObjectStore = serde_json::from_value(os["spec"]["configuration"].clone())
            .map_err(|e| format!("ObjectStore {os_name}: {e}"))?;
        // The plugin defaults serverName to the recovering Cluster's own name.
        let server = plugin["parameters"]["serverName"]
            .as_str()
            .unwrap_or(name)
            .to_string();
        Ok((block, server, Some(plugin_name)))
    } else {
        let block: BarmanObjectStore =
            serde_json::from_value(external["barmanObjectStore"].clone())
                .map_err(|e| format!("barmanObjectStore: {e}"))?;
        // In-tree: serverName falls back to the externalCluster's name.
        let server = block
            .server_name
            .clone()
            .unwrap_or_else(|| source.to_string());
        Ok((block, server, None))
    }
}

fn target(cluster: &Value) -> Target {
    let rt = &cluster["spec"]["bootstrap"]["recovery"]["recoveryTarget"];
    let s = |k: &str| rt[k].as_str().map(str::to_string);
    let text = if let Some(t) = s("targetTime") {
        format!("time:{t}")
    } else if let Some(l) = s("targetLSN") {
        format!("lsn:{l}")
    } else if let Some(x) = s("targetXID") {
        format!("xid:{x}")
    } else if let Some(n) = s("targetName") {
        format!("name:{n}")
    } else if rt["targetImmediate"].as_bool() == Some(true) {
        "immediate".into()
    } else {
        "latest".into()
    };
    let mut t: Target = text.parse().unwrap();
    t.backup_id = s("backupID");
    t
}

fn random_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (0..5)
        .map(|i| (b'a' + ((n >> (i * 5)) % 26) as u8) as char)
        .collect()
}

pub async fn bootstrap(
    store: Store,
    opts: OperatorOptions,
    work_root: PathBuf,
    ns: String,
    name: String,
    server: Arc<Mutex<Option<ScratchServer>>>,
) {
    let Some(cluster) = store.get(&ResourceKey::cnpg_clusters(), Some(&ns), &name) else {
        return;
    };
    let plugin = cluster["spec"]["externalClusters"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|e| e["plugin"]["name"].as_str().map(str::to_string));
    if let Some(p) = plugin.filter(|p| !opts.known_plugins.contains(p)) {
        set_status(
            &store,
            &ns,
            &name,
            not_ready(
                PHASE_UNKNOWN_PLUGIN,
                &format!(
                    "Unknown plugin: '{p}'. This may be caused by the plugin not being loaded correctly by the operator. Check the operator and plugin logs for errors"
                ),
                &name,
            ),
        );
        return;
    }
    let _ = store.create(
        &ResourceKey::events(),
        objects::event(
            &ns,
            &name,
            "Normal",
            "CreatingInstance",
            "Primary instance (from backup)",
        ),
    );
    set_status(
        &store,
        &ns,
        &name,
        not_ready(
            PHASE_SETTING_UP,
            &format!("Creating primary instance {name}-1"),
            &name,
        ),
    );
    let size = cluster["spec"]["storage"]["size"].as_str().unwrap_or("1Gi");
    let _ = store.create(&ResourceKey::pvcs(), objects::pvc(&ns, &name, size));
    if opts.never_ready {
        return;
    }
    if opts.image_pull_backoff {
        let mut pod = objects::job_pod(
            &ns,
            &name,
            &format!("{name}-1-full-recovery-{}", random_suffix()),
        );
        pod["status"] = json!({"phase": "Pending", "containerStatuses": [{
            "name": "full-recovery", "ready": false, "restartCount": 0, "image": "postgres",
            "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff",
                                  "message": "Back-off pulling image \"ghcr.io/cloudnative-pg/postgresql:15\""}}}]});
        let _ = store.create(&ResourceKey::pods(), pod);
        return;
    }
    let (block, server_name, via_plugin) = match recovery_store(&store, &ns, &cluster) {
        Ok(x) => x,
        Err(e) => {
            set_status(
                &store,
                &ns,
                &name,
                not_ready("Setting up primary", &e, &name),
            );
            return;
        }
    };
    let spec = StoreSpec {
        destination_path: block.destination_path.clone(),
        block: Some(block),
        secret_values: Some(Arc::new(secrets(&store, &ns))),
        ..Default::default()
    };
    let target = target(&cluster);
    let job = format!("{name}-1-full-recovery");
    for _attempt in 0..=opts.backoff_limit {
        tokio::time::sleep(opts.restore_delay).await;
        let pod = format!("{job}-{}", random_suffix());
        let _ = store.create(&ResourceKey::pods(), objects::job_pod(&ns, &name, &pod));
        store.append_log(&ns, &pod, &joblog::info(&job, "Starting the restore"));
        if via_plugin.is_some() {
            store.append_log(
                &ns,
                &pod,
                &joblog::info(&job, "Restore through plugin detected, proceeding..."),
            );
        }
        // Short: the server's Unix socket lives in this directory (a 107-byte path limit).
        static ATTEMPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let drill_id = format!("sim{n}");
        if opts.store_unreachable {
            let err = "while restoring cluster: encountered an error while checking the presence of first needed WAL in the archive: Network error (exit code 2)";
            store.append_log(
                &ns,
                &pod,
                &joblog::error(&job, "Error while restoring a backup", err),
            );
            set_pod_phase(&store, &ns, &pod, "Failed");
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let req = LocalRequest {
            store: spec.clone(),
            server_name: server_name.clone(),
            backup_id: target.backup_id.clone().unwrap_or_default(),
            target: target.clone(),
            work_root: work_root.clone(),
            drill_id: drill_id.clone(),
            restore_timeout: Duration::from_secs(300),
            recovery_timeout: Duration::from_secs(120),
            // Keep the directory so the server log can go into the pod log.
            keep_on_failure: true,
            // The simulated pod's port-forward reaches the server over TCP.
            listen_on_loopback: true,
        };
        match recover(&req).await {
            Ok(s) => {
                store.append_log(&ns, &pod, &joblog::postgres(&job, &s.log()));
                store.append_log(
                    &ns,
                    &pod,
                    &joblog::info(&job, "restore command execution completed"),
                );
                let port = s.port;
                *server.lock().unwrap() = Some(s);
                set_pod_phase(&store, &ns, &pod, "Succeeded");
                ready(&store, &ns, &name, &cluster, port).await;
                return;
            }
            Err(f) => {
                let dir = work_root.join(format!("pgdrill-{drill_id}"));
                let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                store.append_log(&ns, &pod, &joblog::postgres(&job, &log));
                let err = match &f {
                    Failure::Fail { cause, evidence, .. } if cause.as_str() == "base_backup_unreadable" => format!(
                        "while restoring cluster: encountered an error while restoring the backup with barman-cloud-restore: Operation error (exit code 1): {evidence}"
                    ),
                    Failure::Fail { .. } => "while activating instance: error starting PostgreSQL instance: exit status 1".to_string(),
                    Failure::Error { message, .. } => format!("while restoring cluster: Network error (exit code 2): {message}"),
                };
                store.append_log(
                    &ns,
                    &pod,
                    &joblog::error(&job, "Error while restoring a backup", &err),
                );
                store.append_log(&ns, &pod, &joblog::error(&job, "restore error", &err));
                stop_and_remove(&dir);
                set_pod_phase(&store, &ns, &pod, "Failed");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    set_status(
        &store,
        &ns,
        &name,
        not_ready(
            PHASE_UNRECOVERABLE,
            &format!(
                "Instance creation failed for the following jobs: {job}. Check the job logs to investigate the cause of the failure."
            ),
            &name,
        ),
    );
}

fn stop_and_remove(dir: &std::path::Path) {
    let data = dir.join("pgdata");
    if let Some(pid) = pgdrill::proc::postmaster_pid(&data) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn set_pod_phase(store: &Store, ns: &str, pod: &str, phase: &str) {
    if let Some(mut p) = store.get(&ResourceKey::pods(), Some(ns), pod) {
        p["status"]["phase"] = json!(phase);
        let _ = store.replace(&ResourceKey::pods(), p);
    }
}

/// After the job: the owner role and database, the user Secrets, the primary pod, the `-rw`
/// Service, `Ready=True`.
async fn ready(store: &Store, ns: &str, name: &str, cluster: &Value, port: u16) {
    let recovery = &cluster["spec"]["bootstrap"]["recovery"];
    let db = recovery["database"].as_str().unwrap_or("app");
    let owner = recovery["owner"].as_str().unwrap_or(db);
    let password = format!("pw-{}", random_suffix());
    let conn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    if let Ok((client, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!(
                "do $$ begin if not exists (select from pg_roles where rolname = '{owner}') then create role \"{owner}\" login; end if; end $$;
                 alter role \"{owner}\" login password '{password}';"
            ))
            .await;
        let exists = client
            .query_opt("select 1 from pg_database where datname = $1", &[&db])
            .await
            .ok()
            .flatten()
            .is_some();
        if !exists {
            let _ = client
                .batch_execute(&format!("create database \"{db}\" owner \"{owner}\""))
                .await;
        }
        if cluster["spec"]["enableSuperuserAccess"].as_bool() == Some(true) {
            let _ = client
                .batch_execute(&format!("alter role postgres password '{password}'"))
                .await;
        }
    }
    let _ = store.create(
        &ResourceKey::secrets(),
        objects::user_secret(ns, name, "app", owner, &password, db),
    );
    if cluster["spec"]["enableSuperuserAccess"].as_bool() == Some(true) {
        let _ = store.create(
            &ResourceKey::secrets(),
            objects::user_secret(ns, name, "superuser", "postgres", &password, "*"),
        );
    }
    let _ = store.create(&ResourceKey::services(), objects::rw_service(ns, name));
    let _ = store.create(&ResourceKey::pods(), objects::primary_pod(ns, name));
    store.set_port_target(
        ns,
        &format!("{name}-1"),
        5432,
        ([127, 0, 0, 1], port).into(),
    );
    if let Some(mut pvc) = store.get(&ResourceKey::pvcs(), Some(ns), &format!("{name}-1")) {
        pvc["metadata"]["annotations"]["cnpg.io/pvcStatus"] = json!("ready");
        let _ = store.replace(&ResourceKey::pvcs(), pvc);
    }
    set_status(
        store,
        ns,
        name,
        json!({
            "phase": PHASE_HEALTHY, "phaseReason": "", "instances": 1, "readyInstances": 1,
            "targetPrimary": format!("{name}-1"), "currentPrimary": format!("{name}-1"),
            "instanceNames": [format!("{name}-1")], "writeService": format!("{name}-rw"),
            "readService": format!("{name}-r"), "timelineID": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "Cluster is Ready"},
                {"type": "Initialized", "status": "True", "reason": "BootstrapCompleted", "message": "Cluster has been bootstrapped"},
            ],
        }),
    );
}
