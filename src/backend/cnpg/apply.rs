//! Creating the drill's objects: the scratch namespace, the credential Secrets, then the
//! ObjectStore and the Cluster applied server-side.

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
    api.patch(&name, &apply_params(), &Patch::Apply(os))
        .await
        .map_err(|e| {
            error(
                Stage::Restore,
                format!("applying ObjectStore {ns}/{name}: {}", describe(&e)),
            )
        })?;
    Ok(())
}

async fn apply_cluster(req: &CnpgRequest, objects: &DrillObjects) -> Result<String, Failure> {
    let ns = objects.namespace.as_str();
    let api: Api<DynamicObject> = Api::namespaced_with(req.client.clone(), ns, &clusters());
    let applied = api
        .patch(
            &objects.cluster,
            &apply_params(),
            &Patch::Apply(&req.manifests.cluster),
        )
        .await
        .map_err(|e| {
            error(
                Stage::Restore,
                format!(
                    "applying Cluster {ns}/{}: {}",
                    objects.cluster,
                    describe(&e)
                ),
            )
        })?;
    Ok(applied.metadata.resource_version.unwrap_or_default())
}
