//! Before drills on a cluster: the CRDs are served, and expired drill objects of earlier runs
//! are swept.

use super::prepare::Prepared;
use crate::exit::Failure;
use crate::k8s::cleanup::{Scope, sweep};
use crate::scenario::types::{BackendKind, RecoveryPath};

/// Only the fixed namespaces when no drill needs a scratch namespace: pgdrill may hold Roles
/// there and nothing cluster-wide.
fn sweep_scope(prepared: &[Prepared]) -> Scope {
    let fixed = prepared
        .iter()
        .map(|p| &p.loaded.scenario)
        .filter(|s| s.backend == BackendKind::Cnpg)
        .map(|s| s.cnpg.namespace.clone())
        .collect::<Option<Vec<String>>>();
    match fixed {
        Some(mut fixed) => {
            fixed.sort();
            fixed.dedup();
            Scope::Namespaces(fixed)
        }
        None => Scope::Cluster,
    }
}

pub async fn ready(client: &kube::Client, prepared: &[Prepared]) -> Result<(), Failure> {
    let plugin = prepared.iter().any(|p| {
        p.loaded.scenario.backend == BackendKind::Cnpg
            && p.loaded.scenario.cnpg.recovery_path == RecoveryPath::Plugin
    });
    crate::k8s::require_crds(client, plugin)
        .await
        .map_err(Failure::error)?;
    // Leftovers of earlier runs must not stop this one: a problem is reported, not fatal.
    let swept = match sweep(client, &sweep_scope(prepared), None, false).await {
        Ok(swept) => swept,
        Err(e) => {
            eprintln!("warning: sweeping expired drill objects: {e}");
            Vec::new()
        }
    };
    for s in swept {
        eprintln!("swept {} {}/{} ({})", s.kind, s.namespace, s.name, s.why);
    }
    Ok(())
}
