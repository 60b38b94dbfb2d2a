//! The user guide (`docs/`) stays true to the code:
//!
//! - `docs/reference/configuration.md` and `docs/reference/policy.md` are rendered from the committed
//!   JSON Schemas (`schema/*.json`, themselves generated from the config's wire types) and must equal
//!   what is committed;
//! - every policy in `docs/cookbook.md` is an included file that `tagwatch validate` passes, and every
//!   `tagwatch` command the cookbook shows prints what the cookbook says it prints;
//! - `docs/metrics.md` lists every metric the daemon registers, with its type and labels, and no other;
//! - every relative link in a Markdown file of the repository leads to a file (and heading) that exists,
//!   and the user guide names nothing outside the repository.
//!
//! `TAGWATCH_BLESS=1 cargo nextest run --test it docs::` rewrites the generated pages and the cookbook's
//! included files from their sources; review the diff and commit it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tagwatch::daemon::metrics::{
    BumpLabels, ErrorLabels, ImageLabels, Metrics, RegistryLabels, RepositoryKind,
    RepositoryLabels, RepositoryOutcome, WebhookLabels,
};

const HOW_TO_BLESS: &str = "run `TAGWATCH_BLESS=1 cargo nextest run --test it docs::` (or `TAGWATCH_BLESS=1 cargo test --test it docs::`) and commit the result";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bless() -> bool {
    std::env::var_os("TAGWATCH_BLESS").is_some_and(|value| value == "1")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|error| panic!("reading {relative}: {error}"))
}

/// Compares `relative` with `expected`; with `TAGWATCH_BLESS=1` writes it instead. Returns the path when
/// it is stale (and not blessed).
fn compare_or_bless(relative: &str, expected: &str) -> Option<String> {
    let path = root().join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == expected {
        return None;
    }
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, expected).unwrap();
        return None;
    }
    Some(relative.to_string())
}

// ---------------------------------------------------------------------------------------------------
// Reference pages from the JSON Schemas.

struct ReferencePage {
    schema: &'static str,
    page: &'static str,
    title: &'static str,
    preamble: &'static str,
}

const REFERENCE_PAGES: [ReferencePage; 2] = [
    ReferencePage {
        schema: "schema/tagwatch.schema.json",
        page: "docs/reference/configuration.md",
        title: "Configuration reference: `tagwatch.yaml`",
        preamble: "`tagwatch.yaml` names the registries that need settings, the config repositories tagwatch keeps up to \
date, where the policies are, the daemon's settings and where events are posted. Commands read `./tagwatch.yaml` \
unless `--config FILE` names another. File paths in it are relative to its own directory. Secrets are never written \
in it: it names the environment variables (`…Env`) or files (`…File`) that hold them ([security model](../security.md)).\n\n\
Unknown keys are errors. `tagwatch validate` checks a config and every policy it names and reports every problem as `FILE:LINE:COL: FIELD: \
message`. Editors validate and complete it with `schema/tagwatch.schema.json` (first line \
`# yaml-language-server: $schema=PATH/schema/tagwatch.schema.json`). A complete example: `deploy/tagwatch.yaml`; \
policy documents: [policy reference](policy.md).",
    },
    ReferencePage {
        schema: "schema/policy.schema.json",
        page: "docs/reference/policy.md",
        title: "Policy reference: `TagPolicy`",
        preamble: "A policy says which tags of one image are candidates and which one wins. Policy documents live in \
the files and directories that `tagwatch.yaml`'s `policies` names; a file may hold several documents (`---`). Flux \
`ImagePolicy` and `ImageRepository` objects in those paths are read as policies too ([migrating from \
Flux](../migrating.md#from-flux)).\n\n\
How a tag is chosen, in order: tags outside the OCI tag grammar are dropped; `exclude` removes tags; `filter.pattern` \
must match (and `extract` builds the key); then `semver` (the key must be a version in the range) or `order` ranks \
the rest, and the best wins. Unknown keys are errors. `minAge` and `digest` are checked against the registry for the winner; `windows` decide \
when the bump is written. Try a policy offline with `tagwatch resolve FILE --tags-file TAGS -v`. Recipes: \
[policy cookbook](../cookbook.md). Editors: `schema/policy.schema.json`.",
    },
];

/// GitHub's heading anchors: lower case, only letters, digits, `-`, `_` and spaces (spaces become `-`).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn escape_cell(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn inline_json(value: &Value) -> String {
    match value {
        Value::String(text) => format!("`{text}`"),
        other => format!("`{other}`"),
    }
}

struct Renderer<'a> {
    schema: &'a Value,
    /// Definition name → the section path where it is described.
    described: HashMap<String, String>,
    /// Shared types found in the object being rendered, described after it.
    pending_shared: Vec<(String, Value)>,
    out: String,
}

/// The object definition a property refers to (directly, as an `Option`, or as list items).
fn referenced_definition(property: &Value) -> Option<String> {
    let inner = property
        .get("anyOf")
        .and_then(Value::as_array)
        .and_then(|branches| branches.iter().find(|b| b.get("$ref").is_some()))
        .unwrap_or(property);
    let inner = inner.get("items").unwrap_or(inner);
    let reference = inner.get("$ref")?.as_str()?;
    Some(reference.strip_prefix("#/definitions/")?.to_string())
}

/// What a property is, for the table.
struct Shape {
    kind: String,
    /// An object to describe in its own section: (its section path, its schema, the definition name).
    nested: Option<(String, Value, Option<String>)>,
}

impl<'a> Renderer<'a> {
    fn definition(&self, reference: &str) -> (String, &'a Value) {
        let name = reference
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        (name.to_string(), &self.schema["definitions"][name])
    }

    fn section_link(path: &str) -> String {
        format!("[object](#{})", slug(&format!("`{path}`")))
    }

    /// The shape of `schema` found at `path` (`[]` appended for list items).
    fn shape(&self, schema: &Value, path: &str) -> Shape {
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            let real: Vec<&Value> = branches
                .iter()
                .filter(|branch| branch.get("type") != Some(&Value::from("null")))
                .collect();
            assert_eq!(
                real.len(),
                1,
                "{path}: anyOf with several non-null branches"
            );
            return self.shape(real[0], path);
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let (name, definition) = self.definition(reference);
            if let Some(values) = definition.get("enum").and_then(Value::as_array) {
                return Shape {
                    kind: enum_kind(values),
                    nested: None,
                };
            }
            if let Some(first) = self.described.get(&name) {
                return Shape {
                    kind: Self::section_link(first),
                    nested: None,
                };
            }
            return Shape {
                kind: Self::section_link(path),
                nested: Some((path.to_string(), definition.clone(), Some(name))),
            };
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return Shape {
                kind: enum_kind(values),
                nested: None,
            };
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            other => panic!("{path}: no type in {other}"),
        };
        let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        assert_eq!(types.len(), 1, "{path}: several types {types:?}");
        match types[0] {
            "string" | "boolean" => Shape {
                kind: types[0].to_string(),
                nested: None,
            },
            "integer" | "number" => {
                let mut kind = types[0].to_string();
                if let Some(minimum) = schema.get("minimum") {
                    write!(kind, " ≥ {minimum}").unwrap();
                }
                if let Some(maximum) = schema.get("maximum") {
                    write!(kind, " ≤ {maximum}").unwrap();
                }
                Shape { kind, nested: None }
            }
            "array" => {
                let item = self.shape(&schema["items"], &format!("{path}[]"));
                Shape {
                    kind: format!("list of {}", item.kind.replace("[object]", "[objects]")),
                    nested: item.nested,
                }
            }
            "object" => match schema.get("additionalProperties") {
                Some(values) if values.is_object() => Shape {
                    kind: format!("map of string to {}", self.shape(values, path).kind),
                    nested: None,
                },
                _ => Shape {
                    kind: Self::section_link(path),
                    nested: Some((path.to_string(), schema.clone(), None)),
                },
            },
            other => panic!("{path}: type {other} not rendered"),
        }
    }

    /// One section: a heading, the object's own description, and a table of its keys; then the
    /// sections of the objects it holds.
    fn object(&mut self, path: &str, heading: &str, schema: &Value) {
        let properties = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: an object without properties"));
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        writeln!(self.out, "## {heading}\n").unwrap();
        if let Some(description) = schema.get("description").and_then(Value::as_str)
            && !path.is_empty()
        {
            writeln!(self.out, "{}\n", escape_cell(description)).unwrap();
        }
        assert_eq!(
            schema.get("additionalProperties"),
            Some(&Value::Bool(false)),
            "{path}: the pages say unknown keys are errors everywhere"
        );
        // A type shared by several keys of this object is described once, as `path.<key>`.
        let mut uses: HashMap<String, usize> = HashMap::new();
        for property in properties.values() {
            if let Some(name) = referenced_definition(property) {
                *uses.entry(name).or_default() += 1;
            }
        }
        for (name, count) in uses {
            if count > 1 && !self.described.contains_key(&name) {
                let shared = format!("{path}.<key>");
                let definition = self.schema["definitions"][&name].clone();
                self.described.insert(name, shared.clone());
                self.pending_shared.push((shared, definition));
            }
        }
        writeln!(
            self.out,
            "| key | type | required | default | description |\n| --- | --- | --- | --- | --- |"
        )
        .unwrap();
        let mut nested = Vec::new();
        for (key, property) in properties {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let shape = self.shape(property, &child);
            if let Some((section, schema, definition)) = shape.nested {
                if let Some(name) = &definition {
                    self.described.insert(name.clone(), section.clone());
                }
                nested.push((section, schema));
            }
            // A `$ref` property carries no description of its own: the type's is used.
            let description = property
                .get("description")
                .or_else(|| {
                    let reference = property.get("$ref")?.as_str()?;
                    self.definition(reference).1.get("description")
                })
                .and_then(Value::as_str)
                .unwrap_or("");
            assert!(
                !description.is_empty(),
                "{child} has no description: add a doc comment to its field in src/config/raw.rs"
            );
            writeln!(
                self.out,
                "| `{key}` | {} | {} | {} | {} |",
                shape.kind,
                if required.contains(key.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                property.get("default").map_or("—".to_string(), inline_json),
                escape_cell(description),
            )
            .unwrap();
        }
        self.out.push('\n');
        nested.append(&mut self.pending_shared);
        for (section, schema) in nested {
            self.object(&section, &format!("`{section}`"), &schema);
        }
    }
}

fn enum_kind(values: &[Value]) -> String {
    let names: Vec<String> = values.iter().map(inline_json).collect();
    format!("one of {}", names.join(", "))
}

fn render_reference(page: &ReferencePage) -> String {
    let schema: Value = serde_json::from_str(&read(page.schema)).unwrap();
    let mut renderer = Renderer {
        schema: &schema,
        described: HashMap::new(),
        pending_shared: Vec::new(),
        out: String::new(),
    };
    writeln!(
        renderer.out,
        "<!-- Generated from {} by tests/it/docs.rs; do not edit. To regenerate: `cargo run -- schema`, then\n     {HOW_TO_BLESS}. -->\n",
        page.schema
    )
    .unwrap();
    writeln!(renderer.out, "# {}\n", page.title).unwrap();
    writeln!(renderer.out, "{}\n", page.preamble).unwrap();
    writeln!(
        renderer.out,
        "Types are YAML's: a `string` key takes any scalar as written (`range: 6` is the text `6`); durations \
are written like `30s`, `5m`, `1h30m`. \"—\" in the default column: absent means nothing is set (or, where the \
description says so, a default that depends on other keys).\n"
    )
    .unwrap();
    let heading = if page.page.ends_with("configuration.md") {
        "Top level".to_string()
    } else {
        "Document".to_string()
    };
    renderer.object("", &heading, &schema);
    let mut text = renderer.out.trim_end().to_string();
    text.push('\n');
    text
}

#[test]
fn reference_pages_are_generated_from_the_committed_schemas() {
    let mut stale = Vec::new();
    for page in &REFERENCE_PAGES {
        let rendered = render_reference(page);
        // Every key of the schema is in the page, with a description.
        let schema: Value = serde_json::from_str(&read(page.schema)).unwrap();
        for definition in schema["definitions"].as_object().unwrap().values() {
            for key in definition["properties"]
                .as_object()
                .into_iter()
                .flat_map(|properties| properties.keys())
            {
                assert!(
                    rendered.contains(&format!("| `{key}` |")),
                    "{}: key {key} missing",
                    page.page
                );
            }
        }
        stale.extend(compare_or_bless(page.page, &rendered));
    }
    assert!(
        stale.is_empty(),
        "{} stale: {HOW_TO_BLESS}",
        stale.join(", ")
    );
}

#[test]
fn the_reference_shows_types_defaults_and_allowed_values() {
    let configuration = render_reference(&REFERENCE_PAGES[0]);
    for row in [
        "| `interval` | string | no | `5m` |",
        "| `listen` | string | no | `127.0.0.1:8080` |",
        "| `maxConcurrency` | integer ≥ 1 | no | `8` |",
        "| `mode` | one of `push`, `pull-request` | no | `push` |",
        "| `kind` | one of `github`, `gitlab`, `gitea`, `forgejo` | yes | — |",
        "| `registries` | list of [objects](#registries) | no | — |",
    ] {
        assert!(configuration.contains(row), "{row}\n{configuration}");
    }
    assert!(configuration.contains("## `repositories[].writeBack.merge`"));
    let policy = render_reference(&REFERENCE_PAGES[1]);
    for row in [
        "| `order` | one of `numerical`, `alphabetical`, `newest` | no | — |",
        "| `minAge` | string | no | `0s` |",
        "| `spec` | [object](#spec) | yes | — |",
        "| `annotations` | map of string to string | no | — |",
    ] {
        assert!(policy.contains(row), "{row}\n{policy}");
    }
}

// ---------------------------------------------------------------------------------------------------
// The cookbook.

const COOKBOOK: &str = "docs/cookbook.md";
const INCLUDE: &str = "<!-- include: ";
/// The configs whose policies the cookbook may include; each must validate.
const COOKBOOK_CONFIGS: [(&str, &str); 2] = [
    ("examples/cookbook/tagwatch.yaml", "examples/cookbook/"),
    ("examples/promotion/tagwatch.yaml", "examples/promotion/"),
];

/// An included file as the cookbook shows it: without the editor's schema line.
fn shown(file: &str) -> String {
    read(file)
        .lines()
        .filter(|line| !line.starts_with("# yaml-language-server:"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The fenced blocks of a Markdown text: (info string, body, the line before the opening fence).
fn fenced_blocks(text: &str) -> Vec<(String, String, String)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                body.push_str(inner);
                body.push('\n');
            }
            blocks.push((info.trim().to_string(), body, previous.to_string()));
            previous = "";
        } else {
            previous = line;
        }
    }
    blocks
}

/// The cookbook with every included block replaced by its file's current text.
fn cookbook_with_includes(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        if let Some(rest) = line.strip_prefix(INCLUDE) {
            let file = rest.trim_end_matches("-->").trim();
            let fence = lines.next().expect("a fence after an include");
            assert_eq!(
                fence, "```yaml",
                "{COOKBOOK}: {line} must be followed by ```yaml"
            );
            out.push_str(fence);
            out.push('\n');
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
            }
            out.push_str(&shown(file));
            out.push_str("```\n");
        }
    }
    out
}

#[test]
fn cookbook_policies_are_included_files_that_validate() {
    let text = read(COOKBOOK);
    let expected = cookbook_with_includes(&text);
    if let Some(stale) = compare_or_bless(COOKBOOK, &expected) {
        panic!("{stale}: an included block differs from its file: {HOW_TO_BLESS}");
    }
    let text = expected;
    let mut included = Vec::new();
    for (info, body, before) in fenced_blocks(&text) {
        if info == "yaml" && body.contains("kind: TagPolicy") {
            let file = before
                .strip_prefix(INCLUDE)
                .map(|rest| rest.trim_end_matches("-->").trim().to_string())
                .unwrap_or_else(|| {
                    panic!("{COOKBOOK}: a policy that is not an included file:\n{body}")
                });
            assert!(
                COOKBOOK_CONFIGS
                    .iter()
                    .any(|(_, directory)| file.starts_with(directory)),
                "{file}: included policies must belong to one of {COOKBOOK_CONFIGS:?}"
            );
            included.push(file);
        }
    }
    assert!(included.len() >= 7, "{included:?}");
    // Every policy file of the cookbook's config is shown.
    for entry in std::fs::read_dir(root().join("examples/cookbook/policies")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let file = format!("examples/cookbook/policies/{name}");
        assert!(included.contains(&file), "{file} is not in {COOKBOOK}");
    }
    for (config, _) in COOKBOOK_CONFIGS {
        let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
            .args(["--config", config, "validate"])
            .current_dir(root())
            .env_clear()
            .env("GIT_TOKEN", "x")
            .env("GH_TOKEN", "x")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{config}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every complete policy document shown in the user guide (a `yaml` block starting with `apiVersion` and
/// holding `kind: TagPolicy`) loads without a problem.
#[test]
fn every_policy_shown_in_the_guide_is_valid() {
    let mut checked = 0;
    for file in markdown_files()
        .into_iter()
        .filter(|file| file.starts_with(root().join("docs")))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        for (info, body, before) in fenced_blocks(&text) {
            // Included files are validated with their own configs (the cookbook test).
            if before.starts_with(INCLUDE) {
                continue;
            }
            let document = body
                .lines()
                .skip_while(|line| line.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            if info != "yaml"
                || !document.starts_with("apiVersion:")
                || !body.contains("kind: TagPolicy")
            {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("policies")).unwrap();
            std::fs::write(dir.path().join("policies/p.yaml"), &body).unwrap();
            // Policies may name the repositories of the examples.
            std::fs::write(
                dir.path().join("tagwatch.yaml"),
                "repositories:\n  - { name: staging, url: file:///srv/staging.git }\n  - { name: prod, url: file:///srv/prod.git }\npolicies: [policies/]\n",
            )
            .unwrap();
            let environment = tagwatch::environment::Environment::from_pairs::<&str, &str>([]);
            if let Err(problems) = tagwatch::config::Config::load(
                Some(&dir.path().join("tagwatch.yaml")),
                &environment,
            ) {
                panic!(
                    "{}: a policy shown does not validate:\n{body}\n{:?}",
                    file.strip_prefix(root()).unwrap().display(),
                    problems
                        .0
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} policies found");
}

/// Every `$ tagwatch …` line of a `console` block in the user guide is run from the repository root,
/// and prints (on stdout) exactly the lines that follow it.
#[test]
fn commands_shown_in_the_guide_print_what_the_guide_says() {
    let mut ran = 0;
    for page in [COOKBOOK, "docs/getting-started.md"] {
        for (info, body, _) in fenced_blocks(&read(page)) {
            if info != "console" {
                continue;
            }
            let mut commands: Vec<(String, String)> = Vec::new();
            for line in body.lines() {
                if let Some(command) = line.strip_prefix("$ ") {
                    commands.push((command.to_string(), String::new()));
                } else if let Some((_, expected)) = commands.last_mut() {
                    expected.push_str(line);
                    expected.push('\n');
                }
            }
            for (command, expected) in commands {
                let words: Vec<&str> = command.split_whitespace().collect();
                if words[0] != "tagwatch" {
                    continue;
                }
                assert!(
                    !command.contains(['"', '\'', '|', '>', '<', '$', '`']),
                    "{page}: keep shown commands free of shell syntax: {command}"
                );
                let output = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
                    .args(&words[1..])
                    .current_dir(root())
                    .env_clear()
                    .env("GIT_TOKEN", "x")
                    .env("GH_TOKEN", "x")
                    .output()
                    .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&output.stdout),
                    expected,
                    "{page}: `{command}` (stderr: {})",
                    String::from_utf8_lossy(&output.stderr)
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 8, "only {ran} commands found");
}

// ---------------------------------------------------------------------------------------------------
// Metrics.

/// Every family of the daemon's registry, each with one sample so its labels show: name → (type, labels).
fn exported_metrics() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let metrics = Metrics::default();
    let s = String::from;
    metrics
        .registry_requests
        .get_or_create(&RegistryLabels {
            registry: s("r"),
            outcome: s("o"),
        })
        .inc();
    metrics
        .tag_listings
        .get_or_create(&ImageLabels {
            image: s("i"),
            outcome: s("o"),
        })
        .inc();
    metrics
        .bumps
        .get_or_create(&BumpLabels {
            repository: s("r"),
            policy: s("p"),
        })
        .inc();
    metrics
        .commits
        .get_or_create(&RepositoryLabels { repository: s("r") })
        .inc();
    metrics
        .pushes
        .get_or_create(&RepositoryOutcome {
            repository: s("r"),
            outcome: s("o"),
        })
        .inc();
    metrics
        .pull_requests
        .get_or_create(&RepositoryKind {
            repository: s("r"),
            kind: s("k"),
        })
        .inc();
    metrics
        .webhook_events
        .get_or_create(&WebhookLabels {
            endpoint: s("e"),
            outcome: s("o"),
        })
        .inc();
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            repository: s("r"),
            class: s("c"),
        })
        .inc();
    metrics
        .reconcile_duration
        .get_or_create(&RepositoryLabels { repository: s("r") })
        .observe(0.1);
    metrics.push_to_commit.observe(0.1);
    metrics
        .targets
        .get_or_create(&RepositoryKind {
            repository: s("r"),
            kind: s("k"),
        })
        .set(1);
    metrics
        .last_success
        .get_or_create(&RepositoryLabels { repository: s("r") })
        .set(1.0);
    metrics.ready.set(1);
    let text = Metrics::encode(&metrics.registry());
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap().to_string();
            let kind = words.next().unwrap().to_string();
            let shown = if kind == "counter" {
                format!("{name}_total")
            } else {
                name
            };
            families.insert(shown, (kind, BTreeSet::new()));
        }
    }
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((name, labels)) = line.split_once('{') else {
            continue;
        };
        let family = families
            .iter_mut()
            .filter(|(family, _)| {
                name == family.as_str()
                    || name
                        .strip_prefix(family.as_str())
                        .is_some_and(|suffix| ["_bucket", "_sum", "_count"].contains(&suffix))
            })
            .map(|(_, value)| value)
            .next();
        if let Some((_, names)) = family {
            for pair in labels
                .trim_end_matches(|c| c != '}')
                .trim_end_matches('}')
                .split(',')
            {
                let label = pair.split('=').next().unwrap();
                if label != "le" {
                    names.insert(label.to_string());
                }
            }
        }
    }
    families
}

#[test]
fn the_metrics_page_lists_every_metric_with_its_type_and_labels() {
    let exported = exported_metrics();
    assert!(exported.len() >= 13, "{exported:?}");
    let page = read("docs/metrics.md");
    let mut documented: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in page.lines().filter(|line| line.starts_with("| `tagwatch_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let kind = cells[2].to_string();
        let labels = cells[3]
            .split(',')
            .map(|label| label.trim().trim_matches('`').to_string())
            .filter(|label| !label.is_empty() && label != "—")
            .collect();
        documented.insert(name, (kind, labels));
    }
    for (name, (kind, labels)) in &exported {
        let Some((documented_kind, documented_labels)) = documented.get(name) else {
            panic!("docs/metrics.md: {name} ({kind}) is not listed");
        };
        assert_eq!(documented_kind, kind, "docs/metrics.md: type of {name}");
        if !labels.is_empty() {
            assert_eq!(
                documented_labels, labels,
                "docs/metrics.md: labels of {name}"
            );
        }
    }
    for name in documented.keys() {
        assert!(
            exported.contains_key(name),
            "docs/metrics.md lists {name}, which the daemon does not export"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Links, and nothing outside the repository.

/// The Markdown files of the repository, outside `target/` and vendored third-party trees.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(directory: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().into_string().unwrap_or_default();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(&path, found);
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(root(), &mut found);
    found.sort();
    found
}

/// Text outside fenced blocks and code spans, where links live.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        let base = slug(heading);
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

#[test]
fn every_relative_link_in_the_markdown_files_resolves() {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = Vec::new();
    let files = markdown_files();
    assert!(files.len() > 10);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for capture in link.captures_iter(&prose(&text)) {
            let target = &capture[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let shown = file.strip_prefix(root()).unwrap().display();
            if !resolved.exists() {
                broken.push(format!("{shown}: {target}: no such file"));
                continue;
            }
            if !resolved.starts_with(root()) || resolved.canonicalize().is_err() {
                broken.push(format!("{shown}: {target}: outside the repository"));
                continue;
            }
            if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let target_text = std::fs::read_to_string(&resolved).unwrap();
                if !anchors(&target_text).contains(anchor) {
                    broken.push(format!("{shown}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_guide_names_nothing_outside_the_repository() {
    // `/work/` as an absolute path (the machine's), not a folder of the repository (`fuzz/work/`).
    let outside = regex::Regex::new(r"\bSPEC\b|\.\./shared|(^|[^\w.-])/work/").unwrap();
    let mut found = Vec::new();
    let mut pages: Vec<PathBuf> = markdown_files()
        .into_iter()
        .filter(|file| file.starts_with(root().join("docs")))
        .collect();
    pages.push(root().join("README.md"));
    for file in pages {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if outside.is_match(line) {
                found.push(format!(
                    "{}:{}: {line}",
                    file.strip_prefix(root()).unwrap().display(),
                    number + 1
                ));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_guide_index_links_every_page_of_the_guide() {
    let index = read("docs/README.md");
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") && name != "README.md" {
            assert!(
                index.contains(&format!("]({name}")),
                "docs/README.md does not link {name}"
            );
        }
    }
    for name in [
        "reference/configuration.md",
        "reference/policy.md",
        "design/README.md",
    ] {
        assert!(
            index.contains(&format!("]({name}")),
            "docs/README.md does not link {name}"
        );
    }
}
