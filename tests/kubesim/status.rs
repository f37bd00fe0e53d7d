//! `metav1.Status` failure bodies, worded like the real API server's (`k8s.io/apimachinery/
//! pkg/api/errors`), so clients that parse them (kube-rs `Error::Api`, kubectl) behave as
//! against a real cluster.

use serde_json::{Value, json};

use super::resources::ResourceKey;

/// An API failure: HTTP code, machine-readable reason, message and optional details.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

fn details(res: &ResourceKey, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": res.plural});
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Self {
        ApiError {
            code,
            reason,
            message,
            details,
        }
    }

    /// The `metav1.Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }

    /// `secrets "x" not found`.
    pub fn not_found(res: &ResourceKey, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.qualified_name()),
            Some(details(res, name)),
        )
    }

    /// The apiserver's catch-all for a path nobody serves (unknown group, version or plural).
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }

    pub fn already_exists(res: &ResourceKey, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.qualified_name()),
            Some(details(res, name)),
        )
    }

    /// Optimistic-concurrency failure on a stale `metadata.resourceVersion`.
    pub fn conflict(res: &ResourceKey, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                res.qualified_name()
            ),
            Some(details(res, name)),
        )
    }

    /// Server-side apply field ownership conflict (without `force=true`).
    pub fn apply_conflict(res: &ResourceKey, name: &str, conflicts: &[(String, String)]) -> Self {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f})
            })
            .collect();
        let mut d = details(res, name);
        d["causes"] = json!(causes);
        let noun = if conflicts.len() == 1 {
            "conflict"
        } else {
            "conflicts"
        };
        Self::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} {noun}: {}",
                conflicts.len(),
                listed.join("\n")
            ),
            Some(d),
        )
    }

    /// A validation failure (`422 Invalid`) on one field.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        field: &str,
        cause: &str,
        detail: &str,
    ) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut d = json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": cause, "message": detail, "field": field}],
        });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {field}: {detail}"),
            Some(d),
        )
    }

    /// `namespaces "x" not found` when creating into a missing namespace.
    pub fn namespace_not_found(ns: &str) -> Self {
        Self::not_found(&ResourceKey::namespaces(), ns)
    }

    /// Creating content in a namespace that is being deleted.
    pub fn namespace_terminating(res: &ResourceKey, name: &str, ns: &str) -> Self {
        let mut d = details(res, name);
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }]);
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} \
                 because it is being terminated",
                res.qualified_name()
            ),
            Some(d),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), None)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(json!({})),
        )
    }

    /// A PATCH whose Content-Type is not a patch type the server knows.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml"
                .into(),
            None,
        )
    }

    /// A create or update body in a serialization the simulator cannot decode.
    pub fn unsupported_body_media_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml (kubesim decodes neither protobuf nor CBOR)"
                .into(),
            None,
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message.into(), None)
    }
}
