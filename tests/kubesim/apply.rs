//! The three patch flavours the API server accepts, on plain JSON:
//!
//! * JSON merge patch (RFC 7386, `application/merge-patch+json`); strategic merge patch is
//!   treated the same (the real difference is only in list merging of built-in types).
//! * JSON patch (RFC 6902, `application/json-patch+json`): add, remove, replace, test, move, copy.
//! * Server-side apply (`application/apply-patch+yaml`): maps merge deeply, everything else
//!   (scalars, lists) replaces; fields this manager applied before and no longer applies are
//!   removed unless another applier owns them; applying a field another applier owns with a
//!   different value is a conflict unless `force=true`. Ownership is recorded in
//!   `metadata.managedFields` (`FieldsV1`, operation `Apply`), like the real server. Lists are
//!   atomic (no `x-kubernetes-list-type: map` merging) and non-apply writers are not tracked.

use serde_json::{Map, Value, json};

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_tokens(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

/// The parent container of `path` and the last token.
fn parent_mut<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = pointer_tokens(path)?;
    let last = tokens
        .pop()
        .ok_or_else(|| "the root cannot be the target of this operation".to_string())?;
    let mut cur = doc;
    for t in &tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {path}"))?;
    }
    Ok((cur, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("invalid index in {path}"))?
            };
            if i > a.len() {
                return Err(format!("index out of bounds in {path}"));
            }
            a.insert(i, value);
        }
        _ => return Err(format!("doc is missing path: {path}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(m) => m.remove(&last),
        Value::Array(a) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.remove(i)),
        _ => None,
    }
    .ok_or_else(|| format!("unable to remove nonexistent key: {path}"))
}

/// RFC 6902 applied to a copy of `doc`; the error message names the failing operation.
pub fn json_patch(doc: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or_else(|| "a JSON patch must be an array of operations".to_string())?;
    let mut out = doc.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or("operation has no path")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("missing value for {path}"))
        };
        match op["op"].as_str().unwrap_or("") {
            "add" => add(&mut out, path, value()?)?,
            "remove" => {
                remove(&mut out, path)?;
            }
            "replace" => {
                remove(&mut out, path)?;
                add(&mut out, path, value()?)?;
            }
            "test" => {
                if out.pointer(path) != Some(&value()?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let v = remove(&mut out, from)?;
                add(&mut out, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let v = out
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("missing {from}"))?;
                add(&mut out, path, v)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(out)
}

/// Server-side apply's merge: maps merge deeply, other values replace, `null` removes.
pub fn apply_merge(target: &mut Value, applied: &Value) {
    match (target.as_object_mut(), applied) {
        (Some(t), Value::Object(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k) {
                    apply_merge(existing, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        _ => *target = applied.clone(),
    }
}

/// Metadata fields the server manages itself; never part of an applier's field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The `FieldsV1` tree of an applied configuration: `{"f:spec": {"f:instances": {}}}`.
pub fn fields_v1(applied: &Value) -> Value {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) if !m.is_empty() => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (format!("f:{k}"), walk(v)))
                    .collect(),
            ),
            _ => json!({}),
        }
    }
    let mut root = Map::new();
    if let Some(m) = applied.as_object() {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" || v.is_null() {
                continue;
            }
            if k == "metadata" {
                let mut meta = Map::new();
                if let Some(mm) = v.as_object() {
                    for (mk, mv) in mm {
                        if !SERVER_METADATA.contains(&mk.as_str()) && !mv.is_null() {
                            meta.insert(format!("f:{mk}"), walk(mv));
                        }
                    }
                }
                if !meta.is_empty() {
                    root.insert("f:metadata".into(), Value::Object(meta));
                }
            } else {
                root.insert(format!("f:{k}"), walk(v));
            }
        }
    }
    Value::Object(root)
}

/// The leaf paths of a `FieldsV1` tree, each as a list of plain field names.
pub fn leaf_paths(fields: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    let name = k.strip_prefix("f:").unwrap_or(k).to_string();
                    prefix.push(name);
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.push(prefix.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg.as_str()))
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Whether path `a` is `b` or lies under it, or the other way round.
fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// `.spec.instances`: how conflicts name a field.
fn dotted(path: &[String]) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

/// Server-side apply of `applied` by `manager` onto `existing` (or onto an empty object when
/// the object does not exist yet). `subresource` is `Some("status")` for `/status` applies.
/// Returns `Err(conflicts)` as `(manager, .field.path)` pairs when not forced.
pub fn server_side_apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    now: &str,
) -> Result<Value, Vec<(String, String)>> {
    let mut object = existing.cloned().unwrap_or_else(|| json!({}));
    let mut managed: Vec<Value> = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is_mine = |e: &Value| {
        e["manager"] == manager
            && e["operation"] == "Apply"
            && e["subresource"].as_str() == subresource
    };
    let new_fields = fields_v1(applied);
    let new_paths = leaf_paths(&new_fields);

    // Conflicts with other appliers that set the same field to something else.
    let mut conflicts = Vec::new();
    for e in managed
        .iter()
        .filter(|e| !is_mine(e) && e["operation"] == "Apply")
    {
        for theirs in leaf_paths(&e["fieldsV1"]) {
            for mine in &new_paths {
                if overlaps(mine, &theirs) && get_path(&object, mine) != get_path(applied, mine) {
                    let m = e["manager"].as_str().unwrap_or("").to_string();
                    conflicts.push((m, dotted(mine)));
                }
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }

    // Fields this manager applied before, applies no more, and nobody else applies: removed.
    let previous = managed
        .iter()
        .find(|e| is_mine(e))
        .map(|e| leaf_paths(&e["fieldsV1"]))
        .unwrap_or_default();
    let others: Vec<Vec<String>> = managed
        .iter()
        .filter(|e| !is_mine(e) && e["operation"] == "Apply")
        .flat_map(|e| leaf_paths(&e["fieldsV1"]))
        .collect();
    for old in previous {
        let still_mine = new_paths.iter().any(|p| overlaps(p, &old));
        let someone_else = others.iter().any(|p| overlaps(p, &old));
        if !still_mine && !someone_else {
            remove_path(&mut object, &old);
        }
    }

    let mut body = applied.clone();
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    apply_merge(&mut object, &body);

    // Forced fields move to this manager.
    if force {
        for e in managed.iter_mut().filter(|e| !is_mine(e)) {
            let kept: Vec<Vec<String>> = leaf_paths(&e["fieldsV1"])
                .into_iter()
                .filter(|p| !new_paths.iter().any(|n| overlaps(n, p)))
                .collect();
            e["fieldsV1"] = paths_to_fields(&kept);
        }
        managed.retain(|e| is_mine(e) || !leaf_paths(&e["fieldsV1"]).is_empty());
    }
    managed.retain(|e| !is_mine(e));
    let mut entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": new_fields,
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    managed.push(entry);
    object["metadata"]["managedFields"] = Value::Array(managed);
    Ok(object)
}

fn paths_to_fields(paths: &[Vec<String>]) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .as_object_mut()
                .expect("object")
                .entry(format!("f:{seg}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_deletes_and_merges() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(doc, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn json_patch_ops() {
        let doc = json!({"a": [1, 2], "b": {"c": 1}});
        let ops = json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "remove", "path": "/a/0"},
            {"op": "add", "path": "/b/x~1y", "value": true},
        ]);
        let out = json_patch(&doc, &ops).unwrap();
        assert_eq!(out, json!({"a": [2, 3], "b": {"c": 2, "x/y": true}}));
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/zz"}])).is_err());
    }

    #[test]
    fn apply_removes_fields_dropped_by_the_same_manager() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v", "old": "o"}});
        let a = server_side_apply(None, &first, "m", false, None, "t").unwrap();
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x"}, "data": {"k": "v2"}});
        let b = server_side_apply(Some(&a), &second, "m", false, None, "t").unwrap();
        assert_eq!(b["data"], json!({"k": "v2"}));
        assert!(b["metadata"]["labels"].get("a").is_none());
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x"}, "data": {"k": "mine"}});
        let conflict = server_side_apply(Some(&b), &other, "n", false, None, "t");
        assert_eq!(
            conflict.err().unwrap(),
            vec![("m".to_string(), ".data.k".to_string())]
        );
        let forced = server_side_apply(Some(&b), &other, "n", true, None, "t").unwrap();
        assert_eq!(forced["data"]["k"], "mine");
    }
}
