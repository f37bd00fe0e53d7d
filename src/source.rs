//! A scenario's source, resolved into what the catalog reader and the backends need: the store
//! block, where its Secrets come from, and for a live Cluster its serverName, image and storage.

use crate::k8s::source::{ClusterSource, from_cluster, read_secrets, referenced_secrets};
use crate::scenario::Loaded;
use crate::store::{BarmanObjectStore, StoreSpec};

#[derive(Clone, Debug)]
pub struct ResolvedSource {
    pub spec: StoreSpec,
    pub block: BarmanObjectStore,
    /// The namespace the credential Secrets were read from (backend `cnpg` copies them).
    pub secrets_namespace: Option<String>,
    pub cluster: Option<ClusterSource>,
}

/// Reads what the scenario points at; `client` is required when `loaded.needs_kubernetes()`.
pub async fn resolve(
    loaded: &Loaded,
    client: Option<&kube::Client>,
) -> Result<ResolvedSource, String> {
    let src = &loaded.scenario.source;
    let file = loaded.path.display();
    let (block, cluster) = match (&src.barman_object_store, &src.cluster) {
        (Some(block), _) => (block.clone(), None),
        (None, Some(c)) => {
            let client = client.ok_or("source.cluster needs the Kubernetes API")?;
            let found = from_cluster(client, &c.namespace, &c.name)
                .await
                .map_err(|e| format!("{file}: {e}"))?;
            (found.block.clone(), Some(found))
        }
        (None, None) => unreachable!("load() requires one of them"),
    };
    let mut spec = match StoreSpec::for_scenario(loaded) {
        Some(spec) => spec,
        None => StoreSpec {
            destination_path: block.destination_path.clone(),
            block: Some(block.clone()),
            ..Default::default()
        },
    };
    let secrets_namespace = src
        .secrets_namespace
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.namespace.clone()));
    if let Some(ns) = &secrets_namespace {
        let client = client.ok_or("source.secretsNamespace needs the Kubernetes API")?;
        let values = read_secrets(client, ns, &referenced_secrets(&block))
            .await
            .map_err(|e| format!("{file}: {e}"))?;
        spec.secret_values = Some(std::sync::Arc::new(values));
    }
    Ok(ResolvedSource {
        spec,
        block,
        secrets_namespace,
        cluster,
    })
}
