//! Sweeping drill objects left behind (a crashed run, a killed pod): scratch namespaces and,
//! in fixed namespaces, drill Clusters with their PVCs, ObjectStores and Secrets. Only objects
//! labelled `app.kubernetes.io/managed-by=pgdrill` are ever considered.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;

use super::objects::DrillObjects;
use super::{clusters, describe, is_not_found, object_stores};
use crate::cnpg::manifest::{DRILL_ID_LABEL, EXPIRES_ANNOTATION, MANAGED_BY};

/// One swept drill.
#[derive(Clone, Debug, Serialize)]
pub struct Swept {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub why: String,
}

/// Why an object may be swept at `now`: its expiry annotation has passed, or (with
/// `older_than`) it was created longer ago than that. None when it must stay.
pub fn sweep_reason(
    meta: &ObjectMeta,
    now: jiff::Timestamp,
    older_than: Option<Duration>,
) -> Option<String> {
    if meta.deletion_timestamp.is_some() {
        return None;
    }
    let expires = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXPIRES_ANNOTATION))
        .and_then(|v| v.parse::<jiff::Timestamp>().ok());
    if let Some(at) = expires
        && at <= now
    {
        return Some(format!("expired at {at}"));
    }
    let created = meta.creation_timestamp.as_ref().map(|t| t.0);
    if let (Some(age), Some(created)) = (older_than, created) {
        let age = jiff::SignedDuration::try_from(age).ok()?;
        if created.checked_add(age).is_ok_and(|limit| limit <= now) {
            return Some(format!("created at {created}, older than {age:#}"));
        }
    }
    None
}

fn selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// Deletes every expired drill object (or older than `older_than`); with `dry_run`, lists them.
/// Where to look: the whole cluster (scratch namespaces and every namespace's drill objects),
/// or only some fixed namespaces (where pgdrill may hold a Role but not list namespaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Namespaces(Vec<String>),
}

/// Lists labelled objects of one kind in the scope.
async fn list_in<K>(
    scope: &Scope,
    lp: &ListParams,
    api_for: impl Fn(Option<&str>) -> Api<K>,
) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match scope {
        Scope::Cluster => Ok(api_for(None).list(lp).await?.items),
        Scope::Namespaces(list) => {
            let mut all = Vec::new();
            for ns in list {
                all.extend(api_for(Some(ns)).list(lp).await?.items);
            }
            Ok(all)
        }
    }
}

pub async fn sweep(
    client: &kube::Client,
    scope: &Scope,
    older_than: Option<Duration>,
    dry_run: bool,
) -> Result<Vec<Swept>, String> {
    let now = jiff::Timestamp::now();
    let lp = ListParams::default().labels(&selector());
    let mut swept = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let scratch = match scope {
        Scope::Cluster => {
            namespaces
                .list(&lp)
                .await
                .map_err(|e| format!("listing drill namespaces: {}", describe(&e)))?
                .items
        }
        Scope::Namespaces(_) => Vec::new(),
    };
    let scratch_names: Vec<String> = scratch
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for ns in scratch {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if let Some(why) = sweep_reason(&ns.metadata, now, older_than) {
            if !dry_run {
                match namespaces
                    .delete(&name, &kube::api::DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(format!("deleting namespace {name}: {}", describe(&e))),
                }
            }
            swept.push(Swept {
                kind: "Namespace",
                namespace: name.clone(),
                name,
                why,
            });
        }
    }
    // Drill clusters in fixed namespaces. A problem with one does not stop the others.
    let mut problems = Vec::new();
    let mut swept_drills: Vec<String> = Vec::new();
    let drill_clusters = match list_in(scope, &lp, |ns| match ns {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &clusters()),
        None => Api::all_with(client.clone(), &clusters()),
    })
    .await
    {
        Ok(list) => list,
        Err(e) if is_not_found(&e) => Vec::new(),
        Err(e) => return Err(format!("listing drill clusters: {}", describe(&e))),
    };
    for c in drill_clusters {
        let ns = c.metadata.namespace.clone().unwrap_or_default();
        if scratch_names.contains(&ns) {
            continue;
        }
        let Some(why) = sweep_reason(&c.metadata, now, older_than) else {
            continue;
        };
        let name = c.metadata.name.clone().unwrap_or_default();
        let drill_id = c
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DRILL_ID_LABEL))
            .cloned()
            .unwrap_or_default();
        if !dry_run {
            let deleted = match drill_objects_in(client, &ns, &name, &drill_id).await {
                Ok(objects) => objects.delete(client).await,
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                problems.push(e);
                continue;
            }
        }
        swept_drills.push(drill_id);
        swept.push(Swept {
            kind: "Cluster",
            namespace: ns,
            name,
            why,
        });
    }
    // Copied Secrets and ObjectStores whose Cluster never got created (or is already gone).
    let mut leftovers: Vec<(&'static str, ObjectMeta)> = Vec::new();
    let secrets = list_in(scope, &lp, |ns| match ns {
        Some(ns) => Api::<Secret>::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    });
    match secrets.await {
        Ok(l) => leftovers.extend(l.into_iter().map(|o| ("Secret", o.metadata))),
        Err(e) => problems.push(format!("listing drill Secrets: {}", describe(&e))),
    }
    let stores = list_in(scope, &lp, |ns| match ns {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &object_stores()),
        None => Api::all_with(client.clone(), &object_stores()),
    });
    match stores.await {
        Ok(l) => leftovers.extend(l.into_iter().map(|o| ("ObjectStore", o.metadata))),
        Err(e) if is_not_found(&e) => {}
        Err(e) => problems.push(format!("listing drill ObjectStores: {}", describe(&e))),
    }
    for (kind, meta) in leftovers {
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let drill = meta.labels.as_ref().and_then(|l| l.get(DRILL_ID_LABEL));
        // Objects of a namespace or Cluster swept above went with it.
        if scratch_names.contains(&ns) || drill.is_some_and(|d| swept_drills.contains(d)) {
            continue;
        }
        let Some(why) = sweep_reason(&meta, now, older_than) else {
            continue;
        };
        if !dry_run {
            let result = match kind {
                "Secret" => Api::<Secret>::namespaced(client.clone(), &ns)
                    .delete(&name, &kube::api::DeleteParams::background())
                    .await
                    .map(|_| ()),
                _ => Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &object_stores())
                    .delete(&name, &kube::api::DeleteParams::background())
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => continue,
                Err(e) => {
                    problems.push(format!("deleting {kind} {ns}/{name}: {}", describe(&e)));
                    continue;
                }
            }
        }
        swept.push(Swept {
            kind,
            namespace: ns,
            name,
            why,
        });
    }
    if problems.is_empty() {
        Ok(swept)
    } else {
        for s in &swept {
            tracing::info!("swept {} {}/{}", s.kind, s.namespace, s.name);
        }
        Err(problems.join("; "))
    }
}

/// The ObjectStores and Secrets labelled with a drill id, next to its Cluster.
async fn drill_objects_in(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    drill_id: &str,
) -> Result<DrillObjects, String> {
    let lp = ListParams::default().labels(&format!("{},{DRILL_ID_LABEL}={drill_id}", selector()));
    let stores: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &object_stores());
    let object_store = match stores.list(&lp).await {
        Ok(l) => l.items.into_iter().find_map(|o| o.metadata.name),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(format!("listing ObjectStores in {ns}: {}", describe(&e))),
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secrets = secrets
        .list(&lp)
        .await
        .map_err(|e| format!("listing Secrets in {ns}: {}", describe(&e)))?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    Ok(DrillObjects {
        drill_id: drill_id.to_string(),
        namespace: ns.to_string(),
        scratch_namespace: false,
        cluster: cluster.to_string(),
        object_store,
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(expires: Option<&str>, created: &str) -> ObjectMeta {
        ObjectMeta {
            annotations: expires.map(|e| [(EXPIRES_ANNOTATION.to_string(), e.to_string())].into()),
            creation_timestamp: Some(Time(created.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn only_expired_or_old_objects_are_swept() {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let fresh = meta(Some("2026-01-01T18:00:00Z"), "2026-01-01T11:00:00Z");
        assert_eq!(sweep_reason(&fresh, now, None), None);
        let expired = meta(Some("2026-01-01T11:59:00Z"), "2026-01-01T06:00:00Z");
        assert!(
            sweep_reason(&expired, now, None)
                .unwrap()
                .contains("expired")
        );
        let hour = Some(Duration::from_secs(3600));
        assert!(
            sweep_reason(&fresh, now, hour)
                .unwrap()
                .contains("older than")
        );
        assert_eq!(
            sweep_reason(&fresh, now, Some(Duration::from_secs(7200))),
            None
        );
        let unannotated = meta(None, "2026-01-01T11:00:00Z");
        assert_eq!(sweep_reason(&unannotated, now, None), None);
    }
}
