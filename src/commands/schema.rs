//! `tagwatch schema [--dir DIR]`: write the JSON Schemas of `tagwatch.yaml` and of a TagPolicy document,
//! generated from the config's wire types, for editors (yaml-language-server) to validate with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::config::{config_schema, policy_schema};

/// Where the committed schemas live, relative to the repository root.
pub const SCHEMA_DIR: &str = "schema";

/// The schema files and their contents, as committed.
pub fn schema_files() -> Vec<(PathBuf, String)> {
    let render = |value: serde_json::Value| {
        let mut text = serde_json::to_string_pretty(&value).expect("schema serializes");
        text.push('\n');
        text
    };
    vec![
        (
            PathBuf::from("tagwatch.schema.json"),
            render(config_schema()),
        ),
        (PathBuf::from("policy.schema.json"), render(policy_schema())),
    ]
}

pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in schema_files() {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
