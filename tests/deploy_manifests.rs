//! The deployment files: the kustomize renders of `deploy/` typed as Kubernetes objects with no
//! field the types do not know, the CronJob's settings and arguments, the RBAC rules, the
//! scenarios shipped in the ConfigMap and in `kind/`, the kind manifests against their types
//! and CRD schemas, and the pins of the workflows and images.
//!
//! Needs `kubectl` on PATH (its built-in kustomize renders `deploy/`).

#[path = "common/crd.rs"]
mod crd;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount, Volume,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The ClusterRole's rules, exactly: (API group, resources, verbs sorted). The cnpg backend's
/// own tests compare what it calls against this table.
const RULES: &[(&str, &[&str], &[&str])] = &[
    ("", &["namespaces"], &["create", "delete", "get", "list"]),
    ("", &["secrets"], &["create", "delete", "get", "list"]),
    ("", &["pods"], &["list"]),
    ("", &["pods/log"], &["get"]),
    ("", &["pods/portforward"], &["create", "get"]),
    ("", &["persistentvolumeclaims"], &["delete", "list"]),
    ("", &["events"], &["create", "list"]),
    ("", &["configmaps"], &["create", "get", "update"]),
    (
        "postgresql.cnpg.io",
        &["clusters"],
        &["create", "delete", "get", "list", "patch", "watch"],
    ),
    (
        "barmancloud.cnpg.io",
        &["objectstores"],
        &["create", "delete", "get", "list", "patch"],
    ),
];

const SCENARIOS_MOUNT: &str = "/etc/pgdrill/scenarios";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `kubectl kustomize <dir>`, relative to the repository.
fn kustomize(dir: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "could not run `kubectl kustomize {dir}` ({e}): this test needs kubectl (v1.14 or \
                 later, with its built-in kustomize) on PATH"
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kustomize prints UTF-8")
}

/// Every document of a YAML stream, as JSON values.
fn documents(yaml: &str, what: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("{what}: not YAML: {e}"));
    assert!(!docs.is_empty(), "{what}: no documents");
    docs
}

/// Key paths of `orig` that are missing from `back` (objects by key, arrays by index).
fn missing_keys(orig: &Value, back: &Value, at: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let here = format!("{at}.{k}");
                match b.get(k) {
                    Some(bv) => missing_keys(v, bv, &here, out),
                    None => out.push(here),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            if o.len() != b.len() {
                out.push(format!(
                    "{at}: {} items, {} after the round trip",
                    o.len(),
                    b.len()
                ));
            }
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                missing_keys(ov, bv, &format!("{at}[{i}]"), out);
            }
        }
        (Value::Object(_) | Value::Array(_), _) => out.push(format!("{at}: changed shape")),
        _ => {}
    }
}

/// Deserializes into the Kubernetes type, then requires every key of the document to survive
/// a round trip through it: serde ignores unknown fields, so a misspelled one would otherwise
/// pass (and the API server would drop it silently).
fn strict<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).expect("k8s-openapi types serialize");
    let mut missing = Vec::new();
    missing_keys(doc, &back, "", &mut missing);
    if missing.is_empty() {
        Ok(typed)
    } else {
        Err(format!("fields the type does not know: {missing:?}"))
    }
}

fn name_of(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn typed<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    strict(doc).unwrap_or_else(|e| panic!("{what}: {}: {e}", name_of(doc)))
}

/// A kustomize render of `deploy/`, typed.
#[derive(Default)]
struct Render {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    config_maps: Vec<ConfigMap>,
    cron_jobs: Vec<CronJob>,
}

fn render(dir: &str) -> Render {
    let mut r = Render::default();
    for doc in documents(&kustomize(dir), dir) {
        match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
            (Some("v1"), Some("Namespace")) => r.namespaces.push(typed(&doc, dir)),
            (Some("v1"), Some("ServiceAccount")) => r.service_accounts.push(typed(&doc, dir)),
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                r.cluster_roles.push(typed(&doc, dir))
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                r.bindings.push(typed(&doc, dir))
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => r.roles.push(typed(&doc, dir)),
            (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
                r.role_bindings.push(typed(&doc, dir))
            }
            (Some("v1"), Some("ConfigMap")) => r.config_maps.push(typed(&doc, dir)),
            (Some("batch/v1"), Some("CronJob")) => r.cron_jobs.push(typed(&doc, dir)),
            (api, kind) => panic!(
                "{dir}: unexpected object {api:?} {kind:?}: {}",
                name_of(&doc)
            ),
        }
    }
    r
}

fn one<'a, T>(items: &'a [T], what: &str) -> &'a T {
    assert_eq!(items.len(), 1, "expected exactly one {what}");
    &items[0]
}

/// Runs `pgdrill validate -f <file>` and returns (success, output).
fn pgdrill_validate(file: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .arg("validate")
        .arg("-f")
        .arg(file)
        .output()
        .expect("runs pgdrill");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Named checks played in turn. A check that returns `Err` or panics is recorded with its name
/// and the next one still runs; `finish` asserts once, at the end, that none failed.
#[derive(Default)]
struct Cases {
    failures: Vec<String>,
}

/// `case!(cases, check(args))` runs the function `check` as the case of that name.
macro_rules! case {
    ($cases:ident, $check:ident($($arg:expr),*)) => {
        $cases.run(stringify!($check), || $check($($arg),*))
    };
}

impl Cases {
    fn run(&mut self, name: &str, check: impl FnOnce() -> Result<(), String>) {
        let message = match std::panic::catch_unwind(AssertUnwindSafe(check)) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(panic) => panic_message(panic),
        };
        self.failures.push(format!("{name}: {message}"));
    }

    fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} case(s) failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
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

/// One render of `deploy/` and what its CronJob is expected to run; the accessors look up the
/// objects the checks share (and panic, failing the case that asked, when one is missing).
struct Deploy<'a> {
    dir: &'a str,
    schedule: &'a str,
    image: &'a str,
    r: Render,
}

impl Deploy<'_> {
    fn ns_name(&self) -> &str {
        one(&self.r.namespaces, "Namespace")
            .metadata
            .name
            .as_deref()
            .unwrap()
    }

    fn sa(&self) -> &ServiceAccount {
        one(&self.r.service_accounts, "ServiceAccount")
    }

    fn sa_name(&self) -> &str {
        self.sa().metadata.name.as_deref().unwrap()
    }

    fn role(&self) -> &ClusterRole {
        one(&self.r.cluster_roles, "ClusterRole")
    }

    fn cron(&self) -> &CronJob {
        one(&self.r.cron_jobs, "CronJob")
    }

    fn cron_spec(&self) -> &CronJobSpec {
        self.cron().spec.as_ref().expect("CronJob spec")
    }

    fn job(&self) -> &JobSpec {
        let spec = self.cron_spec();
        spec.job_template.spec.as_ref().expect("jobTemplate.spec")
    }

    fn pod(&self) -> &PodSpec {
        self.job().template.spec.as_ref().expect("pod spec")
    }

    fn container(&self) -> &Container {
        one(&self.pod().containers, "container")
    }

    /// The volume mounted at `path` in the container.
    fn volume_at(&self, path: &str) -> &Volume {
        let dir = self.dir;
        let mounts = self
            .container()
            .volume_mounts
            .as_deref()
            .unwrap_or_default();
        let volumes = self.pod().volumes.as_deref().unwrap_or_default();
        let m = mounts
            .iter()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("{dir}: nothing mounted at {path}"));
        volumes
            .iter()
            .find(|v| v.name == m.name)
            .unwrap_or_else(|| panic!("{dir}: no volume {}", m.name))
    }

    /// The name of the ConfigMap mounted at SCENARIOS_MOUNT, and that ConfigMap of the render.
    fn scenarios(&self) -> (&str, &ConfigMap) {
        let dir = self.dir;
        let cm_name = &self
            .volume_at(SCENARIOS_MOUNT)
            .config_map
            .as_ref()
            .unwrap_or_else(|| panic!("{dir}: {SCENARIOS_MOUNT} is not a ConfigMap"))
            .name;
        let cm = self
            .r
            .config_maps
            .iter()
            .find(|c| c.metadata.name.as_ref() == Some(cm_name))
            .unwrap_or_else(|| {
                panic!("{dir}: the mounted ConfigMap {cm_name} is not in the render")
            });
        (cm_name, cm)
    }
}

/// Every check on one render of `deploy/`, each run even when an earlier one fails.
fn check_render(dir: &str, schedule: &str, image: &str) {
    let d = Deploy {
        dir,
        schedule,
        image,
        r: render(dir),
    };
    let mut cases = Cases::default();
    case!(cases, service_account_is_in_the_namespace(&d));
    // RBAC: the rules, exactly, bound to the ServiceAccount.
    case!(cases, cluster_role_has_exactly_the_rules(&d));
    case!(cases, binding_grants_the_role_to_the_service_account(&d));
    case!(cases, cron_job_schedule_and_policies(&d));
    case!(cases, job_is_not_retried_and_is_bounded(&d));
    case!(cases, pod_runs_as_the_service_account_and_not_root(&d));
    case!(cases, container_image_and_security_context(&d));
    case!(cases, container_cpu_and_memory_requests_and_limits(&d));
    case!(cases, webhook_url_comes_from_an_optional_secret(&d));
    // Volumes: the scenarios ConfigMap (hash-suffixed, present in the render) and a writable
    // /tmp, the root filesystem being read-only.
    case!(cases, tmp_is_an_empty_dir(&d));
    case!(cases, scenarios_config_map_is_mounted_and_hash_suffixed(&d));
    case!(cases, args_run_files_of_the_config_map(&d));
    case!(cases, every_scenario_of_the_config_map_validates(&d));
    cases.finish(dir);
}

fn service_account_is_in_the_namespace(d: &Deploy) -> Result<(), String> {
    assert_eq!(
        d.sa().metadata.namespace.as_deref(),
        Some(d.ns_name()),
        "{}: ServiceAccount namespace",
        d.dir
    );
    Ok(())
}

fn cluster_role_has_exactly_the_rules(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    let rules: Vec<(String, Vec<String>, Vec<String>)> = d
        .role()
        .rules
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|rule| {
            assert!(
                rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
                "{dir}: rule {rule:?} has resourceNames or nonResourceURLs"
            );
            let groups = rule.api_groups.clone().unwrap_or_default();
            assert_eq!(groups.len(), 1, "{dir}: one API group per rule: {rule:?}");
            let mut sorted = rule.verbs.clone();
            sorted.sort();
            assert_eq!(sorted, rule.verbs, "{dir}: verbs sorted in {rule:?}");
            (
                groups[0].clone(),
                rule.resources.clone().unwrap_or_default(),
                rule.verbs.clone(),
            )
        })
        .collect();
    let expected: Vec<(String, Vec<String>, Vec<String>)> = RULES
        .iter()
        .map(|(g, res, verbs)| {
            (
                g.to_string(),
                res.iter().map(|s| s.to_string()).collect(),
                verbs.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(rules, expected, "{dir}: ClusterRole rules");
    Ok(())
}

fn binding_grants_the_role_to_the_service_account(d: &Deploy) -> Result<(), String> {
    let (dir, ns_name, sa_name) = (d.dir, d.ns_name(), d.sa_name());
    let binding = one(&d.r.bindings, "ClusterRoleBinding");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(
        Some(binding.role_ref.name.as_str()),
        d.role().metadata.name.as_deref()
    );
    let subjects = binding.subjects.as_deref().unwrap_or_default();
    assert!(
        subjects.len() == 1
            && subjects[0].kind == "ServiceAccount"
            && subjects[0].name == sa_name
            && subjects[0].namespace.as_deref() == Some(ns_name),
        "{dir}: the binding's subject is the ServiceAccount {ns_name}/{sa_name}: {subjects:?}"
    );
    Ok(())
}

fn cron_job_schedule_and_policies(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    assert_eq!(
        d.cron().metadata.namespace.as_deref(),
        Some(d.ns_name()),
        "{dir}: CronJob namespace"
    );
    let spec = d.cron_spec();
    assert_eq!(spec.schedule, d.schedule, "{dir}: schedule");
    assert!(
        pgdrill::scenario::types::cron_schedule(&spec.schedule).is_ok(),
        "{dir}: schedule {:?} is not a valid cron expression",
        spec.schedule
    );
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"), "{dir}");
    assert!(
        spec.starting_deadline_seconds.is_some_and(|s| s > 0),
        "{dir}: startingDeadlineSeconds"
    );
    assert!(
        spec.successful_jobs_history_limit.is_some_and(|n| n > 0),
        "{dir}: successfulJobsHistoryLimit"
    );
    assert!(
        spec.failed_jobs_history_limit.is_some_and(|n| n > 0),
        "{dir}: failedJobsHistoryLimit"
    );
    Ok(())
}

fn job_is_not_retried_and_is_bounded(d: &Deploy) -> Result<(), String> {
    let (dir, job) = (d.dir, d.job());
    assert_eq!(
        job.backoff_limit,
        Some(0),
        "{dir}: a failed drill is not retried"
    );
    assert!(
        job.active_deadline_seconds.is_some_and(|s| s > 0),
        "{dir}: activeDeadlineSeconds"
    );
    assert!(
        job.ttl_seconds_after_finished.is_some_and(|s| s > 0),
        "{dir}: ttlSecondsAfterFinished"
    );
    Ok(())
}

fn pod_runs_as_the_service_account_and_not_root(d: &Deploy) -> Result<(), String> {
    let (dir, pod) = (d.dir, d.pod());
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(d.sa_name()),
        "{dir}: serviceAccountName"
    );
    assert_eq!(
        pod.restart_policy.as_deref(),
        Some("Never"),
        "{dir}: restartPolicy"
    );
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true), "{dir}: runAsNonRoot");
    assert!(
        psc.run_as_user.is_some_and(|u| u != 0),
        "{dir}: runAsUser is not root"
    );
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault"),
        "{dir}: seccompProfile"
    );
    Ok(())
}

fn container_image_and_security_context(d: &Deploy) -> Result<(), String> {
    let (dir, container) = (d.dir, d.container());
    assert_eq!(container.image.as_deref(), Some(d.image), "{dir}: image");
    let csc = container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(
        csc.read_only_root_filesystem,
        Some(true),
        "{dir}: readOnlyRootFilesystem"
    );
    assert_eq!(
        csc.allow_privilege_escalation,
        Some(false),
        "{dir}: allowPrivilegeEscalation"
    );
    assert!(
        csc.capabilities
            .as_ref()
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL")),
        "{dir}: capabilities drop ALL"
    );
    Ok(())
}

fn container_cpu_and_memory_requests_and_limits(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    let resources = d.container().resources.as_ref().expect("resources");
    for key in ["cpu", "memory"] {
        assert!(
            resources
                .requests
                .as_ref()
                .is_some_and(|r| r.contains_key(key))
                && resources
                    .limits
                    .as_ref()
                    .is_some_and(|r| r.contains_key(key)),
            "{dir}: {key} request and limit"
        );
    }
    Ok(())
}

fn webhook_url_comes_from_an_optional_secret(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    let webhook = d
        .container()
        .env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.name == "PGDRILL_WEBHOOK_URL")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{dir}: PGDRILL_WEBHOOK_URL from a Secret"));
    assert_eq!(
        webhook.optional,
        Some(true),
        "{dir}: the webhook Secret is optional"
    );
    Ok(())
}

fn tmp_is_an_empty_dir(d: &Deploy) -> Result<(), String> {
    assert!(
        d.volume_at("/tmp").empty_dir.is_some(),
        "{}: /tmp is an emptyDir",
        d.dir
    );
    Ok(())
}

fn scenarios_config_map_is_mounted_and_hash_suffixed(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    let (cm_name, cm) = d.scenarios();
    assert_eq!(
        cm.metadata.namespace.as_deref(),
        Some(d.ns_name()),
        "{dir}: ConfigMap namespace"
    );
    let suffix = cm_name
        .strip_prefix("pgdrill-scenarios-")
        .unwrap_or_else(|| panic!("{dir}: ConfigMap {cm_name} is not pgdrill-scenarios-<hash>"));
    assert!(
        suffix.len() >= 8 && suffix.chars().all(|c| c.is_ascii_alphanumeric()),
        "{dir}: {cm_name} carries kustomize's content hash"
    );
    Ok(())
}

/// The arguments parse as pgdrill's own command line, and name a file of the ConfigMap.
fn args_run_files_of_the_config_map(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    let (cm_name, cm) = d.scenarios();
    let data = cm.data.clone().unwrap_or_default();
    let args = d.container().args.clone().unwrap_or_default();
    let cli = pgdrill::cli::Cli::try_parse_from(
        std::iter::once("pgdrill".to_string()).chain(args.clone()),
    )
    .unwrap_or_else(|e| panic!("{dir}: args {args:?} do not parse: {e}"));
    let pgdrill::cli::Command::Run(run) = cli.command else {
        panic!("{dir}: args {args:?} are not `pgdrill run`");
    };
    assert!(!run.plan.files.is_empty(), "{dir}: run -f");
    for f in &run.plan.files {
        let key = f
            .strip_prefix(SCENARIOS_MOUNT)
            .unwrap_or_else(|_| panic!("{dir}: -f {} is not under {SCENARIOS_MOUNT}", f.display()));
        let key = key.to_str().unwrap();
        assert!(
            data.contains_key(key),
            "{dir}: -f {} names {key:?}, not a key of ConfigMap {cm_name} ({:?})",
            f.display(),
            data.keys().collect::<Vec<_>>()
        );
    }
    let report_dir = run.report_dir.as_ref().expect("--report-dir");
    assert!(
        report_dir.starts_with("/tmp"),
        "{dir}: reports go to the writable /tmp"
    );
    Ok(())
}

/// Every scenario in the ConfigMap passes `pgdrill validate`.
fn every_scenario_of_the_config_map_validates(d: &Deploy) -> Result<(), String> {
    let dir = d.dir;
    let (cm_name, cm) = d.scenarios();
    let data = cm.data.clone().unwrap_or_default();
    let tmp = tempfile::tempdir().unwrap();
    for (key, text) in &data {
        let file = tmp.path().join(key);
        std::fs::write(&file, text).unwrap();
        let (ok, out) = pgdrill_validate(&file);
        assert!(
            ok,
            "{dir}: ConfigMap {cm_name} key {key}: pgdrill validate failed:\n{out}"
        );
        let scenario: Value = serde_saphyr::from_str(text).unwrap();
        assert_eq!(
            scenario["backend"], "cnpg",
            "{dir}: {key}: the CronJob runs backend: cnpg"
        );
    }
    Ok(())
}

#[test]
fn base_renders_to_known_objects_with_the_expected_cronjob_and_rbac() {
    let image = format!("ghcr.io/pgdrill/pgdrill:{}", env!("CARGO_PKG_VERSION"));
    check_render("deploy/base", "0 3 * * 0", &image);
}

#[test]
fn example_overlay_changes_schedule_image_and_scenario() {
    check_render(
        "deploy/overlays/example",
        "30 2 * * 6",
        "ghcr.io/pgdrill/pgdrill:0.1.1",
    );
    let base = render("deploy/base");
    let overlay = render("deploy/overlays/example");
    let data = |r: &Render| r.config_maps[0].data.clone().unwrap_or_default();
    assert_eq!(
        data(&base).keys().collect::<Vec<_>>(),
        data(&overlay).keys().collect::<Vec<_>>(),
        "the overlay replaces the scenario under the same key"
    );
    assert_ne!(
        data(&base),
        data(&overlay),
        "the overlay's scenario replaces the base's"
    );
    assert_ne!(
        base.config_maps[0].metadata.name, overlay.config_maps[0].metadata.name,
        "a new scenario gets a new hash-suffixed name"
    );
}

#[test]
fn the_strict_check_rejects_a_misspelled_field() {
    let docs = documents(&kustomize("deploy/base"), "deploy/base");
    let mut cron = docs.into_iter().find(|d| d["kind"] == "CronJob").unwrap();
    assert!(strict::<CronJob>(&cron).is_ok());
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAcountName"] = "pgdrill".into();
    let err = strict::<CronJob>(&cron).unwrap_err();
    assert!(err.contains("serviceAcountName"), "{err}");
}

/// Where `kind/drill.yaml` expects its baseline, and the baseline target's name.
fn kind_baseline(scenario: &Value) -> (String, String) {
    let file = scenario["checks"]["baseline"]
        .as_str()
        .expect("kind/drill.yaml sets checks.baseline")
        .to_string();
    let name = scenario["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["baseline"].as_str())
        .expect("kind/drill.yaml has a baseline target")
        .to_string();
    (file, name)
}

#[test]
fn kind_scenario_validates_and_matches_the_kind_setup() {
    let text = read("kind/drill.yaml");
    let scenario: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(scenario["backend"], "cnpg");
    assert_eq!(scenario["source"]["cluster"]["namespace"], "app");
    assert_eq!(scenario["source"]["cluster"]["name"], "app");
    assert_eq!(scenario["checks"]["tables"], serde_json::json!(["orders"]));
    let targets = scenario["targets"].as_array().unwrap();
    assert!(targets.iter().any(|t| t == "latest"), "a latest target");
    let (baseline_file, baseline_name) = kind_baseline(&scenario);

    // The baseline is written by up.sh: validate against a stand-in with the same name.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("drill.yaml");
    std::fs::write(&file, &text).unwrap();
    let baseline = tmp.path().join(&baseline_file);
    std::fs::create_dir_all(baseline.parent().unwrap()).unwrap();
    let stand_in = serde_json::json!({
        "schema": pgdrill::baseline::SCHEMA,
        "name": baseline_name,
        "database": "app",
        "recorded_at": "2026-01-01T00:00:00Z",
        "lsn": "0/5000060",
        "restore_point": baseline_name,
        "counts": {"orders": 1000},
    });
    std::fs::write(&baseline, stand_in.to_string()).unwrap();
    let (ok, out) = pgdrill_validate(&file);
    assert!(ok, "kind/drill.yaml: pgdrill validate failed:\n{out}");

    // up.sh records that baseline, from this scenario, where the scenario looks for it.
    let up = read("kind/up.sh");
    assert!(
        up.contains(r#"baseline record -f "$here/drill.yaml""#),
        "up.sh records the baseline with -f kind/drill.yaml"
    );
    assert!(
        up.contains(&format!(
            "--name {baseline_name} --restore-point --switch-wal"
        )),
        "up.sh records the baseline {baseline_name} with a restore point"
    );
    assert!(
        baseline_file.starts_with("baselines/"),
        "the baseline lives in kind/baselines (ignored by git), not {baseline_file}"
    );
    assert!(read("kind/down.sh").contains(&format!("\"$here/{baseline_file}\"")));

    // The lineages it names are the serverName the source Cluster archives under.
    let cluster = kind_objects()
        .into_iter()
        .find(|(_, d)| d["kind"] == "Cluster")
        .unwrap()
        .1;
    let server_name = &cluster["spec"]["plugins"][0]["parameters"]["serverName"];
    if let Some(lineages) = scenario["lineages"].as_array() {
        assert_eq!(
            lineages,
            &vec![server_name.clone()],
            "lineages of kind/drill.yaml"
        );
    }
}

/// Every document of kind/manifests/*.yaml, with its file.
fn kind_objects() -> Vec<(String, Value)> {
    let dir = root().join("kind/manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .iter()
        .flat_map(|f| {
            let name = format!(
                "kind/manifests/{}",
                f.file_name().unwrap().to_str().unwrap()
            );
            documents(&std::fs::read_to_string(f).unwrap(), &name)
                .into_iter()
                .map(move |d| (name.clone(), d))
        })
        .collect()
}

/// The CRD schemas the kind manifests' custom resources are validated against.
struct KindSchemas {
    cluster: Value,
    store: Value,
    backup: Value,
}

/// The documents of kind/manifests by kind, with the Secrets' stringData and the URLs of the
/// Services, as the per-object cases find them.
#[derive(Default)]
struct KindManifests {
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    services: BTreeSet<String>,
    by_kind: BTreeMap<String, Vec<Value>>,
}

impl KindManifests {
    fn only(&self, kind: &str) -> &Value {
        let items = &self.by_kind[kind];
        assert_eq!(items.len(), 1, "one {kind} in kind/manifests");
        &items[0]
    }

    /// The namespace of the Cluster.
    fn ns(&self) -> String {
        self.only("Cluster")["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// One case per document (typed, or valid against its CRD), then the cross-object checks, which
/// read the Secrets and Services the per-object cases recorded.
#[test]
fn kind_manifests_are_valid_and_consistent() {
    let schemas = KindSchemas {
        cluster: crd::load_schema("postgresql.cnpg.io_clusters.yaml"),
        store: crd::load_schema("barmancloud.cnpg.io_objectstores.yaml"),
        backup: crd::load_schema("postgresql.cnpg.io_scheduledbackups.yaml"),
    };
    let mut kind = KindManifests::default();
    let mut cases = Cases::default();
    for (file, doc) in kind_objects() {
        let what = format!("{file}: {}", name_of(&doc));
        cases.run(&what, || {
            kind_object(&mut kind, &schemas, &file, &what, &doc)
        });
        kind.by_kind
            .entry(doc["kind"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(doc);
    }
    case!(cases, object_store_writes_to_the_in_cluster_minio(&kind));
    case!(cases, object_store_credentials_are_minio_root(&kind));
    case!(
        cases,
        cluster_archives_through_the_plugin_into_the_store(&kind)
    );
    case!(
        cases,
        scheduled_backup_backs_up_the_cluster_through_the_plugin(&kind)
    );
    cases.finish("kind/manifests");
}

/// Types one document (or validates it against its CRD), recording Secrets and Services.
fn kind_object(
    kind: &mut KindManifests,
    schemas: &KindSchemas,
    file: &str,
    what: &str,
    doc: &Value,
) -> Result<(), String> {
    let namespace = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
    match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
        (Some("v1"), Some("Namespace")) => {
            typed::<Namespace>(doc, file);
        }
        (Some("v1"), Some("Secret")) => {
            let s: Secret = typed(doc, file);
            let data = s.string_data.clone().unwrap_or_default();
            kind.secrets.insert((namespace, name), data);
        }
        (Some("v1"), Some("Service")) => {
            let s: Service = typed(doc, file);
            for p in s.spec.unwrap().ports.unwrap_or_default() {
                kind.services
                    .insert(format!("http://{name}.{namespace}.svc:{}", p.port));
            }
        }
        (Some("apps/v1"), Some("Deployment")) => {
            let d: Deployment = typed(doc, file);
            pinned_images(&d.spec.unwrap().template.spec.unwrap().containers, what);
        }
        (Some("batch/v1"), Some("Job")) => {
            let j: Job = typed(doc, file);
            pinned_images(&j.spec.unwrap().template.spec.unwrap().containers, what);
        }
        (Some("postgresql.cnpg.io/v1"), Some("Cluster")) => {
            let errors = crd::validate(doc, &schemas.cluster);
            assert!(errors.is_empty(), "{what}: {errors:#?}");
        }
        (Some("barmancloud.cnpg.io/v1"), Some("ObjectStore")) => {
            let errors = crd::validate(doc, &schemas.store);
            assert!(errors.is_empty(), "{what}: {errors:#?}");
        }
        (Some("postgresql.cnpg.io/v1"), Some("ScheduledBackup")) => {
            let errors = crd::validate(doc, &schemas.backup);
            assert!(errors.is_empty(), "{what}: {errors:#?}");
        }
        (api, kind) => panic!("{file}: unexpected object {api:?} {kind:?}"),
    }
    Ok(())
}

/// The ObjectStore points at the in-cluster MinIO.
fn object_store_writes_to_the_in_cluster_minio(kind: &KindManifests) -> Result<(), String> {
    let config = &kind.only("ObjectStore")["spec"]["configuration"];
    assert_eq!(config["destinationPath"], "s3://backups/pg");
    let endpoint = config["endpointURL"].as_str().unwrap();
    assert!(
        kind.services.contains(endpoint),
        "{endpoint} is one of the Services {:?}",
        kind.services
    );
    assert!(read("kind/manifests/minio-bucket.yaml").contains("store/backups"));
    Ok(())
}

/// The ObjectStore's credentials exist and match MinIO's root user.
fn object_store_credentials_are_minio_root(kind: &KindManifests) -> Result<(), String> {
    let ns = kind.ns();
    let minio_root = &kind.secrets[&("minio".to_string(), "minio-root".to_string())];
    let s3 = &kind.only("ObjectStore")["spec"]["configuration"]["s3Credentials"];
    for (field, root_key) in [
        ("accessKeyId", "MINIO_ROOT_USER"),
        ("secretAccessKey", "MINIO_ROOT_PASSWORD"),
    ] {
        let secret = s3[field]["name"].as_str().unwrap().to_string();
        let key = s3[field]["key"].as_str().unwrap();
        let value = kind
            .secrets
            .get(&(ns.clone(), secret.clone()))
            .and_then(|s| s.get(key))
            .unwrap_or_else(|| {
                panic!("s3Credentials.{field}: no key {key} in Secret {ns}/{secret}")
            });
        assert_eq!(
            value, &minio_root[root_key],
            "s3Credentials.{field} is MinIO's {root_key}"
        );
    }
    Ok(())
}

/// The Cluster archives through the plugin into that ObjectStore, as lineage app-v1.
fn cluster_archives_through_the_plugin_into_the_store(kind: &KindManifests) -> Result<(), String> {
    let (store, cluster) = (kind.only("ObjectStore"), kind.only("Cluster"));
    let plugin = &cluster["spec"]["plugins"][0];
    assert_eq!(plugin["name"], "barman-cloud.cloudnative-pg.io");
    assert_eq!(plugin["isWALArchiver"], true);
    assert_eq!(
        plugin["parameters"]["barmanObjectName"],
        store["metadata"]["name"]
    );
    assert_eq!(plugin["parameters"]["serverName"], "app-v1");
    assert_eq!(
        store["metadata"]["namespace"],
        cluster["metadata"]["namespace"]
    );
    assert_eq!(cluster["spec"]["instances"], 1);
    Ok(())
}

/// The ScheduledBackup backs the Cluster up through the plugin.
fn scheduled_backup_backs_up_the_cluster_through_the_plugin(
    kind: &KindManifests,
) -> Result<(), String> {
    let (cluster, backup) = (kind.only("Cluster"), kind.only("ScheduledBackup"));
    let plugin = &cluster["spec"]["plugins"][0];
    assert_eq!(
        backup["spec"]["cluster"]["name"],
        cluster["metadata"]["name"]
    );
    assert_eq!(
        backup["metadata"]["namespace"],
        cluster["metadata"]["namespace"]
    );
    assert_eq!(backup["spec"]["method"], "plugin");
    assert_eq!(backup["spec"]["immediate"], true);
    assert_eq!(
        backup["spec"]["pluginConfiguration"]["name"],
        plugin["name"]
    );
    Ok(())
}

fn pinned_images(containers: &[k8s_openapi::api::core::v1::Container], what: &str) {
    for c in containers {
        let image = c.image.as_deref().unwrap_or("");
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{what}: image {image:?} is not pinned to a tag"
        );
    }
}

#[test]
fn kind_node_image_and_workflow_actions_are_pinned() {
    let config: Value = serde_saphyr::from_str(&read("kind/cluster.yaml")).unwrap();
    assert_eq!(config["kind"], "Cluster");
    assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
    let node =
        regex_lite::Regex::new(r"^kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$").unwrap();
    for n in config["nodes"].as_array().unwrap() {
        let image = n["image"].as_str().unwrap();
        assert!(
            node.is_match(image),
            "kind node image {image} is pinned by digest"
        );
    }

    // Every third-party action is pinned to a full commit, with the version in a comment.
    let uses = regex_lite::Regex::new(r"(?m)^\s*-?\s*uses:\s*(\S+)(.*)$").unwrap();
    let pinned = regex_lite::Regex::new(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$").unwrap();
    let mut files: Vec<String> = std::fs::read_dir(root().join("ci/github"))
        .unwrap()
        .map(|e| format!("ci/github/{}", e.unwrap().file_name().to_str().unwrap()))
        .filter(|f| f.ends_with(".yml"))
        .collect();
    files.push("action.yml".into());
    let mut seen = 0;
    for f in &files {
        let text = read(f);
        // Parses as YAML.
        let _: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        for cap in uses.captures_iter(&text) {
            let target = &cap[1];
            if target.starts_with("./") {
                continue;
            }
            seen += 1;
            assert!(
                pinned.is_match(target),
                "{f}: {target} is not pinned to a commit"
            );
            assert!(
                cap[2].trim_start().starts_with('#'),
                "{f}: {target} has no version comment"
            );
        }
    }
    assert!(seen >= 3, "found {seen} `uses:` lines");
}

#[test]
fn dockerfile_matches_the_crate_and_the_cronjob() {
    let dockerfile = read("Dockerfile");
    let manifest = read("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("Cargo.toml sets rust-version");
    assert!(
        dockerfile.contains(&format!("rust:{rust_version}-bookworm")),
        "the builder image is the crate's rust-version {rust_version}"
    );
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(
        dockerfile.contains("FROM cnpg AS local"),
        "a `local` target"
    );
    // The runtime user is the one the CronJob runs as.
    let cron = documents(&read("deploy/base/cronjob.yaml"), "cronjob.yaml").remove(0);
    let uid =
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
            .as_i64()
            .unwrap();
    let users: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .collect();
    assert!(!users.is_empty());
    for u in users {
        if u != "root" {
            assert_eq!(
                u.trim(),
                format!("{uid}:{uid}"),
                "Dockerfile USER and the CronJob's runAsUser"
            );
        }
    }
    let ignore = read(".dockerignore");
    for entry in ["target/", ".tools/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lists {entry}"
        );
    }
}

/// Installed as `kubectl-pgdrill` on PATH, the binary is a kubectl plugin: `kubectl pgdrill …`.
#[test]
fn the_binary_works_as_a_kubectl_plugin() {
    let kubectl = Path::new("/usr/bin/kubectl");
    assert!(kubectl.exists(), "kubectl is needed for this test");
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_pgdrill"),
        bin.path().join("kubectl-pgdrill"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(kubectl)
        .args(["pgdrill", "--version"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pgdrill {}", env!("CARGO_PKG_VERSION"))
    );
    let list = Command::new(kubectl)
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("kubectl-pgdrill"));
}

/// Where pgdrill may not create namespaces: Roles in the drill, source and own namespaces, no
/// cluster-wide rights, and a scenario that drills in the fixed namespace.
#[test]
fn fixed_namespace_overlay_grants_only_namespaced_roles() {
    let dir = "deploy/overlays/fixed-namespace";
    let r = render(dir);
    assert!(
        r.cluster_roles.is_empty() && r.bindings.is_empty(),
        "no cluster-wide rights"
    );
    let sa = one(&r.service_accounts, "ServiceAccount");
    let sa_ns = sa.metadata.namespace.clone().unwrap();
    assert_eq!(r.roles.len(), 3);
    for b in &r.role_bindings {
        let ns = b.metadata.namespace.clone().unwrap();
        assert_eq!(b.role_ref.kind, "Role");
        assert!(
            r.roles.iter().any(
                |role| role.metadata.name.as_deref() == Some(&b.role_ref.name)
                    && role.metadata.namespace.as_deref() == Some(&ns)
            ),
            "binding {ns}/{:?} names a Role of its namespace",
            b.metadata.name
        );
        let subjects = b.subjects.clone().unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, sa.metadata.name.clone().unwrap());
        assert_eq!(subjects[0].namespace.as_deref(), Some(sa_ns.as_str()));
    }
    for role in &r.roles {
        for rule in role.rules.iter().flatten() {
            assert!(
                !rule
                    .resources
                    .iter()
                    .flatten()
                    .any(|res| res == "namespaces"),
                "a fixed namespace needs no namespace rights"
            );
        }
    }
    // The scenario drills in the namespace the drill Role covers.
    let cm = one(&r.config_maps, "ConfigMap");
    let text = cm.data.as_ref().unwrap().get("weekly.yaml").unwrap();
    let scenario: Value = serde_saphyr::from_str(text).unwrap();
    let fixed = scenario["cnpg"]["namespace"]
        .as_str()
        .expect("cnpg.namespace");
    let drills = r
        .roles
        .iter()
        .find(|role| role.metadata.namespace.as_deref() == Some(fixed))
        .expect("a Role in the drill namespace");
    let grants = |group: &str, res: &str, verb: &str| {
        drills.rules.iter().flatten().any(|rule| {
            rule.api_groups.iter().flatten().any(|g| g == group)
                && rule.resources.iter().flatten().any(|r| r == res)
                && rule.verbs.iter().any(|v| v == verb)
        })
    };
    assert!(
        grants("postgresql.cnpg.io", "clusters", "patch")
            && grants("", "persistentvolumeclaims", "delete")
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("weekly.yaml");
    std::fs::write(&file, text).unwrap();
    let (ok, out) = pgdrill_validate(&file);
    assert!(ok, "{out}");
}
