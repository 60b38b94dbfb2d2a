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
    /// Entries in order, and the anchor id (0 when the mapping has no anchor), so a merge key
    /// (`<<: *name`) can be followed to the mapping it names.
    Mapping {
        entries: Vec<(Node, Node)>,
        anchor: usize,
    },
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
            Node::Mapping { entries, .. } => entries.iter().find_map(|(k, v)| match k {
                Node::Scalar(scalar) if scalar.value == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Whether this node is the merge key `<<` (plain, untagged), whose value merges mappings in.
    pub fn is_merge_key(&self) -> bool {
        matches!(self, Node::Scalar(scalar) if scalar.value == "<<" && scalar.style == Style::Plain && !scalar.tagged)
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
    /// For each non-ASCII character, in order: its character index and the extra bytes (beyond one per
    /// character) of all characters before and including it. Empty for ASCII text, so memory follows the
    /// number of non-ASCII characters, not the file size.
    wide: Vec<(usize, usize)>,
    len: usize,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let mut wide = Vec::new();
        if !text.is_ascii() {
            let mut extra = 0;
            for (char_index, character) in text.chars().enumerate() {
                if !character.is_ascii() {
                    extra += character.len_utf8() - 1;
                    wide.push((char_index, extra));
                }
            }
        }
        Offsets {
            wide,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        // Extra bytes of the wide characters strictly before `char_index`.
        let before = self.wide.partition_point(|&(index, _)| index < char_index);
        let extra = before.checked_sub(1).map_or(0, |last| self.wide[last].1);
        (char_index + extra).min(self.len)
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
            Event::MappingStart(anchor, _) => {
                push(&mut stack, Frame::Mapping(Vec::new(), None, anchor), span)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Sequence(items)) => Node::Sequence(items),
                Some(Frame::Mapping(entries, _, anchor)) => Node::Mapping { entries, anchor },
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
            Some(Frame::Mapping(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let mut node = node;
                    locate_empty_value(text, &key, &mut node);
                    entries.push((key, node));
                }
            },
        }
    }
    Ok(stream)
}

/// An empty value (`tag:`) has nothing to replace; its place is right after the key's `:`, where a new
/// value can be inserted (the rewriter adds the separating space).
fn locate_empty_value(text: &str, key: &Node, value: &mut Node) {
    let (Node::Scalar(key), Node::Scalar(value)) = (key, value) else {
        return;
    };
    if value.style != Style::Plain || !value.value.is_empty() || value.tagged || value.anchor != 0 {
        return;
    }
    let Some(key_end) = key.content.as_ref().map(|range| range.end) else {
        return;
    };
    let after_quote = match key.style {
        Style::SingleQuoted | Style::DoubleQuoted => key_end + 1,
        _ => key_end,
    };
    let bytes = text.as_bytes();
    let mut colon = after_quote;
    while matches!(bytes.get(colon), Some(b' ' | b'\t')) {
        colon += 1;
    }
    // The colon must end the line or be followed by a space (or a flow indicator): `tag:` / `tag: # c`.
    if bytes.get(colon) == Some(&b':')
        && matches!(
            bytes.get(colon + 1),
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b'}')
        )
    {
        value.content = Some(colon + 1..colon + 1);
    }
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
    /// Entries so far, a key waiting for its value, and the mapping's anchor id.
    Mapping(Vec<(Node, Node)>, Option<Node>, usize),
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
    fn character_indices_become_byte_offsets() {
        let text = "a\u{e9}b\u{2615}c\u{1f680}d";
        let offsets = Offsets::new(text);
        let expected: Vec<usize> = text
            .char_indices()
            .map(|(offset, _)| offset)
            .chain([text.len()])
            .collect();
        let got: Vec<usize> = (0..=text.chars().count())
            .map(|index| offsets.byte(index))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(Offsets::new("abc").byte(2), 2);
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
