//! The `IMAGE=REF` argument of `tagwatch set` and what it means for one target.
//!
//! `REF` is read as (kustomize `set image` semantics, README.md "Using it"):
//! - `@sha256:…`: a new digest; the tag stays.
//! - a bare word without `/` or `:` (`1.2.3`, `1.2.3@sha256:…`): a new tag (and digest). To name a new
//!   image without a registry path, write its tag too (`nginx:1.27`).
//! - anything else is a full reference (`registry/name:tag[@digest]`): the target becomes that
//!   reference. The name bytes change only when the normalized name differs (`nginx` written as
//!   `nginx` stays `nginx` when REF says `docker.io/library/nginx:1.27`).
//!
//! A new tag without a digest removes a digest the target had (it pinned the old tag); a new digest
//! without a tag keeps the tag.

use std::path::Path;

use super::rewrite::{Bump, DigestChange};
use super::{Role, Target, TargetKind, Warning};
use crate::reference::{self, ImageReference, ReferenceError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("expected IMAGE=REF, got `{0}`")]
    NoEquals(String),
    #[error("IMAGE `{image}` is not an image name: {source}")]
    Image {
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error("REF `{reference}` is not a tag, digest or image reference: {reason}")]
    Reference { reference: String, reason: String },
}

/// A parsed `IMAGE=REF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The normalized image name to match (`docker.io/library/nginx`).
    pub image: String,
    /// The new name as written in REF, when REF is a full reference.
    pub name: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Assignment {
    pub fn parse(text: &str) -> Result<Self, AssignmentError> {
        let (image, new) = text
            .split_once('=')
            .ok_or_else(|| AssignmentError::NoEquals(text.to_string()))?;
        let image = reference::normalize_name(image).map_err(|source| AssignmentError::Image {
            image: image.to_string(),
            source,
        })?;
        let bad = |reason: &str| AssignmentError::Reference {
            reference: new.to_string(),
            reason: reason.to_string(),
        };
        let (before_digest, digest) = match new.split_once('@') {
            Some((before, digest)) => {
                if !reference::is_valid_digest(digest) {
                    return Err(bad("the digest is not `algorithm:hex`"));
                }
                (before, Some(digest.to_string()))
            }
            None => (new, None),
        };
        if before_digest.is_empty() {
            if digest.is_none() {
                return Err(bad("empty"));
            }
            return Ok(Assignment {
                image,
                name: None,
                tag: None,
                digest,
            });
        }
        if !before_digest.contains(['/', ':']) {
            if !reference::is_valid_tag(before_digest) {
                return Err(bad("a tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"));
            }
            return Ok(Assignment {
                image,
                name: None,
                tag: Some(before_digest.to_string()),
                digest,
            });
        }
        let (parsed, spans) =
            ImageReference::parse_with_spans(new).map_err(|error| bad(&error.to_string()))?;
        Ok(Assignment {
            image,
            name: Some(new[spans.name].to_string()),
            tag: parsed.tag,
            digest: parsed.digest,
        })
    }

    /// Whether this assignment is about `target`: its deployed image, or for a kustomize entry also
    /// the image its `name` matches (docs/design/manifest.md).
    pub fn matches(&self, target: &Target) -> bool {
        target.reference.name() == self.image
            || (target.kind == TargetKind::Kustomize
                && target
                    .field(Role::Name)
                    .and_then(|field| reference::normalize_name(&field.value).ok())
                    .is_some_and(|name| name == self.image))
    }

    /// The bump this assignment asks of `target`.
    pub fn bump_for(&self, target: &Target) -> Bump {
        let name = self.name.as_ref().filter(|name| {
            reference::normalize_name(name).ok().as_deref()
                != Some(target.reference.name().as_str())
        });
        let digest = match (&self.digest, &self.tag) {
            (Some(digest), _) => DigestChange::Set(digest.clone()),
            (None, Some(_)) => DigestChange::Remove,
            (None, None) => DigestChange::Keep,
        };
        Bump {
            name: name.cloned(),
            tag: self.tag.clone(),
            digest,
        }
    }
}

/// One bumped target of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub line: usize,
    /// The reference as written before and after.
    pub from: String,
    pub to: String,
    /// A plain scalar was quoted so it stays a string.
    pub requoted: bool,
}

/// What an assignment does to one file. Pure: the caller reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRewrite {
    /// The new content; equal to the input when nothing changes or something failed.
    pub after: Vec<u8>,
    /// Targets the assignment is about (bumped, already at REF, held, or failed).
    pub matched: usize,
    /// When `errors` is not empty: the targets that could have been bumped but were not written,
    /// because a file is written whole or not at all.
    pub withheld: usize,
    pub changes: Vec<Change>,
    /// Matching targets frozen by `# tagwatch: hold`: `(line, reference as written)`.
    pub held: Vec<(usize, String)>,
    /// Matching targets that could not be bumped, `(line, message)`; when any, the file is left alone.
    pub errors: Vec<(usize, String)>,
    /// Discovery's warnings (skipped file, invalid references, malformed markers).
    pub warnings: Vec<Warning>,
}

/// Applies `assignment` to every matching target of `bytes` (the file at `path`).
pub fn rewrite_file(path: &Path, bytes: &[u8], assignment: &Assignment) -> FileRewrite {
    let discovery = super::discover(path, bytes);
    let mut result = FileRewrite {
        after: bytes.to_vec(),
        matched: 0,
        withheld: 0,
        changes: Vec::new(),
        held: Vec::new(),
        errors: Vec::new(),
        warnings: discovery.warnings.clone(),
    };
    let mut edits = Vec::new();
    let mut bumped = Vec::new();
    for (index, target) in discovery.targets.iter().enumerate() {
        if !assignment.matches(target) {
            continue;
        }
        result.matched += 1;
        if target.held() {
            result.held.push((target.line, target.written.clone()));
            continue;
        }
        match super::edits_for(target, &assignment.bump_for(target), discovery.quote_style) {
            Ok(target_edits) if target_edits.is_empty() => {}
            Ok(target_edits) => {
                let requoted = target_edits.iter().any(|edit| edit.requoted);
                edits.extend(target_edits);
                bumped.push((index, requoted));
            }
            Err(error) => result.errors.push((
                target.line,
                format!("cannot bump `{}`: {error}", target.written),
            )),
        }
    }
    if !result.errors.is_empty() {
        result.withheld = bumped.len();
        return result;
    }
    if edits.is_empty() {
        return result;
    }
    let after = match super::apply(bytes, &edits) {
        Ok(after) => after,
        Err(error) => {
            result.errors.push((0, error.to_string()));
            result.withheld = bumped.len();
            return result;
        }
    };
    // The rewritten file must read back to the same targets, or it is not written.
    let check = super::discover(path, &after);
    if check.skipped || check.targets.len() != discovery.targets.len() {
        result.errors.push((
            0,
            "the rewritten file would not read back the same".to_string(),
        ));
        result.withheld = bumped.len();
        return result;
    }
    result.changes = bumped
        .iter()
        .map(|&(index, requoted)| Change {
            line: discovery.targets[index].line,
            from: discovery.targets[index].written.clone(),
            to: check.targets[index].written.clone(),
            requoted,
        })
        .collect();
    result.after = after;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn forms_of_ref() {
        let tag = Assignment::parse("nginx=1.27.1").unwrap();
        assert_eq!(tag.image, "docker.io/library/nginx");
        assert_eq!(
            (tag.name, tag.tag, tag.digest),
            (None, Some("1.27.1".into()), None)
        );

        let digest = Assignment::parse(&format!("nginx=@{DIGEST}")).unwrap();
        assert_eq!((digest.tag, digest.digest), (None, Some(DIGEST.into())));

        let full = Assignment::parse(&format!("ghcr.io/a/b=ghcr.io/a/c:2@{DIGEST}")).unwrap();
        assert_eq!(full.name.as_deref(), Some("ghcr.io/a/c"));
        assert_eq!(full.tag.as_deref(), Some("2"));

        let port = Assignment::parse("host:5000/a/b=host:5000/a/b:1").unwrap();
        assert_eq!(port.image, "host:5000/a/b");
    }

    #[test]
    fn malformed_assignments() {
        assert!(matches!(
            Assignment::parse("nginx"),
            Err(AssignmentError::NoEquals(_))
        ));
        assert!(matches!(
            Assignment::parse("nginx:1=2"),
            Err(AssignmentError::Image { .. })
        ));
        assert!(matches!(
            Assignment::parse("nginx=1.0!"),
            Err(AssignmentError::Reference { .. })
        ));
        assert!(matches!(
            Assignment::parse("nginx=@sha256:zz"),
            Err(AssignmentError::Reference { .. })
        ));
        assert!(matches!(
            Assignment::parse("nginx="),
            Err(AssignmentError::Reference { .. })
        ));
    }
}
