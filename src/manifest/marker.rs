//! Marker comments that decide explicitly which policy owns a field (docs/design/manifest.md): Flux's
//! `# {"$imagepolicy": "NS:NAME"}` (and its `:tag`, `:name`, `:digest` forms) and tagwatch's own
//! `# tagwatch: POLICY` / `# tagwatch: hold`.
//!
//! A comment may hold several `#` segments (`# keep  # tagwatch: api`): a segment starts at a `#` that
//! begins the comment or follows white space, and only the **last** segment that is a marker counts
//! ([`find`]). A segment is a marker only when it *starts* with `tagwatch:` or is a `$imagepolicy` JSON
//! object, so `# see mytagwatch: x` or `# pinned, ask tagwatch: later` are ordinary comments.

use serde::Serialize;

/// The tagwatch marker's prefix inside a comment.
const TAGWATCH_PREFIX: &str = "tagwatch:";
/// The word that freezes a field.
const HOLD: &str = "hold";

/// Which part of the reference a Flux marker's field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FluxField {
    Tag,
    Name,
    Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Marker {
    /// `# {"$imagepolicy": "NS:NAME"}`, optionally with `:tag` / `:name` / `:digest`.
    Flux {
        namespace: String,
        name: String,
        field: Option<FluxField>,
    },
    /// `# tagwatch: POLICY`.
    Policy(String),
    /// `# tagwatch: hold`: never bump this field.
    Hold,
}

impl Marker {
    /// The policy name this marker names, in the form policies are matched on (`NS:NAME` for Flux).
    pub fn policy(&self) -> Option<String> {
        match self {
            Marker::Flux {
                namespace, name, ..
            } => Some(format!("{namespace}:{name}")),
            Marker::Policy(name) => Some(name.clone()),
            Marker::Hold => None,
        }
    }
}

/// Why a comment that looks like a marker is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    #[error(
        "malformed $imagepolicy marker `{0}`: expected {{\"$imagepolicy\": \"NS:NAME[:tag|:name|:digest]\"}}"
    )]
    Flux(String),
    #[error("empty `tagwatch:` marker: expected a policy name or `hold`")]
    EmptyPolicy,
    #[error(
        "`tagwatch: {0}` marker: expected one policy name (or `hold`, which may be followed by a note)"
    )]
    Words(String),
}

/// Reads a whole comment (the text after its first `#`): the last `#` segment that is a marker, or
/// the error of that segment when it looks like a marker but is malformed. `Ok(None)` when no segment
/// is a marker.
pub fn find(comment: &str) -> Result<Option<Marker>, MarkerError> {
    for segment in segments(comment).into_iter().rev() {
        if let Some(found) = parse(segment).transpose() {
            return found.map(Some);
        }
    }
    Ok(None)
}

/// The `#` segments of a comment: split at every `#` that follows white space.
fn segments(comment: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut start = 0;
    let mut previous_blank = false;
    for (index, character) in comment.char_indices() {
        if character == '#' && previous_blank {
            segments.push(&comment[start..index]);
            start = index + 1;
        }
        previous_blank = character == ' ' || character == '\t';
    }
    segments.push(&comment[start..]);
    segments
}

/// Reads one comment segment (after its `#`). `Ok(None)` when it is an ordinary comment.
pub fn parse(comment: &str) -> Result<Option<Marker>, MarkerError> {
    let comment = comment.trim();
    if let Some(rest) = comment.strip_prefix(TAGWATCH_PREFIX) {
        let rest = rest.trim();
        let mut words = rest.split_whitespace();
        return match (words.next(), words.next()) {
            (None, _) => Err(MarkerError::EmptyPolicy),
            // `# tagwatch: hold until the incident is closed`: the note does not weaken the hold.
            (Some(HOLD), _) => Ok(Some(Marker::Hold)),
            (Some(name), None) => Ok(Some(Marker::Policy(name.to_string()))),
            (Some(_), Some(_)) => Err(MarkerError::Words(rest.to_string())),
        };
    }
    if !comment.contains("$imagepolicy") {
        return Ok(None);
    }
    let malformed = || MarkerError::Flux(comment.to_string());
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(comment).map_err(|_| malformed())?;
    let value = object
        .get("$imagepolicy")
        .and_then(|value| value.as_str())
        .ok_or_else(malformed)?;
    let mut parts = value.split(':');
    let (Some(namespace), Some(name)) = (parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let field = match parts.next() {
        None => None,
        Some("tag") => Some(FluxField::Tag),
        Some("name") => Some(FluxField::Name),
        Some("digest") => Some(FluxField::Digest),
        Some(_) => return Err(malformed()),
    };
    if namespace.is_empty() || name.is_empty() || parts.next().is_some() {
        return Err(malformed());
    }
    Ok(Some(Marker::Flux {
        namespace: namespace.to_string(),
        name: name.to_string(),
        field,
    }))
}

/// The comment text on the rest of the line after byte `end` (past a closing quote), if any.
pub fn trailing_comment(text: &str, end: usize) -> Option<&str> {
    let rest = text.get(end..)?;
    let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
    let line = line.strip_prefix(['"', '\'']).unwrap_or(line);
    let trimmed = line.trim_start_matches([' ', '\t']);
    // A comment needs white space before `#` (or starts the line).
    if trimmed.len() == line.len() && !line.is_empty() {
        return None;
    }
    trimmed.strip_prefix('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_forms() {
        assert_eq!(
            parse(r#" {"$imagepolicy": "flux-system:podinfo"}"#).unwrap(),
            Some(Marker::Flux {
                namespace: "flux-system".into(),
                name: "podinfo".into(),
                field: None
            })
        );
        assert_eq!(
            parse(r#"{"$imagepolicy": "ns:p:tag"}"#).unwrap(),
            Some(Marker::Flux {
                namespace: "ns".into(),
                name: "p".into(),
                field: Some(FluxField::Tag)
            })
        );
        assert!(parse(r#"{"$imagepolicy": "ns"}"#).is_err());
        assert!(parse(r#"{"$imagepolicy": "ns:p:size"}"#).is_err());
    }

    #[test]
    fn tagwatch_forms() {
        assert_eq!(parse(" tagwatch: hold").unwrap(), Some(Marker::Hold));
        assert_eq!(
            parse("tagwatch: api-stable").unwrap(),
            Some(Marker::Policy("api-stable".into()))
        );
        assert_eq!(parse(" just a comment").unwrap(), None);
        assert!(parse("tagwatch:").is_err());
    }

    #[test]
    fn marker_after_other_comment_text_is_read() {
        assert_eq!(
            find(" keep  # tagwatch: api").unwrap(),
            Some(Marker::Policy("api".into()))
        );
        assert_eq!(
            find(r#" keep # {"$imagepolicy": "ns:name"}"#).unwrap(),
            Some(Marker::Flux {
                namespace: "ns".into(),
                name: "name".into(),
                field: None
            })
        );
        assert_eq!(
            find(" tagwatch: api # owned by team x").unwrap(),
            Some(Marker::Policy("api".into()))
        );
    }

    #[test]
    fn only_the_last_marker_segment_counts() {
        assert_eq!(
            find(" tagwatch: old # tagwatch: new").unwrap(),
            Some(Marker::Policy("new".into()))
        );
        assert_eq!(
            find(r#" {"$imagepolicy": "ns:a"} # tagwatch: hold # note"#).unwrap(),
            Some(Marker::Hold)
        );
        // The last marker-looking segment is malformed: reported, not replaced by an earlier one.
        assert!(find(" tagwatch: api # tagwatch:").is_err());
    }

    #[test]
    fn tagwatch_inside_a_word_or_sentence_is_not_a_marker() {
        for comment in [
            " see mytagwatch: api",
            " ask tagwatch: later",
            " issue#tagwatch: api",
            " keep#tagwatch: api",
            " tagwatch-ish: api",
        ] {
            assert_eq!(find(comment).unwrap(), None, "{comment}");
        }
    }

    #[test]
    fn hold_may_carry_a_note_but_a_policy_is_one_word() {
        assert_eq!(
            find(" tagwatch: hold until INC-42 is closed").unwrap(),
            Some(Marker::Hold)
        );
        assert_eq!(
            find(" tagwatch: api stable"),
            Err(MarkerError::Words("api stable".into()))
        );
    }

    #[test]
    fn comment_after_value() {
        let text = "image: a:1 # tagwatch: p\nx: \"b\" #c\ny: a#b\n";
        assert_eq!(trailing_comment(text, 10), Some(" tagwatch: p"));
        assert_eq!(trailing_comment(text, 30), Some("c"));
        assert_eq!(trailing_comment(text, 41), None);
    }
}
