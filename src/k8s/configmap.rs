//! One key of a ConfigMap, read and rewritten (created when missing, retried when another
//! writer got there first): where run history and baselines live in a cluster.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use super::{describe, is_conflict};
use crate::cnpg::manifest::MANAGED_BY;

/// The value of `key`, if the ConfigMap and the key exist.
pub async fn read_key(
    client: &kube::Client,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(cm) => Ok(cm.and_then(|cm| cm.data).and_then(|mut d| d.remove(key))),
        Err(e) => Err(format!("reading ConfigMap {ns}/{name}: {}", describe(&e))),
    }
}

/// Sets `key` to `update(current value)`.
pub async fn update_key(
    client: &kube::Client,
    ns: &str,
    name: &str,
    key: &str,
    update: impl Fn(Option<&str>) -> String,
) -> Result<(), String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for _ in 0..5 {
        let result = match api.get_opt(name).await {
            Ok(Some(mut cm)) => {
                let data = cm.data.get_or_insert_with(Default::default);
                let value = update(data.get(key).map(String::as_str));
                data.insert(key.into(), value);
                api.replace(name, &PostParams::default(), &cm)
                    .await
                    .map(|_| ())
            }
            Ok(None) => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
                        ..Default::default()
                    },
                    data: Some([(key.to_string(), update(None))].into()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await.map(|_| ())
            }
            Err(e) => return Err(format!("reading ConfigMap {ns}/{name}: {}", describe(&e))),
        };
        match result {
            Ok(()) => return Ok(()),
            // Another writer: read again.
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(format!("writing ConfigMap {ns}/{name}: {}", describe(&e))),
        }
    }
    Err(format!(
        "writing ConfigMap {ns}/{name}: kept conflicting with other writers"
    ))
}
