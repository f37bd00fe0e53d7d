//! The objects one drill creates, their deletion (confirmed, not just requested), and the
//! registry of live drills that a signal handler tears down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};

use super::{clusters, describe, is_not_found, object_stores};

/// What a drill put in the cluster, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrillObjects {
    pub drill_id: String,
    pub namespace: String,
    /// The namespace is the drill's own, deleted with everything in it.
    pub scratch_namespace: bool,
    pub cluster: String,
    pub object_store: Option<String>,
    pub secrets: Vec<String>,
}

/// How long teardown waits for objects to be gone.
const GONE_TIMEOUT: Duration = Duration::from_secs(120);

async fn delete_named<K>(api: &Api<K>, name: &str) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(format!("deleting {name}: {}", describe(&e))),
    }
}

async fn wait_gone<K>(api: &Api<K>, name: &str, deadline: Instant) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    loop {
        match api.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Ok(Some(_)) => return Err(format!("{name} still exists after {GONE_TIMEOUT:?}")),
            Err(e) => return Err(format!("checking {name} is gone: {}", describe(&e))),
        }
    }
}

impl DrillObjects {
    /// Deletes the Cluster, the PVCs CNPG keeps after it, the ObjectStore and the copied
    /// Secrets (or the whole scratch namespace), and waits until they are gone.
    pub async fn delete(&self, client: &kube::Client) -> Result<(), String> {
        let deadline = Instant::now() + GONE_TIMEOUT;
        let mut problems = self.request_deletion(client).await;
        // Waiting is pointless when a deletion was not even accepted.
        if problems.is_empty() {
            problems.extend(self.wait_deleted(client, deadline).await);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "teardown of {}/{}: {}",
                self.namespace,
                self.cluster,
                problems.join("; ")
            ))
        }
    }

    fn pvc_selector(&self) -> String {
        format!("cnpg.io/cluster={}", self.cluster)
    }

    /// Asks the API server to delete every object; returns the problems.
    async fn request_deletion(&self, client: &kube::Client) -> Vec<String> {
        let ns = self.namespace.as_str();
        let mut problems = Vec::new();
        let clusters_api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &clusters());
        problems.extend(delete_named(&clusters_api, &self.cluster).await.err());
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        match pvcs
            .list(&ListParams::default().labels(&self.pvc_selector()))
            .await
        {
            Ok(list) => {
                for pvc in list {
                    let name = pvc.metadata.name.unwrap_or_default();
                    problems.extend(delete_named(&pvcs, &name).await.err());
                }
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => problems.push(format!("listing PVCs: {}", describe(&e))),
        }
        if let Some(os) = &self.object_store {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), ns, &object_stores());
            problems.extend(delete_named(&api, os).await.err());
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        for s in &self.secrets {
            problems.extend(delete_named(&secrets, s).await.err());
        }
        if self.scratch_namespace {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            problems.extend(delete_named(&namespaces, ns).await.err());
        }
        problems
    }

    /// Waits until the deleted objects are gone; returns the problems.
    async fn wait_deleted(&self, client: &kube::Client, deadline: Instant) -> Vec<String> {
        let ns = self.namespace.as_str();
        if self.scratch_namespace {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            return wait_gone(&namespaces, ns, deadline)
                .await
                .err()
                .into_iter()
                .collect();
        }
        let clusters_api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &clusters());
        let mut problems: Vec<String> = wait_gone(&clusters_api, &self.cluster, deadline)
            .await
            .err()
            .into_iter()
            .collect();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        problems.extend(
            wait_pvcs_gone(&pvcs, &self.pvc_selector(), deadline)
                .await
                .err(),
        );
        problems
    }
}

/// PVCs linger while their pods terminate (the pvc-protection finalizer), so they are waited
/// for by label rather than by name.
async fn wait_pvcs_gone(
    pvcs: &Api<PersistentVolumeClaim>,
    selector: &str,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        match pvcs.list(&ListParams::default().labels(selector)).await {
            Ok(list) if list.items.is_empty() => return Ok(()),
            Ok(list) if Instant::now() >= deadline => {
                return Err(format!(
                    "{} PVC(s) still exist after {GONE_TIMEOUT:?}",
                    list.items.len()
                ));
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return Err(format!("listing PVCs: {}", describe(&e))),
        }
    }
}

/// Drills with objects in the cluster right now, so that Ctrl-C or SIGTERM can delete them.
#[derive(Clone, Debug, Default)]
pub struct LiveDrills {
    inner: Arc<Mutex<BTreeMap<String, DrillObjects>>>,
}

impl LiveDrills {
    pub fn add(&self, objects: &DrillObjects) {
        self.lock()
            .insert(objects.drill_id.clone(), objects.clone());
    }

    pub fn remove(&self, drill_id: &str) {
        self.lock().remove(drill_id);
    }

    pub fn snapshot(&self) -> Vec<DrillObjects> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DrillObjects>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deletes what every live drill created, all at once (a pod has a short grace period
    /// after SIGTERM); returns the problems.
    pub async fn teardown_all(&self, client: &kube::Client) -> Vec<String> {
        let drills = self.snapshot();
        let results =
            futures::future::join_all(drills.iter().map(|objects| objects.delete(client))).await;
        let mut problems = Vec::new();
        for (objects, result) in drills.iter().zip(results) {
            match result {
                Ok(()) => self.remove(&objects.drill_id),
                Err(e) => problems.push(e),
            }
        }
        problems
    }
}
