//! The resource types the simulator serves, and the discovery documents the real API server
//! derives from them (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`, `/version`).

use serde_json::{Value, json};

use super::SimOptions;

/// One REST resource: what the real API server calls a GroupVersionResource plus its kind and
/// scope. Objects in the [`Store`](super::Store) are keyed by `(group, plural, namespace, name)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    /// `""` for the core (legacy) group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
}

impl ResourceKey {
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceKey {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
        }
    }

    pub fn namespaces() -> Self {
        Self::new("", "v1", "namespaces", "Namespace", false)
    }
    pub fn secrets() -> Self {
        Self::new("", "v1", "secrets", "Secret", true)
    }
    pub fn configmaps() -> Self {
        Self::new("", "v1", "configmaps", "ConfigMap", true)
    }
    pub fn services() -> Self {
        Self::new("", "v1", "services", "Service", true)
    }
    pub fn pods() -> Self {
        Self::new("", "v1", "pods", "Pod", true)
    }
    pub fn pvcs() -> Self {
        Self::new(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
        )
    }
    pub fn events() -> Self {
        Self::new("", "v1", "events", "Event", true)
    }
    pub fn cnpg_clusters() -> Self {
        Self::new(CNPG_GROUP, "v1", "clusters", "Cluster", true)
    }
    pub fn object_stores() -> Self {
        Self::new(BARMAN_GROUP, "v1", "objectstores", "ObjectStore", true)
    }

    /// `v1` or `group/version`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `clusters.postgresql.cnpg.io`: how the API server names the resource in
    /// its error messages.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether writes to the main resource ignore `status` (and `/status` writes touch only
    /// `status`). True for the core types with a status strategy and for both CRDs, which
    /// declare `subresources: status: {}`.
    pub fn has_status_subresource(&self) -> bool {
        table_entry(&self.group, &self.plural).is_some_and(|e| e.status)
    }

    /// Custom resources get `metadata.generation` (bumped on any change outside metadata and
    /// status).
    pub fn tracks_generation(&self) -> bool {
        !self.group.is_empty()
    }
}

pub const CNPG_GROUP: &str = "postgresql.cnpg.io";
pub const BARMAN_GROUP: &str = "barmancloud.cnpg.io";

/// A served resource with what discovery says about it.
struct Entry {
    key: fn() -> ResourceKey,
    singular: &'static str,
    short_names: &'static [&'static str],
    /// Discovery categories (`kubectl get all` expands `all`).
    categories: &'static [&'static str],
    status: bool,
    /// Extra subresources beyond `status`: (name, kind, verbs).
    subresources: &'static [(&'static str, &'static str, &'static [&'static str])],
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const TABLE: &[Entry] = &[
    Entry {
        key: ResourceKey::namespaces,
        singular: "namespace",
        short_names: &["ns"],
        categories: &[],
        status: true,
        subresources: &[("finalize", "Namespace", &["update"])],
    },
    Entry {
        key: ResourceKey::secrets,
        singular: "secret",
        short_names: &[],
        categories: &[],
        status: false,
        subresources: &[],
    },
    Entry {
        key: ResourceKey::configmaps,
        singular: "configmap",
        short_names: &["cm"],
        categories: &[],
        status: false,
        subresources: &[],
    },
    Entry {
        key: ResourceKey::services,
        singular: "service",
        short_names: &["svc"],
        categories: &["all"],
        status: true,
        subresources: &[],
    },
    Entry {
        key: ResourceKey::pods,
        singular: "pod",
        short_names: &["po"],
        categories: &["all"],
        status: true,
        subresources: &[
            ("log", "Pod", &["get"]),
            ("portforward", "PodPortForwardOptions", &["create", "get"]),
        ],
    },
    Entry {
        key: ResourceKey::pvcs,
        singular: "persistentvolumeclaim",
        short_names: &["pvc"],
        categories: &[],
        status: true,
        subresources: &[],
    },
    Entry {
        key: ResourceKey::events,
        singular: "event",
        short_names: &["ev"],
        categories: &[],
        status: false,
        subresources: &[],
    },
    Entry {
        key: ResourceKey::cnpg_clusters,
        singular: "cluster",
        short_names: &[],
        categories: &[],
        status: true,
        subresources: &[],
    },
    Entry {
        key: ResourceKey::object_stores,
        singular: "objectstore",
        short_names: &[],
        categories: &[],
        status: true,
        subresources: &[],
    },
];

fn table_entry(group: &str, plural: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| {
        let k = (e.key)();
        k.group == group && k.plural == plural
    })
}

/// Which API groups exist given the options (the core group always does).
pub fn group_served(group: &str, opts: &SimOptions) -> bool {
    match group {
        "" => true,
        CNPG_GROUP => opts.cnpg_crds_installed,
        BARMAN_GROUP => opts.barman_plugin_crd_installed,
        _ => false,
    }
}

/// The served resource for a URL's group, version and plural, if any.
pub fn lookup(group: &str, version: &str, plural: &str, opts: &SimOptions) -> Option<ResourceKey> {
    if !group_served(group, opts) {
        return None;
    }
    table_entry(group, plural)
        .map(|e| (e.key)())
        .filter(|k| k.version == version)
}

/// Every served resource (used for namespace cleanup and discovery).
pub fn all(opts: &SimOptions) -> Vec<ResourceKey> {
    TABLE
        .iter()
        .map(|e| (e.key)())
        .filter(|k| group_served(&k.group, opts))
        .collect()
}

/// Whether `sub` is a subresource the API server knows for this resource.
pub fn subresource_known(res: &ResourceKey, sub: &str) -> bool {
    table_entry(&res.group, &res.plural)
        .is_some_and(|e| (e.status && sub == "status") || e.subresources.iter().any(|s| s.0 == sub))
}

/// `GET /api`: the legacy group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_version_doc(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`: the named groups that are installed.
pub fn api_group_list(opts: &SimOptions) -> Value {
    let groups: Vec<Value> = [CNPG_GROUP, BARMAN_GROUP]
        .into_iter()
        .filter(|g| group_served(g, opts))
        .map(group_version_doc)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub fn api_group(group: &str, opts: &SimOptions) -> Option<Value> {
    if group.is_empty() || !group_served(group, opts) {
        return None;
    }
    let mut doc = group_version_doc(group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`: an APIResourceList with subresources
/// listed as `plural/sub`, as the real server does.
pub fn api_resource_list(group: &str, version: &str, opts: &SimOptions) -> Option<Value> {
    if !group_served(group, opts) || version != "v1" {
        return None;
    }
    let mut resources = Vec::new();
    for e in TABLE {
        let k = (e.key)();
        if k.group != group {
            continue;
        }
        let mut r = json!({
            "name": k.plural,
            "singularName": e.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
        });
        if !e.short_names.is_empty() {
            r["shortNames"] = json!(e.short_names);
        }
        if !e.categories.is_empty() {
            r["categories"] = json!(e.categories);
        }
        resources.push(r);
        if e.status {
            resources.push(json!({
                "name": format!("{}/status", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for (sub, kind, verbs) in e.subresources {
            resources.push(json!({
                "name": format!("{}/{sub}", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind,
                "verbs": verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// The Accept media type of aggregated discovery v2 (stable since Kubernetes 1.30), which
/// kubectl and kube-rs' `Discovery::run_aggregated` ask `/api` and `/apis` for first.
pub const AGGREGATED_DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery v2 (v2beta1 is not served; clients
/// that offer only it get the legacy documents, as from an older server).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let params: Vec<&str> = t.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// `GET /api` (core: `core == true`) or `GET /apis` with aggregated discovery: every
/// group with its versions and resources (subresources nested) in one document.
pub fn aggregated_discovery(core: bool, opts: &SimOptions) -> Value {
    let groups: Vec<&str> = if core {
        vec![""]
    } else {
        [CNPG_GROUP, BARMAN_GROUP]
            .into_iter()
            .filter(|g| group_served(g, opts))
            .collect()
    };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|group| {
            let resources: Vec<Value> = TABLE
                .iter()
                .map(|e| ((e.key)(), e))
                .filter(|(k, _)| k.group == group)
                .map(|(k, e)| {
                    let mut subs = Vec::new();
                    if e.status {
                        subs.push(json!({
                            "subresource": "status",
                            "responseKind": gvk(group, &k.version, &k.kind),
                            "verbs": ["get", "patch", "update"],
                        }));
                    }
                    for (sub, kind, verbs) in e.subresources {
                        subs.push(json!({
                            "subresource": sub,
                            "responseKind": gvk("", "", kind),
                            "verbs": verbs,
                        }));
                    }
                    let mut r = json!({
                        "resource": k.plural,
                        "responseKind": gvk(group, &k.version, &k.kind),
                        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": e.singular,
                        "verbs": VERBS,
                    });
                    if !e.short_names.is_empty() {
                        r["shortNames"] = json!(e.short_names);
                    }
                    if !e.categories.is_empty() {
                        r["categories"] = json!(e.categories);
                    }
                    if !subs.is_empty() {
                        r["subresources"] = json!(subs);
                    }
                    r
                })
                .collect();
            json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `GET /version`: claims to be Kubernetes 1.33 (the k8s-openapi feature the crate uses).
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
