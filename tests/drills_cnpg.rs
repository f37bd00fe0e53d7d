//! The `cnpg` backend against the Kubernetes API simulator (real HTTP, the real kube client
//! through a kubeconfig) and a simulated CNPG operator that restores for real (barman-cloud,
//! PostgreSQL) from a real sandbox archive on S3 (moto).

mod cnpgsim;
mod common;
mod kubesim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cnpgsim::{Operator, OperatorOptions};
use common::*;
use kubesim::{KubeSim, ResourceKey, SimOptions, Store};
use serde_json::{Value, json};

const PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

/// pgdrill with the simulator's kubeconfig, in a scratch folder (reports land there).
fn pgdrill_k(sim: &KubeSim, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(args)
        .current_dir(sim.dir())
        .env("KUBECONFIG", &sim.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("PGDRILL_LOG", "warn")
        .output()
        .unwrap()
}

fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let s = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        k8s_openapi::ByteString(v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        ),
        ..Default::default()
    };
    let mut v = serde_json::to_value(s).unwrap();
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Secret");
    v
}

fn namespace(name: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": labels, "annotations": annotations}})
}

/// The sandbox's archive as a live source: namespace `prod` with the credentials Secret, an
/// ObjectStore and a Cluster `app` archiving to lineage app-v1 through the plugin.
fn seed_source(store: &Store, sb: &Sandbox) {
    let secrets = sb.dir.path().join("secrets/sandbox-s3");
    let read = |k: &str| std::fs::read_to_string(secrets.join(k)).unwrap();
    let (id, key) = (read("ACCESS_KEY_ID"), read("ACCESS_SECRET_KEY"));
    store
        .create(
            &ResourceKey::namespaces(),
            namespace("prod", json!({}), json!({})),
        )
        .unwrap();
    store
        .create(
            &ResourceKey::secrets(),
            secret(
                "prod",
                "sandbox-s3",
                &[("ACCESS_KEY_ID", &id), ("ACCESS_SECRET_KEY", &key)],
            ),
        )
        .unwrap();
    let config = json!({
        "destinationPath": sb.var("PGDRILL_DESTINATION_PATH"),
        "endpointURL": sb.var("PGDRILL_ENDPOINT_URL"),
        "s3Credentials": {
            "accessKeyId": {"name": "sandbox-s3", "key": "ACCESS_KEY_ID"},
            "secretAccessKey": {"name": "sandbox-s3", "key": "ACCESS_SECRET_KEY"}},
        "wal": {"compression": "gzip"},
    });
    store
        .create(
            &ResourceKey::object_stores(),
            json!({"apiVersion": "barmancloud.cnpg.io/v1", "kind": "ObjectStore",
                   "metadata": {"name": "sandbox-store", "namespace": "prod"},
                   "spec": {"configuration": config}}),
        )
        .unwrap();
    store
        .create(
            &ResourceKey::cnpg_clusters(),
            json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                   "metadata": {"name": "app", "namespace": "prod"},
                   "spec": {"instances": 1, "storage": {"size": "1Gi"},
                            "plugins": [{"name": PLUGIN, "isWALArchiver": true,
                                         "parameters": {"barmanObjectName": "sandbox-store", "serverName": "app-v1"}}]}}),
        )
        .unwrap();
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn labelled_pgdrill(store: &Store, res: &ResourceKey) -> Vec<String> {
    store
        .list(res, None)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pgdrill")
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Nothing of any drill is left: no drill namespace, Cluster, ObjectStore, Secret or PVC.
fn assert_clean(store: &Store) {
    let ok = store.wait_for(Duration::from_secs(10), |s| {
        [
            ResourceKey::namespaces(),
            ResourceKey::cnpg_clusters(),
            ResourceKey::object_stores(),
            ResourceKey::secrets(),
        ]
        .iter()
        .all(|r| labelled_pgdrill(s, r).is_empty())
            && s.list(&ResourceKey::pvcs(), None).is_empty()
    });
    assert!(
        ok,
        "drill objects left: namespaces {:?} clusters {:?} secrets {:?} pvcs {:?}",
        labelled_pgdrill(store, &ResourceKey::namespaces()),
        labelled_pgdrill(store, &ResourceKey::cnpg_clusters()),
        labelled_pgdrill(store, &ResourceKey::secrets()),
        store.list(&ResourceKey::pvcs(), None).len()
    );
}

/// Full-recovery job pods the operator created over the simulator's life.
fn recovery_pods_created(store: &Store) -> usize {
    store
        .history()
        .iter()
        .filter(|e| matches!(e.kind, kubesim::EventKind::Added))
        .filter(|e| e.object["metadata"]["labels"]["cnpg.io/jobRole"] == "full-recovery")
        .count()
}

#[test]
fn cnpg_drills_restore_verify_and_tear_down_on_the_simulator() {
    let sb = Sandbox::up("s3");
    let sim = KubeSim::start(SimOptions::default());
    // pgdrill authenticates with the kubeconfig's token: anonymous requests are refused.
    sim.require_token(true);
    let operator = Operator::start(sim.store.clone(), OperatorOptions::default());
    seed_source(&sim.store, &sb);
    sb.cmd(&["backup"]);
    sb.cmd(&[
        "workload",
        "--batches",
        "2",
        "--rows",
        "300",
        "--interval-ms",
        "1100",
    ]);
    sb.cmd(&["backup"]);
    let dir = sb.dir.path();
    let scenario = write(
        dir,
        "cnpg.yaml",
        "apiVersion: pgdrill/v1\nname: cnpg\nsource:\n  cluster: {namespace: prod, name: app}\n\
         lineages: [app-v1]\nbackend: cnpg\ncnpg:\n  enableSuperuserAccess: true\n\
         targets:\n  - latest\n  - baseline: before-batch-3\nchecks:\n  baseline: baseline.json\n\
         timeouts: {restore: 5m, recovery: 5m}\n",
    );
    let url = sb.var("PGDRILL_SOURCE_URL");
    let out = pgdrill_env(
        &[
            "baseline",
            "record",
            "-f",
            scenario.to_str().unwrap(),
            "--name",
            "before-batch-3",
            "--restore-point",
            "--switch-wal",
            "--configmap",
            "pgdrill-baselines",
        ],
        &[
            ("PGDRILL_SOURCE_URL", &url),
            ("KUBECONFIG", sim.kubeconfig.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The baseline is also kept in the cluster, where a CronJob can mount it.
    let cm = sim
        .store
        .get(
            &ResourceKey::configmaps(),
            Some("default"),
            "pgdrill-baselines",
        )
        .expect("baselines ConfigMap");
    let stored: Value =
        serde_json::from_str(cm["data"]["before-batch-3.json"].as_str().unwrap()).unwrap();
    assert_eq!(stored["counts"]["public.accounts"], 600);
    sb.cmd(&[
        "workload",
        "--batches",
        "2",
        "--rows",
        "300",
        "--interval-ms",
        "1100",
    ]);

    // A namespace a crashed run left hours ago, and a fresh one another run is using.
    let expired = json!({"pgdrill.io/expires-at": "2026-01-01T00:00:00Z"});
    let managed = json!({"app.kubernetes.io/managed-by": "pgdrill", "pgdrill.io/drill-id": "old"});
    sim.store
        .create(
            &ResourceKey::namespaces(),
            namespace("pgdrill-crashed", managed.clone(), expired),
        )
        .unwrap();
    sim.store.create(&ResourceKey::pvcs(), json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "drill-x-1", "namespace": "pgdrill-crashed", "labels": {"cnpg.io/cluster": "drill-x"}}})).unwrap();

    // And a drill Cluster a crashed run left in a fixed namespace, with its Secret and PVC.
    sim.store
        .create(
            &ResourceKey::namespaces(),
            namespace("drills", json!({}), json!({})),
        )
        .unwrap();
    let old = json!({"app.kubernetes.io/managed-by": "pgdrill", "pgdrill.io/drill-id": "old2"});
    let meta = |name: &str| {
        json!({"name": name, "namespace": "drills", "labels": old.clone(),
                                   "annotations": {"pgdrill.io/expires-at": "2026-01-01T00:00:00Z"}})
    };
    sim.store
        .create(
            &ResourceKey::cnpg_clusters(),
            json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": meta("drill-old2"), "spec": {"instances": 1}}),
        )
        .unwrap();
    sim.store
        .create(
            &ResourceKey::secrets(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("drill-old2-creds")}),
        )
        .unwrap();
    sim.store.create(&ResourceKey::pvcs(), json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "drill-old2-1", "namespace": "drills", "labels": {"cnpg.io/cluster": "drill-old2"}}})).unwrap();

    // latest and PITR to the baseline, through the plugin, from the live Cluster.
    let reports = dir.join("reports");
    let out = pgdrill_k(
        &sim,
        &[
            "run",
            "-f",
            scenario.to_str().unwrap(),
            "--output",
            "json",
            "--report-dir",
            reports.to_str().unwrap(),
            "--history-configmap",
            "pgdrill-history",
        ],
    );
    let err = stderr(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{err}\n{report}");
    assert!(
        err.contains("swept Namespace pgdrill-crashed/pgdrill-crashed"),
        "{err}"
    );
    assert!(err.contains("swept Cluster drills/drill-old2"), "{err}");
    assert!(
        err.contains("CNPG: Setting up primary"),
        "progress shows CNPG's phase: {err}"
    );
    assert_eq!(report["backend"], "cnpg");
    let latest = drill(&report, "latest");
    assert_eq!(latest["verdict"], "pass", "{latest}");
    assert_eq!(
        count(latest, "public.accounts"),
        (">= 600".into(), "1200".into())
    );
    let exact = drill(&report, "baseline:before-batch-3");
    assert_eq!(exact["verdict"], "pass", "{exact}");
    assert_eq!(
        count(exact, "public.accounts"),
        ("600".into(), "600".into())
    );
    assert_eq!(
        count(exact, "public.events"),
        ("1200".into(), "1200".into())
    );
    // Where recovery ended came from the full-recovery pod's log.
    assert!(latest["recovery"]["redo_done"].is_string(), "{latest}");
    assert!(
        exact["recovery"]["stop_reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("recovery stopping"),
        "{exact}"
    );
    assert_clean(&sim.store);
    // The source Cluster got an Event, and the history ConfigMap the two drills.
    let events: Vec<Value> = sim.store.list(&ResourceKey::events(), Some("prod"));
    let passed = events
        .iter()
        .find(|e| e["reason"] == "DrillPassed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(passed["involvedObject"]["name"], "app");
    assert_eq!(passed["involvedObject"]["kind"], "Cluster");
    assert!(
        passed["message"]
            .as_str()
            .unwrap()
            .contains("2 pass, 0 fail"),
        "{passed}"
    );
    let history = pgdrill_k(
        &sim,
        &[
            "history",
            "--configmap",
            "pgdrill-history",
            "--output",
            "json",
        ],
    );
    let entries = json(&history)["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{}", stderr(&history));
    assert_eq!(entries[0]["verdict"], "pass");
    assert_eq!(entries[1]["rows"]["public.accounts"], 600);
    assert!(entries[0]["rto_seconds"].as_f64().unwrap() > 0.0);
    // By default checks connect as the owner, with the password from `<cluster>-app`.
    let owner = write(
        dir,
        "owner.yaml",
        "apiVersion: pgdrill/v1\nname: owner\nsource:\n  cluster: {namespace: prod, name: app}\n\
         lineages: [app-v1]\nbackend: cnpg\ntargets: [latest]\nchecks:\n  database: app\n  sql:\n    \
         - {name: connected as the owner, query: select current_user, op: \"==\", expect: app}\n",
    );
    let out = pgdrill_k(
        &sim,
        &["run", "-f", owner.to_str().unwrap(), "--output", "json"],
    );
    let d = &json(&out)["drills"][0];
    assert_eq!(out.status.code(), Some(0), "{}\n{d}", stderr(&out));
    let check = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "sql")
        .unwrap();
    assert_eq!(check["actual"], "app", "{d}");
    assert_clean(&sim.store);
    // The drill Clusters were applied with an explicit serverName and no archiving.
    let applied: Vec<Value> = sim
        .store
        .history()
        .into_iter()
        .filter(|e| e.res.plural == "clusters" && matches!(e.kind, kubesim::EventKind::Added))
        .map(|e| e.object)
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pgdrill")
        .filter(|o| o["spec"]["bootstrap"].is_object())
        .collect();
    assert_eq!(applied.len(), 3);
    for c in &applied {
        assert_eq!(
            c["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"],
            "app-v1"
        );
        assert!(
            c["spec"]["backup"].is_null() && c["spec"]["plugins"].is_null(),
            "{c}"
        );
    }

    // In-tree recovery in a fixed namespace, Secrets read from `prod`, a target past the
    // archive: PostgreSQL's FATAL in the pod log decides, at the first failed attempt.
    let past = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let intree = write(
        dir,
        "intree.yaml",
        &format!(
            "apiVersion: pgdrill/v1\nname: intree\nsource:\n  barmanObjectStore:\n    destinationPath: {}\n    endpointURL: {}\n    \
             s3Credentials:\n      accessKeyId: {{name: sandbox-s3, key: ACCESS_KEY_ID}}\n      secretAccessKey: {{name: sandbox-s3, key: ACCESS_SECRET_KEY}}\n  \
             secretsNamespace: prod\nlineages: [app-v1]\nbackend: cnpg\ncnpg: {{recoveryPath: inTree, namespace: drills, enableSuperuserAccess: true}}\n\
             targets:\n  - time: \"{past}\"\n",
            sb.var("PGDRILL_DESTINATION_PATH"),
            sb.var("PGDRILL_ENDPOINT_URL")
        ),
    );
    let before = recovery_pods_created(&sim.store);
    let fixed_from = sim.store.requests().len();
    let out = pgdrill_k(
        &sim,
        &[
            "run",
            "-f",
            intree.to_str().unwrap(),
            "--output",
            "json",
            "--skip-preflight",
            "--report-dir",
            reports.to_str().unwrap(),
            "--history-configmap",
            "pgdrill-history",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(1), "{}\n{report}", stderr(&out));
    let d = &report["drills"][0];
    assert_eq!(d["verdict"], "fail");
    assert_eq!(d["cause"], "target_beyond_archive", "{d}");
    let evidence = d["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("recovery ended before configured recovery target was reached")
            && evidence.contains("full-recovery"),
        "{evidence}"
    );
    let attempts = recovery_pods_created(&sim.store) - before;
    assert!(
        (1..=2).contains(&attempts),
        "pgdrill stops CNPG's retries at the first decisive failure; saw {attempts} attempts"
    );
    assert_clean(&sim.store);
    assert!(
        sim.store
            .get(&ResourceKey::namespaces(), None, "drills")
            .is_some(),
        "a fixed namespace is not deleted"
    );
    let history = pgdrill_k(&sim, &["history", "--configmap", "pgdrill-history"]);
    let table = stdout(&history);
    assert_eq!(table.matches("app-v1").count(), 3, "{table}");
    assert!(table.contains("fail (target_beyond_archive)"), "{table}");

    // Without preflight skipped, the same target is refused before anything is applied.
    let applied_before = sim
        .store
        .history()
        .iter()
        .filter(|e| e.res.plural == "clusters")
        .count();
    let out = pgdrill_k(
        &sim,
        &[
            "run",
            "-f",
            intree.to_str().unwrap(),
            "--output",
            "json",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["drills"][0]["cause"], "target_beyond_archive");
    assert_eq!(
        sim.store
            .history()
            .iter()
            .filter(|e| e.res.plural == "clusters")
            .count(),
        applied_before
    );

    // RBAC: every request the backend made is granted by deploy/, and nothing granted is unused.
    check_rbac(&sim.store);
    // The fixed-namespace runs needed nothing beyond the Roles of that overlay.
    check_fixed_namespace_roles(&sim.store.requests()[fixed_from..]);
    drop(operator);
}

/// (verb, apiGroup, resource[/subresource]) the backend used, from the simulator's log. A
/// server-side apply that created an object needed `create` as well as `patch`.
fn used_permissions(store: &Store) -> std::collections::BTreeSet<(String, String, String)> {
    let mut used = std::collections::BTreeSet::new();
    for r in store.requests() {
        let res = match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        };
        used.insert((r.verb.clone(), r.api_group.clone(), res.clone()));
        if r.verb == "patch" && r.code == 201 {
            used.insert(("create".into(), r.api_group.clone(), res));
        }
    }
    used
}

/// Every (verb, apiGroup, resource) a Role or ClusterRole document grants.
fn grants(role: &Value) -> Vec<(String, String, String)> {
    let list = |rule: &Value, key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in list(rule, "apiGroups") {
            for r in list(rule, "resources") {
                for verb in list(rule, "verbs") {
                    out.push((verb, g.clone(), r.clone()));
                }
            }
        }
    }
    out
}

fn granted_permissions() -> std::collections::BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/rbac.yaml"),
    )
    .unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for doc in text.split("\n---") {
        let Ok(v) = serde_saphyr::from_str::<Value>(doc) else {
            continue;
        };
        if v["kind"] != "ClusterRole" {
            continue;
        }
        granted.extend(grants(&v));
    }
    granted
}

fn check_rbac(store: &Store) {
    let used = used_permissions(store);
    let granted = granted_permissions();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "used but not granted by deploy/base/rbac.yaml: {missing:?}"
    );
    // Granted for the in-cluster CronJob's own needs, exercised elsewhere; and `get` on
    // pods/portforward, which API servers before 1.31 check for the websocket upgrade.
    let elsewhere = [("get", "", "pods/portforward"), ("list", "", "events")];
    let unused: Vec<_> = granted
        .difference(&used)
        .filter(|(v, g, r)| !elsewhere.contains(&(v.as_str(), g.as_str(), r.as_str())))
        .collect();
    assert!(
        unused.is_empty(),
        "granted but never used (not minimal): {unused:?}"
    );
}

/// The Roles of deploy/overlays/fixed-namespace, by namespace: (verb, group, resource).
fn fixed_namespace_roles()
-> std::collections::BTreeMap<String, std::collections::BTreeSet<(String, String, String)>> {
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy/overlays/fixed-namespace"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut roles = std::collections::BTreeMap::new();
    for doc in text.split("\n---") {
        let Ok(v) = serde_saphyr::from_str::<Value>(doc) else {
            continue;
        };
        if v["kind"] != "Role" {
            continue;
        }
        let granted: &mut std::collections::BTreeSet<_> = roles
            .entry(v["metadata"]["namespace"].as_str().unwrap().to_string())
            .or_default();
        granted.extend(grants(&v));
    }
    roles
}

fn check_fixed_namespace_roles(requests: &[kubesim::RequestRecord]) {
    let roles = fixed_namespace_roles();
    // This test's namespaces stand for the overlay's: drills, the source's, pgdrill's own.
    let overlay_ns = |ns: &str| match ns {
        "drills" => "pgdrill-drills",
        "prod" => "app",
        "default" => "pgdrill",
        other => panic!("a request in an unexpected namespace {other}"),
    };
    assert!(!requests.is_empty());
    for r in requests {
        let ns = r.namespace.as_deref().unwrap_or_else(|| {
            panic!(
                "a cluster-scoped request needs cluster-wide rights: {} {}",
                r.verb, r.resource
            )
        });
        let res = match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        };
        let granted = &roles[overlay_ns(ns)];
        let mut needed = vec![r.verb.clone()];
        if r.verb == "patch" && r.code == 201 {
            needed.push("create".into());
        }
        for verb in needed {
            assert!(
                granted.contains(&(verb.clone(), r.api_group.clone(), res.clone())),
                "{verb} {}/{res} in {ns} is not granted by the fixed-namespace Roles",
                r.api_group
            );
        }
    }
}

/// One drill of `file` against an operator started with `opts`: checks the exit code and that
/// nothing is left, and returns the drill's report.
fn drill_against(sim: &KubeSim, opts: OperatorOptions, file: &Path, code: i32) -> Value {
    let operator = Operator::start(sim.store.clone(), opts);
    let out = pgdrill_k(
        sim,
        &["run", "-f", file.to_str().unwrap(), "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    let d = json(&out)["drills"][0].clone();
    assert_clean(&sim.store);
    drop(operator);
    d
}

fn evidence(d: &Value) -> &str {
    d["evidence"].as_str().unwrap_or_default()
}

/// A pgdrill run in the background, stopped with SIGTERM once `ready` holds.
fn sigterm_when(sim: &KubeSim, file: &Path, ready: impl Fn(&Store) -> bool) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["run", "-f", file.to_str().unwrap(), "--output", "json"])
        .current_dir(file.parent().unwrap())
        .env("KUBECONFIG", &sim.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(
        sim.store.wait_for(Duration::from_secs(60), &ready),
        "the drill never got there"
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    out
}

#[test]
fn sigterm_mid_restore_tears_down_and_failures_are_reported_as_cnpg_shows_them() {
    // A small archive on disk is enough: these drills stop before or during the restore.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    one_backup_archive(&root, "", 4);
    let scenario = |name: &str, extra: &str| {
        write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: pgdrill/v1\nname: {name}\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
             backend: cnpg\ntargets: [latest]\n{extra}",
                root.display()
            ),
        )
    };
    let sim = KubeSim::start(SimOptions::default());

    // SIGTERM while CNPG is restoring: the scratch namespace and all in it are deleted.
    let slow = Operator::start(
        sim.store.clone(),
        OperatorOptions {
            restore_delay: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let file = scenario("sigterm", "");
    let out = sigterm_when(&sim, &file, |s| {
        s.list(&ResourceKey::pods(), None)
            .iter()
            .any(|p| p["metadata"]["labels"]["cnpg.io/jobRole"] == "full-recovery")
            || s.list(&ResourceKey::cnpg_clusters(), None)
                .iter()
                .any(|c| c["status"]["phase"] == "Setting up primary")
    });
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("terminated: running drills were torn down"),
        "{}",
        stderr(&out)
    );
    assert_clean(&sim.store);
    drop(slow);

    // Never ready: the deadline, with CNPG's last phase as evidence.
    let d = drill_against(
        &sim,
        OperatorOptions {
            never_ready: true,
            ..Default::default()
        },
        &scenario("stuck", "timeouts: {restore: 2s, recovery: 2s}\n"),
        1,
    );
    assert_eq!(d["cause"], "recovery_timeout", "{d}");
    assert!(evidence(&d).contains("Setting up primary"), "{d}");

    // A plugin the operator does not know: CNPG's phase, an error (not the backup's fault).
    let d = drill_against(
        &sim,
        OperatorOptions {
            known_plugins: vec![],
            ..Default::default()
        },
        &scenario("noplugin", ""),
        2,
    );
    assert_eq!(d["verdict"], "error", "{d}");
    assert!(evidence(&d).contains("unknown plugin"), "{d}");

    // An image that cannot be pulled: an error naming the pod and the reason, at once.
    let d = drill_against(
        &sim,
        OperatorOptions {
            image_pull_backoff: true,
            ..Default::default()
        },
        &scenario("noimage", ""),
        2,
    );
    assert_eq!(d["verdict"], "error", "{d}");
    assert!(evidence(&d).contains("ImagePullBackOff"), "{d}");
    assert!(d["durations"]["total"].as_f64().unwrap() < 30.0, "{d}");

    // CNPG gives up after its retries, every job log saying the store was unreachable: an
    // error (the backup was never tested), not a failed backup.
    let d = drill_against(
        &sim,
        OperatorOptions {
            store_unreachable: true,
            backoff_limit: 1,
            ..Default::default()
        },
        &scenario("offline", ""),
        2,
    );
    assert_eq!(d["verdict"], "error", "{d}");
    assert!(
        evidence(&d).contains("could not reach the object store"),
        "{d}"
    );

    // `pgdrill cleanup`: expired objects only, unless --older-than says otherwise.
    let managed = json!({"app.kubernetes.io/managed-by": "pgdrill", "pgdrill.io/drill-id": "x"});
    for (name, labels, expires) in [
        ("pgdrill-old", managed.clone(), "2026-01-01T00:00:00Z"),
        ("pgdrill-fresh", managed.clone(), "2999-01-01T00:00:00Z"),
        ("unrelated", json!({}), "2026-01-01T00:00:00Z"),
    ] {
        let annotations = json!({"pgdrill.io/expires-at": expires});
        sim.store
            .create(
                &ResourceKey::namespaces(),
                namespace(name, labels, annotations),
            )
            .unwrap();
    }
    let dry = pgdrill_k(&sim, &["cleanup", "--dry-run"]);
    assert!(
        stdout(&dry).contains("would delete Namespace pgdrill-old")
            && !stdout(&dry).contains("fresh"),
        "{}",
        stdout(&dry)
    );
    assert!(
        sim.store
            .get(&ResourceKey::namespaces(), None, "pgdrill-old")
            .is_some()
    );
    let out = pgdrill_k(&sim, &["cleanup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sim.store.wait_for(Duration::from_secs(5), |s| {
        s.get(&ResourceKey::namespaces(), None, "pgdrill-old")
            .is_none()
    }));
    assert!(
        sim.store
            .get(&ResourceKey::namespaces(), None, "pgdrill-fresh")
            .is_some()
    );
    let out = pgdrill_k(&sim, &["cleanup", "--older-than", "0s", "--output", "json"]);
    assert_eq!(json(&out)["swept"][0]["name"], "pgdrill-fresh");
    assert!(sim.store.wait_for(Duration::from_secs(5), |s| {
        s.get(&ResourceKey::namespaces(), None, "pgdrill-fresh")
            .is_none()
    }));
    assert!(
        sim.store
            .get(&ResourceKey::namespaces(), None, "unrelated")
            .is_some(),
        "only pgdrill's objects are swept"
    );

    // No CNPG CRD: an error before anything is created, exit 2.
    let bare = KubeSim::start(SimOptions {
        cnpg_crds_installed: false,
        ..SimOptions::default()
    });
    let file = scenario("nocrd", "");
    let out = pgdrill_k(&bare, &["run", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CloudNativePG is not installed"),
        "{}",
        stderr(&out)
    );
    assert!(labelled_pgdrill(&bare.store, &ResourceKey::namespaces()).is_empty());
}
