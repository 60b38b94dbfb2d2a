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
    let spec = &policy["$defs"]["RawTagPolicySpec"]["properties"];
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
