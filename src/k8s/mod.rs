//! Thin Kubernetes I/O for the `cnpg` backend: the client (kubeconfig or in-cluster), CNPG
//! resources as dynamic objects, and errors described for people.

pub mod cleanup;
pub mod configmap;
pub mod forward;
pub mod history;
pub mod objects;
pub mod source;

use kube::api::ApiResource;

pub use objects::{DrillObjects, LiveDrills};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "pgdrill";

/// A client from `$KUBECONFIG` / `~/.kube/config`, or the pod's service account in a cluster.
pub async fn client() -> Result<kube::Client, String> {
    crate::store::install_tls_provider();
    let mut config = kube::Config::infer().await.map_err(|e| {
        format!("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}")
    })?;
    // A stalled API server must not hang a drill: no read waits longer than this (watches
    // ask the server to end them well before).
    config.connect_timeout = Some(std::time::Duration::from_secs(10));
    config.read_timeout = Some(std::time::Duration::from_secs(90));
    kube::Client::try_from(config).map_err(|e| format!("setting up the Kubernetes client: {e}"))
}

/// True when the client uses the pod's service account, as `Config::infer` does when no
/// kubeconfig is found: then the drill's Services are reachable by DNS. A pod with its own
/// kubeconfig (pointing maybe at another cluster) port-forwards instead.
pub fn in_cluster() -> bool {
    let kubeconfig = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".kube/config").exists())
            .unwrap_or(false);
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && !kubeconfig
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// `postgresql.cnpg.io/v1` Cluster.
pub fn clusters() -> ApiResource {
    resource("postgresql.cnpg.io", "v1", "Cluster", "clusters")
}

/// `barmancloud.cnpg.io/v1` ObjectStore (the Barman Cloud plugin).
pub fn object_stores() -> ApiResource {
    resource("barmancloud.cnpg.io", "v1", "ObjectStore", "objectstores")
}

/// Checks through discovery that the API server serves the CNPG Cluster CRD (and the plugin's
/// ObjectStore when the drill needs it); a clear error otherwise.
pub async fn require_crds(client: &kube::Client, object_store: bool) -> Result<(), String> {
    let mut needed = vec![(clusters(), "CloudNativePG is not installed")];
    if object_store {
        needed.push((
            object_stores(),
            "the Barman Cloud plugin is not installed (or use cnpg.recoveryPath: inTree)",
        ));
    }
    for (ar, hint) in needed {
        match client.list_api_group_resources(&ar.api_version).await {
            Ok(list) if list.resources.iter().any(|r| r.name == ar.plural) => {}
            Ok(_) => {
                return Err(format!(
                    "the API server has {} but no {} resource: {hint}",
                    ar.api_version, ar.plural
                ));
            }
            Err(e) if is_not_found(&e) => {
                return Err(format!(
                    "the API server does not serve {} ({}.{} CRD missing): {hint}",
                    ar.api_version, ar.plural, ar.group
                ));
            }
            Err(e) => return Err(describe(&e)),
        }
    }
    Ok(())
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One line: the API's status message and code, or the transport error.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("Kubernetes API: {} ({} {})", s.message, s.code, s.reason),
        other => format!("Kubernetes API: {other}"),
    }
}
