//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: the text given to
//! [`Store::append_log`](super::Store::append_log), as `text/plain`.
//!
//! Mimics the kubelet's checks (404 for a missing pod; 400 when a multi-container pod is asked
//! without `container`, or for a container the pod does not have), honours `tailLines` and
//! `limitBytes`, ignores `timestamps`, `sinceSeconds`, `previous`. With `follow=true` the
//! response streams what is appended until the pod is deleted or reaches phase
//! Succeeded/Failed (or the client or the simulator goes away).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;

use super::http::{Body, Query, ServerState, channel_body, error_response, full, shutdown_signal};
use super::resources::ResourceKey;
use super::status::ApiError;
use super::store::Store;

fn check_container(pod: &Value, name: &str, container: Option<&str>) -> Result<(), ApiError> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match container {
        Some(c) if !names.is_empty() && !names.contains(&c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() > 1 => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
        _ => Ok(()),
    }
}

fn tail(text: &str, lines: Option<usize>) -> String {
    let Some(n) = lines else {
        return text.to_string();
    };
    let all: Vec<&str> = text.split_inclusive('\n').collect();
    all[all.len().saturating_sub(n)..].concat()
}

fn pod_finished(store: &Store, ns: &str, name: &str) -> bool {
    match store.get(&ResourceKey::pods(), Some(ns), name) {
        None => true,
        Some(p) => matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")),
    }
}

pub fn handle(state: &Arc<ServerState>, ns: &str, name: &str, q: &Query) -> Response<Body> {
    let Some(pod) = state.store.get(&ResourceKey::pods(), Some(ns), name) else {
        return error_response(&ApiError::not_found(&ResourceKey::pods(), name));
    };
    if let Err(e) = check_container(&pod, name, q.get("container")) {
        return error_response(&e);
    }
    let text = state.store.log_text(ns, name);
    let mut first = tail(&text, q.get("tailLines").and_then(|n| n.parse().ok()));
    if let Some(limit) = q.get("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
        let mut cut = limit.min(first.len());
        while !first.is_char_boundary(cut) {
            cut -= 1;
        }
        first.truncate(cut);
    }
    let body = if q.flag("follow") {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let store = state.store.clone();
        let shutdown = state.shutdown.clone();
        let (ns, name) = (ns.to_string(), name.to_string());
        let mut sent = text.len();
        tokio::spawn(async move {
            if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
                return;
            }
            let stop = shutdown_signal(shutdown);
            tokio::pin!(stop);
            loop {
                let finished = pod_finished(&store, &ns, &name);
                let now = store.log_text(&ns, &name);
                if now.len() > sent {
                    if tx.send(Bytes::from(now[sent..].to_string())).await.is_err() {
                        return;
                    }
                    sent = now.len();
                }
                if finished {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = &mut stop => return,
                    _ = tx.closed() => return,
                }
            }
        });
        channel_body(rx)
    } else {
        full(first)
    };
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}
