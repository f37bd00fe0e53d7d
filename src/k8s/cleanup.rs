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
    let mut sweeper = Sweeper {
        client,
        scope,
        lp: ListParams::default().labels(&selector()),
        now: jiff::Timestamp::now(),
        older_than,
        dry_run,
        swept: Vec::new(),
        problems: Vec::new(),
    };
    let scratch = sweeper.scratch_namespaces().await?;
    let swept_drills = sweeper.drill_clusters(&scratch).await?;
    let leftovers = sweeper.list_leftovers().await;
    sweeper.leftovers(leftovers, &scratch, &swept_drills).await;
    sweeper.finish()
}

/// One sweep: where and what to look for, and what it did so far.
struct Sweeper<'a> {
    client: &'a kube::Client,
    scope: &'a Scope,
    /// Only objects labelled as pgdrill's.
    lp: ListParams,
    now: jiff::Timestamp,
    older_than: Option<Duration>,
    dry_run: bool,
    swept: Vec<Swept>,
    /// Problems with single drills: they do not stop the sweep of the others.
    problems: Vec<String>,
}

impl Sweeper<'_> {
    fn reason(&self, meta: &ObjectMeta) -> Option<String> {
        sweep_reason(meta, self.now, self.older_than)
    }

    /// Deletes the expired scratch namespaces; returns the names of all of them, expired or
    /// not, since their contents are theirs and must not be swept one by one.
    async fn scratch_namespaces(&mut self) -> Result<Vec<String>, String> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let scratch = match self.scope {
            Scope::Cluster => {
                namespaces
                    .list(&self.lp)
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
            let Some(why) = self.reason(&ns.metadata) else {
                continue;
            };
            if !self.dry_run {
                match namespaces
                    .delete(&name, &kube::api::DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(format!("deleting namespace {name}: {}", describe(&e))),
                }
            }
            self.swept.push(Swept {
                kind: "Namespace",
                namespace: name.clone(),
                name,
                why,
            });
        }
        Ok(scratch_names)
    }

    /// Deletes expired drill Clusters outside scratch namespaces, with the objects of their
    /// drill; returns the ids of the drills swept.
    async fn drill_clusters(&mut self, scratch: &[String]) -> Result<Vec<String>, String> {
        let client = self.client;
        let drill_clusters = match list_in(self.scope, &self.lp, |ns| match ns {
            Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &clusters()),
            None => Api::all_with(client.clone(), &clusters()),
        })
        .await
        {
            Ok(list) => list,
            Err(e) if is_not_found(&e) => Vec::new(),
            Err(e) => return Err(format!("listing drill clusters: {}", describe(&e))),
        };
        let mut swept_drills = Vec::new();
        for c in drill_clusters {
            let ns = c.metadata.namespace.clone().unwrap_or_default();
            if scratch.contains(&ns) {
                continue;
            }
            let Some(why) = self.reason(&c.metadata) else {
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
            if !self.dry_run
                && let Err(e) = delete_drill(client, &ns, &name, &drill_id).await
            {
                self.problems.push(e);
                continue;
            }
            swept_drills.push(drill_id);
            self.swept.push(Swept {
                kind: "Cluster",
                namespace: ns,
                name,
                why,
            });
        }
        Ok(swept_drills)
    }

    /// Copied Secrets and ObjectStores, which outlive a Cluster that never got created (or is
    /// already gone).
    async fn list_leftovers(&mut self) -> Vec<(&'static str, ObjectMeta)> {
        let client = self.client;
        let mut leftovers = Vec::new();
        let secrets = list_in(self.scope, &self.lp, |ns| match ns {
            Some(ns) => Api::<Secret>::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        });
        match secrets.await {
            Ok(l) => leftovers.extend(l.into_iter().map(|o| ("Secret", o.metadata))),
            Err(e) => self
                .problems
                .push(format!("listing drill Secrets: {}", describe(&e))),
        }
        let stores = list_in(self.scope, &self.lp, |ns| match ns {
            Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &object_stores()),
            None => Api::all_with(client.clone(), &object_stores()),
        });
        match stores.await {
            Ok(l) => leftovers.extend(l.into_iter().map(|o| ("ObjectStore", o.metadata))),
            Err(e) if is_not_found(&e) => {}
            Err(e) => self
                .problems
                .push(format!("listing drill ObjectStores: {}", describe(&e))),
        }
        leftovers
    }

    async fn leftovers(
        &mut self,
        leftovers: Vec<(&'static str, ObjectMeta)>,
        scratch: &[String],
        swept_drills: &[String],
    ) {
        for (kind, meta) in leftovers {
            let ns = meta.namespace.clone().unwrap_or_default();
            let name = meta.name.clone().unwrap_or_default();
            let drill = meta.labels.as_ref().and_then(|l| l.get(DRILL_ID_LABEL));
            // Objects of a namespace or Cluster swept above went with it.
            if scratch.contains(&ns) || drill.is_some_and(|d| swept_drills.contains(d)) {
                continue;
            }
            let Some(why) = self.reason(&meta) else {
                continue;
            };
            if !self.dry_run {
                match delete_leftover(self.client, kind, &ns, &name).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => {
                        self.problems
                            .push(format!("deleting {kind} {ns}/{name}: {}", describe(&e)));
                        continue;
                    }
                }
            }
            self.swept.push(Swept {
                kind,
                namespace: ns,
                name,
                why,
            });
        }
    }

    /// What was swept, or every problem; what was swept despite them goes to the log.
    fn finish(self) -> Result<Vec<Swept>, String> {
        if self.problems.is_empty() {
            return Ok(self.swept);
        }
        for s in &self.swept {
            tracing::info!("swept {} {}/{}", s.kind, s.namespace, s.name);
        }
        Err(self.problems.join("; "))
    }
}

/// Deletes a drill's Cluster with its PVCs, ObjectStore and Secrets.
async fn delete_drill(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    drill_id: &str,
) -> Result<(), String> {
    drill_objects_in(client, ns, cluster, drill_id)
        .await?
        .delete(client)
        .await
}

/// Deletes a Secret or an ObjectStore (`kind`) by name.
async fn delete_leftover(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let dp = kube::api::DeleteParams::background();
    match kind {
        "Secret" => Api::<Secret>::namespaced(client.clone(), ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        _ => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &object_stores())
            .delete(name, &dp)
            .await
            .map(|_| ()),
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
