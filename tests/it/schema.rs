//! The published JSON Schemas (schema/*.json) are generated from the config's wire types; this test
//! regenerates them and fails when the committed files are stale (`tagwatch schema` rewrites them).

use std::path::Path;

use tagwatch::commands::schema::{SCHEMA_DIR, schema_files};

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_DIR);
    for (name, generated) in schema_files() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "schema/{} is stale: run `cargo run -- schema` and commit the result",
            name.display()
        );
    }
}

#[test]
fn schemas_describe_the_documented_keys() {
    let config: serde_json::Value = serde_json::from_str(&schema_files()[0].1).unwrap();
    let properties = config["properties"].as_object().unwrap();
    for key in ["registries", "repositories", "policies", "daemon"] {
        assert!(properties.contains_key(key), "{key}");
    }
    assert_eq!(config["additionalProperties"], false);
    let policy: serde_json::Value = serde_json::from_str(&schema_files()[1].1).unwrap();
    assert_eq!(policy["$schema"], "http://json-schema.org/draft-07/schema#");
    let spec = &policy["definitions"]["RawTagPolicySpec"]["properties"];
    for key in [
        "image",
        "semver",
        "filter",
        "order",
        "direction",
        "exclude",
        "digest",
        "interval",
        "windows",
        "minAge",
    ] {
        assert!(spec.get(key).is_some(), "{key}");
    }
}

/// The structural check understands every keyword the generated schemas use, so a change to the raw
/// types cannot silently turn a check off.
#[test]
fn the_structural_check_understands_every_keyword_in_use() {
    const UNDERSTOOD: &[&str] = &[
        "$ref",
        "anyOf",
        "oneOf",
        "enum",
        "const",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
    ];
    const ANNOTATIONS: &[&str] = &[
        "$schema",
        "title",
        "description",
        "format",
        "definitions",
        "default",
    ];
    fn walk(schema: &serde_json::Value, found: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            return;
        };
        for (key, value) in object {
            found.push(key.clone());
            match key.as_str() {
                "properties" | "definitions" => {
                    for child in value.as_object().unwrap().values() {
                        walk(child, found);
                    }
                }
                "anyOf" | "oneOf" => value
                    .as_array()
                    .unwrap()
                    .iter()
                    .for_each(|c| walk(c, found)),
                "items" | "additionalProperties" => walk(value, found),
                _ => {}
            }
        }
    }
    for (name, text) in schema_files() {
        let mut found = Vec::new();
        walk(&serde_json::from_str(&text).unwrap(), &mut found);
        for keyword in found {
            assert!(
                UNDERSTOOD.contains(&keyword.as_str()) || ANNOTATIONS.contains(&keyword.as_str()),
                "{}: keyword {keyword} is not understood by config::schema_check",
                name.display()
            );
        }
    }
}
