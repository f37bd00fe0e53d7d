//! The `cnpg` backend against the Kubernetes API simulator (real HTTP, the real kube client
//! through a kubeconfig) and a simulated CNPG operator that restores for real (barman-cloud,
//! PostgreSQL) from a real sandbox archive on S3 (moto).

mod cnpgsim;
#[macro_use]
mod common;
mod kubesim;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cnpgsim::{Operator, OperatorOptions};
use common::*;
use kubesim::{Fault, KubeSim, ResourceKey, SimOptions, Store};
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
fn clean(store: &Store) -> Result<(), String> {
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
    ensure!(
        ok,
        "drill objects left: namespaces {:?} clusters {:?} secrets {:?} pvcs {:?}",
        labelled_pgdrill(store, &ResourceKey::namespaces()),
        labelled_pgdrill(store, &ResourceKey::cnpg_clusters()),
        labelled_pgdrill(store, &ResourceKey::secrets()),
        store.list(&ResourceKey::pvcs(), None).len()
    );
    Ok(())
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

/// One sandbox archive, one simulator and one operator for every case of
/// `cnpg_drills_restore_verify_and_tear_down_on_the_simulator`: two backups, a baseline at
/// restore point `before-batch-3` (also kept in a ConfigMap), 600 more rows after it, the
/// leftovers of crashed runs, and a first run of `latest` and the baseline through the plugin.
struct Drills {
    _operator: Operator,
    sim: KubeSim,
    sb: Sandbox,
    reports: PathBuf,
    /// `run` of cnpg.yaml (latest and baseline:before-batch-3), with a history ConfigMap.
    run: Output,
    report: Value,
    /// In-tree recovery in the fixed namespace `drills`, to a time an hour past the archive.
    intree: PathBuf,
    /// How many requests the simulator had logged before the first fixed-namespace run.
    fixed_from: Cell<Option<usize>>,
}

impl Drills {
    fn up() -> Self {
        let sb = Sandbox::up("s3");
        let sim = KubeSim::start(SimOptions::default());
        // pgdrill authenticates with the kubeconfig's token: anonymous requests are refused.
        sim.require_token(true);
        let operator = Operator::start(sim.store.clone(), OperatorOptions::default());
        seed_source(&sim.store, &sb);
        let workload = [
            "workload",
            "--batches",
            "2",
            "--rows",
            "300",
            "--interval-ms",
            "1100",
        ];
        sb.cmd(&["backup"]);
        sb.cmd(&workload);
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
        sb.cmd(&workload);
        seed_crashed_runs(&sim.store);

        // latest and PITR to the baseline, through the plugin, from the live Cluster.
        let reports = dir.join("reports");
        let run = pgdrill_k(
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
        let report: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
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
        Drills {
            _operator: operator,
            sim,
            sb,
            reports,
            run,
            report,
            intree,
            fixed_from: Cell::new(None),
        }
    }

    fn stderr(&self) -> String {
        stderr(&self.run)
    }
}

/// A namespace a crashed run left hours ago, with a PVC; and a drill Cluster a crashed run
/// left in the fixed namespace `drills`, with its Secret and PVC.
fn seed_crashed_runs(store: &Store) {
    let expired = json!({"pgdrill.io/expires-at": "2026-01-01T00:00:00Z"});
    let managed = json!({"app.kubernetes.io/managed-by": "pgdrill", "pgdrill.io/drill-id": "old"});
    store
        .create(
            &ResourceKey::namespaces(),
            namespace("pgdrill-crashed", managed.clone(), expired),
        )
        .unwrap();
    store.create(&ResourceKey::pvcs(), json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "drill-x-1", "namespace": "pgdrill-crashed", "labels": {"cnpg.io/cluster": "drill-x"}}})).unwrap();

    store
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
    store
        .create(
            &ResourceKey::cnpg_clusters(),
            json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": meta("drill-old2"), "spec": {"instances": 1}}),
        )
        .unwrap();
    store
        .create(
            &ResourceKey::secrets(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("drill-old2-creds")}),
        )
        .unwrap();
    store.create(&ResourceKey::pvcs(), json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "drill-old2-1", "namespace": "drills", "labels": {"cnpg.io/cluster": "drill-old2"}}})).unwrap();
}

#[test]
fn cnpg_drills_restore_verify_and_tear_down_on_the_simulator() {
    let shared = Drills::up();
    // Order matters: every case shares the simulator, whose objects, Events, history
    // ConfigMap and request log each run adds to. The first six read the setup's run, so
    // they come before any other run (the next run adds an Event, the in-tree run a history
    // entry, and each run must start clean); `drill_clusters_*` counts the Clusters of the
    // first two runs, before the in-tree ones and the API-fault runs (which keep no history);
    // `in_tree_*` marks where the fixed-namespace
    // requests start and counts the history of the runs before it; the RBAC cases check the
    // requests of every run, so they come last.
    let cases: &[(&str, Case<Drills>)] = &[
        ("baseline_kept_in_a_configmap", baseline_kept_in_a_configmap),
        ("crashed_runs_are_swept", crashed_runs_are_swept),
        ("progress_shows_cnpg_phase", progress_shows_cnpg_phase),
        ("latest_and_baseline_pass", latest_and_baseline_pass),
        ("nothing_left_after_the_run", nothing_left_after_the_run),
        ("source_cluster_gets_an_event", source_cluster_gets_an_event),
        ("history_holds_both_drills", history_holds_both_drills),
        ("checks_connect_as_the_owner", checks_connect_as_the_owner),
        (
            "drill_clusters_name_the_server_and_do_not_archive",
            drill_clusters_name_the_server_and_do_not_archive,
        ),
        (
            "a_dropped_watch_is_watched_again",
            a_dropped_watch_is_watched_again,
        ),
        (
            "transient_apply_refusals_are_retried",
            transient_apply_refusals_are_retried,
        ),
        (
            "in_tree_target_beyond_archive_fails_at_the_first_attempt",
            in_tree_target_beyond_archive_fails_at_the_first_attempt,
        ),
        (
            "preflight_refuses_target_beyond_archive",
            preflight_refuses_target_beyond_archive,
        ),
        (
            "rbac_grants_exactly_what_is_used",
            rbac_grants_exactly_what_is_used,
        ),
        (
            "fixed_namespace_runs_need_only_its_roles",
            fixed_namespace_runs_need_only_its_roles,
        ),
    ];
    let failed = failures(&shared, cases);
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// The baseline is also kept in the cluster, where a CronJob can mount it.
fn baseline_kept_in_a_configmap(cx: &Drills) -> Result<(), String> {
    let cm = cx
        .sim
        .store
        .get(
            &ResourceKey::configmaps(),
            Some("default"),
            "pgdrill-baselines",
        )
        .ok_or("no baselines ConfigMap")?;
    let stored: Value =
        serde_json::from_str(cm["data"]["before-batch-3.json"].as_str().unwrap()).unwrap();
    ensure_eq!(stored["counts"]["public.accounts"], 600);
    Ok(())
}

/// The run swept the expired namespace and the expired drill Cluster of crashed runs.
fn crashed_runs_are_swept(cx: &Drills) -> Result<(), String> {
    let err = cx.stderr();
    ensure!(
        err.contains("swept Namespace pgdrill-crashed/pgdrill-crashed"),
        "{err}"
    );
    ensure!(err.contains("swept Cluster drills/drill-old2"), "{err}");
    Ok(())
}

fn progress_shows_cnpg_phase(cx: &Drills) -> Result<(), String> {
    let err = cx.stderr();
    ensure!(
        err.contains("CNPG: Setting up primary"),
        "progress shows CNPG's phase: {err}"
    );
    Ok(())
}

/// latest passes with counts ≥ baseline, the baseline point with exact counts; where
/// recovery ended came from the full-recovery pod's log.
fn latest_and_baseline_pass(cx: &Drills) -> Result<(), String> {
    let report = &cx.report;
    ensure_eq!(cx.run.status.code(), Some(0), "{}\n{report}", cx.stderr());
    ensure_eq!(report["backend"], "cnpg");
    let latest = drill(report, "latest");
    ensure_eq!(latest["verdict"], "pass", "{latest}");
    ensure_eq!(
        count(latest, "public.accounts"),
        (">= 600".into(), "1200".into())
    );
    let exact = drill(report, "baseline:before-batch-3");
    ensure_eq!(exact["verdict"], "pass", "{exact}");
    ensure_eq!(
        count(exact, "public.accounts"),
        ("600".into(), "600".into())
    );
    ensure_eq!(
        count(exact, "public.events"),
        ("1200".into(), "1200".into())
    );
    ensure!(latest["recovery"]["redo_done"].is_string(), "{latest}");
    ensure!(
        exact["recovery"]["stop_reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("recovery stopping"),
        "{exact}"
    );
    Ok(())
}

fn nothing_left_after_the_run(cx: &Drills) -> Result<(), String> {
    clean(&cx.sim.store)
}

/// The source Cluster got an Event saying how the drills went.
fn source_cluster_gets_an_event(cx: &Drills) -> Result<(), String> {
    let events: Vec<Value> = cx.sim.store.list(&ResourceKey::events(), Some("prod"));
    let Some(passed) = events.iter().find(|e| e["reason"] == "DrillPassed") else {
        return Err(format!("no DrillPassed Event: {events:?}"));
    };
    ensure_eq!(passed["involvedObject"]["name"], "app");
    ensure_eq!(passed["involvedObject"]["kind"], "Cluster");
    ensure!(
        passed["message"]
            .as_str()
            .unwrap()
            .contains("2 pass, 0 fail"),
        "{passed}"
    );
    Ok(())
}

/// The history ConfigMap holds the two drills of the run.
fn history_holds_both_drills(cx: &Drills) -> Result<(), String> {
    let history = pgdrill_k(
        &cx.sim,
        &[
            "history",
            "--configmap",
            "pgdrill-history",
            "--output",
            "json",
        ],
    );
    let entries = json(&history)["entries"].as_array().unwrap().clone();
    ensure_eq!(entries.len(), 2, "{}", stderr(&history));
    ensure_eq!(entries[0]["verdict"], "pass");
    ensure_eq!(entries[1]["rows"]["public.accounts"], 600);
    ensure!(entries[0]["rto_seconds"].as_f64().unwrap() > 0.0);
    Ok(())
}

/// By default checks connect as the owner, with the password from `<cluster>-app`.
fn checks_connect_as_the_owner(cx: &Drills) -> Result<(), String> {
    let owner = write(
        cx.sb.dir.path(),
        "owner.yaml",
        "apiVersion: pgdrill/v1\nname: owner\nsource:\n  cluster: {namespace: prod, name: app}\n\
         lineages: [app-v1]\nbackend: cnpg\ntargets: [latest]\nchecks:\n  database: app\n  sql:\n    \
         - {name: connected as the owner, query: select current_user, op: \"==\", expect: app}\n",
    );
    let out = pgdrill_k(
        &cx.sim,
        &["run", "-f", owner.to_str().unwrap(), "--output", "json"],
    );
    let d = &json(&out)["drills"][0];
    ensure_eq!(out.status.code(), Some(0), "{}\n{d}", stderr(&out));
    let check = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "sql")
        .unwrap();
    ensure_eq!(check["actual"], "app", "{d}");
    clean(&cx.sim.store)
}

/// The drill Clusters of the three plugin drills were applied with an explicit serverName
/// and no archiving.
fn drill_clusters_name_the_server_and_do_not_archive(cx: &Drills) -> Result<(), String> {
    let applied: Vec<Value> = cx
        .sim
        .store
        .history()
        .into_iter()
        .filter(|e| e.res.plural == "clusters" && matches!(e.kind, kubesim::EventKind::Added))
        .map(|e| e.object)
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pgdrill")
        .filter(|o| o["spec"]["bootstrap"].is_object())
        .collect();
    ensure_eq!(applied.len(), 3);
    for c in &applied {
        ensure_eq!(
            c["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"],
            "app-v1"
        );
        ensure!(
            c["spec"]["backup"].is_null() && c["spec"]["plugins"].is_null(),
            "{c}"
        );
    }
    Ok(())
}

/// One drill of `latest` from the live Cluster while the simulator injects `faults`
/// (verb, resource, how many, fault): the drill's report and the requests the run made. The
/// faults are cleared afterwards, and nothing of the drill may be left.
fn drill_with_faults(
    cx: &Drills,
    faults: &[(&str, &str, usize, Fault)],
) -> Result<(Value, Vec<kubesim::RequestRecord>), String> {
    let file = write(
        cx.sb.dir.path(),
        "faults.yaml",
        "apiVersion: pgdrill/v1\nname: faults\nsource:\n  cluster: {namespace: prod, name: app}\n\
         lineages: [app-v1]\nbackend: cnpg\ncnpg: {enableSuperuserAccess: true}\n\
         targets: [latest]\ntimeouts: {restore: 5m, recovery: 5m}\n",
    );
    let from = cx.sim.store.requests().len();
    for (verb, resource, n, fault) in faults {
        cx.sim.inject(verb, resource, *n, *fault);
    }
    let out = pgdrill_k(
        &cx.sim,
        &["run", "-f", file.to_str().unwrap(), "--output", "json"],
    );
    cx.sim.clear_faults();
    let d = json(&out)["drills"][0].clone();
    ensure_eq!(out.status.code(), Some(0), "{}\n{d}", stderr(&out));
    ensure_eq!(d["verdict"], "pass", "{d}");
    clean(&cx.sim.store)?;
    Ok((d, cx.sim.store.requests()[from..].to_vec()))
}

fn cluster_requests(requests: &[kubesim::RequestRecord], verb: &str) -> Vec<u16> {
    requests
        .iter()
        .filter(|r| {
            r.verb == verb && r.resource == "clusters" && r.namespace.as_deref() != Some("prod")
        })
        .map(|r| r.code)
        .collect()
}

/// The API server closes the Cluster watch mid-stream while CNPG restores: pgdrill watches
/// again and the drill passes.
fn a_dropped_watch_is_watched_again(cx: &Drills) -> Result<(), String> {
    let (_, requests) = drill_with_faults(cx, &[("watch", "clusters", 1, Fault::CutWatch)])?;
    let watches = cluster_requests(&requests, "watch");
    ensure!(
        watches.len() >= 2,
        "one watch cut, another opened: {watches:?}"
    );
    Ok(())
}

/// The Cluster's apply refused once with 429 (Retry-After: 1) and once with 500: both are
/// sent again, and the drill passes.
fn transient_apply_refusals_are_retried(cx: &Drills) -> Result<(), String> {
    let (_, requests) = drill_with_faults(
        cx,
        &[
            ("patch", "clusters", 1, Fault::TooManyRequests),
            ("patch", "clusters", 1, Fault::Internal),
        ],
    )?;
    let applies = cluster_requests(&requests, "patch");
    ensure_eq!(applies, vec![429, 500, 201]);
    Ok(())
}

/// In-tree recovery in a fixed namespace, Secrets read from `prod`, a target past the
/// archive: PostgreSQL's FATAL in the pod log decides, at the first failed attempt.
fn in_tree_target_beyond_archive_fails_at_the_first_attempt(cx: &Drills) -> Result<(), String> {
    let store = &cx.sim.store;
    let before = recovery_pods_created(store);
    cx.fixed_from.set(Some(store.requests().len()));
    let out = pgdrill_k(
        &cx.sim,
        &[
            "run",
            "-f",
            cx.intree.to_str().unwrap(),
            "--output",
            "json",
            "--skip-preflight",
            "--report-dir",
            cx.reports.to_str().unwrap(),
            "--history-configmap",
            "pgdrill-history",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    ensure_eq!(out.status.code(), Some(1), "{}\n{report}", stderr(&out));
    let d = &report["drills"][0];
    ensure_eq!(d["verdict"], "fail");
    ensure_eq!(d["cause"], "target_beyond_archive", "{d}");
    let evidence = d["evidence"].as_str().unwrap();
    ensure!(
        evidence.contains("recovery ended before configured recovery target was reached")
            && evidence.contains("full-recovery"),
        "{evidence}"
    );
    let attempts = recovery_pods_created(store) - before;
    ensure!(
        (1..=2).contains(&attempts),
        "pgdrill stops CNPG's retries at the first decisive failure; saw {attempts} attempts"
    );
    clean(store)?;
    ensure!(
        store
            .get(&ResourceKey::namespaces(), None, "drills")
            .is_some(),
        "a fixed namespace is not deleted"
    );
    let history = pgdrill_k(&cx.sim, &["history", "--configmap", "pgdrill-history"]);
    let table = stdout(&history);
    ensure_eq!(table.matches("app-v1").count(), 3, "{table}");
    ensure!(table.contains("fail (target_beyond_archive)"), "{table}");
    Ok(())
}

/// Without preflight skipped, the same target is refused before anything is applied.
fn preflight_refuses_target_beyond_archive(cx: &Drills) -> Result<(), String> {
    let clusters = || {
        cx.sim
            .store
            .history()
            .iter()
            .filter(|e| e.res.plural == "clusters")
            .count()
    };
    let applied_before = clusters();
    let out = pgdrill_k(
        &cx.sim,
        &[
            "run",
            "-f",
            cx.intree.to_str().unwrap(),
            "--output",
            "json",
            "--report-dir",
            cx.reports.to_str().unwrap(),
        ],
    );
    ensure_eq!(out.status.code(), Some(1));
    ensure_eq!(json(&out)["drills"][0]["cause"], "target_beyond_archive");
    ensure_eq!(clusters(), applied_before);
    Ok(())
}

/// RBAC: every request the backend made is granted by deploy/, and nothing granted is unused.
fn rbac_grants_exactly_what_is_used(cx: &Drills) -> Result<(), String> {
    check_rbac(&cx.sim.store)
}

/// The fixed-namespace runs needed nothing beyond the Roles of that overlay.
fn fixed_namespace_runs_need_only_its_roles(cx: &Drills) -> Result<(), String> {
    let from = cx
        .fixed_from
        .get()
        .ok_or("the fixed-namespace runs did not start")?;
    check_fixed_namespace_roles(&cx.sim.store.requests()[from..])
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

fn check_rbac(store: &Store) -> Result<(), String> {
    let used = used_permissions(store);
    let granted = granted_permissions();
    let missing: Vec<_> = used.difference(&granted).collect();
    ensure!(
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
    ensure!(
        unused.is_empty(),
        "granted but never used (not minimal): {unused:?}"
    );
    Ok(())
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

fn check_fixed_namespace_roles(requests: &[kubesim::RequestRecord]) -> Result<(), String> {
    let roles = fixed_namespace_roles();
    // This test's namespaces stand for the overlay's: drills, the source's, pgdrill's own.
    let overlay_ns = |ns: &str| match ns {
        "drills" => Ok("pgdrill-drills"),
        "prod" => Ok("app"),
        "default" => Ok("pgdrill"),
        other => Err(format!("a request in an unexpected namespace {other}")),
    };
    ensure!(!requests.is_empty());
    for r in requests {
        let Some(ns) = r.namespace.as_deref() else {
            return Err(format!(
                "a cluster-scoped request needs cluster-wide rights: {} {}",
                r.verb, r.resource
            ));
        };
        let res = match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        };
        let granted = &roles[overlay_ns(ns)?];
        let mut needed = vec![r.verb.clone()];
        if r.verb == "patch" && r.code == 201 {
            needed.push("create".into());
        }
        for verb in needed {
            ensure!(
                granted.contains(&(verb.clone(), r.api_group.clone(), res.clone())),
                "{verb} {}/{res} in {ns} is not granted by the fixed-namespace Roles",
                r.api_group
            );
        }
    }
    Ok(())
}

/// One drill of `file` against an operator started with `opts`: checks the exit code and that
/// nothing is left, and returns the drill's report.
fn drill_against(
    sim: &KubeSim,
    opts: OperatorOptions,
    file: &Path,
    code: i32,
) -> Result<Value, String> {
    let operator = Operator::start(sim.store.clone(), opts);
    let out = pgdrill_k(
        sim,
        &["run", "-f", file.to_str().unwrap(), "--output", "json"],
    );
    ensure_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    let d = json(&out)["drills"][0].clone();
    clean(&sim.store)?;
    drop(operator);
    Ok(d)
}

fn evidence(d: &Value) -> &str {
    d["evidence"].as_str().unwrap_or_default()
}

/// A pgdrill run in the background, stopped with SIGTERM once `ready` holds (killed, and the
/// case failed, if it never does).
fn sigterm_when(
    sim: &KubeSim,
    file: &Path,
    ready: impl Fn(&Store) -> bool,
) -> Result<Output, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["run", "-f", file.to_str().unwrap(), "--output", "json"])
        .current_dir(file.parent().unwrap())
        .env("KUBECONFIG", &sim.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    if !sim.store.wait_for(Duration::from_secs(60), &ready) {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the drill never got there".into());
    }
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    ensure!(started.elapsed() < Duration::from_secs(60));
    Ok(out)
}

/// One simulator and a small archive on disk for every case of
/// `sigterm_mid_restore_tears_down_and_failures_are_reported_as_cnpg_shows_them`: these
/// drills stop before or during the restore.
struct Stopped {
    sim: KubeSim,
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Stopped {
    fn up() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        one_backup_archive(&root, "", 4);
        let sim = KubeSim::start(SimOptions::default());
        Stopped { sim, dir, root }
    }

    /// A scenario `name` of one drill of `latest` from the archive, with `extra` appended.
    fn scenario(&self, name: &str, extra: &str) -> PathBuf {
        write(
            self.dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: pgdrill/v1\nname: {name}\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
             backend: cnpg\ntargets: [latest]\n{extra}",
                self.root.display()
            ),
        )
    }
}

#[test]
fn sigterm_mid_restore_tears_down_and_failures_are_reported_as_cnpg_shows_them() {
    let shared = Stopped::up();
    // Order matters: the cases share the simulator, and each checks that nothing of any drill
    // is left, so each starts from what the one before left; `cleanup_*` sweeps whatever of
    // pgdrill's has expired and expects its own namespaces only, so it comes after the drills.
    let cases: &[(&str, Case<Stopped>)] = &[
        (
            "sigterm_mid_restore_tears_down",
            sigterm_mid_restore_tears_down,
        ),
        (
            "never_ready_is_a_recovery_timeout",
            never_ready_is_a_recovery_timeout,
        ),
        ("unknown_plugin_is_an_error", unknown_plugin_is_an_error),
        (
            "image_pull_backoff_is_an_error_at_once",
            image_pull_backoff_is_an_error_at_once,
        ),
        (
            "unreachable_store_is_an_error_not_a_failed_backup",
            unreachable_store_is_an_error_not_a_failed_backup,
        ),
        (
            "cleanup_sweeps_expired_unless_older_than",
            cleanup_sweeps_expired_unless_older_than,
        ),
        ("no_cnpg_crd_is_an_error", no_cnpg_crd_is_an_error),
        (
            "a_conflict_on_apply_is_an_error",
            a_conflict_on_apply_is_an_error,
        ),
        (
            "a_failing_api_is_an_error_before_the_deadline",
            a_failing_api_is_an_error_before_the_deadline,
        ),
    ];
    let failed = failures(&shared, cases);
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// SIGTERM while CNPG is restoring: the scratch namespace and all in it are deleted.
fn sigterm_mid_restore_tears_down(cx: &Stopped) -> Result<(), String> {
    let slow = Operator::start(
        cx.sim.store.clone(),
        OperatorOptions {
            restore_delay: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let file = cx.scenario("sigterm", "");
    let out = sigterm_when(&cx.sim, &file, |s| {
        s.list(&ResourceKey::pods(), None)
            .iter()
            .any(|p| p["metadata"]["labels"]["cnpg.io/jobRole"] == "full-recovery")
            || s.list(&ResourceKey::cnpg_clusters(), None)
                .iter()
                .any(|c| c["status"]["phase"] == "Setting up primary")
    })?;
    ensure_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    ensure!(
        stderr(&out).contains("terminated: running drills were torn down"),
        "{}",
        stderr(&out)
    );
    clean(&cx.sim.store)?;
    drop(slow);
    Ok(())
}

/// Never ready: the deadline, with CNPG's last phase as evidence.
fn never_ready_is_a_recovery_timeout(cx: &Stopped) -> Result<(), String> {
    let d = drill_against(
        &cx.sim,
        OperatorOptions {
            never_ready: true,
            ..Default::default()
        },
        &cx.scenario("stuck", "timeouts: {restore: 2s, recovery: 2s}\n"),
        1,
    )?;
    ensure_eq!(d["cause"], "recovery_timeout", "{d}");
    ensure!(evidence(&d).contains("Setting up primary"), "{d}");
    Ok(())
}

/// A plugin the operator does not know: CNPG's phase, an error (not the backup's fault).
fn unknown_plugin_is_an_error(cx: &Stopped) -> Result<(), String> {
    let d = drill_against(
        &cx.sim,
        OperatorOptions {
            known_plugins: vec![],
            ..Default::default()
        },
        &cx.scenario("noplugin", ""),
        2,
    )?;
    ensure_eq!(d["verdict"], "error", "{d}");
    ensure!(evidence(&d).contains("unknown plugin"), "{d}");
    Ok(())
}

/// An image that cannot be pulled: an error naming the pod and the reason, at once.
fn image_pull_backoff_is_an_error_at_once(cx: &Stopped) -> Result<(), String> {
    let d = drill_against(
        &cx.sim,
        OperatorOptions {
            image_pull_backoff: true,
            ..Default::default()
        },
        &cx.scenario("noimage", ""),
        2,
    )?;
    ensure_eq!(d["verdict"], "error", "{d}");
    ensure!(evidence(&d).contains("ImagePullBackOff"), "{d}");
    ensure!(d["durations"]["total"].as_f64().unwrap() < 30.0, "{d}");
    Ok(())
}

/// CNPG gives up after its retries, every job log saying the store was unreachable: an
/// error (the backup was never tested), not a failed backup.
fn unreachable_store_is_an_error_not_a_failed_backup(cx: &Stopped) -> Result<(), String> {
    let d = drill_against(
        &cx.sim,
        OperatorOptions {
            store_unreachable: true,
            backoff_limit: 1,
            ..Default::default()
        },
        &cx.scenario("offline", ""),
        2,
    )?;
    ensure_eq!(d["verdict"], "error", "{d}");
    ensure!(
        evidence(&d).contains("could not reach the object store"),
        "{d}"
    );
    Ok(())
}

/// `pgdrill cleanup`: expired objects only, unless --older-than says otherwise.
fn cleanup_sweeps_expired_unless_older_than(cx: &Stopped) -> Result<(), String> {
    let store = &cx.sim.store;
    let managed = json!({"app.kubernetes.io/managed-by": "pgdrill", "pgdrill.io/drill-id": "x"});
    for (name, labels, expires) in [
        ("pgdrill-old", managed.clone(), "2026-01-01T00:00:00Z"),
        ("pgdrill-fresh", managed.clone(), "2999-01-01T00:00:00Z"),
        ("unrelated", json!({}), "2026-01-01T00:00:00Z"),
    ] {
        let annotations = json!({"pgdrill.io/expires-at": expires});
        store
            .create(
                &ResourceKey::namespaces(),
                namespace(name, labels, annotations),
            )
            .unwrap();
    }
    let exists = |name: &str| store.get(&ResourceKey::namespaces(), None, name).is_some();
    let gone = |name: &str| {
        store.wait_for(Duration::from_secs(5), |s| {
            s.get(&ResourceKey::namespaces(), None, name).is_none()
        })
    };
    let dry = pgdrill_k(&cx.sim, &["cleanup", "--dry-run"]);
    ensure!(
        stdout(&dry).contains("would delete Namespace pgdrill-old")
            && !stdout(&dry).contains("fresh"),
        "{}",
        stdout(&dry)
    );
    ensure!(exists("pgdrill-old"));
    let out = pgdrill_k(&cx.sim, &["cleanup"]);
    ensure!(out.status.success(), "{}", stderr(&out));
    ensure!(gone("pgdrill-old"));
    ensure!(exists("pgdrill-fresh"));
    let out = pgdrill_k(
        &cx.sim,
        &["cleanup", "--older-than", "0s", "--output", "json"],
    );
    ensure_eq!(json(&out)["swept"][0]["name"], "pgdrill-fresh");
    ensure!(gone("pgdrill-fresh"));
    ensure!(exists("unrelated"), "only pgdrill's objects are swept");
    Ok(())
}

/// No CNPG CRD: an error before anything is created, exit 2.
fn no_cnpg_crd_is_an_error(cx: &Stopped) -> Result<(), String> {
    let bare = KubeSim::start(SimOptions {
        cnpg_crds_installed: false,
        ..SimOptions::default()
    });
    let file = cx.scenario("nocrd", "");
    let out = pgdrill_k(&bare, &["run", "-f", file.to_str().unwrap()]);
    ensure_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    ensure!(
        stderr(&out).contains("CloudNativePG is not installed"),
        "{}",
        stderr(&out)
    );
    ensure!(labelled_pgdrill(&bare.store, &ResourceKey::namespaces()).is_empty());
    Ok(())
}

/// 409 Conflict on the Cluster's apply: an error (exit 2), not a failed backup, and what was
/// created before it is deleted.
fn a_conflict_on_apply_is_an_error(cx: &Stopped) -> Result<(), String> {
    cx.sim.inject("patch", "clusters", 1, Fault::Conflict);
    let d = drill_against(
        &cx.sim,
        OperatorOptions::default(),
        &cx.scenario("conflict", ""),
        2,
    );
    cx.sim.clear_faults();
    let d = d?;
    ensure_eq!(d["verdict"], "error", "{d}");
    ensure!(evidence(&d).contains("409"), "{d}");
    Ok(())
}

/// Every watch and read of the Cluster answered 500: an error well before the recovery
/// deadline, never a recovery timeout.
fn a_failing_api_is_an_error_before_the_deadline(cx: &Stopped) -> Result<(), String> {
    for verb in ["watch", "get"] {
        cx.sim.inject(verb, "clusters", usize::MAX, Fault::Internal);
    }
    let d = drill_against(
        &cx.sim,
        OperatorOptions {
            never_ready: true,
            ..Default::default()
        },
        &cx.scenario("apidown", "timeouts: {restore: 2m, recovery: 2m}\n"),
        2,
    );
    cx.sim.clear_faults();
    let d = d?;
    ensure_eq!(d["verdict"], "error", "{d}");
    ensure!(evidence(&d).contains("500"), "{d}");
    ensure!(d["durations"]["total"].as_f64().unwrap() < 60.0, "{d}");
    Ok(())
}
