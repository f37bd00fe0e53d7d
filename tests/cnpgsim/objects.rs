//! The objects CNPG generates for a recovering Cluster, as JSON (CNPG-FACTS §2, §4).

use serde_json::{Value, json};

use crate::kubesim::{ResourceKey, Store};

fn owner(cluster: &str) -> Value {
    json!([{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": cluster,
            "uid": "sim", "controller": true}])
}

fn app_labels(cluster: &str) -> serde_json::Map<String, Value> {
    let v = json!({
        "cnpg.io/cluster": cluster,
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/managed-by": "cloudnative-pg",
    });
    v.as_object().unwrap().clone()
}

pub fn event(ns: &str, cluster: &str, type_: &str, reason: &str, message: &str) -> Value {
    let now = jiff::Timestamp::now().to_string();
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{cluster}."), "namespace": ns},
        "involvedObject": {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                           "name": cluster, "namespace": ns},
        "type": type_, "reason": reason, "message": message,
        "source": {"component": "cloudnative-pg"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    })
}

pub fn pvc(ns: &str, cluster: &str, size: &str) -> Value {
    let mut labels = app_labels(cluster);
    labels.insert("cnpg.io/instanceName".into(), json!(format!("{cluster}-1")));
    labels.insert("cnpg.io/pvcRole".into(), json!("PG_DATA"));
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": format!("{cluster}-1"), "namespace": ns, "labels": labels,
                     "annotations": {"cnpg.io/nodeSerial": "1", "cnpg.io/pvcStatus": "initializing"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound"},
    })
}

pub fn job_pod(ns: &str, cluster: &str, name: &str) -> Value {
    let mut labels = app_labels(cluster);
    labels.insert("cnpg.io/jobRole".into(), json!("full-recovery"));
    labels.insert("cnpg.io/instanceName".into(), json!(format!("{cluster}-1")));
    labels.insert(
        "job-name".into(),
        json!(format!("{cluster}-1-full-recovery")),
    );
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"restartPolicy": "Never", "hostname": format!("{cluster}-1-full-recovery"),
                 "initContainers": [{"name": "bootstrap-controller", "image": "cnpg"}],
                 "containers": [{"name": "full-recovery", "image": "postgres",
                                 "command": ["/controller/manager", "instance", "restore"]}]},
        "status": {"phase": "Running"},
    })
}

pub fn primary_pod(ns: &str, cluster: &str) -> Value {
    let mut labels = app_labels(cluster);
    labels.insert("cnpg.io/instanceName".into(), json!(format!("{cluster}-1")));
    labels.insert("cnpg.io/podRole".into(), json!("instance"));
    labels.insert("cnpg.io/instanceRole".into(), json!("primary"));
    labels.insert("role".into(), json!("primary"));
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{cluster}-1"), "namespace": ns, "labels": labels,
                     "ownerReferences": owner(cluster)},
        "spec": {"containers": [{"name": "postgres", "image": "postgres",
                                 "ports": [{"name": "postgresql", "containerPort": 5432}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

pub fn rw_service(ns: &str, cluster: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("{cluster}-rw"), "namespace": ns,
                     "labels": {"cnpg.io/cluster": cluster}, "ownerReferences": owner(cluster)},
        "spec": {"selector": {"cnpg.io/cluster": cluster, "cnpg.io/instanceRole": "primary"},
                 "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]},
    })
}

/// `<cluster>-app` or `<cluster>-superuser`: kubernetes.io/basic-auth with CNPG's keys.
pub fn user_secret(
    ns: &str,
    cluster: &str,
    user_type: &str,
    user: &str,
    password: &str,
    db: &str,
) -> Value {
    let host = format!("{cluster}-rw");
    let fqdn = format!("{host}.{ns}.svc.cluster.local");
    let data = [
        ("username", user.to_string()),
        ("user", user.to_string()),
        ("password", password.to_string()),
        ("dbname", db.to_string()),
        ("host", host.clone()),
        ("port", "5432".to_string()),
        ("pgpass", format!("{host}:5432:{db}:{user}:{password}\n")),
        (
            "uri",
            format!("postgresql://{user}:{password}@{host}.{ns}:5432/{db}"),
        ),
        (
            "jdbc-uri",
            format!("jdbc:postgresql://{host}.{ns}:5432/{db}?password={password}&user={user}"),
        ),
        (
            "fqdn-uri",
            format!("postgresql://{user}:{password}@{fqdn}:5432/{db}"),
        ),
        (
            "fqdn-jdbc-uri",
            format!("jdbc:postgresql://{fqdn}:5432/{db}?password={password}&user={user}"),
        ),
    ];
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!("{cluster}-{user_type}")),
            namespace: Some(ns.into()),
            labels: Some(
                [
                    ("cnpg.io/cluster", cluster),
                    ("cnpg.io/userType", user_type),
                    ("cnpg.io/reload", "true"),
                    ("app.kubernetes.io/managed-by", "cloudnative-pg"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..Default::default()
        },
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    let mut v = serde_json::to_value(secret).unwrap();
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Secret");
    v["metadata"]["ownerReferences"] = owner(cluster);
    v
}

/// Garbage collection after a Cluster is deleted: its pods, Services and generated Secrets
/// (owner references); PVCs stay, as CNPG leaves them.
pub fn delete_owned(store: &Store, ns: &str, cluster: &str) {
    for res in [
        ResourceKey::pods(),
        ResourceKey::services(),
        ResourceKey::secrets(),
    ] {
        for obj in store.list(&res, Some(ns)) {
            if obj["metadata"]["labels"]["cnpg.io/cluster"].as_str() == Some(cluster) {
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                store.delete(&res, Some(ns), &name);
            }
        }
    }
}
