//! The object store behind the simulated API server: the public face tests use (fixtures,
//! assertions, pod logs, port-forward targets, the request log) and the entry points the
//! HTTP layer calls. The write rules live in [`registry`](super::registry), the per-type
//! defaulting in [`strategy`](super::strategy).
//!
//! The test-facing methods bypass the subresource rules ([`Store::replace`] writes status
//! too) and namespace termination ([`Store::delete`] of a namespace empties it at once).

use std::collections::{BTreeMap, HashMap};
use std::hash::RandomState;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::registry::{Inner, key};
use super::resources::ResourceKey;
use super::selectors::Selectors;
use super::status::ApiError;

/// What happened to an object, as in a watch event's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change to the store; `object` is the object as written (for `Deleted`, its last state
/// stamped with the deletion's `resourceVersion`).
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub kind: EventKind,
    pub res: ResourceKey,
    pub object: Value,
}

/// One API request the server answered, with the RBAC verb the real API server would
/// authorize it as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// get, list, watch, create, update, patch, delete or deletecollection.
    pub verb: String,
    /// `""` for the core group.
    pub api_group: String,
    /// The plural, e.g. `pods`.
    pub resource: String,
    /// `log`, `portforward`, `status`, ...
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The raw query string (`""` when none).
    pub query: String,
    /// Who the request authenticated as: `kubesim-admin` (the kubeconfig's bearer token) or
    /// `system:anonymous` (no credentials, e.g. kubectl over plain http).
    pub user: String,
    /// The HTTP status code of the answer (101 for an upgraded port-forward).
    pub code: u16,
}

/// How an update treats `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// A write to the main resource through the API: `status` is kept as stored when the type
    /// has a status subresource.
    Main,
    /// A write to `/status`: only `status` is taken from the new object.
    Status,
    /// A test fixture write: everything is taken as given.
    Whole,
}

/// The shared object store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

/// `2025-01-02T03:04:05Z`, the API's timestamp format.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        let (changed, _) = watch::channel(0);
        Store {
            inner: Arc::new(Mutex::new(Inner {
                rv: 0,
                objects: BTreeMap::new(),
                history: Vec::new(),
                logs: HashMap::new(),
                port_targets: HashMap::new(),
                requests: Vec::new(),
                events,
                changed,
                random: RandomState::new(),
                counter: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take the server down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- test-facing API ------------------------------------------------------------

    pub fn get(&self, res: &ResourceKey, ns: Option<&str>, name: &str) -> Option<Value> {
        self.lock().get(res, ns, name).cloned()
    }

    /// Every object of the resource, in one namespace or (with `None`) in all of them.
    pub fn list(&self, res: &ResourceKey, ns: Option<&str>) -> Vec<Value> {
        self.lock().list(res, ns, &Selectors::default())
    }

    /// Stores a new object (namespace taken from `metadata.namespace`), with the server's
    /// metadata; `status` is kept as given. Fails like the API would (exists, missing or
    /// terminating namespace, no name).
    pub fn create(&self, res: &ResourceKey, obj: Value) -> Result<Value, String> {
        self.lock()
            .create(res, obj, false, false)
            .map_err(|e| e.message)
    }

    /// Replaces the whole stored object, status included; emits MODIFIED.
    pub fn replace(&self, res: &ResourceKey, obj: Value) -> Result<Value, String> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let ns = obj["metadata"]["namespace"].as_str().map(String::from);
        self.lock()
            .update(res, ns.as_deref(), &name, obj, WriteMode::Whole, false)
            .map_err(|e| e.message)
    }

    /// JSON-merge-patches `status` (what a controller's status update does).
    pub fn patch_status(
        &self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, String> {
        let mut inner = self.lock();
        let ns = Some(ns).filter(|_| res.namespaced);
        let mut obj = inner
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name).message)?;
        super::apply::merge_patch(&mut obj["status"], &status);
        inner
            .update(res, ns, name, obj, WriteMode::Whole, false)
            .map_err(|e| e.message)
    }

    /// Deletes at once, ignoring finalizers; a namespace takes its content with it.
    pub fn delete(&self, res: &ResourceKey, ns: Option<&str>, name: &str) -> Option<Value> {
        let mut inner = self.lock();
        if res.group.is_empty() && res.plural == "namespaces" {
            inner.get(res, None, name)?;
            return inner.finish_namespace(name);
        }
        inner.remove(&key(res, ns, name))
    }

    /// Every later change.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.lock().events.subscribe()
    }

    /// Every change so far, oldest first.
    pub fn history(&self) -> Vec<StoreEvent> {
        self.lock()
            .history
            .iter()
            .map(|h| h.event.clone())
            .collect()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Appends to the log of a pod (served by `.../pods/{name}/log`).
    pub fn append_log(&self, ns: &str, pod: &str, text: &str) {
        self.lock()
            .logs
            .entry((ns.into(), pod.into()))
            .or_default()
            .push_str(text);
    }

    /// Where a port-forward to `pod:port` connects.
    pub fn set_port_target(&self, ns: &str, pod: &str, port: u16, target: SocketAddr) {
        self.lock()
            .port_targets
            .insert((ns.into(), pod.into(), port), target);
    }

    /// Every API request served so far (discovery excluded), in order of completion.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Polls `pred` every 20 ms until it holds (true) or `timeout` passes (false). Blocks the
    /// calling thread; the server runs on its own runtime, so this is fine in async tests too
    /// as long as the condition does not depend on the test's own runtime making progress.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Store) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // ----- server-facing API ----------------------------------------------------------

    pub(super) fn record(&self, r: RequestRecord) {
        self.lock().requests.push(r);
    }

    pub(super) fn api_create(
        &self,
        res: &ResourceKey,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.lock().create(res, obj, true, dry_run)
    }

    pub(super) fn api_update(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        mode: WriteMode,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.lock().update(res, ns, name, obj, mode, dry_run)
    }

    /// Reads the current object and computes the new one under one lock (a PATCH). `f` gets
    /// the current object (None if missing) and returns the object to write; when the object
    /// does not exist and `f` still returns one, it is created (server-side apply). Returns
    /// the written object and whether it was created.
    pub(super) fn api_modify(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        mode: WriteMode,
        dry_run: bool,
        f: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<(Value, bool), ApiError> {
        let mut inner = self.lock();
        let current = inner.get(res, ns, name).cloned();
        let new = f(current.as_ref())?;
        match current {
            Some(cur) => {
                let mut new = new;
                // The patch was computed on this very version: no precondition unless the
                // patch itself set one that differs.
                if new["metadata"]["resourceVersion"].is_null() {
                    new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                }
                inner
                    .update(res, ns, name, new, mode, dry_run)
                    .map(|v| (v, false))
            }
            None => {
                let mut new = new;
                if let Some(ns) = ns.filter(|_| res.namespaced) {
                    new["metadata"]["namespace"] = json!(ns);
                }
                inner.create(res, new, true, dry_run).map(|v| (v, true))
            }
        }
    }

    pub(super) fn api_delete(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.lock().delete(res, ns, name, dry_run)
    }

    pub(super) fn finish_namespace(&self, ns: &str) {
        self.lock().finish_namespace(ns);
    }

    pub(super) fn api_list(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        sel: &Selectors,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        (inner.list(res, ns, sel), inner.rv)
    }

    /// The start of a watch: either synthetic ADDED events for the current state (`since`
    /// None: resourceVersion unset or "0") or the recorded events after `since`; plus the
    /// resourceVersion the caller has seen up to and a receiver that changes on every write.
    pub(super) fn watch_start(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        sel: &Selectors,
        since: Option<u64>,
    ) -> (Vec<(EventKind, Value)>, u64, watch::Receiver<u64>) {
        let inner = self.lock();
        let rx = inner.changed.subscribe();
        let events = match since {
            None => inner
                .list(res, ns, sel)
                .into_iter()
                .map(|o| (EventKind::Added, o))
                .collect(),
            Some(rv) => inner.history_after(res, ns, sel, rv),
        };
        (events, inner.rv, rx)
    }

    /// Recorded events after `rv` that a watch sees, and the latest resourceVersion.
    pub(super) fn watch_next(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        sel: &Selectors,
        rv: u64,
    ) -> (Vec<(EventKind, Value)>, u64) {
        let inner = self.lock();
        (inner.history_after(res, ns, sel, rv), inner.rv)
    }

    pub(super) fn log_text(&self, ns: &str, pod: &str) -> String {
        self.lock()
            .logs
            .get(&(ns.to_string(), pod.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn port_target(&self, ns: &str, pod: &str, port: u16) -> Option<SocketAddr> {
        self.lock()
            .port_targets
            .get(&(ns.to_string(), pod.to_string(), port))
            .copied()
    }
}
