//! Marker comments that decide explicitly which policy owns a field (SPEC §5): Flux's
//! `# {"$imagepolicy": "NS:NAME"}` (and its `:tag`, `:name`, `:digest` forms) and tagwatch's own
//! `# tagwatch: POLICY` / `# tagwatch: hold`.

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
}

/// Reads a comment's text (after `#`). `Ok(None)` when it is an ordinary comment.
pub fn parse(comment: &str) -> Result<Option<Marker>, MarkerError> {
    let comment = comment.trim();
    if let Some(rest) = comment.strip_prefix(TAGWATCH_PREFIX) {
        let name = rest.trim();
        return match name {
            "" => Err(MarkerError::EmptyPolicy),
            HOLD => Ok(Some(Marker::Hold)),
            _ => Ok(Some(Marker::Policy(name.to_string()))),
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
    fn comment_after_value() {
        let text = "image: a:1 # tagwatch: p\nx: \"b\" #c\ny: a#b\n";
        assert_eq!(trailing_comment(text, 10), Some(" tagwatch: p"));
        assert_eq!(trailing_comment(text, 30), Some("c"));
        assert_eq!(trailing_comment(text, 41), None);
    }
}
