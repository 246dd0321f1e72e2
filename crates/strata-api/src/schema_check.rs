//! Checks of OpenAPI v3 schemas as Kubernetes applies them to custom resources, so that tests
//! catch a schema the API server would reject or an object it would silently change. Pure
//! functions over `serde_json::Value`; each returns the list of problems found, each naming the
//! JSON path where it was found, and an empty list means "fine".
//!
//! [`structural_violations`] enforces the structural-schema rules (every node typed, no
//! `$ref`, no logical junctors except the int-or-string pattern, valid list-map keys).
//! [`validate`] checks an object against a schema the way the API server would before storing
//! it: types, enums, required fields, bounds, and fields that pruning would drop. It covers what
//! our schemas use, not all of OpenAPI (no `pattern` or CEL evaluation). [`apply_defaults`]
//! fills in schema defaults as the API server does when it stores an object.

use serde_json::{Map, Value};

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];
/// Root fields of every Kubernetes object that the API server handles itself.
const OBJECT_ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Problems that make `schema` non-structural, or that the API server rejects in a CRD.
pub fn structural_violations(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check_node(schema, "", &mut out);
    out
}

fn check_node(node: &Value, path: &str, out: &mut Vec<String>) {
    let here = if path.is_empty() { "<root>" } else { path };
    let Some(obj) = node.as_object() else {
        out.push(format!("{here}: schema node is not an object"));
        return;
    };
    let int_or_string = flag(obj, "x-kubernetes-int-or-string");
    let preserve = flag(obj, "x-kubernetes-preserve-unknown-fields");

    for forbidden in [
        "$ref",
        "$schema",
        "oneOf",
        "allOf",
        "not",
        "definitions",
        "$defs",
    ] {
        if obj.contains_key(forbidden) {
            out.push(format!("{here}: `{forbidden}` is not allowed"));
        }
    }
    if let Some(any_of) = obj.get("anyOf") {
        let pattern = serde_json::json!([{"type": "integer"}, {"type": "string"}]);
        if !(int_or_string && *any_of == pattern) {
            out.push(format!(
                "{here}: `anyOf` other than the int-or-string pattern"
            ));
        }
    }

    let ty = obj.get("type").and_then(Value::as_str);
    match ty {
        Some(t) if !TYPES.contains(&t) => out.push(format!("{here}: unknown type `{t}`")),
        Some(_) if int_or_string => {
            out.push(format!("{here}: int-or-string must not set `type`"));
        }
        None if obj.contains_key("type") => out.push(format!("{here}: `type` is not a string")),
        None if !int_or_string && !preserve => out.push(format!("{here}: node has no `type`")),
        _ => {}
    }

    if let Some(props) = obj.get("properties") {
        if ty != Some("object") {
            out.push(format!("{here}: `properties` on a non-object"));
        }
        if obj.contains_key("additionalProperties") {
            out.push(format!(
                "{here}: both `properties` and `additionalProperties`"
            ));
        }
        match props.as_object() {
            Some(props) => {
                for (name, sub) in props {
                    check_node(sub, &format!("{path}.{name}"), out);
                }
            }
            None => out.push(format!("{here}: `properties` is not a map")),
        }
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        let props = obj.get("properties").and_then(Value::as_object);
        for name in required.iter().filter_map(Value::as_str) {
            if !props.is_some_and(|p| p.contains_key(name)) {
                out.push(format!("{here}: required field `{name}` has no schema"));
            }
        }
    }
    if let Some(additional) = obj.get("additionalProperties") {
        if ty != Some("object") {
            out.push(format!("{here}: `additionalProperties` on a non-object"));
        }
        if additional.is_object() {
            check_node(additional, &format!("{path}.*"), out);
        } else {
            out.push(format!("{here}: `additionalProperties` must be a schema"));
        }
    }
    match (ty, obj.get("items")) {
        (Some("array"), Some(items)) => check_node(items, &format!("{path}[]"), out),
        (Some("array"), None) => out.push(format!("{here}: array without `items`")),
        (_, Some(_)) => out.push(format!("{here}: `items` on a non-array")),
        _ => {}
    }
    if obj.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        check_list_map(obj, here, out);
    }
    if let Some(default) = obj.get("default") {
        for problem in validate(node, default) {
            out.push(format!("{here}: default is invalid: {problem}"));
        }
    }
}

/// A list-map's keys must be scalar fields of its items that are required or defaulted.
fn check_list_map(obj: &Map<String, Value>, here: &str, out: &mut Vec<String>) {
    let Some(keys) = obj
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
    else {
        out.push(format!(
            "{here}: list-type map without x-kubernetes-list-map-keys"
        ));
        return;
    };
    let items = obj.get("items").and_then(Value::as_object);
    let props = items
        .and_then(|i| i.get("properties"))
        .and_then(Value::as_object);
    let required: Vec<&str> = items
        .and_then(|i| i.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for key in keys.iter().filter_map(Value::as_str) {
        match props.and_then(|p| p.get(key)) {
            None => out.push(format!("{here}: list-map key `{key}` is not a property")),
            Some(prop) => {
                if !required.contains(&key) && prop.get("default").is_none() {
                    out.push(format!(
                        "{here}: list-map key `{key}` is neither required nor defaulted"
                    ));
                }
                if flag_value(prop, "nullable") {
                    out.push(format!("{here}: list-map key `{key}` is nullable"));
                }
            }
        }
    }
}

/// Problems the API server would report for `value` under `schema` (validation), plus fields
/// it would silently drop (pruning). For a whole custom resource pass the CRD version's
/// `openAPIV3Schema`; `apiVersion`, `kind` and `metadata` at the root are left to the server.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    validate_at(schema, value, "", true, &mut out);
    out
}

fn validate_at(schema: &Value, value: &Value, path: &str, root: bool, out: &mut Vec<String>) {
    let here = if path.is_empty() { "<root>" } else { path };
    let Some(s) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if !flag(s, "nullable") {
            out.push(format!("{here}: null where the schema is not nullable"));
        }
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            out.push(format!("{here}: expected an integer or a string"));
        }
        return;
    }
    let ty = s.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        out.push(format!("{here}: expected {}", ty.unwrap_or("?")));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            out.push(format!("{here}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                out.push(format!("{here}: {n} is below the minimum {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                out.push(format!("{here}: {n} is above the maximum {max}"));
            }
        }
    }
    if let (Some(text), Some(min)) = (value.as_str(), s.get("minLength").and_then(Value::as_u64)) {
        if (text.chars().count() as u64) < min {
            out.push(format!("{here}: shorter than {min} characters"));
        }
    }
    if let Some(map) = value.as_object() {
        validate_object(s, map, path, root, out);
    }
    if let (Some(list), Some(items)) = (value.as_array(), s.get("items")) {
        for (i, item) in list.iter().enumerate() {
            validate_at(items, item, &format!("{path}[{i}]"), false, out);
        }
    }
}

fn validate_object(
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<String>,
) {
    let here = if path.is_empty() { "<root>" } else { path };
    let props = s.get("properties").and_then(Value::as_object);
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(name) {
            out.push(format!("{here}: required field `{name}` is missing"));
        }
    }
    for (key, child) in map {
        let child_path = format!("{path}.{key}");
        if root && OBJECT_ROOT_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(key)) {
            validate_at(sub, child, &child_path, false, out);
        } else if let Some(sub) = s.get("additionalProperties").filter(|a| a.is_object()) {
            validate_at(sub, child, &child_path, false, out);
        } else if !flag(s, "x-kubernetes-preserve-unknown-fields") {
            out.push(format!(
                "{child_path}: unknown field (the API server prunes it)"
            ));
        }
    }
}

/// Fills `value` with the schema's defaults the way the API server does on create and update:
/// a missing property with a `default` gets a copy of it, then defaulting continues inside every
/// property, map value and list item (including the values just defaulted).
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    if let (false, Some(default)) = (map.contains_key(name), sub.get("default")) {
                        map.insert(name.clone(), default.clone());
                    }
                }
                for (name, child) in map.iter_mut() {
                    if let Some(sub) = props.get(name) {
                        apply_defaults(sub, child);
                    }
                }
            } else if let Some(sub) = schema.get("additionalProperties") {
                for child in map.values_mut() {
                    apply_defaults(sub, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    apply_defaults(sub, item);
                }
            }
        }
        _ => {}
    }
}

fn flag(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn flag_value(node: &Value, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn untyped_node_and_one_of_are_reported() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"description": "no type"},
                "b": {"type": "string", "oneOf": [{"enum": ["x"]}]}
            }
        });
        let problems = structural_violations(&schema);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with(".a: node has no `type`"));
        assert!(problems[1].starts_with(".b: `oneOf`"));
    }

    #[test]
    fn int_or_string_pattern_is_structural() {
        let schema = json!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        });
        assert!(structural_violations(&schema).is_empty());
    }

    #[test]
    fn invalid_default_is_reported() {
        let schema = json!({"type": "integer", "minimum": 1, "default": 0});
        assert_eq!(structural_violations(&schema).len(), 1);
    }

    #[test]
    fn defaults_fill_missing_fields_recursively() {
        let schema = json!({
            "type": "object",
            "properties": {
                "outer": {
                    "type": "object",
                    "default": {},
                    "properties": {"n": {"type": "integer", "default": 3}}
                },
                "kept": {"type": "integer", "default": 1}
            }
        });
        let mut value = json!({"kept": 7});
        apply_defaults(&schema, &mut value);
        assert_eq!(value, json!({"kept": 7, "outer": {"n": 3}}));
    }

    #[test]
    fn validate_reports_pruned_fields_and_wrong_types() {
        let schema = json!({
            "type": "object",
            "required": ["n"],
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        });
        let value = json!({"kind": "X", "n": -1, "labels": {"a": 1}, "typo": true});
        let problems = validate(&schema, &value);
        assert_eq!(
            problems,
            vec![
                ".labels.a: expected string".to_owned(),
                ".n: -1 is below the minimum 0".to_owned(),
                ".typo: unknown field (the API server prunes it)".to_owned(),
            ]
        );
    }
}
