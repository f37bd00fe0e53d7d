//! What a live CNPG Cluster (and its ObjectStore) says about its archive (pure: from the
//! objects' JSON, as `k8s::source` reads them).

use serde_json::Value;

use crate::barman::BarmanObjectStore;
use crate::barman::config::SecretKeySelector;
use crate::cnpg::manifest::PLUGIN_NAME;

/// What a live Cluster says about its archive.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSource {
    pub namespace: String,
    pub block: BarmanObjectStore,
    /// The folder the Cluster archives into: its lineage.
    pub server_name: String,
    pub image_name: Option<String>,
    pub storage_size: Option<String>,
    /// `plugin` when it archives through the Barman Cloud plugin.
    pub via_plugin: bool,
}

const BLOCK_KEYS: &[&str] = &[
    "destinationPath",
    "endpointURL",
    "endpointCA",
    "serverName",
    "s3Credentials",
    "azureCredentials",
    "googleCredentials",
    "wal",
    "data",
    "tags",
    "historyTags",
];

/// A `barmanObjectStore`-shaped value from the API, keeping the keys pgdrill knows (newer
/// CNPG versions may add others).
pub fn block_from_value(v: &Value, what: &str) -> Result<BarmanObjectStore, String> {
    let Some(map) = v.as_object() else {
        return Err(format!("{what}: expected an object"));
    };
    let known: serde_json::Map<String, Value> = map
        .iter()
        .filter(|(k, _)| BLOCK_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(known)).map_err(|e| format!("{what}: {e}"))
}

/// Derives the archive settings from a Cluster (JSON) and, for the plugin, its ObjectStore.
/// Pure: `object_store` is the named ObjectStore's JSON when the Cluster uses the plugin.
pub fn derive(
    namespace: &str,
    cluster: &Value,
    object_store: Option<&Value>,
) -> Result<ClusterSource, String> {
    let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &cluster["spec"];
    let plugin = archiving_plugin(cluster);
    let (block, server_name, via_plugin) = match (plugin, &spec["backup"]["barmanObjectStore"]) {
        (Some(p), _) => {
            let os_name = p["parameters"]["barmanObjectName"].as_str().unwrap_or("");
            let os = object_store.ok_or_else(|| {
                format!("Cluster {namespace}/{name} archives to ObjectStore {os_name}, which was not found")
            })?;
            let block = block_from_value(
                &os["spec"]["configuration"],
                &format!("ObjectStore {namespace}/{os_name} spec.configuration"),
            )?;
            // The plugin's default serverName is the Cluster's own name.
            let server = p["parameters"]["serverName"].as_str().unwrap_or(name);
            (block, server.to_string(), true)
        }
        (None, v) if v.is_object() => {
            let block = block_from_value(
                v,
                &format!("Cluster {namespace}/{name} spec.backup.barmanObjectStore"),
            )?;
            let server = block
                .server_name
                .clone()
                .unwrap_or_else(|| name.to_string());
            (block, server, false)
        }
        _ => {
            return Err(format!(
                "Cluster {namespace}/{name} has neither the {PLUGIN_NAME} plugin with a barmanObjectName nor spec.backup.barmanObjectStore: it archives nowhere pgdrill can read"
            ));
        }
    };
    Ok(ClusterSource {
        namespace: namespace.to_string(),
        block,
        server_name,
        image_name: spec["imageName"].as_str().map(str::to_string),
        storage_size: spec["storage"]["size"].as_str().map(str::to_string),
        via_plugin,
    })
}

/// The Barman Cloud plugin entry through which a Cluster archives, if any.
pub fn archiving_plugin(cluster: &Value) -> Option<&Value> {
    cluster["spec"]["plugins"].as_array()?.iter().find(|p| {
        p["name"].as_str() == Some(PLUGIN_NAME)
            && p["enabled"].as_bool() != Some(false)
            && p["parameters"]["barmanObjectName"].is_string()
    })
}

/// Every Secret key a store block references.
pub fn referenced_secrets(block: &BarmanObjectStore) -> Vec<SecretKeySelector> {
    block.secret_refs().into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_cluster_takes_store_and_server_name_from_the_object_store() {
        let cluster = json!({"metadata": {"name": "app"}, "spec": {
            "imageName": "ghcr.io/cloudnative-pg/postgresql:16.4",
            "storage": {"size": "5Gi"},
            "plugins": [{"name": PLUGIN_NAME, "isWALArchiver": true,
                          "parameters": {"barmanObjectName": "store", "serverName": "app-v2"}}]}});
        let os = json!({"spec": {"configuration": {
            "destinationPath": "s3://b/pg", "endpointURL": "http://minio:9000",
            "s3Credentials": {"accessKeyId": {"name": "creds", "key": "ID"},
                              "secretAccessKey": {"name": "creds", "key": "KEY"}},
            "futureField": true}}});
        let s = derive("prod", &cluster, Some(&os)).unwrap();
        assert_eq!(s.server_name, "app-v2");
        assert_eq!(s.block.destination_path, "s3://b/pg");
        assert_eq!(s.storage_size.as_deref(), Some("5Gi"));
        assert!(s.via_plugin);
        assert_eq!(referenced_secrets(&s.block).len(), 2);
        // Without parameters.serverName the plugin uses the Cluster's name.
        let mut c2 = cluster.clone();
        c2["spec"]["plugins"][0]["parameters"]
            .as_object_mut()
            .unwrap()
            .remove("serverName");
        assert_eq!(derive("prod", &c2, Some(&os)).unwrap().server_name, "app");
        assert!(
            derive("prod", &cluster, None)
                .unwrap_err()
                .contains("not found")
        );
    }

    #[test]
    fn in_tree_cluster_defaults_server_name_to_its_name() {
        let cluster = json!({"metadata": {"name": "db"}, "spec": {"backup": {
            "barmanObjectStore": {"destinationPath": "s3://b/x"}}}});
        let s = derive("ns", &cluster, None).unwrap();
        assert_eq!(s.server_name, "db");
        assert!(!s.via_plugin);
        let none = json!({"metadata": {"name": "db"}, "spec": {}});
        assert!(
            derive("ns", &none, None)
                .unwrap_err()
                .contains("archives nowhere")
        );
    }
}
