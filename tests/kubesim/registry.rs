//! The locked state behind [`Store`](super::Store): objects keyed by
//! `(group, plural, namespace, name)`, the resourceVersion counter, the event history, and
//! the write rules the real API server applies (what etcd plus the generic registry do):
//!
//! * every write bumps the one global `resourceVersion` and stamps the object, as etcd's
//!   revision does; every write is recorded for watches (never compacted);
//! * server-set metadata: `uid`, `creationTimestamp`, `generation` (custom resources,
//!   bumped when anything outside `metadata`/`status` changes), `generateName`;
//! * optimistic concurrency on a given `metadata.resourceVersion` (409 Conflict);
//! * status subresource rules (see [`WriteMode`]);
//! * finalizers: deleting an object with `metadata.finalizers` only sets
//!   `deletionTimestamp`; it goes once an update empties the list. Namespaces go
//!   `Terminating`, refuse new content (403) and are emptied by `finish_namespace` (the
//!   namespace controller's job);
//! * identical updates are no-ops: no new `resourceVersion`, no event.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::resources::ResourceKey;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{EventKind, RequestRecord, StoreEvent, WriteMode, now_rfc3339};
use super::strategy;

/// A stored object and the resource it belongs to.
pub struct Entry {
    pub res: ResourceKey,
    pub obj: Value,
}

/// One recorded change, at the resourceVersion it produced.
pub struct HistoryEntry {
    pub rv: u64,
    pub event: StoreEvent,
}

/// `(group, plural, namespace or "", name)`; sorted like etcd keys.
pub type ObjKey = (String, String, String, String);

/// The key of an object (`ns` is ignored for cluster-scoped resources).
pub fn key(res: &ResourceKey, ns: Option<&str>, name: &str) -> ObjKey {
    let ns = if res.namespaced { ns.unwrap_or("") } else { "" };
    (
        res.group.clone(),
        res.plural.clone(),
        ns.to_string(),
        name.to_string(),
    )
}

/// Everything behind the [`Store`](super::Store)'s mutex.
pub struct Inner {
    /// The latest resourceVersion handed out.
    pub rv: u64,
    pub objects: BTreeMap<ObjKey, Entry>,
    pub history: Vec<HistoryEntry>,
    pub logs: HashMap<(String, String), String>,
    pub port_targets: HashMap<(String, String, u16), SocketAddr>,
    pub requests: Vec<RequestRecord>,
    /// Feeds [`Store::subscribe`](super::Store::subscribe).
    pub events: broadcast::Sender<StoreEvent>,
    /// The latest resourceVersion; wakes watch streams.
    pub changed: watch::Sender<u64>,
    pub random: RandomState,
    pub counter: u64,
}

/// An object without what changes on every write, to detect no-op updates.
fn without_volatile_meta(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

/// Whether a watch for (`res`, `ns`, selectors) sees this event.
fn event_matches(e: &StoreEvent, res: &ResourceKey, ns: Option<&str>, sel: &Selectors) -> bool {
    e.res.group == res.group
        && e.res.plural == res.plural
        && (!res.namespaced
            || ns.is_none_or(|n| e.object["metadata"]["namespace"].as_str() == Some(n)))
        && sel.matches(&e.object)
}

impl Inner {
    fn now(&self) -> String {
        now_rfc3339()
    }

    fn random_u64(&mut self) -> u64 {
        self.counter += 1;
        self.random.hash_one(self.counter)
    }

    fn uid(&mut self) -> String {
        let a = self.random_u64();
        let b = self.random_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// The five-character suffix `generateName` gets.
    fn name_suffix(&mut self) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self.random_u64();
        (0..5)
            .map(|_| {
                let c = CHARS[(n % CHARS.len() as u64) as usize] as char;
                n /= CHARS.len() as u64;
                c
            })
            .collect()
    }

    fn emit(&mut self, kind: EventKind, res: &ResourceKey, obj: &Value) {
        let event = StoreEvent {
            kind,
            res: res.clone(),
            object: obj.clone(),
        };
        self.history.push(HistoryEntry {
            rv: self.rv,
            event: event.clone(),
        });
        let _ = self.events.send(event);
        self.changed.send_replace(self.rv);
    }

    fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    fn check_namespace(&self, res: &ResourceKey, ns: &str, name: &str) -> Result<(), ApiError> {
        let nskey = key(&ResourceKey::namespaces(), None, ns);
        match self.objects.get(&nskey) {
            None => Err(ApiError::namespace_not_found(ns)),
            Some(e) if !e.obj["metadata"]["deletionTimestamp"].is_null() => {
                Err(ApiError::namespace_terminating(res, name, ns))
            }
            Some(_) => Ok(()),
        }
    }

    pub fn create(
        &mut self,
        res: &ResourceKey,
        mut obj: Value,
        via_api: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    name = format!("{prefix}{}", self.name_suffix());
                    obj["metadata"]["name"] = json!(name);
                }
                _ => {
                    return Err(ApiError::invalid(
                        &res.kind,
                        &res.group,
                        "",
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        let ns = if res.namespaced {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if ns.is_empty() {
                return Err(ApiError::invalid(
                    &res.kind,
                    &res.group,
                    &name,
                    "metadata.namespace",
                    "FieldValueRequired",
                    "Required value",
                ));
            }
            self.check_namespace(res, &ns, &name)?;
            Some(ns)
        } else {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            None
        };
        let k = key(res, ns.as_deref(), &name);
        if self.objects.contains_key(&k) {
            return Err(ApiError::already_exists(res, &name));
        }
        if via_api
            && res.has_status_subresource()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        strategy::normalize(res, &mut obj, true, self.rv + 1);
        let uid = self.uid();
        let now = self.now();
        let meta = obj["metadata"].as_object_mut().expect("metadata object");
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("deletionTimestamp");
        meta.remove("resourceVersion");
        if res.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        }
        if dry_run {
            return Ok(obj);
        }
        self.bump(&mut obj);
        self.objects.insert(
            k,
            Entry {
                res: res.clone(),
                obj: obj.clone(),
            },
        );
        self.emit(EventKind::Added, res, &obj);
        Ok(obj)
    }

    pub fn get(&self, res: &ResourceKey, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.objects.get(&key(res, ns, name)).map(|e| &e.obj)
    }

    /// Replaces an existing object according to `mode`; optimistic concurrency on a given
    /// `metadata.resourceVersion`.
    pub fn update(
        &mut self,
        res: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        mut new: Value,
        mode: WriteMode,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let k = key(res, ns, name);
        let existing = self
            .objects
            .get(&k)
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(res, name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(given) = new["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            && Some(given) != existing["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(res, name));
        }
        if let Some(n) = new["metadata"]["name"].as_str().filter(|n| !n.is_empty())
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let mut result = match mode {
            WriteMode::Whole => new,
            WriteMode::Main => {
                if res.has_status_subresource() {
                    match existing.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
            WriteMode::Status => {
                let mut r = existing.clone();
                match new.get("status") {
                    Some(s) if !s.is_null() => r["status"] = s.clone(),
                    _ => {
                        if let Some(m) = r.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                r
            }
        };
        if !result["metadata"].is_object() {
            result["metadata"] = json!({});
        }
        strategy::normalize(res, &mut result, false, self.rv + 1);
        {
            let old = &existing["metadata"];
            let meta = result["metadata"].as_object_mut().expect("metadata object");
            meta.insert("name".into(), json!(name));
            if let Some(ns) = ns.filter(|_| res.namespaced) {
                meta.insert("namespace".into(), json!(ns));
            } else {
                meta.remove("namespace");
            }
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
            ] {
                match old.get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
            if meta.get("managedFields").is_none_or(Value::is_null)
                && let Some(mf) = old.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
        }
        if res.tracks_generation() && strategy::spec_part(&existing) != strategy::spec_part(&result)
        {
            let g = existing["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            result["metadata"]["generation"] = json!(g);
        }
        result["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
        if without_volatile_meta(&result) == without_volatile_meta(&existing) {
            return Ok(existing);
        }
        if dry_run {
            return Ok(result);
        }
        self.bump(&mut result);
        let finalized = !result["metadata"]["deletionTimestamp"].is_null()
            && result["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && res.plural != "namespaces";
        if finalized {
            self.objects.remove(&k);
            self.emit(EventKind::Deleted, res, &result);
        } else {
            self.objects.get_mut(&k).expect("present").obj = result.clone();
            self.emit(EventKind::Modified, res, &result);
        }
        Ok(result)
    }

    pub fn remove(&mut self, k: &ObjKey) -> Option<Value> {
        let mut entry = self.objects.remove(k)?;
        self.bump(&mut entry.obj);
        self.emit(EventKind::Deleted, &entry.res, &entry.obj);
        Some(entry.obj)
    }

    /// A DELETE: immediate, or only marked when finalizers (or a namespace's termination)
    /// hold the object back.
    pub fn delete(
        &mut self,
        res: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let k = key(res, ns, name);
        let existing = self
            .objects
            .get(&k)
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(res, name))?;
        if dry_run {
            return Ok(existing);
        }
        let is_ns = res.group.is_empty() && res.plural == "namespaces";
        let has_finalizers = existing["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if is_ns || has_finalizers {
            if !existing["metadata"]["deletionTimestamp"].is_null() {
                return Ok(existing);
            }
            let mut marked = existing;
            marked["metadata"]["deletionTimestamp"] = json!(self.now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if is_ns {
                marked["status"]["phase"] = json!("Terminating");
            }
            self.bump(&mut marked);
            self.objects.get_mut(&k).expect("present").obj = marked.clone();
            self.emit(EventKind::Modified, res, &marked);
            return Ok(marked);
        }
        Ok(self.remove(&k).expect("present"))
    }

    /// What the namespace controller does to a Terminating namespace: delete everything in
    /// it (finalizers of the content are not waited for), then the namespace.
    pub fn finish_namespace(&mut self, ns: &str) -> Option<Value> {
        let content: Vec<ObjKey> = self.objects.keys().filter(|k| k.2 == ns).cloned().collect();
        for k in content {
            self.remove(&k);
        }
        self.remove(&key(&ResourceKey::namespaces(), None, ns))
    }

    pub fn list(&self, res: &ResourceKey, ns: Option<&str>, sel: &Selectors) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.0 == res.group && k.1 == res.plural)
            .filter(|(k, _)| !res.namespaced || ns.is_none_or(|n| k.2 == n))
            .map(|(_, e)| &e.obj)
            .filter(|o| sel.matches(o))
            .cloned()
            .collect()
    }

    /// Recorded events after `rv` that a watch on (`res`, `ns`, selectors) sees.
    pub fn history_after(
        &self,
        res: &ResourceKey,
        ns: Option<&str>,
        sel: &Selectors,
        rv: u64,
    ) -> Vec<(EventKind, Value)> {
        let start = self.history.partition_point(|h| h.rv <= rv);
        self.history[start..]
            .iter()
            .filter(|h| event_matches(&h.event, res, ns, sel))
            .map(|h| (h.event.kind, h.event.object.clone()))
            .collect()
    }
}
