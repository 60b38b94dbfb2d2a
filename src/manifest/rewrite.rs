//! Turning a bump of a target into edits, and splicing edits into the original bytes.
//!
//! An edit replaces only the bytes that differ inside one field's value (the common prefix and suffix of
//! the old and new value stay untouched), so `nginx:1.0` → `nginx:1.1` rewrites one byte. A plain scalar
//! whose new value would be read as something else than that string (`1.10`, `true`, `1e3`, …) is
//! written quoted, in the file's prevailing quote style, and the edit says so.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::yaml::Style;
use super::{Field, QuoteStyle, Role, Shared, Target, TargetKind};
use crate::reference::{self, ImageReference};

/// One replacement of a byte range of the original file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Edit {
    pub range: Range<usize>,
    pub replacement: String,
    /// A plain scalar had to be quoted so its new value stays the same string.
    pub requoted: bool,
}

/// What happens to a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestChange {
    Keep,
    Remove,
    Set(String),
}

/// One planned change of a target. Fields left at "keep" keep their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    /// The new name, as it should be written (`ghcr.io/acme/api`); `None` keeps the name as written.
    pub name: Option<String>,
    /// The new tag; `None` keeps the current one (a tag is never removed).
    pub tag: Option<String>,
    pub digest: DigestChange,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error(
        "the {role:?} value is not written verbatim in the file (escapes or several lines); not rewritten"
    )]
    NotVerbatim { role: Role },
    #[error("no `{key}` field to write the new {what} into (tagwatch never inserts keys)")]
    MissingField {
        key: &'static str,
        what: &'static str,
    },
    #[error("edits overlap at bytes {0:?}")]
    Overlap(Range<usize>),
    #[error("edit range {0:?} is outside the file")]
    OutOfBounds(Range<usize>),
    #[error("the current value `{0}` is not a valid reference")]
    Invalid(String),
    #[error(
        "the {role} is written at line {line} in an anchored mapping that this one merges (`<<` at line {merge_line}); it changes only through the anchor's own target, never from here"
    )]
    Merged {
        role: Role,
        line: usize,
        merge_line: usize,
    },
    #[error(
        "the {role:?} value at line {line} is also merged (`<<`) into a mapping with a different reference (line(s) {}); changing it would change that one too",
        lines_list(lines)
    )]
    Diverging {
        role: Role,
        line: usize,
        lines: Vec<usize>,
    },
}

fn lines_list(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The edits that carry out `bump` on `target`; empty when the target already has those values.
pub fn edits_for(
    target: &Target,
    bump: &Bump,
    quote_style: QuoteStyle,
) -> Result<Vec<Edit>, RewriteError> {
    let mut edits = Vec::new();
    let has_digest_field = target.field(Role::Digest).is_some();
    let mut tag_written = false;
    let mut digest_written = false;
    for field in &target.fields {
        let new_value = match field.role {
            Role::Name => continue,
            Role::Reference => {
                tag_written = true;
                digest_written = true;
                whole_reference(field, bump)?
            }
            Role::Tag => {
                tag_written = true;
                let current = if field.is_null() {
                    ""
                } else {
                    field.value.as_str()
                };
                let (tag, inline_digest) = match current.split_once('@') {
                    Some((tag, digest)) => (tag, Some(digest)),
                    None => (current, None),
                };
                let mut value = bump.tag.clone().unwrap_or_else(|| tag.to_string());
                let digest = match (&bump.digest, inline_digest) {
                    (DigestChange::Keep, digest) => digest.map(str::to_string),
                    (DigestChange::Remove, _) => None,
                    (DigestChange::Set(new), Some(_)) => Some(new.clone()),
                    // Helm charts that pin with `tag: x@sha256:…` also accept one added there.
                    (DigestChange::Set(new), None)
                        if !has_digest_field
                            && !value.is_empty()
                            && target.kind == TargetKind::HelmMap =>
                    {
                        Some(new.clone())
                    }
                    (DigestChange::Set(_), None) => None,
                };
                if let Some(digest) = digest {
                    digest_written = true;
                    value = format!("{value}@{digest}");
                }
                value
            }
            Role::Digest => {
                digest_written = true;
                match &bump.digest {
                    DigestChange::Keep => field.value.clone(),
                    DigestChange::Remove if field.is_null() => field.value.clone(),
                    DigestChange::Remove => String::new(),
                    DigestChange::Set(new) => new.clone(),
                }
            }
            Role::Registry | Role::Repository | Role::NewName => {
                let Some(name) = &bump.name else { continue };
                match (field.role, target.field(Role::Registry)) {
                    (Role::Registry, _) => reference::split_domain(name)
                        .0
                        .unwrap_or(reference::DOCKER_HUB)
                        .to_string(),
                    (Role::Repository, Some(_)) => reference::split_domain(name).1.to_string(),
                    _ => name.clone(),
                }
            }
        };
        if new_value != field.value {
            edits.push(edit(field, &new_value, quote_style)?);
        }
    }
    if !tag_written
        && bump
            .tag
            .as_ref()
            .is_some_and(|tag| target.reference.tag.as_ref() != Some(tag))
    {
        return Err(missing(target, "tag"));
    }
    if !digest_written && matches!(bump.digest, DigestChange::Set(_)) {
        return Err(missing(target, "digest"));
    }
    if let Some(name) = &bump.name
        && target.kind == TargetKind::Kustomize
        && target.field(Role::NewName).is_none()
        && reference::normalize_name(name).ok() != Some(target.reference.name())
    {
        return Err(RewriteError::MissingField {
            key: "newName",
            what: "name",
        });
    }
    Ok(edits)
}

fn missing(target: &Target, what: &'static str) -> RewriteError {
    let key = match (target.kind, what) {
        (TargetKind::Kustomize, "tag") => "newTag",
        (_, "tag") => "tag",
        _ => "digest",
    };
    RewriteError::MissingField { key, what }
}

fn whole_reference(field: &Field, bump: &Bump) -> Result<String, RewriteError> {
    let (current, spans) = ImageReference::parse_with_spans(&field.value)
        .map_err(|_| RewriteError::Invalid(field.value.clone()))?;
    let mut value = match &bump.name {
        Some(name) => name.clone(),
        None => field.value[spans.name].to_string(),
    };
    if let Some(tag) = bump.tag.as_ref().or(current.tag.as_ref()) {
        value.push(':');
        value.push_str(tag);
    }
    let digest = match &bump.digest {
        DigestChange::Keep => current.digest,
        DigestChange::Remove => None,
        DigestChange::Set(digest) => Some(digest.clone()),
    };
    if let Some(digest) = digest {
        value.push('@');
        value.push_str(&digest);
    }
    Ok(value)
}

fn edit(field: &Field, new_value: &str, quote_style: QuoteStyle) -> Result<Edit, RewriteError> {
    match &field.shared {
        None => {}
        Some(Shared::Merged { merge_line }) => {
            return Err(RewriteError::Merged {
                role: field.role,
                line: field.line,
                merge_line: *merge_line,
            });
        }
        Some(Shared::Diverging { lines }) => {
            return Err(RewriteError::Diverging {
                role: field.role,
                line: field.line,
                lines: lines.clone(),
            });
        }
    }
    let range = field
        .range
        .clone()
        .ok_or(RewriteError::NotVerbatim { role: field.role })?;
    if field.style == Style::Plain && (field.value.is_empty() || needs_quoting(new_value)) {
        let requoted = needs_quoting(new_value);
        let mut replacement = if requoted {
            let quote = match quote_style {
                QuoteStyle::Single => '\'',
                QuoteStyle::Double => '"',
            };
            format!("{quote}{new_value}{quote}")
        } else {
            new_value.to_string()
        };
        // An empty value is an insertion point right after `key:`.
        if field.value.is_empty() && !replacement.is_empty() {
            replacement.insert(0, ' ');
        }
        return Ok(Edit {
            range,
            replacement,
            requoted,
        });
    }
    let (old, new) = (field.value.as_bytes(), new_value.as_bytes());
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    Ok(Edit {
        range: range.start + prefix..range.end - suffix,
        replacement: new_value[prefix..new.len() - suffix].to_string(),
        requoted: false,
    })
}

/// Numbers under YAML 1.1 and 1.2 (`1.10`, `1e3`, `0x1F`, `0o17`, `017`, `1_000`, `1:20`, `.inf`).
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?|([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)([eE][-+]?[0-9]+)?|\.(inf|Inf|INF)|\.(nan|NaN|NAN))$",
    )
    .expect("valid regex")
});

/// Whether `value`, written as a plain scalar, would be read as anything but this very string.
pub fn needs_quoting(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return true;
    };
    let lower = value.to_ascii_lowercase();
    let keyword = matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    );
    let number = (value.bytes().any(|b| b.is_ascii_digit())
        || lower.contains(".inf")
        || lower.contains(".nan"))
        && NUMBER.is_match(value);
    keyword
        || number
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || value.contains(": ")
        || value.contains(" #")
        || value.ends_with(':')
        || value.starts_with([' ', '\t'])
        || value.ends_with([' ', '\t'])
}

/// Splices `edits` into `bytes`. Identical duplicate edits (one anchor reached twice) count once.
pub fn apply(bytes: &[u8], edits: &[Edit]) -> Result<Vec<u8>, RewriteError> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|edit| (edit.range.start, edit.range.end));
    sorted.dedup();
    for pair in sorted.windows(2) {
        if pair[1].range.start < pair[0].range.end
            || (pair[1].range.start == pair[0].range.end && pair[0].range.is_empty())
        {
            return Err(RewriteError::Overlap(pair[1].range.clone()));
        }
    }
    let mut out = bytes.to_vec();
    // Last edit first, so earlier ranges stay valid.
    for edit in sorted.iter().rev() {
        if edit.range.end > out.len() || edit.range.start > edit.range.end {
            return Err(RewriteError::OutOfBounds(edit.range.clone()));
        }
        out.splice(edit.range.clone(), edit.replacement.bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_rules() {
        for value in [
            "1.10", "1e3", "true", "null", "0x1F", "1_000", "*a", "&a", "!a", "%a", "@a", "a: b",
            "", "16", "0.1", "Yes", "~", ".inf", "1:20", "017",
        ] {
            assert!(needs_quoting(value), "{value} must be quoted");
        }
        for value in [
            "1.2.3",
            "v1.10",
            "latest",
            "nginx:1.0",
            "2023.5.4",
            "1.0-alpine",
            "Build-135",
            "sha256:ab",
            "deadbeef",
            "e3",
        ] {
            assert!(!needs_quoting(value), "{value} stays plain");
        }
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let edit = |range: Range<usize>| Edit {
            range,
            replacement: "x".into(),
            requoted: false,
        };
        assert!(matches!(
            apply(b"abcdef", &[edit(0..3), edit(2..4)]),
            Err(RewriteError::Overlap(_))
        ));
        assert_eq!(
            apply(b"abcdef", &[edit(4..5), edit(0..1), edit(0..1)]).unwrap(),
            b"xbcdxf"
        );
        assert!(matches!(
            apply(b"ab", &[edit(1..5)]),
            Err(RewriteError::OutOfBounds(_))
        ));
    }
}
