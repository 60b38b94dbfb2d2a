//! The structural check: walks a JSON Schema generated from the `raw` types over a positioned YAML
//! tree and reports *every* mismatch (unknown key, wrong type, missing field, value not in an enum) at
//! the line and column of the offending key or value. What passes is turned into a `serde_json::Value`
//! that deserializes into the raw type, plus a table from field path to position for the semantic
//! checks that follow.
//!
//! Only the schema keywords `schemars` emits for the raw types are understood; an unknown keyword is
//! ignored (never a false error).
//!
//! Must not: judge values beyond their shape (that is `file` / `policies`).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::yaml::{Mark, Node, NodeKind, parse_bool, parse_integer};

/// One structural problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub mark: Mark,
    pub path: String,
    pub message: String,
}

/// Where each field path (`spec.windows[0].schedule`) was written.
#[derive(Debug, Clone, Default)]
pub struct Positions(HashMap<String, Mark>);

impl Positions {
    /// Whether the document wrote `path` at all (even with a wrong value).
    pub fn written(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }

    /// The position of `path`, or of its nearest written ancestor.
    pub fn of(&self, path: &str) -> Mark {
        let mut path = path;
        loop {
            if let Some(mark) = self.0.get(path) {
                return *mark;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.0.get("").copied().unwrap_or_default(),
            }
        }
    }
}

/// The outcome of a check: every problem, and the value with the offending fields and list items left
/// out (`None` when a required part is missing or wrong), so that the semantic checks can still look at
/// the rest of the document.
pub struct Checked {
    pub value: Option<Value>,
    pub positions: Positions,
    pub problems: Vec<Problem>,
}

/// Checks `node` against `schema` (a root schema with its `definitions`).
pub fn check(schema: &Value, node: &Node) -> Checked {
    let mut walk = Walk {
        root: schema,
        problems: Vec::new(),
        positions: Positions::default(),
    };
    let value = walk.node(schema, node, "");
    Checked {
        value,
        positions: walk.positions,
        problems: walk.problems,
    }
}

/// Joins a field path and a key.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

struct Walk<'s> {
    root: &'s Value,
    problems: Vec<Problem>,
    positions: Positions,
}

impl<'s> Walk<'s> {
    fn problem(&mut self, mark: Mark, path: &str, message: String) {
        self.problems.push(Problem {
            mark,
            path: path.to_string(),
            message,
        });
    }

    fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        // `$ref` chains are short; the bound only guards against a cyclic schema.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let name = reference.rsplit('/').next().unwrap_or_default();
            // Draft-07 keeps them under `definitions`, 2019-09 and later under `$defs`.
            let definitions = self
                .root
                .get("definitions")
                .or_else(|| self.root.get("$defs"));
            match definitions.and_then(|defs| defs.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn node(&mut self, schema: &'s Value, node: &Node, path: &str) -> Option<Value> {
        self.positions.0.insert(path.to_string(), node.mark);
        let schema = self.resolve(schema);
        match schema {
            Value::Bool(true) => return Some(untyped(node)),
            Value::Bool(false) => {
                self.problem(node.mark, path, "no value is allowed here".to_string());
                return None;
            }
            _ => {}
        }
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.branches(branches, node, path);
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            return self.enumeration(allowed, node, path);
        }
        if let Some(constant) = schema.get("const") {
            return self.enumeration(std::slice::from_ref(constant), node, path);
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Some(untyped(node)),
        };
        if node.is_null() && types.contains(&"null") {
            return Some(Value::Null);
        }
        for kind in &types {
            if let Some(value) = self.typed(schema, kind, node, path) {
                return value;
            }
        }
        let expected: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| describe_type(t))
            .collect();
        self.problem(
            node.mark,
            path,
            format!(
                "expected {}, found {}",
                expected.join(" or "),
                node.describe()
            ),
        );
        None
    }

    /// `Some(result)` when the node has the JSON type `kind` (the result carries nested problems);
    /// `None` when it is of another type.
    fn typed(
        &mut self,
        schema: &'s Value,
        kind: &str,
        node: &Node,
        path: &str,
    ) -> Option<Option<Value>> {
        match (&node.kind, kind) {
            (NodeKind::Scalar { value, plain }, _) => {
                if node.is_null() {
                    return None;
                }
                match kind {
                    "string" => Some(Some(Value::String(value.clone()))),
                    "boolean" if *plain => parse_bool(value).map(|b| Some(Value::Bool(b))),
                    "integer" if *plain => {
                        let number = parse_integer(value)?;
                        Some(
                            self.bounds(schema, number as f64, node, path)
                                .then(|| number.into()),
                        )
                    }
                    "number" if *plain => {
                        let number: f64 = value.parse().ok()?;
                        Some(
                            self.bounds(schema, number, node, path)
                                .then(|| serde_json::Number::from_f64(number).map(Value::Number))
                                .flatten(),
                        )
                    }
                    _ => None,
                }
            }
            (NodeKind::Sequence(items), "array") => {
                let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
                // A wrong item is reported and left out; the rest of the list stays usable.
                let values = items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| {
                        self.node(item_schema, item, &format!("{path}[{index}]"))
                    })
                    .collect();
                Some(Some(Value::Array(values)))
            }
            (NodeKind::Mapping(entries), "object") => {
                Some(self.mapping(schema, entries, node, path))
            }
            _ => None,
        }
    }

    fn bounds(&mut self, schema: &Value, number: f64, node: &Node, path: &str) -> bool {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            self.problem(node.mark, path, format!("must be at least {minimum}"));
            return false;
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            self.problem(node.mark, path, format!("must be at most {maximum}"));
            return false;
        }
        true
    }

    fn mapping(
        &mut self,
        schema: &'s Value,
        entries: &[(Node, Node)],
        node: &Node,
        path: &str,
    ) -> Option<Value> {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut object = Map::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut ok = true;
        for (key, value) in entries {
            let Some(name) = key.as_scalar().filter(|_| !key.is_null()) else {
                self.problem(
                    key.mark,
                    path,
                    format!("keys must be strings, found {}", key.describe()),
                );
                continue;
            };
            let field = child(path, name);
            if seen.contains(&name) {
                self.problem(key.mark, &field, format!("duplicate key `{name}`"));
                continue;
            }
            seen.push(name);
            let value_schema = match properties.and_then(|p| p.get(name)) {
                Some(property) => property,
                None => match additional {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        self.problem(key.mark, &field, unknown_field(name, &known));
                        continue;
                    }
                    Some(schema @ Value::Object(_)) => schema,
                    _ => &Value::Bool(true),
                },
            };
            // A wrong field is reported and left out.
            if let Some(converted) = self.node(value_schema, value, &field) {
                object.insert(name.to_string(), converted);
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !seen.contains(&name) {
                    self.problem(
                        node.mark,
                        &child(path, name),
                        format!("missing required field `{name}`"),
                    );
                }
                // Missing or wrong: without it the mapping is unusable.
                if !object.contains_key(name) {
                    ok = false;
                }
            }
        }
        ok.then_some(Value::Object(object))
    }

    fn enumeration(&mut self, allowed: &[Value], node: &Node, path: &str) -> Option<Value> {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        if let Some(text) = node.as_scalar().filter(|_| !node.is_null())
            && names.contains(&text)
        {
            return Some(Value::String(text.to_string()));
        }
        let found = match node.as_scalar() {
            Some(text) if !node.is_null() => format!("`{text}`"),
            _ => node.describe().to_string(),
        };
        self.problem(
            node.mark,
            path,
            format!("expected one of {}, found {found}", quoted_list(&names)),
        );
        None
    }

    fn branches(&mut self, branches: &'s [Value], node: &Node, path: &str) -> Option<Value> {
        let mut attempts = Vec::new();
        for branch in branches {
            let mut trial = Walk {
                root: self.root,
                problems: Vec::new(),
                positions: Positions::default(),
            };
            let value = trial.node(branch, node, path);
            if trial.problems.is_empty() {
                self.positions.0.extend(trial.positions.0);
                return value;
            }
            attempts.push((branch, trial));
        }
        // Report the branch that describes a value (not `null`) and got furthest.
        let best = attempts
            .into_iter()
            .filter(|(branch, _)| self.resolve(branch).get("type") != Some(&Value::from("null")))
            .min_by_key(|(_, trial)| {
                trial
                    .problems
                    .iter()
                    .filter(|p| p.message.starts_with("expected"))
                    .count()
            });
        if let Some((_, trial)) = best {
            self.positions.0.extend(trial.positions.0);
            self.problems.extend(trial.problems);
        } else {
            self.problem(node.mark, path, format!("unexpected {}", node.describe()));
        }
        None
    }
}

/// A value without a schema: core-schema typing of plain scalars.
fn untyped(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Scalar { .. } if node.is_null() => Value::Null,
        NodeKind::Scalar { value, plain: true } => {
            if let Some(b) = parse_bool(value) {
                Value::Bool(b)
            } else if let Some(i) = parse_integer(value) {
                i.into()
            } else {
                Value::String(value.clone())
            }
        }
        NodeKind::Scalar { value, .. } => Value::String(value.clone()),
        NodeKind::Sequence(items) => Value::Array(items.iter().map(untyped).collect()),
        NodeKind::Mapping(entries) => Value::Object(
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_scalar()?.to_string(), untyped(v))))
                .collect(),
        ),
    }
}

fn describe_type(kind: &str) -> &'static str {
    match kind {
        "string" => "a string",
        "boolean" => "a boolean (true or false)",
        "integer" => "an integer",
        "number" => "a number",
        "array" => "a list",
        "object" => "a mapping",
        _ => "a value",
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_field(name: &str, known: &[&str]) -> String {
    let suggestion = known
        .iter()
        .map(|k| (edit_distance(&name.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match suggestion {
        Some((_, closest)) => format!("unknown field `{name}` (did you mean `{closest}`?)"),
        None => format!(
            "unknown field `{name}`, expected one of {}",
            quoted_list(known)
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}
