//! A YAML document as a tree of nodes that remember where they were written (line and column of each
//! key and value), built from `saphyr-parser`'s span-carrying events. Config validation walks this tree
//! so every problem can name its exact position.
//!
//! Must not: interpret values (that is the schema check), or expand aliases without a bound.

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Nodes one file may expand to, aliases included (docs/security.md: alias expansion is bounded).
pub const MAX_NODES: usize = 100_000;

/// Line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar { value: String, plain: bool },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub mark: Mark,
    pub message: String,
}

impl Node {
    /// A plain scalar that YAML's core schema reads as null (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// What the node is, in words, for error messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
            NodeKind::Scalar { .. } if self.is_null() => "nothing (null)",
            NodeKind::Scalar { plain: false, .. } => "a string",
            NodeKind::Scalar { value, .. } => {
                if parse_bool(value).is_some() {
                    "a boolean"
                } else if parse_integer(value).is_some() {
                    "an integer"
                } else if value.parse::<f64>().is_ok() {
                    "a number"
                } else {
                    "a string"
                }
            }
        }
    }
}

/// YAML 1.2 core schema booleans.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// YAML 1.2 core schema integers (decimal, `0o` octal, `0x` hex).
pub fn parse_integer(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses every document of `text`. An empty document (nothing, or a lone null) yields `None` in its
/// place so callers can skip it and still count documents.
pub fn parse_documents(text: &str) -> Result<Vec<Option<Node>>, YamlError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        documents: Vec::new(),
        nodes: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| YamlError {
            mark: Mark {
                line: error.marker().line(),
                column: error.marker().col() + 1,
            },
            message: error.info().to_string(),
        })?;
        let mark = Mark {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        builder.event(event, mark)?;
    }
    Ok(builder.documents)
}

enum Open {
    Sequence(Vec<Node>, Mark, usize),
    Mapping(Vec<(Node, Node)>, Option<Node>, Mark, usize),
}

struct Builder {
    stack: Vec<Open>,
    anchors: Vec<(usize, Node)>,
    documents: Vec<Option<Node>>,
    nodes: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, mark: Mark) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(_) => self.anchors.clear(),
            Event::Scalar(value, style, anchor, _tag) => {
                let node = Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    mark,
                };
                self.finish(node, anchor, mark)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Open::Sequence(Vec::new(), mark, anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.stack
                    .push(Open::Mapping(Vec::new(), None, mark, anchor))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Sequence(items, mark, anchor)) => (
                        Node {
                            kind: NodeKind::Sequence(items),
                            mark,
                        },
                        anchor,
                    ),
                    Some(Open::Mapping(entries, _, mark, anchor)) => (
                        Node {
                            kind: NodeKind::Mapping(entries),
                            mark,
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.finish(node, anchor, mark)?;
            }
            Event::Alias(id) => {
                let anchored = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(anchor, _)| *anchor == id)
                    .map(|(_, node)| node)
                    .ok_or_else(|| YamlError {
                        mark,
                        message: "alias to an unknown anchor".to_string(),
                    })?;
                // Count before cloning, so a bomb is refused before it is built.
                self.nodes += count(anchored);
                if self.nodes > MAX_NODES {
                    return Err(too_large(mark));
                }
                let node = anchored.clone();
                self.finish(node, 0, mark)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize, mark: Mark) -> Result<(), YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(too_large(mark));
        }
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => {
                self.documents
                    .push(if node.is_null() { None } else { Some(node) });
            }
            Some(Open::Sequence(items, ..)) => items.push(node),
            Some(Open::Mapping(entries, pending, ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

fn too_large(mark: Mark) -> YamlError {
    YamlError {
        mark,
        message: format!(
            "document too large: more than {MAX_NODES} nodes (aliases count each time they are used)"
        ),
    }
}

fn count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Sequence(items) => 1 + items.iter().map(count).sum::<usize>(),
        NodeKind::Mapping(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_line_and_column() {
        let docs = parse_documents("a: 1\nb:\n  c: [x, 'y']\n---\n---\nz: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        let first = docs[0].as_ref().unwrap();
        let c = first.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.mark, Mark { line: 3, column: 6 });
        let NodeKind::Sequence(items) = &c.kind else {
            panic!("sequence expected")
        };
        assert_eq!(
            items[1].mark,
            Mark {
                line: 3,
                column: 10
            }
        );
        assert!(docs[1].is_none());
        assert_eq!(docs[2].as_ref().unwrap().get("z").unwrap().mark.line, 6);
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let error = parse_documents(&text).unwrap_err();
        assert!(error.message.contains("too large"), "{error}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let error = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(error.mark.line >= 1);
    }
}
