//! Every manifest the cnpg backend can generate (both recovery paths × every target kind ×
//! both isolation modes) validates against the vendored CRD schemas (tests/crds, with
//! provenance) and passes the safety check; snapshots pin the YAML.

#[path = "common/crd.rs"]
mod crd;

use pgdrill::cnpg::manifest::{DrillSpec, Isolation, Manifests, RecoveryPath, build};
use pgdrill::cnpg::safety;
use pgdrill::cnpg::types::PluginConfiguration;
use pgdrill::preflight::Target;
use pgdrill::store::config::{BarmanObjectStore, S3Credentials, SecretKeySelector};
use serde_json::Value;

fn store() -> BarmanObjectStore {
    let sel = |key: &str| {
        Some(SecretKeySelector {
            name: "minio-creds".into(),
            key: key.into(),
        })
    };
    BarmanObjectStore {
        destination_path: "s3://backups/pg".into(),
        endpoint_url: Some("https://minio.example:9000".into()),
        s3_credentials: Some(S3Credentials {
            access_key_id: sel("ACCESS_KEY_ID"),
            secret_access_key: sel("ACCESS_SECRET_KEY"),
            ..Default::default()
        }),
        wal: Some(serde_json::json!({"compression": "gzip", "maxParallel": 4})),
        ..Default::default()
    }
}

fn spec(path: RecoveryPath, isolation: Isolation, target: &str) -> DrillSpec {
    DrillSpec {
        drill_id: "20261122T010000-ab12-1".into(),
        lineage: "app-database-v2".into(),
        target: target.parse::<Target>().unwrap().pin("20261121T230000"),
        store: store(),
        path,
        isolation,
        image_name: None,
        server_major: Some(16),
        storage_size: None,
        backup_size: Some(5 * 1024 * 1024 * 1024),
        database: "app".into(),
        owner: "app".into(),
        superuser: false,
        expires_at: "2026-11-23T01:00:00Z".parse().unwrap(),
    }
}

const TARGETS: [&str; 6] = [
    "latest",
    "time:2026-11-21 23:30:00+00",
    "lsn:0/7000028",
    "xid:1234",
    "name:before-migration",
    "immediate",
];

/// The documents of the YAML stream, parsed back.
fn documents(m: &Manifests) -> Vec<Value> {
    m.to_yaml()
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect()
}

#[test]
fn every_manifest_shape_validates_against_the_crds_and_is_safe() {
    let cluster_schema = crd::load_schema("postgresql.cnpg.io_clusters.yaml");
    let store_schema = crd::load_schema("barmancloud.cnpg.io_objectstores.yaml");
    let mut checked = 0;
    for path in [RecoveryPath::Plugin, RecoveryPath::InTree] {
        for isolation in [
            Isolation::ScratchNamespace,
            Isolation::Fixed("pgdrill-drills".into()),
        ] {
            for target in TARGETS {
                let m = build(&spec(path, isolation.clone(), target));
                safety::check(&m).unwrap_or_else(|p| panic!("{path:?} {target}: {p:?}"));
                for doc in documents(&m) {
                    let schema = match doc["kind"].as_str().unwrap() {
                        "Cluster" => &cluster_schema,
                        "ObjectStore" => &store_schema,
                        "Namespace" => continue,
                        other => panic!("unexpected {other}"),
                    };
                    let errors = crd::validate(&doc, schema);
                    assert!(
                        errors.is_empty(),
                        "{path:?} {isolation:?} {target}: {errors:?}\n{}",
                        m.to_yaml()
                    );
                    checked += 1;
                }
                assert_eq!(m.object_store.is_some(), path == RecoveryPath::Plugin);
                assert_eq!(
                    m.namespace.is_some(),
                    isolation == Isolation::ScratchNamespace
                );
            }
        }
    }
    assert_eq!(
        checked,
        2 * 6 * 2 + 6 * 2,
        "clusters plus plugin ObjectStores"
    );
}

#[test]
fn the_plugin_gets_an_explicit_server_name_and_the_object_store_none() {
    let m = build(&spec(
        RecoveryPath::Plugin,
        Isolation::ScratchNamespace,
        "latest",
    ));
    let plugin = m.cluster.spec.external_clusters[0].plugin.as_ref().unwrap();
    assert_eq!(plugin.parameters["serverName"], "app-database-v2");
    assert_eq!(
        plugin.parameters["barmanObjectName"],
        m.object_store
            .as_ref()
            .unwrap()
            .metadata
            .name
            .clone()
            .unwrap()
    );
    assert_eq!(
        m.object_store
            .as_ref()
            .unwrap()
            .spec
            .configuration
            .server_name,
        None
    );
    let intree = build(&spec(
        RecoveryPath::InTree,
        Isolation::ScratchNamespace,
        "latest",
    ));
    let bos = intree.cluster.spec.external_clusters[0]
        .barman_object_store
        .as_ref()
        .unwrap();
    assert_eq!(bos.server_name.as_deref(), Some("app-database-v2"));
    assert_eq!(
        intree.cluster.spec.image_name.as_deref(),
        Some("ghcr.io/cloudnative-pg/postgresql:16")
    );
    assert_eq!(
        intree
            .cluster
            .spec
            .storage
            .as_ref()
            .unwrap()
            .size
            .as_deref(),
        Some("8Gi")
    );
}

#[test]
fn the_checks_catch_what_they_must() {
    let schema = crd::load_schema("postgresql.cnpg.io_clusters.yaml");
    let m = build(&spec(
        RecoveryPath::InTree,
        Isolation::ScratchNamespace,
        "latest",
    ));
    // The validator is not vacuous: a bad instance count and an unknown field are caught.
    let mut doc = serde_json::to_value(&m.cluster).unwrap();
    doc["spec"]["instances"] = serde_json::json!(0);
    doc["spec"]["bootstrap"]["recovery"]["recoveryTarget"]["targetTimestamp"] =
        serde_json::json!("x");
    let errors = crd::validate(&doc, &schema);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("instances: below minimum")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("targetTimestamp: unknown field")),
        "{errors:?}"
    );
    // The safety check refuses archiving, backups and unlabelled objects.
    let mut bad = m.clone();
    bad.cluster.spec.backup =
        Some(serde_json::json!({"barmanObjectStore": {"destinationPath": "s3://x"}}));
    bad.cluster.spec.plugins.push(PluginConfiguration {
        name: "barman-cloud.cloudnative-pg.io".into(),
        is_wal_archiver: Some(true),
        ..Default::default()
    });
    bad.cluster.metadata.labels.clear();
    let problems = safety::check(&bad).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("spec.backup")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("archive WAL")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("managed-by")),
        "{problems:?}"
    );
}

#[test]
fn yaml_snapshots() {
    for (name, path, isolation, target) in [
        (
            "plugin-scratch-time",
            RecoveryPath::Plugin,
            Isolation::ScratchNamespace,
            TARGETS[1],
        ),
        (
            "intree-fixed-latest",
            RecoveryPath::InTree,
            Isolation::Fixed("pgdrill-drills".into()),
            TARGETS[0],
        ),
    ] {
        let yaml = build(&spec(path, isolation, target)).to_yaml();
        let file = format!(
            "{}/tests/snapshots/cnpg-{name}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&file, &yaml).unwrap();
        }
        let expected = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            yaml == expected,
            "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept):\n{yaml}"
        );
    }
}
