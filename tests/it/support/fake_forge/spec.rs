//! A forge's official API description (copied into `tests/forge-api/`), turned into a table of operations
//! that can check a request and a response.
//!
//! - OpenAPI 3.0 (GitHub) and Swagger 2.0 (Gitea, Forgejo) schemas are validated as JSON Schema draft 4,
//!   after OpenAPI's `nullable: true` is rewritten to a `null` alternative.
//! - GitLab's file is JSON Schema 2020-12 (`$defs`, `x-operations`) with a Swagger 2.0 excerpt for the
//!   query and path parameters.
//! - `$ref`s are resolved inside the same document: a schema is compiled as that document with the schema
//!   put under a reserved key and a root `$ref` to it.
//! - Statuses an operation does not list but every forge documents for all calls (401 bad credentials,
//!   403/429 rate limited) are checked against the forge's error schema.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
}

impl Flavor {
    fn file(self) -> &'static str {
        match self {
            Flavor::GitHub => "github.openapi.json",
            Flavor::GitLab => "gitlab.merge-requests.json",
            Flavor::Gitea => "gitea.swagger.json",
            Flavor::Forgejo => "forgejo.swagger.json",
        }
    }
}

const TARGET_KEY: &str = "x-fake-forge-target";

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    location: String,
    required: bool,
    schema: Value,
    /// Swagger `collectionFormat: multi`: the key repeats instead of a comma list.
    multi: bool,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    method: String,
    segments: Vec<Segment>,
    params: Vec<Param>,
    /// (required, schema)
    body: Option<(bool, Value)>,
    /// status → schema of the JSON body (None: no body described)
    responses: BTreeMap<String, Option<Value>>,
}

pub struct Spec {
    pub flavor: Flavor,
    root: Value,
    draft: Draft,
    base_path: String,
    operations: Vec<Operation>,
    error_schema: Value,
    cache: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Spec {
    pub fn load(flavor: Flavor) -> Spec {
        let path = format!(
            "{}/tests/forge-api/{}",
            env!("CARGO_MANIFEST_DIR"),
            flavor.file()
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let raw: Value = serde_json::from_str(&text).expect("API description is JSON");
        match flavor {
            Flavor::GitHub => Self::from_openapi3(flavor, raw),
            Flavor::Gitea | Flavor::Forgejo => Self::from_swagger2(flavor, raw),
            Flavor::GitLab => Self::from_gitlab(raw),
        }
    }

    fn from_openapi3(flavor: Flavor, raw: Value) -> Spec {
        let root = convert_nullable(raw);
        let mut operations = Vec::new();
        for (path, item) in root["paths"].as_object().expect("paths") {
            let shared = item.get("parameters").cloned().unwrap_or(json!([]));
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let mut params = Vec::new();
                for p in shared
                    .as_array()
                    .unwrap()
                    .iter()
                    .chain(op["parameters"].as_array().into_iter().flatten())
                {
                    let p = resolve(&root, p);
                    params.push(Param {
                        name: p["name"].as_str().unwrap().to_string(),
                        location: p["in"].as_str().unwrap().to_string(),
                        required: p["required"].as_bool().unwrap_or(false),
                        schema: p["schema"].clone(),
                        multi: false,
                    });
                }
                let body = op.get("requestBody").map(|b| {
                    let b = resolve(&root, b);
                    (
                        b["required"].as_bool().unwrap_or(false),
                        b["content"]["application/json"]["schema"].clone(),
                    )
                });
                let mut responses = BTreeMap::new();
                for (status, r) in op["responses"].as_object().unwrap() {
                    let r = resolve(&root, r);
                    let schema = r["content"]["application/json"]["schema"].clone();
                    responses.insert(status.clone(), (!schema.is_null()).then_some(schema));
                }
                operations.push(Operation {
                    id: op["operationId"].as_str().unwrap().to_string(),
                    method: method.to_uppercase(),
                    segments: segments(path),
                    params,
                    body,
                    responses,
                });
            }
        }
        Spec::new(
            flavor,
            root,
            Draft::Draft4,
            String::new(),
            operations,
            json!({"$ref": "#/components/schemas/basic-error"}),
        )
    }

    fn from_swagger2(flavor: Flavor, root: Value) -> Spec {
        let mut operations = Vec::new();
        for (path, item) in root["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().unwrap() {
                let mut params = Vec::new();
                let mut body = None;
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let p = resolve(&root, p);
                    if p["in"] == "body" {
                        body = Some((
                            p["required"].as_bool().unwrap_or(false),
                            p["schema"].clone(),
                        ));
                        continue;
                    }
                    params.push(swagger_param(&p));
                }
                let mut responses = BTreeMap::new();
                for (status, r) in op["responses"].as_object().unwrap() {
                    responses.insert(status.clone(), swagger_response_schema(&resolve(&root, r)));
                }
                operations.push(Operation {
                    id: op["operationId"].as_str().unwrap().to_string(),
                    method: method.to_uppercase(),
                    segments: segments(path),
                    params,
                    body,
                    responses,
                });
            }
        }
        let error_schema =
            swagger_response_schema(&root["responses"]["error"]).expect("error response");
        let base_path = root["basePath"].as_str().unwrap_or("").to_string();
        Spec::new(
            flavor,
            root,
            Draft::Draft4,
            base_path,
            operations,
            error_schema,
        )
    }

    fn from_gitlab(mut root: Value) -> Spec {
        // The relative `$id` would become the base URI; refs are all `#/…` within this document.
        let object = root.as_object_mut().unwrap();
        object.remove("$id");
        object.remove("$schema");
        let excerpt = root["x-openapi-v2-excerpt"].clone();
        let mut operations = Vec::new();
        for (id, op) in root["x-operations"].as_object().unwrap() {
            let path = op["path"].as_str().unwrap();
            let method = op["method"].as_str().unwrap();
            let described = &excerpt["paths"][path][method.to_lowercase()];
            // Operations openapi_v2 does not cover carry their parameters (written from the docs)
            // in the operation itself.
            let mut params: Vec<Param> = described["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .filter(|p| p["in"] != "body")
                .map(swagger_param)
                .collect();
            // The notes API is not in openapi_v2: its path parameters are only named by the path.
            for segment in segments(path) {
                if let Segment::Param(name) = segment
                    && !params.iter().any(|p| p.name == name)
                {
                    params.push(Param {
                        name,
                        location: "path".into(),
                        required: true,
                        schema: json!({"type": "string", "minLength": 1}),
                        multi: false,
                    });
                }
            }
            let body = op.get("body").map(|schema| (true, schema.clone()));
            let mut responses = BTreeMap::new();
            for (status, schema) in op["response"].as_object().unwrap() {
                responses.insert(status.clone(), Some(schema.clone()));
            }
            operations.push(Operation {
                id: id.clone(),
                method: method.to_string(),
                segments: segments(path),
                params,
                body,
                responses,
            });
        }
        Spec::new(
            Flavor::GitLab,
            root,
            Draft::Draft202012,
            String::new(),
            operations,
            json!({"$ref": "#/$defs/Error"}),
        )
    }

    fn new(
        flavor: Flavor,
        root: Value,
        draft: Draft,
        base_path: String,
        operations: Vec<Operation>,
        error_schema: Value,
    ) -> Spec {
        Spec {
            flavor,
            root,
            draft,
            base_path,
            operations,
            error_schema,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The description itself (`nullable` already rewritten).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The operation for `method` and the raw (still percent-encoded) `path`, with its path parameters
    /// decoded. Literal segments win over parameters.
    pub fn find(&self, method: &str, path: &str) -> Option<(&Operation, HashMap<String, String>)> {
        let path = path.strip_prefix(&self.base_path)?;
        let raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(&Operation, HashMap<String, String>, usize)> = None;
        for op in self.operations.iter().filter(|op| op.method == method) {
            if op.segments.len() != raw.len() {
                continue;
            }
            let mut values = HashMap::new();
            let mut literals = 0;
            let matched = op
                .segments
                .iter()
                .zip(&raw)
                .all(|(segment, raw)| match segment {
                    Segment::Literal(text) => {
                        literals += 1;
                        text == raw
                    }
                    Segment::Param(name) => {
                        values.insert(name.clone(), percent_decode(raw));
                        !raw.is_empty()
                    }
                });
            if matched && best.as_ref().is_none_or(|(_, _, l)| literals > *l) {
                best = Some((op, values, literals));
            }
        }
        best.map(|(op, values, _)| (op, values))
    }

    /// Every way the request breaks the description (empty: it conforms).
    pub fn check_request(
        &self,
        op: &Operation,
        path_params: &HashMap<String, String>,
        query: &[(String, String)],
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let mut violations = Vec::new();
        for (name, value) in path_params {
            match op
                .params
                .iter()
                .find(|p| p.location == "path" && &p.name == name)
            {
                Some(param) => {
                    let value = coerce(&param.schema, std::slice::from_ref(value), false);
                    violations.extend(
                        self.validate(&param.schema, &value)
                            .into_iter()
                            .map(|e| format!("path parameter {name}: {e}")),
                    );
                }
                None => violations.push(format!("path parameter {name} is not described")),
            }
        }
        let mut grouped: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (key, value) in query {
            grouped.entry(key).or_default().push(value.clone());
        }
        for (key, values) in &grouped {
            match op
                .params
                .iter()
                .find(|p| p.location == "query" && p.name == *key)
            {
                Some(param) => {
                    if values.len() > 1 && !param.multi {
                        violations.push(format!("query parameter {key} repeated"));
                    }
                    let value = coerce(&param.schema, values, param.multi);
                    violations.extend(
                        self.validate(&param.schema, &value)
                            .into_iter()
                            .map(|e| format!("query parameter {key}: {e}")),
                    );
                }
                None => violations.push(format!("query parameter {key} is not described")),
            }
        }
        for param in op
            .params
            .iter()
            .filter(|p| p.required && p.location == "query")
        {
            if !grouped.contains_key(param.name.as_str()) {
                violations.push(format!("required query parameter {} missing", param.name));
            }
        }
        match (&op.body, body.is_empty()) {
            (None, false) => violations.push("a body was sent but none is described".into()),
            (Some((true, _)), true) => violations.push("the required body is missing".into()),
            (Some((_, schema)), false) => {
                if !content_type.is_some_and(|t| t.starts_with("application/json")) {
                    violations.push(format!("body content type {content_type:?} is not JSON"));
                }
                match serde_json::from_slice::<Value>(body) {
                    Ok(value) => {
                        violations.extend(
                            self.validate(schema, &value)
                                .into_iter()
                                .map(|e| format!("request body: {e}")),
                        );
                        violations.extend(self.undescribed_fields(schema, &value));
                    }
                    Err(e) => violations.push(format!("request body is not JSON: {e}")),
                }
            }
            _ => {}
        }
        violations
    }

    /// Checks a response this fake is about to send.
    pub fn check_response(&self, op: &Operation, status: u16, body: Option<&Value>) -> Vec<String> {
        let status_text = status.to_string();
        let schema = match op.responses.get(&status_text) {
            Some(schema) => schema.clone(),
            None if matches!(status, 401 | 403 | 429) => Some(self.error_schema.clone()),
            None => match op.responses.get("default") {
                Some(schema) => schema.clone(),
                None => {
                    return vec![format!("{}: status {status} is not described", op.id)];
                }
            },
        };
        match (schema, body) {
            (Some(schema), Some(body)) => self
                .validate(&schema, body)
                .into_iter()
                .map(|e| format!("{} response {status}: {e}", op.id))
                .collect(),
            (Some(_), None) => vec![format!("{} response {status}: body missing", op.id)],
            (None, _) => Vec::new(),
        }
    }

    /// Top-level fields of a request body that its schema does not name: the descriptions allow extra
    /// fields, but a client that sends one relies on something undocumented.
    fn undescribed_fields(&self, schema: &Value, value: &Value) -> Vec<String> {
        let schema = resolve(&self.root, schema);
        let (Some(properties), Some(object)) =
            (schema["properties"].as_object(), value.as_object())
        else {
            return Vec::new();
        };
        object
            .keys()
            .filter(|key| !properties.contains_key(*key))
            .map(|key| format!("request body field {key} is not described"))
            .collect()
    }

    fn validate(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let key = schema.to_string();
        let validator = {
            let mut cache = self.cache.lock().unwrap();
            cache
                .entry(key)
                .or_insert_with(|| {
                    let mut document = self.root.clone();
                    document[TARGET_KEY] = schema.clone();
                    document["$ref"] = json!(format!("#/{TARGET_KEY}"));
                    let validator = jsonschema::options()
                        .with_draft(self.draft)
                        .should_validate_formats(true)
                        .should_ignore_unknown_formats(true)
                        .build(&document)
                        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
                    Arc::new(validator)
                })
                .clone()
        };
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }
}

fn segments(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

/// An OpenAPI component `$ref` (parameter, response, request body), resolved one level.
fn resolve(root: &Value, value: &Value) -> Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => root
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolved {reference}"))
            .clone(),
        None => value.clone(),
    }
}

/// A Swagger 2 parameter is its own schema, minus the parameter keys.
fn swagger_param(p: &Value) -> Param {
    let mut schema = p.clone();
    let object = schema.as_object_mut().unwrap();
    for key in ["name", "in", "required", "description", "collectionFormat"] {
        object.remove(key);
    }
    Param {
        name: p["name"].as_str().unwrap().to_string(),
        location: p["in"].as_str().unwrap().to_string(),
        required: p["required"].as_bool().unwrap_or(false),
        schema,
        multi: p["collectionFormat"] == "multi",
    }
}

/// A Swagger 2 response's body schema. Gitea describes its error body `{message, url}` as response
/// *headers*; those are read as the body's properties.
fn swagger_response_schema(response: &Value) -> Option<Value> {
    if let Some(schema) = response.get("schema") {
        return Some(schema.clone());
    }
    let headers = response.get("headers")?.as_object()?;
    let properties: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, h)| (name.clone(), json!({"type": h["type"].clone()})))
        .collect();
    Some(json!({"type": "object", "properties": properties}))
}

/// A query or path string as the JSON value its schema expects, so the schema can judge it.
fn coerce(schema: &Value, values: &[String], multi: bool) -> Value {
    let kind = schema["type"].as_str().unwrap_or("string");
    if kind == "array" {
        let items: Vec<String> = if multi {
            values.to_vec()
        } else {
            values
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::to_string)
                .collect()
        };
        return Value::Array(
            items
                .iter()
                .map(|v| coerce(&schema["items"], std::slice::from_ref(v), false))
                .collect(),
        );
    }
    let value = &values[0];
    match kind {
        "integer" => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(json!(value)),
        "number" => value
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(json!(value)),
        "boolean" => match value.as_str() {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(value),
        },
        _ => json!(value),
    }
}

/// OpenAPI 3.0 `nullable: true` → JSON Schema's `null` alternative.
fn convert_nullable(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut map: serde_json::Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, convert_nullable(v)))
                .collect();
            if map.get("nullable") != Some(&json!(true)) {
                return Value::Object(map);
            }
            map.remove("nullable");
            match map.get("type").and_then(Value::as_str).map(str::to_string) {
                Some(kind) => {
                    map.insert("type".into(), json!([kind, "null"]));
                    if let Some(Value::Array(options)) = map.get_mut("enum") {
                        options.push(Value::Null);
                    }
                    Value::Object(map)
                }
                None => json!({"anyOf": [Value::Object(map), {"type": "null"}]}),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(convert_nullable).collect()),
        other => other,
    }
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
