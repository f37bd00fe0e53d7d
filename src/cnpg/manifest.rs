//! Pure manifest building for a scratch recovery cluster: a Cluster with
//! `bootstrap.recovery`, through the Barman Cloud plugin (an ObjectStore in the drill's
//! namespace) or the in-tree `barmanObjectStore`, plus the scratch Namespace.

use std::collections::BTreeMap;

use serde::Serialize;

use super::types::*;
use crate::barman::BarmanObjectStore;
use crate::target::PinnedTarget;
use crate::target::render::cnpg_recovery_target;

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "pgdrill");
pub const DRILL_ID_LABEL: &str = "pgdrill.io/drill-id";
pub const EXPIRES_ANNOTATION: &str = "pgdrill.io/expires-at";
pub const PLUGIN_NAME: &str = "barman-cloud.cloudnative-pg.io";
pub const SOURCE_NAME: &str = "origin";

pub use crate::scenario::types::RecoveryPath;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// A namespace per drill, created and deleted by pgdrill.
    ScratchNamespace,
    /// A fixed namespace where pgdrill may create clusters but not namespaces.
    Fixed(String),
}

/// Everything the manifests depend on; no client, no network.
#[derive(Clone, Debug)]
pub struct DrillSpec {
    pub drill_id: String,
    pub lineage: String,
    /// The target with the backup preflight chose.
    pub target: PinnedTarget,
    pub store: BarmanObjectStore,
    pub path: RecoveryPath,
    pub isolation: Isolation,
    pub image_name: Option<String>,
    /// PostgreSQL major of the backup (backup.info `version`), for the image.
    pub server_major: Option<u32>,
    pub storage_size: Option<String>,
    /// Size of the backed-up cluster in bytes, for the default storage size.
    pub backup_size: Option<u64>,
    pub database: String,
    pub owner: String,
    /// `enableSuperuserAccess`, to verify as `postgres`.
    pub superuser: bool,
    pub expires_at: jiff::Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifests {
    pub namespace: Option<Namespace>,
    pub object_store: Option<ObjectStore>,
    pub cluster: Cluster,
    /// The credential Secrets to copy into the drill's namespace: `(source name, copy name)`.
    #[serde(skip)]
    pub secret_copies: Vec<(String, String)>,
}

impl Manifests {
    /// Every object as one multi-document YAML stream, in apply order.
    pub fn to_yaml(&self) -> String {
        let mut docs = Vec::new();
        if let Some(ns) = &self.namespace {
            docs.push(serde_saphyr::to_string(ns).expect("namespace serializes"));
        }
        if let Some(os) = &self.object_store {
            docs.push(serde_saphyr::to_string(os).expect("object store serializes"));
        }
        docs.push(serde_saphyr::to_string(&self.cluster).expect("cluster serializes"));
        docs.iter().map(|d| format!("---\n{d}")).collect()
    }
}

/// CNPG's webhook refuses Cluster names over 50 characters, and the recovery Job
/// `<cluster>-1-full-recovery` must fit in 63: so at most 47.
pub const MAX_CLUSTER_NAME: usize = 47;

/// A DNS-1123 label of at most 63 characters: lowercased, invalid characters replaced, and a
/// hash of the full value kept when it must be cut, so names stay unique.
pub fn dns_label(raw: &str) -> String {
    dns_label_within(raw, 63)
}

/// As [`dns_label`], at most `max` characters.
pub fn dns_label_within(raw: &str, max: usize) -> String {
    let mut s: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s = s.trim_matches('-').to_string();
    if s.len() > max {
        let hash = crate::hash::fnv1a(raw.as_bytes());
        s = format!("{}-{:08x}", s[..max - 9].trim_end_matches('-'), hash as u32);
    }
    s
}

/// Storage for the restored data: the backed-up cluster size plus half again, in whole GiB,
/// at least 1Gi.
pub fn storage_for(backup_size: Option<u64>) -> String {
    let gib = 1024u64 * 1024 * 1024;
    let needed = backup_size.unwrap_or(0).saturating_mul(3) / 2;
    format!("{}Gi", needed.div_ceil(gib).max(1))
}

/// The metadata of every object of a drill: its name, the drill's namespace, pgdrill's labels
/// and the expiry annotation `cleanup` reads.
fn meta(spec: &DrillSpec, namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: BTreeMap::from([
            (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            (DRILL_ID_LABEL.to_string(), dns_label(&spec.drill_id)),
        ]),
        annotations: BTreeMap::from([(
            EXPIRES_ANNOTATION.to_string(),
            spec.expires_at.to_string(),
        )]),
    }
}

/// Where the recovery cluster reads the archive: the externalCluster, and for the plugin
/// path the ObjectStore it names.
fn source(
    spec: &DrillSpec,
    mut store: BarmanObjectStore,
    namespace: &str,
    cluster_name: &str,
) -> (ExternalCluster, Option<ObjectStore>) {
    match spec.path {
        RecoveryPath::Plugin => {
            let os_name = dns_label(&format!("{cluster_name}-source"));
            let plugin = PluginConfiguration {
                name: PLUGIN_NAME.into(),
                enabled: Some(true),
                is_wal_archiver: None,
                // serverName explicitly: the plugin would default it to the new cluster's name.
                parameters: BTreeMap::from([
                    ("barmanObjectName".to_string(), os_name.clone()),
                    ("serverName".to_string(), spec.lineage.clone()),
                ]),
            };
            let os = ObjectStore {
                api_version: "barmancloud.cnpg.io/v1".into(),
                kind: "ObjectStore".into(),
                metadata: meta(spec, namespace, &os_name),
                spec: ObjectStoreSpec {
                    configuration: store,
                },
            };
            let external = ExternalCluster {
                name: SOURCE_NAME.into(),
                plugin: Some(plugin),
                ..Default::default()
            };
            (external, Some(os))
        }
        RecoveryPath::InTree => {
            store.server_name = Some(spec.lineage.clone());
            let external = ExternalCluster {
                name: SOURCE_NAME.into(),
                barman_object_store: Some(store),
                ..Default::default()
            };
            (external, None)
        }
    }
}

/// The scratch Cluster: one instance, bootstrapped by recovery from the source, with no
/// backup section and no plugin of its own (it never archives).
fn cluster(spec: &DrillSpec, metadata: ObjectMeta, external: ExternalCluster) -> Cluster {
    let image = spec.image_name.clone().or_else(|| {
        spec.server_major
            .map(|m| format!("ghcr.io/cloudnative-pg/postgresql:{m}"))
    });
    let size = spec
        .storage_size
        .clone()
        .unwrap_or_else(|| storage_for(spec.backup_size));
    Cluster {
        api_version: "postgresql.cnpg.io/v1".into(),
        kind: "Cluster".into(),
        metadata,
        spec: ClusterSpec {
            instances: Some(1),
            image_name: image,
            enable_superuser_access: spec.superuser.then_some(true),
            storage: Some(Storage {
                size: Some(size),
                storage_class: None,
            }),
            bootstrap: Some(Bootstrap {
                recovery: Some(BootstrapRecovery {
                    source: Some(SOURCE_NAME.into()),
                    database: Some(spec.database.clone()),
                    owner: Some(spec.owner.clone()),
                    recovery_target: Some(cnpg_recovery_target(&spec.target)),
                }),
            }),
            external_clusters: vec![external],
            backup: None,
            plugins: Vec::new(),
        },
        status: None,
    }
}

pub fn build(spec: &DrillSpec) -> Manifests {
    let cluster_name = dns_label_within(
        &format!("drill-{}-{}", spec.lineage, spec.drill_id),
        MAX_CLUSTER_NAME,
    );
    let namespace = match &spec.isolation {
        Isolation::ScratchNamespace => dns_label(&format!("pgdrill-{}", spec.drill_id)),
        Isolation::Fixed(ns) => ns.clone(),
    };
    let mut store = spec.store.clone();
    store.server_name = None;
    // In a scratch namespace the copies keep their names; in a shared one they carry the
    // cluster's name, so drills never collide with each other or with the namespace's own.
    let secret_copies = store.rename_secrets(|name| match &spec.isolation {
        Isolation::ScratchNamespace => name.to_string(),
        Isolation::Fixed(_) => dns_label(&format!("{cluster_name}-{name}")),
    });
    let (external, object_store) = source(spec, store, &namespace, &cluster_name);
    let cluster = cluster(spec, meta(spec, &namespace, &cluster_name), external);
    let namespace = matches!(spec.isolation, Isolation::ScratchNamespace).then(|| Namespace {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        metadata: ObjectMeta {
            namespace: None,
            ..meta(spec, &namespace, &namespace)
        },
    });
    Manifests {
        namespace,
        object_store,
        cluster,
        secret_copies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_63_characters_and_stay_unique() {
        let a = dns_label(&format!("drill-{}-x", "a".repeat(80)));
        let b = dns_label(&format!("drill-{}-y", "a".repeat(80)));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert_eq!(dns_label("App_V1"), "app-v1");
        let c = dns_label_within(&format!("drill-{}-x", "a".repeat(80)), MAX_CLUSTER_NAME);
        assert!(c.len() <= MAX_CLUSTER_NAME, "{c}");
    }

    #[test]
    fn storage_has_headroom() {
        assert_eq!(storage_for(None), "1Gi");
        assert_eq!(storage_for(Some(2 * 1024 * 1024 * 1024)), "3Gi");
    }
}
