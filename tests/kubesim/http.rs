//! The HTTP/1.1 front end: accept loop, bearer-token authentication, discovery documents and
//! the routing of REST paths to verbs, the way the real API server's handler chain does.
//!
//! Resource paths:
//! `/api/v1/{plural}[/{name}[/{sub}]]` (cluster-scoped, or all namespaces for list/watch),
//! `/api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]`, and the same under
//! `/apis/{group}/{version}`. A path under a group that is not installed, or naming an unknown
//! resource or subresource, gets the apiserver's generic 404 Status.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::SimOptions;
use super::faults::{self, Fault, Faults};
use super::resources::{self, ResourceKey};
use super::status::ApiError;
use super::store::{RequestRecord, Store};
use super::{handlers, logs, portforward};

/// The response body type: either a complete buffer or a stream (watch, log follow).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler can reach.
pub struct ServerState {
    pub store: Store,
    pub opts: SimOptions,
    pub token: String,
    /// `127.0.0.1:PORT`, for `/api`'s serverAddressByClientCIDRs.
    pub addr: String,
    /// Becomes true when the simulator shuts down; streams end then.
    pub shutdown: watch::Receiver<bool>,
    /// Whether requests without credentials are refused (see [`authenticate`]).
    pub require_token: Arc<AtomicBool>,
    /// Injected faults (see [`faults`]).
    pub faults: Faults,
}

/// The user the kubeconfig's bearer token authenticates as.
pub const TOKEN_USER: &str = "kubesim-admin";
/// The user of a request without credentials.
pub const ANONYMOUS_USER: &str = "system:anonymous";

/// Resolves once shutdown has been requested.
pub async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Serves connections until shutdown, then lets each connection finish gracefully (for at
/// most a second).
pub async fn serve(listener: std::net::TcpListener, state: Arc<ServerState>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let shutdown = state.shutdown.clone();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown_signal(shutdown.clone()) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tasks.spawn(async move {
            let shutdown = state.shutdown.clone();
            // Notified to close this connection at once (a watch cut mid-stream).
            let cut = Arc::new(tokio::sync::Notify::new());
            let cut_conn = cut.clone();
            let svc = hyper::service::service_fn(move |req| {
                let (state, cut) = (state.clone(), cut.clone());
                async move { Ok::<_, Infallible>(handle(req, state, cut).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Dropping the connection closes the socket without ending the response.
                _ = cut_conn.notified() => {}
                _ = shutdown_signal(shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A body fed by a channel: ends when every sender is gone.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed_unsync()
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).expect("json")));
    *r.status_mut() = StatusCode::from_u16(code).expect("status code");
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// The parsed query string.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
    pub fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }
}

/// A REST path resolved to a resource (not yet checked against what is served).
#[derive(Debug, Clone)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{g}/{v}/...` resource paths; None for anything else.
pub fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return None,
    };
    let own = |s: &&str| s.to_string();
    let (ns, plural, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), *plural, tail)
        }
        [plural, tail @ ..] => (None, *plural, tail),
        [] => return None,
    };
    if tail.len() > 2 || rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(Target {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        ns,
        name: tail.first().map(own),
        sub: tail.get(1).map(own),
    })
}

/// Whether the request asks for a WebSocket (or SPDY) connection upgrade.
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(header::UPGRADE)
}

/// The RBAC verb the API server authorizes a request as.
///
/// Port-forward (and any other upgrade) is recorded as `create`: since Kubernetes 1.31 the
/// API server authorizes WebSocket upgrades of `pods/portforward`, `pods/exec` and
/// `pods/attach` with the `create` verb, like the SPDY POSTs always were.
pub fn rbac_verb(method: &Method, t: &Target, q: &Query, upgrade: bool) -> &'static str {
    match *method {
        Method::GET if upgrade => "create",
        Method::GET if q.flag("watch") => "watch",
        Method::GET if t.name.is_none() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if t.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// Authentication: the kubeconfig's bearer token is the only credential accepted; any other
/// `Authorization` header is 401 Unauthorized, as the real server answers an invalid token.
///
/// A request without any credentials is served as `system:anonymous` with full access
/// unless `require_token` is set (then 401). This is what makes real kubectl usable: over
/// plain `http://`, client-go never sends a kubeconfig's credentials ("only try to read the
/// auth information if we are secure", `clientcmd/client_config.go`). Tests that must prove a
/// client sent the token check [`RequestRecord::user`] or turn `require_token` on.
fn authenticate(req: &Request<Incoming>, state: &ServerState) -> Option<&'static str> {
    match req.headers().get(header::AUTHORIZATION) {
        None if state.require_token.load(Ordering::Relaxed) => None,
        None => Some(ANONYMOUS_USER),
        Some(h) => h
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .filter(|t| t.trim() == state.token)
            .map(|_| TOKEN_USER),
    }
}

/// Discovery and other non-resource endpoints; None when the path is a resource path.
fn non_resource(req: &Request<Incoming>, state: &ServerState) -> Option<Response<Body>> {
    let segs: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let opts = &state.opts;
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if matches!(segs.as_slice(), ["api"] | ["apis"]) && resources::wants_aggregated(accept) {
        let doc = resources::aggregated_discovery(segs == ["api"], opts);
        let mut r = json_response(200, &doc);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(resources::AGGREGATED_DISCOVERY_V2),
        );
        return Some(r);
    }
    let not_found = || error_response(&ApiError::path_not_found());
    let doc = |v: Option<Value>| v.map_or_else(not_found, |v| json_response(200, &v));
    Some(match segs.as_slice() {
        ["version"] => json_response(200, &resources::version_info()),
        ["healthz" | "livez" | "readyz"] => {
            let mut r = Response::new(full("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        ["api"] => json_response(200, &resources::api_versions(&state.addr)),
        ["api", v] => doc(resources::api_resource_list("", v, opts)),
        ["apis"] => json_response(200, &resources::api_group_list(opts)),
        ["apis", g] => doc(resources::api_group(g, opts)),
        ["apis", g, v] => doc(resources::api_resource_list(g, v, opts)),
        // No OpenAPI documents: kubectl then skips client-side validation schemas (it needs
        // `--validate=false` for apply/create) and falls back on discovery.
        ["openapi", ..] => not_found(),
        _ => return None,
    })
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<ServerState>,
    cut: Arc<tokio::sync::Notify>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let public = matches!(
        path.as_str(),
        "/version" | "/healthz" | "/livez" | "/readyz"
    );
    let user = authenticate(&req, &state);
    if !public && user.is_none() {
        return error_response(&ApiError::unauthorized());
    }
    if let Some(r) = non_resource(&req, &state) {
        return r;
    }
    let query = Query::parse(req.uri().query());
    let Some(target) = parse_target(&path) else {
        return error_response(&ApiError::path_not_found());
    };
    let verb = rbac_verb(req.method(), &target, &query, is_upgrade(&req));
    let record = RequestRecord {
        verb: verb.to_string(),
        api_group: target.group.clone(),
        resource: target.plural.clone(),
        subresource: target.sub.clone(),
        namespace: target.ns.clone(),
        name: target.name.clone(),
        query: req.uri().query().unwrap_or("").to_string(),
        user: user.unwrap_or_default().to_string(),
        code: 0,
    };
    let fault = state.faults.take(verb, &target.plural);
    let response = match fault.and_then(|f| faults::response(f, &target.plural)) {
        Some(r) => r,
        None => {
            if fault == Some(Fault::CutWatch) && verb == "watch" {
                // After the initial events have gone out.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    cut.notify_one();
                });
            }
            route(req, &state, &target, &query).await
        }
    };
    state.store.record(RequestRecord {
        code: response.status().as_u16(),
        ..record
    });
    response
}

/// Resolves the served resource and dispatches on method and subresource.
async fn route(
    req: Request<Incoming>,
    state: &Arc<ServerState>,
    t: &Target,
    q: &Query,
) -> Response<Body> {
    let Some(res) = resources::lookup(&t.group, &t.version, &t.plural, &state.opts) else {
        return error_response(&ApiError::path_not_found());
    };
    // A namespaced path for a cluster-scoped resource does not exist.
    if t.ns.is_some() && !res.namespaced {
        return error_response(&ApiError::path_not_found());
    }
    if let Some(sub) = &t.sub
        && !resources::subresource_known(&res, sub)
    {
        return error_response(&ApiError::path_not_found());
    }
    let ns = t.ns.as_deref();
    let name = t.name.as_deref();
    let method = req.method().clone();
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let result = match (&method, name, t.sub.as_deref()) {
        (_, Some(name), Some("portforward")) if is_pod(&res) => {
            let ns = ns.unwrap_or_default().to_string();
            return portforward::handle(req, state, &ns, name).await;
        }
        (&Method::GET, Some(name), Some("log")) if is_pod(&res) => {
            return logs::handle(state, ns.unwrap_or_default(), name, q);
        }
        (&Method::GET, _, None) if q.flag("watch") => {
            let table = super::table::wanted(&accept(&req));
            return super::watch::handle(state, &res, ns, name, q, table);
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            handlers::get(&state.store, &res, ns, name)
                .map(|o| handlers::maybe_table(&req, &res, vec![o], None, q))
        }
        (&Method::GET, None, None) => handlers::list(&state.store, &res, ns, q)
            .map(|page| handlers::maybe_table(&req, &res, page.items, Some(page.meta), q)),
        (&Method::POST, None, None) => {
            let body = read_body(req).await;
            handlers::create(&state.store, &res, ns, &ct, body, q)
        }
        (&Method::PUT, Some(name), sub @ (None | Some("status" | "finalize"))) => {
            let body = read_body(req).await;
            handlers::update(&state.store, &res, ns, name, sub, &ct, body, q)
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            let body = read_body(req).await;
            handlers::patch(&state.store, &res, ns, name, sub, &ct, body, q)
        }
        (&Method::DELETE, Some(name), None) => {
            let body = read_body(req).await;
            handlers::delete(state, &res, ns, name, body, q)
        }
        (&Method::DELETE, None, None) => {
            let body = read_body(req).await;
            handlers::delete_collection(state, &res, ns, body, q)
        }
        _ => Err(ApiError::method_not_allowed()),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

pub fn accept(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn is_pod(res: &ResourceKey) -> bool {
    res.group.is_empty() && res.plural == "pods"
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    req.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_target("/api/v1/namespaces/x/pods/p/log").unwrap();
        assert_eq!(
            (
                t.ns.as_deref(),
                t.plural.as_str(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            (Some("x"), "pods", Some("p"), Some("log"))
        );
        let t = parse_target("/api/v1/namespaces/x").unwrap();
        assert_eq!(
            (t.ns, t.plural.as_str(), t.name.as_deref()),
            (None, "namespaces", Some("x"))
        );
        let t = parse_target("/api/v1/namespaces/x/status").unwrap();
        assert_eq!(
            (t.plural.as_str(), t.sub.as_deref()),
            ("namespaces", Some("status"))
        );
        let t = parse_target("/apis/postgresql.cnpg.io/v1/clusters").unwrap();
        assert_eq!(
            (t.group.as_str(), t.ns, t.name),
            ("postgresql.cnpg.io", None, None)
        );
        assert!(parse_target("/apis/postgresql.cnpg.io/v1").is_none());
        assert!(parse_target("/api/v1/namespaces/x/pods/p/log/extra").is_none());
    }
}
