//! The vendored Kubernetes OpenAPI schemas (tests/kubernetes-api/README.md) as validators: the install
//! objects of `ship.rs` and every request and response of the fake Lease API are checked against them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The vendored OpenAPI document for `api_version` (`v1`, `apps/v1`, …).
pub fn document_path(api_version: &str) -> PathBuf {
    let directory = repository_root().join("tests/kubernetes-api");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if group.is_empty() {
        directory.join(format!("api__{version}_openapi.json"))
    } else {
        directory.join(format!("apis__{group}__{version}_openapi.json"))
    }
}

// ---------------------------------------------------------------------------------------------------
// The Kubernetes OpenAPI schemas (tests/kubernetes-api/README.md)
// ---------------------------------------------------------------------------------------------------

/// Validators by `apiVersion` and `kind`, compiled once from the vendored OpenAPI v3 documents, made
/// strict as the API server's strict field validation is: an object schema that lists its properties
/// allows no others (a misspelled field is an error, not silently dropped).
pub struct KubernetesSchemas {
    validators: Mutex<HashMap<(String, String), Arc<Validator>>>,
}

impl KubernetesSchemas {
    pub fn get() -> &'static KubernetesSchemas {
        static SCHEMAS: OnceLock<KubernetesSchemas> = OnceLock::new();
        SCHEMAS.get_or_init(|| KubernetesSchemas {
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// Every way `object` breaks the schema of its kind, as `KIND NAME: message at /path`.
    pub fn problems(&self, object: &Value) -> Vec<String> {
        let api_version = object["apiVersion"].as_str().unwrap().to_string();
        let kind = object["kind"].as_str().unwrap().to_string();
        let validator = self
            .validators
            .lock()
            .unwrap()
            .entry((api_version.clone(), kind.clone()))
            .or_insert_with(|| Arc::new(compile(&api_version, &kind)))
            .clone();
        let name = object["metadata"]["name"].as_str().unwrap_or("?");
        validator
            .iter_errors(object)
            .map(|error| format!("{kind} {name}: {error} at {}", error.instance_path()))
            .collect()
    }
}

pub fn compile(api_version: &str, kind: &str) -> Validator {
    let directory = repository_root().join("tests/kubernetes-api");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let document = if group == "monitoring.coreos.com" {
        custom_resource_schema(
            &directory.join("monitoring.coreos.com_servicemonitors.yaml"),
            kind,
            version,
        )
    } else {
        let file = if group.is_empty() {
            format!("api__{version}_openapi.json")
        } else {
            format!("apis__{group}__{version}_openapi.json")
        };
        let text = std::fs::read_to_string(directory.join(&file))
            .unwrap_or_else(|error| panic!("{file}: {error} (no schema for {api_version})"));
        let mut document: Value = serde_json::from_str(&text).unwrap();
        let name = document["components"]["schemas"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, schema)| {
                schema["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|kinds| {
                        kinds.contains(&json!({"group": group, "version": version, "kind": kind}))
                    })
            })
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| panic!("{file} has no schema for {kind}"));
        // Only the schemas; `paths` is not needed and is most of the document.
        document.as_object_mut().unwrap().remove("paths");
        document["components"]["schemas"]
            .as_object_mut()
            .unwrap()
            .values_mut()
            .for_each(strict);
        document["$ref"] = json!(format!("#/components/schemas/{name}"));
        document
    };
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .build(&document)
        .unwrap_or_else(|error| {
            panic!("the schema of {api_version} {kind} does not compile: {error}")
        })
}

/// The `openAPIV3Schema` of `kind` at `version` in a CustomResourceDefinition file.
fn custom_resource_schema(path: &Path, kind: &str, version: &str) -> Value {
    let definition: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(definition["spec"]["names"]["kind"], kind);
    let mut schema = definition["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == version)
        .map(|entry| entry["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("{} has no version {version}", path.display()));
    strict(&mut schema);
    schema
}

/// `additionalProperties: false` on every object schema that lists its properties and neither allows
/// more nor preserves unknown fields; walks the schema keywords only (a default value or a property
/// named `properties` is data, not a schema).
fn strict(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && map.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
    {
        map.insert("additionalProperties".into(), json!(false));
    }
    for (keyword, value) in map.iter_mut() {
        match keyword.as_str() {
            "properties" => value.as_object_mut().unwrap().values_mut().for_each(strict),
            "items" | "additionalProperties" | "not" => strict(value),
            "allOf" | "anyOf" | "oneOf" => {
                value.as_array_mut().unwrap().iter_mut().for_each(strict)
            }
            _ => {}
        }
    }
}
