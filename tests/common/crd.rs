//! A validator for the subset of OpenAPI v3 that CRD structural schemas use: type, properties,
//! required, additionalProperties, items, enum, anyOf, minLength/maxLength, minimum/maximum,
//! pattern and x-kubernetes-int-or-string. CEL rules (x-kubernetes-validations) are not
//! evaluated. Unknown fields are errors where the schema lists properties (stricter than the
//! API server, which would drop them silently).

use serde_json::Value;

/// The `openAPIV3Schema` of version `v1` of a CRD file.
pub fn load_schema(file: &str) -> Value {
    let path = format!("{}/tests/crds/{file}", env!("CARGO_MANIFEST_DIR"));
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap()
}

pub fn validate(value: &Value, schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(value, schema, "", &mut errors);
    errors
}

fn check(v: &Value, s: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(any) = s["anyOf"].as_array() {
        let ok = any.iter().any(|alt| {
            let mut e = Vec::new();
            check(v, alt, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
    if s["x-kubernetes-int-or-string"] == true {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errors.push(format!("{at}: expected an integer or a string"));
        }
        return;
    }
    if let Some(options) = s["enum"].as_array()
        && !options.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {options:?}"));
    }
    match s["type"].as_str() {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                return errors.push(format!("{at}: expected an object"));
            };
            for r in s["required"].as_array().into_iter().flatten() {
                let key = r.as_str().unwrap();
                if !obj.contains_key(key) {
                    errors.push(format!("{at}.{key}: required"));
                }
            }
            let props = s["properties"].as_object();
            for (k, val) in obj {
                let here = format!("{at}.{k}");
                match (props.and_then(|p| p.get(k)), &s["additionalProperties"]) {
                    (Some(ps), _) => check(val, ps, &here, errors),
                    (None, ap) if ap.is_object() => check(val, ap, &here, errors),
                    (None, _)
                        if props.is_some() && s["x-kubernetes-preserve-unknown-fields"] != true =>
                    {
                        errors.push(format!("{here}: unknown field"))
                    }
                    _ => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                return errors.push(format!("{at}: expected an array"));
            };
            for (i, item) in items.iter().enumerate() {
                check(item, &s["items"], &format!("{at}[{i}]"), errors);
            }
        }
        Some("string") => {
            let Some(text) = v.as_str() else {
                return errors.push(format!("{at}: expected a string, found {v}"));
            };
            if s["minLength"]
                .as_u64()
                .is_some_and(|m| (text.chars().count() as u64) < m)
            {
                errors.push(format!("{at}: shorter than minLength"));
            }
            if s["maxLength"]
                .as_u64()
                .is_some_and(|m| (text.chars().count() as u64) > m)
            {
                errors.push(format!("{at}: longer than maxLength"));
            }
            if let Some(p) = s["pattern"].as_str()
                && !regex_lite::Regex::new(p).unwrap().is_match(text)
            {
                errors.push(format!("{at}: {text:?} does not match {p}"));
            }
        }
        Some("integer") => {
            let Some(n) = v.as_i64() else {
                return errors.push(format!("{at}: expected an integer, found {v}"));
            };
            if s["minimum"].as_i64().is_some_and(|m| n < m) {
                errors.push(format!("{at}: below minimum"));
            }
            if s["maximum"].as_i64().is_some_and(|m| n > m) {
                errors.push(format!("{at}: above maximum"));
            }
        }
        Some("boolean") if !v.is_boolean() => errors.push(format!("{at}: expected a boolean")),
        Some("number") if !v.is_number() => errors.push(format!("{at}: expected a number")),
        _ => {}
    }
}
