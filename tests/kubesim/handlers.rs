//! The CRUD verbs: get, list, create, update (PUT), patch (merge, strategic, JSON patch,
//! server-side apply), delete and deletecollection, with the real API server's status codes
//! and checks (namespace in body vs URL, `fieldManager` required for apply, `dryRun=All`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::apply;
use super::http::{Body, Query, ServerState, json_response};
use super::resources::ResourceKey;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{Store, WriteMode, now_rfc3339};
use super::table;

/// How long a deleted namespace stays `Terminating` before its content and itself go.
pub const NAMESPACE_TERMINATION_DELAY: Duration = Duration::from_millis(300);

type Result<T> = std::result::Result<T, ApiError>;

/// Parses a request body as JSON, or failing that as YAML (what `apply-patch+yaml` allows).
/// Protobuf and CBOR bodies get 415: kubectl's typed clients (`kubectl create namespace`,
/// `create secret`, ...) send `application/vnd.kubernetes.protobuf`, which the real server
/// accepts but this one cannot decode (client-go falls back to JSON only after a 415 for
/// CBOR). `kubectl apply`, `get`, `delete` and `patch` send JSON and work.
pub fn parse_body(content_type: &str, body: Result<Bytes>) -> Result<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if matches!(
        media,
        "application/vnd.kubernetes.protobuf" | "application/cbor"
    ) {
        return Err(ApiError::unsupported_body_media_type());
    }
    let body = body?;
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding the request body: {e}")))
}

pub fn get(store: &Store, res: &ResourceKey, ns: Option<&str>, name: &str) -> Result<Value> {
    store
        .get(res, ns, name)
        .ok_or_else(|| ApiError::not_found(res, name))
}

/// One page of a list: the items and the list's `metadata`.
pub struct Page {
    pub items: Vec<Value>,
    pub meta: Value,
}

/// A list with selectors and `limit`/`continue` paging. The continue token is the offset of
/// the next item (the real one also pins the snapshot; here later pages see later writes).
pub fn list(store: &Store, res: &ResourceKey, ns: Option<&str>, q: &Query) -> Result<Page> {
    let sel = Selectors::parse(q.get("labelSelector"), q.get("fieldSelector"))?;
    let (mut items, rv) = store.api_list(res, ns, &sel);
    let offset = match q.get("continue").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .strip_prefix("kubesim:")
            .and_then(|o| o.parse::<usize>().ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?,
    };
    items.drain(..offset.min(items.len()));
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        meta["continue"] = json!(format!("kubesim:{}", offset + limit));
        meta["remainingItemCount"] = json!(remaining);
    }
    Ok(Page { items, meta })
}

/// `{"kind": "SecretList", ...}` as the API returns it.
pub fn list_doc(res: &ResourceKey, items: Vec<Value>, meta: Value) -> Value {
    json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": meta,
        "items": items,
    })
}

/// Answers a get or list as a `meta.k8s.io/v1` Table when the client asked for one
/// (kubectl's human-readable output does), else as the object or list.
pub fn maybe_table(
    req: &Request<Incoming>,
    res: &ResourceKey,
    items: Vec<Value>,
    list_meta: Option<Value>,
    q: &Query,
) -> Response<Body> {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if table::wanted(accept) {
        let meta = list_meta.unwrap_or_else(|| json!({}));
        return json_response(
            200,
            &table::build(res, &items, meta, q.get("includeObject")),
        );
    }
    match list_meta {
        Some(meta) => json_response(200, &list_doc(res, items, meta)),
        None => json_response(200, &items.into_iter().next().unwrap_or(Value::Null)),
    }
}

/// The namespace from the URL must agree with the body's, which defaults to it.
fn set_namespace(res: &ResourceKey, ns: Option<&str>, obj: &mut Value) -> Result<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if !res.namespaced {
        return Ok(());
    }
    let Some(ns) = ns else {
        return Err(ApiError::method_not_allowed());
    };
    match obj["metadata"]["namespace"].as_str() {
        Some(body_ns) if !body_ns.is_empty() && body_ns != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            obj["metadata"]["namespace"] = json!(ns);
            Ok(())
        }
    }
}

pub fn create(
    store: &Store,
    res: &ResourceKey,
    ns: Option<&str>,
    content_type: &str,
    body: Result<Bytes>,
    q: &Query,
) -> Result<Response<Body>> {
    let mut obj = parse_body(content_type, body)?;
    set_namespace(res, ns, &mut obj)?;
    let created = store.api_create(res, obj, q.dry_run())?;
    Ok(json_response(201, &created))
}

fn mode_for(sub: Option<&str>) -> WriteMode {
    match sub {
        Some("status") => WriteMode::Status,
        _ => WriteMode::Main,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn update(
    store: &Store,
    res: &ResourceKey,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    content_type: &str,
    body: Result<Bytes>,
    q: &Query,
) -> Result<Response<Body>> {
    let mut obj = parse_body(content_type, body)?;
    set_namespace(res, ns, &mut obj)?;
    let updated = store.api_update(res, ns, name, obj, mode_for(sub), q.dry_run())?;
    Ok(json_response(200, &updated))
}

#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &Store,
    res: &ResourceKey,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    content_type: &str,
    body: Result<Bytes>,
    q: &Query,
) -> Result<Response<Body>> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let mode = mode_for(sub);
    let dry_run = q.dry_run();
    let (obj, created) = match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let p = parse_body("", body)?;
            store.api_modify(res, ns, name, mode, dry_run, |cur| {
                let mut obj = cur.cloned().ok_or_else(|| ApiError::not_found(res, name))?;
                apply::merge_patch(&mut obj, &p);
                Ok(obj)
            })?
        }
        "application/json-patch+json" => {
            let p = parse_body("", body)?;
            store.api_modify(res, ns, name, mode, dry_run, |cur| {
                let cur = cur.ok_or_else(|| ApiError::not_found(res, name))?;
                apply::json_patch(cur, &p).map_err(|e| {
                    ApiError::invalid(&res.kind, &res.group, name, "", "FieldValueInvalid", &e)
                })
            })?
        }
        "application/apply-patch+yaml" => {
            let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    "fieldManager",
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                ));
            };
            let applied = parse_body("", body)?;
            check_applied(res, ns, name, &applied)?;
            let force = q.flag("force");
            store.api_modify(res, ns, name, mode, dry_run, |cur| {
                let mut applied = applied.clone();
                if mode == WriteMode::Main
                    && res.has_status_subresource()
                    && let Some(m) = applied.as_object_mut()
                {
                    m.remove("status");
                }
                let mut obj =
                    apply::server_side_apply(cur, &applied, manager, force, sub, &now_rfc3339())
                        .map_err(|c| ApiError::apply_conflict(res, name, &c))?;
                obj["metadata"]["name"] = json!(name);
                if cur.is_none() && mode == WriteMode::Status {
                    return Err(ApiError::not_found(res, name));
                }
                Ok(obj)
            })?
        }
        _ => return Err(ApiError::unsupported_media_type()),
    };
    Ok(json_response(if created { 201 } else { 200 }, &obj))
}

/// An applied configuration must name its type and (if it names one) the URL's object.
fn check_applied(res: &ResourceKey, ns: Option<&str>, name: &str, applied: &Value) -> Result<()> {
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    if applied["apiVersion"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "invalid object type: /, Kind=: apiVersion must be set",
        ));
    }
    if applied["kind"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "invalid object type: kind must be set",
        ));
    }
    if applied["kind"] != json!(res.kind) || applied["apiVersion"] != json!(res.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the apiVersion/kind of the applied object ({}/{}) does not match the URL ({}/{})",
            applied["apiVersion"].as_str().unwrap_or(""),
            applied["kind"].as_str().unwrap_or(""),
            res.api_version(),
            res.kind
        )));
    }
    if let Some(n) = applied["metadata"]["name"].as_str().filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(body_ns), Some(ns)) = (applied["metadata"]["namespace"].as_str(), ns)
        && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// `dryRun` may come in the query or in the DeleteOptions body (kube-rs puts it there).
fn delete_dry_run(body: &Result<Bytes>, q: &Query) -> bool {
    let in_body = body
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|v| v["dryRun"].as_array().cloned())
        .is_some_and(|a| a.iter().any(|x| x == "All"));
    q.dry_run() || in_body
}

/// Schedules the namespace controller's cleanup of a namespace marked Terminating.
fn schedule_namespace_cleanup(state: &Arc<ServerState>, ns: String) {
    let store = state.store.clone();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(NAMESPACE_TERMINATION_DELAY) => store.finish_namespace(&ns),
            _ = super::http::shutdown_signal(shutdown) => {}
        }
    });
}

pub fn delete(
    state: &Arc<ServerState>,
    res: &ResourceKey,
    ns: Option<&str>,
    name: &str,
    body: Result<Bytes>,
    q: &Query,
) -> Result<Response<Body>> {
    let dry_run = delete_dry_run(&body, q);
    let obj = state.store.api_delete(res, ns, name, dry_run)?;
    if !dry_run && res.group.is_empty() && res.plural == "namespaces" {
        schedule_namespace_cleanup(state, name.to_string());
    }
    Ok(json_response(200, &obj))
}

pub fn delete_collection(
    state: &Arc<ServerState>,
    res: &ResourceKey,
    ns: Option<&str>,
    body: Result<Bytes>,
    q: &Query,
) -> Result<Response<Body>> {
    let dry_run = delete_dry_run(&body, q);
    let mut all = Query(q.0.clone());
    all.0.retain(|(k, _)| k != "limit" && k != "continue");
    let mut deleted = Vec::new();
    for item in list(&state.store, res, ns, &all)?.items {
        let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
        let item_ns = item["metadata"]["namespace"].as_str().map(String::from);
        if let Ok(obj) = state
            .store
            .api_delete(res, item_ns.as_deref(), &name, dry_run)
        {
            if !dry_run && res.group.is_empty() && res.plural == "namespaces" {
                schedule_namespace_cleanup(state, name);
            }
            deleted.push(obj);
        }
    }
    let meta = json!({"resourceVersion": state.store.resource_version().to_string()});
    Ok(json_response(200, &list_doc(res, deleted, meta)))
}
