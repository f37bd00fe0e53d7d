//! Creating the drill's objects: the scratch namespace, the credential Secrets, then the
//! ObjectStore and the Cluster applied server-side.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};

use super::CnpgRequest;
use crate::backend::{Failure, Stage, error};
use crate::k8s::{DrillObjects, FIELD_MANAGER, clusters, describe, object_stores};

/// A scratch namespace is the drill's own: never adopt (and later delete) one that exists.
pub(super) async fn check_namespace_is_new(
    req: &CnpgRequest,
    objects: &DrillObjects,
) -> Result<(), Failure> {
    if !objects.scratch_namespace {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(req.client.clone());
    match api.get_opt(&objects.namespace).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(error(
            Stage::Restore,
            format!(
                "namespace {} already exists; pgdrill only uses namespaces it creates",
                objects.namespace
            ),
        )),
        Err(e) => Err(error(
            Stage::Restore,
            format!("checking namespace {}: {}", objects.namespace, describe(&e)),
        )),
    }
}

/// Creates everything; returns the applied Cluster's resourceVersion, to watch from.
pub(super) async fn create_objects(
    req: &CnpgRequest,
    objects: &DrillObjects,
) -> Result<String, Failure> {
    create_namespace(req, objects).await?;
    create_secrets(req, objects).await?;
    apply_object_store(req, objects).await?;
    apply_cluster(req, objects).await
}

async fn create_namespace(req: &CnpgRequest, objects: &DrillObjects) -> Result<(), Failure> {
    let Some(manifest) = &req.manifests.namespace else {
        return Ok(());
    };
    let ns = objects.namespace.as_str();
    let api: Api<Namespace> = Api::all(req.client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: manifest.metadata.name.clone(),
            labels: Some(manifest.metadata.labels.clone()),
            annotations: Some(manifest.metadata.annotations.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &namespace)
        .await
        .map_err(|e| {
            error(
                Stage::Restore,
                format!("creating namespace {ns}: {}", describe(&e)),
            )
        })?;
    Ok(())
}

async fn create_secrets(req: &CnpgRequest, objects: &DrillObjects) -> Result<(), Failure> {
    let ns = objects.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(req.client.clone(), ns);
    let meta = &req.manifests.cluster.metadata;
    for copy in &req.secrets {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(copy.name.clone()),
                labels: Some(meta.labels.clone()),
                annotations: Some(meta.annotations.clone()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                copy.data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|e| {
                error(
                    Stage::Restore,
                    format!("creating Secret {ns}/{}: {}", copy.name, describe(&e)),
                )
            })?;
    }
    Ok(())
}

/// Tries of a request the API server may refuse for a moment.
const TRIES: u32 = 4;

/// 429 Too Many Requests or a 5xx: the API server may well serve the same request again.
fn is_transient(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 429 || s.code >= 500)
}

/// An idempotent request (a server-side apply), sent again after a transient refusal with
/// backoff (1s, 2s, 4s); any other error, or the last, is the answer.
async fn retrying<T, F>(what: &str, mut request: impl FnMut() -> F) -> kube::Result<T>
where
    F: Future<Output = kube::Result<T>>,
{
    let mut delay = Duration::from_secs(1);
    for _ in 1..TRIES {
        match request().await {
            Err(e) if is_transient(&e) => {
                tracing::warn!("{what}: {}; trying again in {delay:?}", describe(&e));
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            done => return done,
        }
    }
    request().await
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply_object_store(req: &CnpgRequest, objects: &DrillObjects) -> Result<(), Failure> {
    let Some(os) = &req.manifests.object_store else {
        return Ok(());
    };
    let ns = objects.namespace.as_str();
    let api: Api<DynamicObject> = Api::namespaced_with(req.client.clone(), ns, &object_stores());
    let name = os.metadata.name.clone().unwrap_or_default();
    let what = format!("applying ObjectStore {ns}/{name}");
    let (params, apply) = (apply_params(), Patch::Apply(os));
    retrying(&what, || api.patch(&name, &params, &apply))
        .await
        .map_err(|e| error(Stage::Restore, format!("{what}: {}", describe(&e))))?;
    Ok(())
}

async fn apply_cluster(req: &CnpgRequest, objects: &DrillObjects) -> Result<String, Failure> {
    let ns = objects.namespace.as_str();
    let api: Api<DynamicObject> = Api::namespaced_with(req.client.clone(), ns, &clusters());
    let what = format!("applying Cluster {ns}/{}", objects.cluster);
    let (params, apply) = (apply_params(), Patch::Apply(&req.manifests.cluster));
    let applied = retrying(&what, || api.patch(&objects.cluster, &params, &apply))
        .await
        .map_err(|e| error(Stage::Restore, format!("{what}: {}", describe(&e))))?;
    Ok(applied.metadata.resource_version.unwrap_or_default())
}
