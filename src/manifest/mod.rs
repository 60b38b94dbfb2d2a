//! Image references in YAML files: finding them (SPEC §5) and rewriting them byte-exactly (SPEC §6).
//!
//! Owns: locating every *target* (a place in a file that holds an image reference) with the byte ranges
//! of the fields involved, and turning a *bump* of a target into edits `{range, replacement}` that are
//! spliced into the original bytes, last edit first.
//! Must not: re-serialize YAML, edit YAML with regular expressions, or do I/O outside [`files`] (discovery
//! and rewriting are pure functions of the bytes).
//!
//! The YAML is parsed with `saphyr-parser` (events with positions, converted from characters to bytes in
//! [`yaml`]); the parser is used only to *locate* scalars, their decoded value and their quoting style.
//! The choice of parser and the comparison behind it are in `docs/manifest.md`.
//!
//! # Limitations
//! Each item has a test named after it (`limitation_*` in `tests/it/rewrite.rs`).
//! - A value that is not written verbatim in one stretch of the file (a plain or quoted scalar folded
//!   over several lines, a double-quoted scalar with escapes, a block scalar of more than one line) is
//!   found but not rewritten: the target is reported as not rewritable. (`limitation_folded_plain_scalar`)
//! - A missing field is never inserted: a Helm map without a `tag` key, a kustomize entry without
//!   `newTag` / `digest` / `newName`, or an empty `tag:` (null) cannot take a new value and are reported.
//!   (`limitation_missing_field_is_not_inserted`, `limitation_null_tag`)
//! - Merge keys (`<<: *base`) are not followed: an image inherited through a merge key is found where
//!   the anchor defines it, not where it is merged. (`limitation_merge_key`)
//! - Markers are read from the comment on the same line as the scalar (after it), not from the line
//!   above. (`limitation_marker_on_line_above`)
//! - A Flux field marker (`…:tag`, `…:name`, `…:digest`) on a lone scalar is combined with the other
//!   marked fields of the same mapping; a lone `:tag` marker with no name anywhere is reported, not
//!   guessed. (`limitation_lone_tag_marker`)

pub mod assignment;
pub mod discover;
pub mod files;
pub mod marker;
pub mod rewrite;
pub mod yaml;

use std::ops::Range;

use serde::Serialize;

use crate::reference::ImageReference;

pub use discover::discover;
pub use marker::Marker;
pub use rewrite::{Bump, DigestChange, Edit, RewriteError, apply, edits_for};

/// What kind of structure holds a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// `image:` of a container in a pod template (`containers`, `initContainers`, `ephemeralContainers`).
    KubernetesContainer,
    /// An image-like key holding a whole reference outside pod templates (Helm values, CRDs, CI files).
    HelmString,
    /// A map with `repository` and `tag` / `digest` / `registry`, at any depth.
    HelmMap,
    /// A kustomization's `images:` entry.
    Kustomize,
    /// A compose file's `services.*.image`.
    Compose,
    /// A scalar found only because a marker comment names it.
    Marker,
}

/// What part of a reference a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The whole reference `name[:tag][@digest]`.
    Reference,
    Registry,
    Repository,
    /// A tag, possibly followed by `@digest` (Helm charts that pin both in `tag`).
    Tag,
    Digest,
    /// Kustomize `name`: what the entry matches; never rewritten.
    Name,
    /// Kustomize `newName`.
    NewName,
}

/// One scalar of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub role: Role,
    /// The decoded value.
    pub value: String,
    pub style: yaml::Style,
    /// Byte range of the value inside the file; `None` when it is not written verbatim (see
    /// Limitations).
    pub range: Option<Range<usize>>,
    /// 1-based line.
    pub line: usize,
    pub marker: Option<Marker>,
}

/// A place in a file that holds an image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub kind: TargetKind,
    /// The rule that found it (`containers`, `helm-map`, `image-key`, `kustomize-images`,
    /// `compose-services`, `marker`).
    pub rule: &'static str,
    /// The reference it holds, parsed and normalized.
    pub reference: ImageReference,
    /// The reference as written (whole scalar, or the fields joined), for messages and `plan`.
    pub written: String,
    /// Where in the document: `spec.template.spec.containers[0].image`.
    pub path: String,
    /// 0-based document index in the stream.
    pub document: usize,
    /// 1-based line of the first field.
    pub line: usize,
    pub fields: Vec<Field>,
    /// The first marker on any of its fields; a marker always wins over the image-name match.
    pub marker: Option<Marker>,
    /// Reached through an alias (`image: *base`): the fields are the anchor's, which is what changes.
    pub via_alias: bool,
}

impl Target {
    /// Whether a `# tagwatch: hold` marker freezes this target.
    pub fn held(&self) -> bool {
        matches!(self.marker, Some(Marker::Hold))
    }

    pub fn field(&self, role: Role) -> Option<&Field> {
        self.fields.iter().find(|field| field.role == role)
    }
}

/// Quote style to use when a plain scalar must become quoted: the file's prevailing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuoteStyle {
    Single,
    Double,
}

/// Something found in a file that is reported rather than acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line; 0 for the whole file.
    pub line: usize,
    pub message: String,
}

/// Everything discovery found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    pub targets: Vec<Target>,
    pub warnings: Vec<Warning>,
    /// Whether the file was skipped whole (not YAML, a Helm template, does not parse): never touch it.
    pub skipped: bool,
    pub quote_style: QuoteStyle,
}
