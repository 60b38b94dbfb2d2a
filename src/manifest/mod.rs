//! Image references in YAML files: finding them (docs/design/manifest.md) and rewriting them byte-exactly (docs/design/git.md).
//!
//! Owns: locating every *target* (a place in a file that holds an image reference) with the byte ranges
//! of the fields involved, and turning a *bump* of a target into edits `{range, replacement}` that are
//! spliced into the original bytes, last edit first.
//! Must not: re-serialize YAML, edit YAML with regular expressions, or do I/O outside [`files`] (discovery
//! and rewriting are pure functions of the bytes).
//!
//! The YAML is parsed with `saphyr-parser` (events with positions, converted from characters to bytes in
//! [`yaml`]); the parser is used only to *locate* scalars, their decoded value and their quoting style.
//! The choice of parser and the comparison behind it are in `docs/design/manifest.md`.
//!
//! # Limitations
//! Each item has a test named after it (`limitation_*` in `tests/it/rewrite.rs`).
//! - A value that is not written verbatim in one stretch of the file (a plain or quoted scalar folded
//!   over several lines, a double-quoted scalar with escapes, a block scalar of more than one line) is
//!   found but not rewritten: the target is reported as not rewritable. (`limitation_folded_plain_scalar`)
//! - A missing field is never inserted: a Helm map without a `tag` key, a kustomize entry without
//!   `newTag` / `digest` / `newName` cannot take a new value and are reported. (An empty `tag:` is
//!   present: its value is inserted after the colon.) (`limitation_missing_field_is_not_inserted`)
//! - Merge keys (`<<: *base`, `<<: [*a, *b]`, nested) are followed as YAML 1.1 merges (own keys first,
//!   then the merged mappings in order), with one rule for who edits an anchored field: a mapping that
//!   overrides the tag (or the whole `image`) is its own target, bumped at its own scalar; one that
//!   merges the anchor's image fields unchanged is no target of its own: the anchor's target (the
//!   anchored mapping, or else the first mapping merging an anchored tag) bumps the anchor once and
//!   every unchanged merge moves with it. An inherited name field is never edited from a merging
//!   mapping (a rename there is refused, [`Shared::Merged`]). When mappings sharing an anchored tag or
//!   digest hold different references (another repository, or their own tag beside a shared digest),
//!   neither edits it ([`Shared::Diverging`], [`RewriteError::Diverging`]) and a
//!   [`WarningKind::SharedByMerge`] warning names the merging line.
//!   (`limitation_merge_key_shared_by_different_images`,
//!   `limitation_merge_key_digest_kept_beside_an_overridden_tag`)
//! - Markers are read from the comment on the same line as the scalar (after it, the last `#` segment
//!   that is a marker), not from the line above. (`limitation_marker_on_line_above`)
//! - A flow collection closed at its parent's indentation (`args: [` … `]` with `]` under `args`) is
//!   rejected by `saphyr-parser` although libyaml and go-yaml accept it: such a file is skipped with a
//!   warning, never touched (2 corpus files). (`limitation_flow_sequence_closed_at_parent_indentation`)
//! - YAML held inside a string (Argo CD's `helm.values: |` block, `kustomize.images: ["a=b:1"]`
//!   strings) is text, not fields: nothing in it is found. (`limitation_yaml_inside_a_string`)
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

impl std::fmt::Display for Role {
    /// The word messages use for the field (kustomize's `newTag` is a tag too).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Reference => "image reference",
            Role::Registry => "registry",
            Role::Repository => "repository",
            Role::Tag => "tag",
            Role::Digest => "digest",
            Role::Name => "name",
            Role::NewName => "newName",
        })
    }
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
    /// Set when the field's bytes are not this target's alone (merge keys, see Limitations): such a
    /// field is never edited through this target.
    pub shared: Option<Shared>,
}

/// Why a field written in an anchored mapping is not edited through a target (merge keys `<<`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shared {
    /// The target's mapping merges the anchored mapping that holds this field (`<<` at `merge_line`):
    /// the field belongs to the target that owns the anchor (its own, or the first mapping that merges
    /// it), and changes only through that one.
    Merged { merge_line: usize },
    /// Other mappings merge this field with a reference of their own (a different name, or their own
    /// tag beside this digest), at these lines: changing it would change them too.
    Diverging { lines: Vec<usize> },
}

impl Field {
    /// Whether the field holds no value: empty, or a plain null (`~`, `null`), as Helm charts write an
    /// unset tag.
    pub fn is_null(&self) -> bool {
        self.value.is_empty()
            || (self.style == yaml::Style::Plain
                && matches!(self.value.as_str(), "~" | "null" | "Null" | "NULL"))
    }
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
    /// Reached through an alias (`image: *base`) or a merge key (`<<: *base`) as the first user of an
    /// anchor: the fields edited are the anchor's, which is what changes (for every user).
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

/// Something found in a file that is reported rather than acted on. Render as `FILE:LINE: message`
/// (`FILE: message` for line 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line; 0 for the whole file.
    pub line: usize,
    pub message: String,
    pub kind: WarningKind,
}

/// What a [`Warning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// The whole file is skipped (too large, not UTF-8, a template, not YAML); `line` is 0.
    SkippedFile,
    /// An image field whose value is not a valid reference (a placeholder, `${VAR}`): not bumped.
    InvalidReference,
    /// A malformed marker comment, or a field marker that cannot be combined.
    Marker,
    /// A mapping merges (`<<`) an anchored tag / digest / reference that another mapping with a
    /// different reference also uses: neither is bumped. `line` is the merging mapping's `<<` line.
    SharedByMerge,
}

/// Everything discovery found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// The file, as given to [`discover`].
    pub path: std::path::PathBuf,
    pub targets: Vec<Target>,
    pub warnings: Vec<Warning>,
    /// Whether the file was skipped whole (not YAML, a Helm template, does not parse): never touch it.
    pub skipped: bool,
    pub quote_style: QuoteStyle,
}
