//! Reading what the scratch cluster shows through the API: the full-recovery job's pods, their
//! logs, where recovery ended, and the Warning events about the drill's objects.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use super::diagnose::{RecoveryPod, recovery_pod, succeeded, warning_summary};
use super::joblog;
use crate::backend::pglog::RecoveryEnd;
use crate::backend::{Failure, Stage, error};
use crate::k8s::describe;

/// The full-recovery job pods of a cluster, oldest first.
pub(super) async fn recovery_pods(
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
    Ok(pods.into_iter().map(recovery_pod).collect())
}

/// The job's log: the `full-recovery` container's, plus the Barman Cloud plugin sidecar's
/// (where the plugin path reports catalog and restore errors) when there is one.
pub(super) async fn pod_log(
    client: &kube::Client,
    ns: &str,
    pod: &str,
) -> Result<joblog::JobLog, String> {
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
pub(super) async fn warnings(client: &kube::Client, ns: &str, cluster: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let events = api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    warning_summary(&events, cluster)
}

/// Where recovery ended, from the log of the job attempt that succeeded.
pub(super) async fn recovery_end(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
) -> Result<RecoveryEnd, Failure> {
    let pods = recovery_pods(client, ns, cluster)
        .await
        .map_err(|e| error(Stage::Verify, e))?;
    let done = succeeded(&pods, ns)?;
    Ok(pod_log(client, ns, &done.name)
        .await
        .map_err(|e| error(Stage::Verify, e))?
        .recovery_end())
}
