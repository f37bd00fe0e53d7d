//! Watches: `GET ...?watch=true` answered with a chunked stream of JSON lines
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":{...}}`.
//!
//! Like the real server: `resourceVersion` unset or `"0"` starts with synthetic ADDED events
//! for the current state, any other value replays the recorded changes after it (the history
//! is never compacted, so there is no 410 Gone); `sendInitialEvents=true` ends the initial
//! state with a BOOKMARK annotated `k8s.io/initial-events-end: "true"`; `allowWatchBookmarks`
//! adds a BOOKMARK at the latest resourceVersion before the stream closes;
//! `timeoutSeconds` (default 1800) closes the stream; selectors filter events. A watch on a
//! named object (`.../{name}?watch=true`) is a watch with `fieldSelector=metadata.name=...`.
//! Streams end promptly when the simulator shuts down or the client goes away.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::http::{Body, Query, ServerState, channel_body, error_response, shutdown_signal};
use super::resources::ResourceKey;
use super::selectors::Selectors;
use super::store::{EventKind, Store};

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = serde_json::to_string(&json!({"type": kind, "object": object})).expect("json");
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(res: &ResourceKey, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
    )
}

pub fn handle(
    state: &Arc<ServerState>,
    res: &ResourceKey,
    ns: Option<&str>,
    name: Option<&str>,
    q: &Query,
    table: bool,
) -> Response<Body> {
    let mut fields = q.get("fieldSelector").unwrap_or("").to_string();
    if let Some(name) = name {
        if !fields.is_empty() {
            fields.push(',');
        }
        fields.push_str(&format!("metadata.name={name}"));
    }
    let sel = match Selectors::parse(q.get("labelSelector"), Some(&fields)) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let since = match q.get("resourceVersion") {
        None | Some("" | "0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return error_response(&super::status::ApiError::bad_request(format!(
                    "invalid resource version: {rv}"
                )));
            }
        },
    };
    let send_initial = q.flag("sendInitialEvents");
    let since = if send_initial { None } else { since };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let task = WatchTask {
        store: state.store.clone(),
        res: res.clone(),
        ns: ns.map(String::from),
        sel,
        since,
        send_initial,
        bookmarks: q.flag("allowWatchBookmarks"),
        table: table.then(|| q.get("includeObject").map(String::from)),
        timeout: Duration::from_secs(timeout),
    };
    tokio::spawn(task.run(tx, state.shutdown.clone()));
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

struct WatchTask {
    store: Store,
    res: ResourceKey,
    ns: Option<String>,
    sel: Selectors,
    since: Option<u64>,
    send_initial: bool,
    bookmarks: bool,
    /// `Some(includeObject)` when events carry one-row Tables (`kubectl get -w`).
    table: Option<Option<String>>,
    timeout: Duration,
}

impl WatchTask {
    async fn send_events(&self, tx: &mpsc::Sender<Bytes>, events: Vec<(EventKind, Value)>) -> bool {
        for (kind, obj) in events {
            let obj = match &self.table {
                Some(include) => {
                    let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                    super::table::build(&self.res, &[obj], meta, include.as_deref())
                }
                None => obj,
            };
            if tx.send(line(kind.as_str(), &obj)).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn run(self, tx: mpsc::Sender<Bytes>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let ns = self.ns.as_deref();
        let (initial, mut last_rv, mut changed) =
            self.store.watch_start(&self.res, ns, &self.sel, self.since);
        if !self.send_events(&tx, initial).await {
            return;
        }
        if self.send_initial && tx.send(bookmark(&self.res, last_rv, true)).await.is_err() {
            return;
        }
        let stop = shutdown_signal(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut stop => return,
                _ = tx.closed() => return,
                r = changed.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let (events, rv) = self.store.watch_next(&self.res, ns, &self.sel, last_rv);
                    last_rv = rv;
                    if !self.send_events(&tx, events).await {
                        return;
                    }
                }
            }
        }
        if self.bookmarks {
            let _ = tx.send(bookmark(&self.res, last_rv, false)).await;
        }
    }
}
