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
        let ns = self.namespace.as_str();
        let clusters_api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &clusters());
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let mut problems = Vec::new();
        if let Err(e) = delete_named(&clusters_api, &self.cluster).await {
            problems.push(e);
        }
        let pvc_selector = format!("cnpg.io/cluster={}", self.cluster);
        match pvcs
            .list(&ListParams::default().labels(&pvc_selector))
            .await
        {
            Ok(list) => {
                for pvc in list {
                    let name = pvc.metadata.name.unwrap_or_default();
                    if let Err(e) = delete_named(&pvcs, &name).await {
                        problems.push(e);
                    }
                }
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => problems.push(format!("listing PVCs: {}", describe(&e))),
        }
        if let Some(os) = &self.object_store {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), ns, &object_stores());
            if let Err(e) = delete_named(&api, os).await {
                problems.push(e);
            }
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        for s in &self.secrets {
            if let Err(e) = delete_named(&secrets, s).await {
                problems.push(e);
            }
        }
        if self.scratch_namespace {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            if let Err(e) = delete_named(&namespaces, ns).await {
                problems.push(e);
            }
            if problems.is_empty()
                && let Err(e) = wait_gone(&namespaces, ns, deadline).await
            {
                problems.push(e);
            }
        } else if problems.is_empty() {
            if let Err(e) = wait_gone(&clusters_api, &self.cluster, deadline).await {
                problems.push(e);
            }
            // PVCs linger while their pods terminate (the pvc-protection finalizer).
            loop {
                match pvcs
                    .list(&ListParams::default().labels(&pvc_selector))
                    .await
                {
                    Ok(list) if list.items.is_empty() => break,
                    Ok(list) if Instant::now() >= deadline => {
                        problems.push(format!(
                            "{} PVC(s) still exist after {GONE_TIMEOUT:?}",
                            list.items.len()
                        ));
                        break;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    Err(e) => {
                        problems.push(format!("listing PVCs: {}", describe(&e)));
                        break;
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "teardown of {}/{}: {}",
                ns,
                self.cluster,
                problems.join("; ")
            ))
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
