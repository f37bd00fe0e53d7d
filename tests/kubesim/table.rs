//! Server-side printing: the `meta.k8s.io/v1` Table the API server returns when a client
//! sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (kubectl's default output).
//! Columns follow the real printers for namespaces and pods and the CNPG CRD's
//! `additionalPrinterColumns` for clusters; everything else gets Name and Age.

use serde_json::{Value, json};

use super::resources::ResourceKey;

pub fn wanted(accept: &str) -> bool {
    accept.contains("as=Table")
}

/// `duration.HumanDuration` from apimachinery: `45s`, `3m20s`, `5h`, `12d`.
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((chrono::Utc::now() - t.to_utc()).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn col(name: &str, ty: &str, format: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0})
}

fn s(v: &Value) -> Value {
    match v {
        Value::Null => json!("<none>"),
        other => other.clone(),
    }
}

fn columns_and_cells(res: &ResourceKey, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = obj["metadata"]["name"].clone();
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => (
            vec![
                col("Name", "string", "name"),
                col("Status", "string", ""),
                col("Age", "string", ""),
            ],
            vec![name, obj["status"]["phase"].clone(), json!(age(obj))],
        ),
        ("", "pods") => {
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let statuses = obj["status"]["containerStatuses"].as_array();
            let ready = statuses.map_or(0, |c| c.iter().filter(|c| c["ready"] == true).count());
            let restarts: i64 = statuses.map_or(0, |c| {
                c.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
            });
            (
                vec![
                    col("Name", "string", "name"),
                    col("Ready", "string", ""),
                    col("Status", "string", ""),
                    col("Restarts", "string", ""),
                    col("Age", "string", ""),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    obj["status"]["phase"].clone(),
                    json!(restarts.to_string()),
                    json!(age(obj)),
                ],
            )
        }
        (super::resources::CNPG_GROUP, "clusters") => (
            vec![
                col("Name", "string", "name"),
                col("Age", "date", ""),
                col("Instances", "integer", ""),
                col("Ready", "integer", ""),
                col("Status", "string", ""),
                col("Primary", "string", ""),
            ],
            vec![
                name,
                json!(age(obj)),
                s(&obj["status"]["instances"]),
                s(&obj["status"]["readyInstances"]),
                s(&obj["status"]["phase"]),
                s(&obj["status"]["currentPrimary"]),
            ],
        ),
        _ => (
            vec![col("Name", "string", "name"), col("Age", "string", "")],
            vec![name, json!(age(obj))],
        ),
    }
}

/// The Table for `items`; `includeObject` is None, Metadata (the default) or Object.
pub fn build(res: &ResourceKey, items: &[Value], meta: Value, include: Option<&str>) -> Value {
    let mut columns = columns_and_cells(res, &json!({})).0;
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let (cols, cells) = columns_and_cells(res, obj);
            columns = cols;
            let mut row = json!({"cells": cells});
            match include.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
