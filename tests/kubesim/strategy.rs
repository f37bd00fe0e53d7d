//! Per-type write strategies, as the real registry applies them on create and update:
//! `apiVersion`/`kind` defaulting, secrets' `stringData` folded into base64 `data` (and
//! `type: Opaque`), namespaces' `spec.finalizers: [kubernetes]` and `status.phase: Active`,
//! pods and PVCs starting `Pending`, services getting a `clusterIP`.

use serde_json::{Value, json};

use super::resources::ResourceKey;

/// Type-specific defaulting and normalisation applied on every write.
pub fn normalize(res: &ResourceKey, obj: &mut Value, creating: bool, next_rv: u64) {
    if obj.get("apiVersion").is_none_or(Value::is_null) {
        obj["apiVersion"] = json!(res.api_version());
    }
    if obj.get("kind").is_none_or(Value::is_null) {
        obj["kind"] = json!(res.kind);
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "secrets") => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                for (k, v) in sd {
                    let text = v.as_str().unwrap_or_default().to_string();
                    obj["data"][k] = json!(base64(text.as_bytes()));
                }
            }
            if obj.get("type").is_none_or(Value::is_null) {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "namespaces") if creating => {
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            if obj["status"]["phase"].is_null() {
                obj["status"]["phase"] = json!("Active");
            }
        }
        ("", "pods") | ("", "persistentvolumeclaims")
            if creating && obj["status"]["phase"].is_null() =>
        {
            obj["status"]["phase"] = json!("Pending");
        }
        ("", "services") if creating => {
            let spec = &obj["spec"];
            if spec["clusterIP"].is_null() && spec["type"] != "ExternalName" {
                let n = next_rv;
                obj["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff));
            }
        }
        _ => {}
    }
}

pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Everything but `metadata` and `status`: a change here bumps `generation`.
pub fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
