//! A located YAML tree: what the rewriter needs to know about a document and nothing more.
//!
//! Built from `saphyr-parser` events. The parser reports positions in *characters*; this module converts
//! them to *byte* offsets once, so every span handed out is a byte range into the original text.
//! Must not: resolve aliases by copying (an alias stays an [`Node::Alias`] pointing at its anchor), or
//! re-serialize anything.

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted; deeper documents are refused rather than walked recursively.
const MAX_DEPTH: usize = 256;

/// How a scalar is written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

impl From<ScalarStyle> for Style {
    fn from(style: ScalarStyle) -> Self {
        match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        }
    }
}

/// A scalar with its decoded value and where its source text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub value: String,
    pub style: Style,
    /// Byte range where the decoded value is written verbatim (inside the quotes; for a block scalar, its
    /// one content line). `None` when the value is not a verbatim copy of one stretch of source (escapes,
    /// line folding, several lines): such a scalar is located but cannot be edited byte-exactly.
    pub content: Option<Range<usize>>,
    /// Byte offset where the parser says the scalar (or its properties) starts.
    pub start: usize,
    /// 1-based line of the scalar's first byte.
    pub line: usize,
    /// Anchor id (0 when the scalar has no anchor).
    pub anchor: usize,
    /// Whether the scalar carries an explicit tag (`!!str`, `!foo`).
    pub tagged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
    /// An alias (`*name`) to the node anchored with this id.
    Alias {
        anchor: usize,
        span: Range<usize>,
    },
}

impl Node {
    /// The value of `key` in a mapping whose keys are plain strings.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Mapping(entries) => entries.iter().find_map(|(k, v)| match k {
                Node::Scalar(scalar) if scalar.value == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match self {
            Node::Scalar(scalar) => Some(scalar),
            _ => None,
        }
    }
}

/// One document of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub root: Node,
}

/// A parsed stream: its documents and the scalars that anchors name, so aliases can be followed.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub documents: Vec<Document>,
    /// Anchor id → the anchored scalar (anchors on collections are not needed to locate image fields).
    pub anchored_scalars: HashMap<usize, Scalar>,
}

/// Why a text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Converts the parser's character indices into byte offsets.
struct Offsets {
    /// Byte offset of each character (plus one past the end); empty when the text is ASCII.
    bytes: Vec<usize>,
    len: usize,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let bytes = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices()
                .map(|(offset, _)| offset)
                .chain(std::iter::once(text.len()))
                .collect()
        };
        Offsets {
            bytes,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.bytes.is_empty() {
            char_index.min(self.len)
        } else {
            self.bytes.get(char_index).copied().unwrap_or(self.len)
        }
    }

    fn range(&self, span: Span) -> Range<usize> {
        self.byte(span.start.index())..self.byte(span.end.index())
    }
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Result<Stream, ParseError> {
    let offsets = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut stream = Stream::default();
    let mut stack: Vec<Frame> = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|error| ParseError {
            line: error.marker().line(),
            column: error.marker().col() + 1,
            message: error.info().to_string(),
        })?;
        let node = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd => {
                continue;
            }
            Event::SequenceStart(..) => {
                push(&mut stack, Frame::Sequence(Vec::new()), span)?;
                continue;
            }
            Event::MappingStart(..) => {
                push(&mut stack, Frame::Mapping(Vec::new(), None), span)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Sequence(items)) => Node::Sequence(items),
                Some(Frame::Mapping(entries, _)) => Node::Mapping(entries),
                None => {
                    return Err(ParseError {
                        line: span.start.line(),
                        column: span.start.col() + 1,
                        message: "unbalanced collection end".to_string(),
                    });
                }
            },
            Event::Alias(anchor) => Node::Alias {
                anchor,
                span: offsets.range(span),
            },
            Event::Scalar(value, style, anchor, tag) => {
                let style = Style::from(style);
                let start = offsets.byte(span.start.index());
                let scalar = Scalar {
                    content: locate(text, start, style, &value),
                    value: value.into_owned(),
                    style,
                    start,
                    line: span.start.line(),
                    anchor,
                    tagged: tag.is_some(),
                };
                if anchor != 0 {
                    stream.anchored_scalars.insert(anchor, scalar.clone());
                }
                Node::Scalar(scalar)
            }
        };
        match stack.last_mut() {
            None => stream.documents.push(Document { root: node }),
            Some(Frame::Sequence(items)) => items.push(node),
            Some(Frame::Mapping(entries, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Ok(stream)
}

/// Finds where `value` is written verbatim for a scalar the parser reports near `start`.
///
/// The parser's span for a scalar starts at its properties (`&anchor`, `!tag`) or, for block scalars, at
/// the content, and its end is not exact (it can run over a trailing comment), so the value is located
/// here from the start, by the grammar of its style.
fn locate(text: &str, start: usize, style: Style, value: &str) -> Option<Range<usize>> {
    let bytes = text.as_bytes();
    let mut at = start;
    // Properties: `&anchor` and `!tag`, each followed by white space.
    while at < bytes.len() && matches!(bytes[at], b'&' | b'!') {
        while at < bytes.len() && !matches!(bytes[at], b' ' | b'\t' | b'\r' | b'\n') {
            at += 1;
        }
        while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b'\r' | b'\n') {
            at += 1;
        }
    }
    let verbatim = |from: usize, text_value: &str| -> Option<Range<usize>> {
        let end = from.checked_add(text_value.len())?;
        (text.get(from..end)? == text_value).then_some(from..end)
    };
    match style {
        Style::Plain => {
            if value.is_empty() {
                return None;
            }
            verbatim(at, value)
        }
        Style::SingleQuoted | Style::DoubleQuoted => {
            let quote = if style == Style::SingleQuoted {
                b'\''
            } else {
                b'"'
            };
            if bytes.get(at) != Some(&quote) || value.contains(['\'', '"', '\\', '\n']) {
                return None;
            }
            let range = verbatim(at + 1, value)?;
            (bytes.get(range.end) == Some(&quote)).then_some(range)
        }
        Style::Literal | Style::Folded => {
            // One content line only: the value is that line, plus at most its line break (chomping).
            let line = value.strip_suffix('\n').unwrap_or(value);
            if line.is_empty() || line.contains('\n') || line.starts_with([' ', '\t']) {
                return None;
            }
            if matches!(bytes.get(at), Some(b'|' | b'>')) {
                at += text[at..].find('\n')? + 1;
            }
            // Skip blank lines and the indentation of the content line.
            loop {
                while at < bytes.len() && bytes[at] == b' ' {
                    at += 1;
                }
                match bytes.get(at) {
                    Some(b'\n') => at += 1,
                    Some(b'\r') if bytes.get(at + 1) == Some(&b'\n') => at += 2,
                    _ => break,
                }
            }
            let range = verbatim(at, line)?;
            // The line must end there, or the value would be a prefix of a longer line.
            matches!(bytes.get(range.end), None | Some(b'\n' | b'\r')).then_some(range)
        }
    }
}

enum Frame {
    Sequence(Vec<Node>),
    /// Entries so far, and a key waiting for its value.
    Mapping(Vec<(Node, Node)>, Option<Node>),
}

fn push(stack: &mut Vec<Frame>, frame: Frame, span: Span) -> Result<(), ParseError> {
    if stack.len() >= MAX_DEPTH {
        return Err(ParseError {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
        });
    }
    stack.push(frame);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_scalar_value_span(text: &str, key: &str) -> (String, Style, String) {
        let stream = parse(text).unwrap();
        let scalar = stream.documents[0]
            .root
            .get(key)
            .and_then(Node::as_scalar)
            .unwrap()
            .clone();
        (
            scalar.value,
            scalar.style,
            text[scalar
                .content
                .unwrap_or_else(|| panic!("{text:?} {:?}", scalar.start))]
            .to_string(),
        )
    }

    #[test]
    fn spans_by_style() {
        for (text, expected) in [
            ("image: nginx:1.0\n", "nginx:1.0"),
            ("image: 'nginx:1.0'\n", "nginx:1.0"),
            ("image: \"nginx:1.0\" # c\n", "nginx:1.0"),
            ("image: &a nginx:1.0\n", "nginx:1.0"),
            ("image: &a !!str nginx:1.0\n", "nginx:1.0"),
            ("image: >-\n  nginx:1.0\n", "nginx:1.0"),
            ("image: |\r\n  nginx:1.0\r\n", "nginx:1.0"),
            ("image: &x >-  # c\n  nginx:1.0\n", "nginx:1.0"),
            ("{image: nginx:1.0}", "nginx:1.0"),
            ("\u{feff}image: nginx:1.0", "nginx:1.0"),
            ("é: x\nimage: nginx:1.0\r\n", "nginx:1.0"),
        ] {
            let (_, _, source) = first_scalar_value_span(text, "image");
            assert_eq!(source, expected, "in {text:?}");
        }
    }
}
