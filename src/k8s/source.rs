//! Reading the source of a drill from the cluster: a live CNPG Cluster (its archive settings,
//! serverName, image and storage) and the credential Secrets its store references.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};

use super::{clusters, describe, is_not_found, object_stores};
use crate::barman::config::SecretKeySelector;
pub use crate::cnpg::source::{ClusterSource, referenced_secrets};
use crate::cnpg::source::{archiving_plugin, derive};
use crate::store::SecretValues;

/// Reads a live Cluster (and its ObjectStore) and derives the drill's source.
pub async fn from_cluster(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ClusterSource, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &clusters());
    let cluster = match api.get(name).await {
        Ok(c) => serde_json::to_value(c).map_err(|e| e.to_string())?,
        Err(e) if is_not_found(&e) => {
            return Err(format!(
                "source.cluster: Cluster {namespace}/{name} not found ({})",
                describe(&e)
            ));
        }
        Err(e) => {
            return Err(format!(
                "reading Cluster {namespace}/{name}: {}",
                describe(&e)
            ));
        }
    };
    let plugin_store = archiving_plugin(&cluster)
        .and_then(|p| p["parameters"]["barmanObjectName"].as_str())
        .map(str::to_string);
    let object_store = match plugin_store {
        Some(os) => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &object_stores());
            match api.get_opt(&os).await {
                Ok(o) => o.map(|o| serde_json::to_value(o).unwrap_or_default()),
                Err(e) => {
                    return Err(format!(
                        "reading ObjectStore {namespace}/{os}: {}",
                        describe(&e)
                    ));
                }
            }
        }
        None => None,
    };
    derive(namespace, &cluster, object_store.as_ref())
}

/// Reads the referenced keys of the Secrets in `namespace`.
pub async fn read_secrets(
    client: &kube::Client,
    namespace: &str,
    selectors: &[SecretKeySelector],
) -> Result<SecretValues, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut values = SecretValues::default();
    for sel in selectors {
        if values
            .get(&sel.name)
            .is_some_and(|k| k.contains_key(&sel.key))
        {
            continue;
        }
        let secret = api.get(&sel.name).await.map_err(|e| {
            format!(
                "reading Secret {namespace}/{} (referenced by the store): {}",
                sel.name,
                describe(&e)
            )
        })?;
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&sel.key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&sel.key).cloned())
            })
            .ok_or_else(|| {
                format!(
                    "Secret {namespace}/{} has no key {:?} (referenced by the store)",
                    sel.name, sel.key
                )
            })?;
        values
            .entry(sel.name.clone())
            .or_default()
            .insert(sel.key.clone(), value);
    }
    Ok(values)
}
