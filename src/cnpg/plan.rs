//! From a planned drill to its manifests (pure): the settings of the scenario, what the
//! catalog says about the chosen backup, and what a live source Cluster says.

use crate::barman::BarmanObjectStore;
use crate::catalog::LineageCatalog;
use crate::cnpg::source::ClusterSource;
use crate::preflight::Ready;
use crate::scenario::Loaded;
use crate::scenario::plan::DrillPlan;

use super::manifest::{DrillSpec, Isolation, Manifests, build};

/// The source Cluster's image when it runs the backup's PostgreSQL major (`…:16`, `…:16.4`,
/// `…:16.4-bookworm`), so a drill uses the same build the source runs.
fn matching_image(image: &str, major: Option<u32>) -> bool {
    let (Some(major), Some((_, tag))) = (major, image.rsplit_once(':')) else {
        return false;
    };
    let tag = tag.split('@').next().unwrap_or(tag);
    tag.strip_prefix(&major.to_string())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '-']))
}

pub fn drill_spec(
    loaded: &Loaded,
    block: &BarmanObjectStore,
    cluster: Option<&ClusterSource>,
    catalog: &LineageCatalog,
    plan: &DrillPlan,
    ready: &Ready,
    now: jiff::Timestamp,
) -> Result<DrillSpec, String> {
    let settings = &loaded.scenario.cnpg;
    let backup = catalog
        .backups
        .iter()
        .find(|b| b.info.backup_id == ready.backup_id)
        .map(|b| &b.info);
    let server_major = backup.and_then(|b| b.server_major());
    let image_name = settings.image_name.clone().or_else(|| {
        cluster
            .and_then(|c| c.image_name.clone())
            .filter(|i| matching_image(i, server_major))
    });
    let ttl = jiff::SignedDuration::try_from(settings.ttl.0)
        .ok()
        .and_then(|ttl| now.checked_add(ttl).ok())
        .ok_or_else(|| format!("{}: cnpg.ttl is too long", loaded.path.display()))?;
    Ok(DrillSpec {
        drill_id: plan.drill_id.clone(),
        lineage: plan.lineage.clone(),
        target: ready.target.clone(),
        store: block.clone(),
        path: settings.recovery_path,
        isolation: match &settings.namespace {
            Some(ns) => Isolation::Fixed(ns.clone()),
            None => Isolation::ScratchNamespace,
        },
        image_name,
        server_major,
        storage_size: settings
            .storage_size
            .clone()
            .or_else(|| cluster.and_then(|c| c.storage_size.clone())),
        backup_size: backup.and_then(|b| b.cluster_size.or(b.size)),
        database: settings.database.clone(),
        owner: settings.owner.clone(),
        superuser: settings.enable_superuser_access,
        expires_at: ttl,
    })
}

/// Builds the manifests and checks the safety invariants; the error lists every problem.
pub fn safe_manifests(spec: &DrillSpec) -> Result<Manifests, String> {
    let manifests = build(spec);
    super::safety::check(&manifests).map_err(|problems| {
        format!(
            "drill {}: unsafe manifests: {}",
            spec.drill_id,
            problems.join("; ")
        )
    })?;
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_image_is_used_only_for_the_same_major() {
        assert!(matching_image(
            "ghcr.io/cloudnative-pg/postgresql:16.4",
            Some(16)
        ));
        assert!(matching_image(
            "ghcr.io/cloudnative-pg/postgresql:16",
            Some(16)
        ));
        assert!(matching_image("reg:5000/pg:16.4-bookworm", Some(16)));
        assert!(!matching_image(
            "ghcr.io/cloudnative-pg/postgresql:17.2",
            Some(16)
        ));
        assert!(!matching_image(
            "ghcr.io/cloudnative-pg/postgresql:160",
            Some(16)
        ));
        assert!(!matching_image("postgres", Some(16)));
        assert!(!matching_image(
            "ghcr.io/cloudnative-pg/postgresql:16",
            None
        ));
    }
}
