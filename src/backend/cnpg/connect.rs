//! Reaching the restored primary for verification: the credentials CNPG generated, and the
//! `-rw` Service or a port-forward to the primary pod.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DynamicObject};

use super::{CnpgRequest, ConnectMode};
use crate::backend::{Failure, Stage, error};
use crate::k8s::forward::PortForward;
use crate::k8s::{DrillObjects, clusters, describe};
use crate::pg::PgConn;

/// `Auto` made concrete: the Service inside a cluster, a port-forward outside.
pub(super) fn resolve(mode: ConnectMode, in_cluster: impl FnOnce() -> bool) -> ConnectMode {
    match mode {
        ConnectMode::Auto if in_cluster() => ConnectMode::Service,
        ConnectMode::Auto => ConnectMode::PortForward,
        m => m,
    }
}

/// The primary pod: the Cluster's `currentPrimary`, else the first instance.
pub(super) fn primary_pod(cluster: &str, current_primary: Option<&str>) -> String {
    current_primary
        .map(str::to_string)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("{cluster}-1"))
}

/// A connection to the primary, and the port-forward that carries it (if one does).
pub(super) async fn connect(
    req: &CnpgRequest,
    objects: &DrillObjects,
) -> Result<(PgConn, Option<PortForward>), Failure> {
    let (user, password) = credentials(req, objects).await?;
    let (host, port, forward) = match resolve(req.connect, crate::k8s::in_cluster) {
        ConnectMode::Service => (
            format!("{}-rw.{}.svc", objects.cluster, objects.namespace),
            5432,
            None,
        ),
        _ => {
            let forward = forward_to_primary(req, objects).await?;
            ("127.0.0.1".to_string(), forward.local.port(), Some(forward))
        }
    };
    let conn = PgConn {
        host,
        port,
        user,
        password: Some(password),
    };
    Ok((conn, forward))
}

async fn forward_to_primary(
    req: &CnpgRequest,
    objects: &DrillObjects,
) -> Result<PortForward, Failure> {
    let clusters_api: Api<DynamicObject> =
        Api::namespaced_with(req.client.clone(), &objects.namespace, &clusters());
    let cluster = clusters_api.get(&objects.cluster).await.ok();
    let current = cluster
        .as_ref()
        .and_then(|c| c.data["status"]["currentPrimary"].as_str());
    let primary = primary_pod(&objects.cluster, current);
    let pods: Api<Pod> = Api::namespaced(req.client.clone(), &objects.namespace);
    PortForward::start(pods, primary, 5432)
        .await
        .map_err(|e| error(Stage::Verify, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_the_service_only_inside_a_cluster() {
        let cases = [
            ("auto inside", ConnectMode::Auto, true, ConnectMode::Service),
            (
                "auto outside",
                ConnectMode::Auto,
                false,
                ConnectMode::PortForward,
            ),
            (
                "service outside",
                ConnectMode::Service,
                false,
                ConnectMode::Service,
            ),
            (
                "forward inside",
                ConnectMode::PortForward,
                true,
                ConnectMode::PortForward,
            ),
        ];
        for (name, mode, inside, expected) in cases {
            assert_eq!(resolve(mode, || inside), expected, "{name}");
        }
    }

    #[test]
    fn the_primary_is_current_primary_else_the_first_instance() {
        let cases = [
            ("reported", Some("c-2"), "c-2"),
            ("not reported", None, "c-1"),
            ("empty", Some(""), "c-1"),
        ];
        for (name, current, expected) in cases {
            assert_eq!(primary_pod("c", current), expected, "{name}");
        }
    }
}
