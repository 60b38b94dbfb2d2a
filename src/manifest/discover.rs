//! Finding targets in one file (docs/design/manifest.md). Pure: bytes in, [`Discovery`] out.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use super::marker::{self, FluxField};
use super::yaml::{self, Node, Scalar, Stream, Style};
use super::{
    Discovery, Field, Marker, QuoteStyle, Role, Shared, Target, TargetKind, Warning, WarningKind,
};
use crate::reference::ImageReference;

/// Files larger than this are skipped: no manifest is that large, and parsing is bounded (docs/security.md).
pub const MAX_FILE_SIZE: usize = 16 * 1024 * 1024;
/// Keys whose sequence items are containers of a pod template.
const CONTAINER_KEYS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
/// How many merge keys (`<<`) deep a lookup follows; real files use one or two levels, and a bound
/// keeps a self-referencing anchor from looping.
const MAX_MERGE_DEPTH: usize = 16;

/// Finds every target in `bytes`, the content of the file at `path` (used only for messages).
pub fn discover(path: &Path, bytes: &[u8]) -> Discovery {
    let skipped = |message: String| Discovery {
        path: path.to_path_buf(),
        targets: Vec::new(),
        warnings: vec![Warning {
            line: 0,
            message,
            kind: WarningKind::SkippedFile,
        }],
        skipped: true,
        quote_style: QuoteStyle::Double,
    };
    if bytes.len() > MAX_FILE_SIZE {
        return skipped(format!(
            "{}: larger than {MAX_FILE_SIZE} bytes, skipped",
            path.display()
        ));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return skipped(format!("{}: not UTF-8 text, skipped", path.display()));
    };
    if let Some((line, character)) = non_printable(text) {
        return skipped(format!(
            "{}:{line}: holds the control character U+{:04X}, which YAML does not allow, skipped",
            path.display(),
            u32::from(character)
        ));
    }
    if text.contains("{{") {
        return skipped(format!(
            "{}: contains `{{{{` (a Helm template?), skipped",
            path.display()
        ));
    }
    let stream = match yaml::parse(text) {
        Ok(stream) => stream,
        Err(error) => {
            return skipped(format!(
                "{}: not valid YAML ({error}), skipped",
                path.display()
            ));
        }
    };
    let mut anchored_mappings = HashMap::new();
    for document in &stream.documents {
        collect_anchored_mappings(&document.root, &mut anchored_mappings);
    }
    let mut walker = Walker {
        text,
        stream: &stream,
        anchored_mappings,
        targets: Vec::new(),
        target_parts: Vec::new(),
        owners: HashMap::new(),
        warnings: Vec::new(),
        claimed: HashSet::new(),
        document: 0,
        path: Vec::new(),
        singles: 0,
        doubles: 0,
    };
    for (index, document) in stream.documents.iter().enumerate() {
        walker.document = index;
        walker.document_root(&document.root);
        walker.walk(&document.root);
    }
    let quote_style = if walker.singles > walker.doubles {
        QuoteStyle::Single
    } else {
        QuoteStyle::Double
    };
    let mut targets = walker.targets;
    // Stable, so targets on one line keep the order they were found in.
    targets.sort_by_key(|target| (target.document, target.line));
    let mut warnings = walker.warnings;
    warnings.sort_by_key(|warning| warning.line);
    Discovery {
        path: path.to_path_buf(),
        targets,
        warnings,
        skipped: false,
        quote_style,
    }
}

/// Every anchored mapping of `node`, by anchor id (ids are unique in a stream).
/// The first character outside YAML's printable set (`c-printable`: tab, line breaks, U+0020–U+007E,
/// U+0085, U+00A0–U+D7FF, U+E000–U+FFFD and beyond U+FFFF) and its line. YAML 1.1 and 1.2 forbid them
/// in a stream; `saphyr-parser` reads some anyway where libyaml (and so most of the tools that deploy
/// the file) refuses the file, so a file holding one is not YAML to tagwatch either: skipped, never
/// touched (fuzzing finding 9, docs/reliability/fuzzing.md).
fn non_printable(text: &str) -> Option<(usize, char)> {
    let printable = |character: char| {
        matches!(character, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}')
            || ('\u{A0}'..='\u{D7FF}').contains(&character)
            || ('\u{E000}'..='\u{FFFD}').contains(&character)
            || character >= '\u{10000}'
    };
    let at = text.find(|character| !printable(character))?;
    let line = 1 + text[..at].bytes().filter(|byte| *byte == b'\n').count();
    text[at..].chars().next().map(|character| (line, character))
}

/// Whether a name-only field (kustomize's `name` / `newName`, a Helm map's `repository`) holds a tag or
/// a digest: the tag field beside it would be appended to it, which no tool reads as one reference.
fn holds_tag_or_digest(value: &str) -> bool {
    ImageReference::parse(value).is_ok_and(|name| name.tag.is_some() || name.digest.is_some())
}

fn collect_anchored_mappings<'a>(node: &'a Node, found: &mut HashMap<usize, &'a Node>) {
    match node {
        Node::Mapping { entries, anchor } => {
            if *anchor != 0 {
                found.insert(*anchor, node);
            }
            for (key, value) in entries {
                collect_anchored_mappings(key, found);
                collect_anchored_mappings(value, found);
            }
        }
        Node::Sequence(items) => {
            for item in items {
                collect_anchored_mappings(item, found);
            }
        }
        Node::Scalar(_) | Node::Alias { .. } => {}
    }
}

/// One field of a target before it becomes a [`Field`].
#[derive(Clone, Copy)]
struct Part<'a> {
    role: Role,
    scalar: &'a Scalar,
    /// The line of the merge key (`<<`) through which the field was reached from an anchored mapping;
    /// `None` for the mapping's own entries.
    merged: Option<usize>,
}

/// Whether a bump edits this role's field (a name changes only when a bump renames the image).
fn moves(role: Role) -> bool {
    matches!(role, Role::Tag | Role::Digest | Role::Reference)
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walker<'a> {
    text: &'a str,
    stream: &'a Stream,
    /// Anchor id → the anchored mapping, for merge keys.
    anchored_mappings: HashMap<usize, &'a Node>,
    targets: Vec<Target>,
    /// Per target (same index): `(role, scalar start)` of its fields, to tell a mapping that merges an
    /// anchor unchanged from one that overrides part of it.
    target_parts: Vec<Vec<(Role, usize)>>,
    /// Scalar start → the target whose bump edits that scalar (fields not marked [`Shared`]).
    owners: HashMap<usize, usize>,
    warnings: Vec<Warning>,
    /// Scalars (by start offset) already part of a target, so no rule reports one twice.
    claimed: HashSet<usize>,
    document: usize,
    path: Vec<Segment<'a>>,
    singles: usize,
    doubles: usize,
}

/// How an image-like key's value is judged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// `image:` and container images: the value must be a reference; anything else is reported.
    Strict,
    /// `*Image`, `image_*`, `imageName`: only a reference with a tag or digest counts; silence otherwise.
    Lenient,
}

fn image_key(key: &str) -> Option<Strictness> {
    if key == "image" {
        Some(Strictness::Strict)
    } else if key.ends_with("Image")
        || key.starts_with("image_")
        || key.ends_with("_image")
        || key == "imageName"
    {
        Some(Strictness::Lenient)
    } else {
        None
    }
}

/// Whether a field holds no value: empty, or a plain null (`~`, `null`), as Helm charts write an unset tag.
fn is_null(scalar: &Scalar) -> bool {
    scalar.value.is_empty()
        || (scalar.style == Style::Plain
            && matches!(scalar.value.as_str(), "~" | "null" | "Null" | "NULL"))
}

fn key_of(node: &Node) -> Option<&str> {
    node.as_scalar().map(|scalar| scalar.value.as_str())
}

impl<'a> Walker<'a> {
    /// The scalar a value node stands for (following an alias) and whether an alias was followed.
    fn resolve(&self, node: &'a Node) -> Option<(&'a Scalar, bool)> {
        match node {
            Node::Scalar(scalar) => Some((scalar, false)),
            Node::Alias { anchor, .. } => self
                .stream
                .anchored_scalars
                .get(anchor)
                .map(|scalar| (scalar, true)),
            _ => None,
        }
    }

    /// The value of `key` in `map`, following merge keys (`<<: *anchor`, `<<: [*a, *b]`, `<<: {…}`) the
    /// way YAML 1.1 merges: the mapping's own entries first, then the merged mappings in order.
    fn lookup(&self, map: &'a Node, key: &str) -> Option<(&'a Node, Option<usize>)> {
        self.lookup_within(map, key, 0)
    }

    fn lookup_within(
        &self,
        map: &'a Node,
        key: &str,
        depth: usize,
    ) -> Option<(&'a Node, Option<usize>)> {
        let Node::Mapping { entries, .. } = map else {
            return None;
        };
        if let Some(value) = map.get(key) {
            return Some((value, None));
        }
        if depth >= MAX_MERGE_DEPTH {
            return None;
        }
        for (merge_key, value) in entries.iter().filter(|(k, _)| k.is_merge_key()) {
            let merge_line = merge_key.as_scalar().map_or(0, |scalar| scalar.line);
            let sources = match value {
                Node::Sequence(items) => items.as_slice(),
                other => std::slice::from_ref(other),
            };
            for source in sources {
                let (mapping, anchored) = match source {
                    Node::Alias { anchor, .. } => match self.anchored_mappings.get(anchor) {
                        Some(mapping) => (*mapping, true),
                        None => continue,
                    },
                    Node::Mapping { .. } => (source, false),
                    _ => continue,
                };
                if let Some((found, inner)) = self.lookup_within(mapping, key, depth + 1) {
                    return Some((found, if anchored { Some(merge_line) } else { inner }));
                }
            }
        }
        None
    }

    /// The scalar field `key` of `map` (following merge keys and scalar aliases) as a part in `role`.
    fn part(&self, map: &'a Node, key: &str, role: Role) -> Option<Part<'a>> {
        let (node, merged) = self.lookup(map, key)?;
        let (scalar, _) = self.resolve(node)?;
        Some(Part {
            role,
            scalar,
            merged,
        })
    }

    fn path_string(&self, last: &[Segment<'_>]) -> String {
        let mut out = String::new();
        for segment in self.path.iter().chain(last) {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        out
    }

    fn warn(&mut self, line: usize, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            line,
            message,
            kind,
        });
    }

    fn marker_of(&mut self, scalar: &Scalar) -> Option<Marker> {
        let end = scalar.content.as_ref()?.end;
        let comment = marker::trailing_comment(self.text, end)?;
        match marker::find(comment) {
            Ok(found) => found,
            Err(error) => {
                self.warn(scalar.line, WarningKind::Marker, error.to_string());
                None
            }
        }
    }

    /// A field of a target. A field shared through a merge key carries no marker here: a marker
    /// belongs to the target that edits the field (its comment was read, and reported, there).
    fn field(&mut self, role: Role, scalar: &Scalar, shared: Option<Shared>) -> Field {
        self.claimed.insert(scalar.start);
        let marker = if shared.is_none() {
            self.marker_of(scalar)
        } else {
            None
        };
        Field {
            role,
            value: scalar.value.clone(),
            style: scalar.style,
            range: scalar.content.clone(),
            line: scalar.line,
            marker,
            shared,
        }
    }

    /// Records a target; `(reference, written)` is the parsed reference and its text as written.
    ///
    /// Parts reached through a merge key (`<<`) are where merge keys are decided (see the module's
    /// Limitations): a mapping that merges an anchor's fields unchanged adds no target (the anchor's
    /// owner bumps them, and this mapping moves with it); one that keeps the anchor's tag / digest but
    /// overrides another field diverges from the owner, and that shared field is edited by neither;
    /// an inherited name field is never edited from a merging mapping.
    fn add_target(
        &mut self,
        kind: TargetKind,
        rule: &'static str,
        (reference, written): (ImageReference, String),
        path: String,
        parts: Vec<Part<'a>>,
        via_alias: bool,
    ) {
        let signature: Vec<(Role, usize)> = parts
            .iter()
            .map(|part| (part.role, part.scalar.start))
            .collect();
        let owner = parts
            .iter()
            .filter(|part| part.merged.is_some() && moves(part.role))
            .find_map(|part| self.owners.get(&part.scalar.start).copied());
        if let Some(owner) = owner {
            let theirs = &self.target_parts[owner];
            if theirs.len() == signature.len() && signature.iter().all(|p| theirs.contains(p)) {
                return;
            }
        }
        let mut fields = Vec::with_capacity(parts.len());
        let mut diverging = Vec::new();
        // The target's line is where its bump edits (its own fields, or an anchored tag it owns);
        // when it edits nothing of its own, the merge key that brings the shared fields in.
        let (mut line, mut merge_line_min) = (usize::MAX, usize::MAX);
        let mut through_anchor = via_alias;
        for part in &parts {
            let mut shared = None;
            match part.merged {
                None => line = line.min(part.scalar.line),
                Some(merge_line) => {
                    let owned_by = self.owners.get(&part.scalar.start).copied();
                    if moves(part.role) && owned_by.is_none() {
                        // The first mapping to merge an anchored tag nobody owns owns it.
                        through_anchor = true;
                        line = line.min(part.scalar.line);
                    } else {
                        shared = Some(Shared::Merged { merge_line });
                        merge_line_min = merge_line_min.min(merge_line);
                        if moves(part.role)
                            && let Some(owner) = owned_by
                        {
                            diverging.push((owner, part.role, part.scalar.start, merge_line));
                        }
                    }
                }
            }
            fields.push(self.field(part.role, part.scalar, shared));
        }
        if line == usize::MAX {
            line = merge_line_min;
        }
        let index = self.targets.len();
        for (part, field) in parts.iter().zip(&fields) {
            if field.shared.is_none() {
                self.owners.entry(part.scalar.start).or_insert(index);
            }
        }
        self.target_parts.push(signature);
        let marker = fields.iter().find_map(|field| field.marker.clone());
        for (owner, role, start, merge_line) in diverging {
            let owner_target = &mut self.targets[owner];
            let Some(position) = self.target_parts[owner]
                .iter()
                .position(|(_, owned)| *owned == start)
            else {
                continue;
            };
            let owned_field = &mut owner_target.fields[position];
            let anchor_line = owned_field.line;
            match &mut owned_field.shared {
                Some(Shared::Diverging { lines }) => lines.push(merge_line),
                shared => {
                    *shared = Some(Shared::Diverging {
                        lines: vec![merge_line],
                    })
                }
            }
            let message = format!(
                "{path}: its {role} (line {anchor_line}) is merged with `<<` from an anchored mapping that `{}` at line {} also uses, but this mapping is `{written}`: changing the anchor would change both, so neither is bumped; give each mapping its own {role}",
                owner_target.written, owner_target.line,
            );
            self.warn(merge_line, WarningKind::SharedByMerge, message);
        }
        self.targets.push(Target {
            kind,
            rule,
            reference,
            written,
            path,
            document: self.document,
            line: if line == usize::MAX { 0 } else { line },
            fields,
            marker,
            via_alias: through_anchor,
        });
    }

    /// A whole reference in one scalar (`image: nginx:1.0`); `merged` when the value was reached
    /// through a merge key.
    fn single(
        &mut self,
        kind: TargetKind,
        rule: &'static str,
        (node, merged): (&'a Node, Option<usize>),
        key: &'a str,
        strictness: Strictness,
    ) {
        let Some((scalar, via_alias)) = self.resolve(node) else {
            return;
        };
        // Already a target (an anchor reached again through an alias or a merge key) or reported.
        if self.claimed.contains(&scalar.start) {
            return;
        }
        match ImageReference::parse(&scalar.value) {
            Ok(reference) => {
                if strictness == Strictness::Lenient
                    && reference.tag.is_none()
                    && reference.digest.is_none()
                {
                    return;
                }
                let path = self.path_string(&[Segment::Key(key)]);
                let part = Part {
                    role: Role::Reference,
                    scalar,
                    merged,
                };
                self.add_target(
                    kind,
                    rule,
                    (reference, scalar.value.clone()),
                    path,
                    vec![part],
                    via_alias,
                );
            }
            Err(error) => {
                if strictness == Strictness::Strict {
                    self.claimed.insert(scalar.start);
                    let path = self.path_string(&[Segment::Key(key)]);
                    self.warn(
                        scalar.line,
                        WarningKind::InvalidReference,
                        format!("{path}: {error}; not bumped"),
                    );
                }
            }
        }
    }

    /// Rules that only apply at a document's root: kustomize `images:` and compose `services:`.
    fn document_root(&mut self, root: &'a Node) {
        let api_version = root.get("apiVersion").and_then(Node::as_scalar);
        let kustomization =
            api_version.is_none_or(|scalar| scalar.value.starts_with("kustomize.config.k8s.io"));
        if kustomization && let Some(Node::Sequence(entries)) = root.get("images") {
            for (index, entry) in entries.iter().enumerate() {
                self.kustomize_entry(entry, index);
            }
        }
        if api_version.is_none()
            && root.get("kind").is_none()
            && let Some(Node::Mapping {
                entries: services, ..
            }) = root.get("services")
        {
            for (name, service) in services {
                let Some(name) = key_of(name) else { continue };
                if let Some(image) = self.lookup(service, "image") {
                    self.path.push(Segment::Key("services"));
                    self.path.push(Segment::Key(name));
                    self.single(
                        TargetKind::Compose,
                        "compose-services",
                        image,
                        "image",
                        Strictness::Strict,
                    );
                    self.path.truncate(self.path.len() - 2);
                }
            }
        }
    }

    fn kustomize_entry(&mut self, entry: &'a Node, index: usize) {
        let Some(name) = self.part(entry, "name", Role::Name) else {
            return;
        };
        let (new_name, new_tag, digest) = (
            self.part(entry, "newName", Role::NewName),
            self.part(entry, "newTag", Role::Tag),
            self.part(entry, "digest", Role::Digest),
        );
        if new_name.is_none() && new_tag.is_none() && digest.is_none() {
            return;
        }
        let path = format!("images[{index}]");
        let (named, key) = match new_name {
            Some(new_name) => (new_name, "newName"),
            None => (name, "name"),
        };
        // kustomize matches and writes names without tags: `name: app:1.0` with an empty `newTag` would
        // be bumped into `app:1.0:2.0` (fuzzing finding 7).
        if holds_tag_or_digest(&named.scalar.value) {
            self.warn(
                named.scalar.line,
                WarningKind::InvalidReference,
                format!(
                    "{path}.{key}: {:?} holds a tag or digest, which kustomize keeps in newTag and digest; not bumped",
                    named.scalar.value
                ),
            );
            return;
        }
        let mut written = named.scalar.value.clone();
        if let Some(tag) = new_tag.filter(|tag| !is_null(tag.scalar)) {
            written = format!("{written}:{}", tag.scalar.value);
        }
        if let Some(digest) = digest.filter(|digest| !is_null(digest.scalar)) {
            written = format!("{written}@{}", digest.scalar.value);
        }
        let reference = match ImageReference::parse(&written) {
            Ok(reference) => reference,
            Err(error) => {
                self.warn(
                    name.scalar.line,
                    WarningKind::InvalidReference,
                    format!("{path}: {error}; not bumped"),
                );
                return;
            }
        };
        let parts = [Some(name), new_name, new_tag, digest]
            .into_iter()
            .flatten()
            .collect();
        self.add_target(
            TargetKind::Kustomize,
            "kustomize-images",
            (reference, written),
            path,
            parts,
            false,
        );
    }

    /// A Helm-style map: `repository` plus `tag`, `digest` or `registry` (its own, or merged in).
    fn helm_map(&mut self, map: &'a Node) {
        let (registry, tag, digest) = (
            self.part(map, "registry", Role::Registry),
            self.part(map, "tag", Role::Tag),
            self.part(map, "digest", Role::Digest),
        );
        // A lone `repository` counts only as the value of an image key (`image: {repository: …}`),
        // and so does `name` beside a `tag` (`image: {name: quay.io/x, tag: v1}`).
        let under_image_key =
            matches!(self.path.last(), Some(Segment::Key(key)) if image_key(key).is_some());
        let Some(repository) = self.part(map, "repository", Role::Repository).or_else(|| {
            self.part(map, "name", Role::Repository)
                .filter(|_| under_image_key && (tag.is_some() || digest.is_some()))
        }) else {
            return;
        };
        if (registry.is_none() && tag.is_none() && digest.is_none() && !under_image_key)
            || repository.scalar.value.is_empty()
            || (repository.merged.is_none() && self.claimed.contains(&repository.scalar.start))
        {
            return;
        }
        let mut written = repository.scalar.value.clone();
        if let Some(registry) = registry.filter(|registry| !is_null(registry.scalar)) {
            written = format!("{}/{written}", registry.scalar.value);
        }
        // A `repository` holding a tag or digest next to a `tag` or `digest` field: the field would be
        // appended to it (`ngs:x` + `tag: 1.0`), which no chart reads as one reference (fuzzing
        // finding 7).
        if (tag.is_some() || digest.is_some()) && holds_tag_or_digest(&written) {
            let path = self.path_string(&[]);
            self.warn(
                repository.scalar.line,
                WarningKind::InvalidReference,
                format!(
                    "{path}: the repository {:?} holds a tag or digest next to its own tag or digest field; not bumped",
                    repository.scalar.value
                ),
            );
            return;
        }
        if let Some(tag) = tag.filter(|tag| !is_null(tag.scalar)) {
            written = format!("{written}:{}", tag.scalar.value);
        }
        if let Some(digest) = digest.filter(|digest| !is_null(digest.scalar)) {
            written = format!("{written}@{}", digest.scalar.value);
        }
        let path = self.path_string(&[]);
        let reference = match ImageReference::parse(&written) {
            Ok(reference) => reference,
            Err(error) => {
                self.warn(
                    repository.scalar.line,
                    WarningKind::InvalidReference,
                    format!("{path}: {error}; not bumped"),
                );
                return;
            }
        };
        let parts = [registry, Some(repository), tag, digest]
            .into_iter()
            .flatten()
            .collect();
        self.add_target(
            TargetKind::HelmMap,
            "helm-map",
            (reference, written),
            path,
            parts,
            false,
        );
    }

    fn walk(&mut self, node: &'a Node) {
        match node {
            Node::Scalar(scalar) => match scalar.style {
                Style::SingleQuoted => self.singles += 1,
                Style::DoubleQuoted => self.doubles += 1,
                _ => {}
            },
            Node::Alias { .. } => {}
            Node::Sequence(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.path.push(Segment::Index(index));
                    self.walk(item);
                    self.path.pop();
                }
            }
            Node::Mapping { entries, .. } => {
                self.helm_map(node);
                let mut marked: Vec<(&'a str, &'a Node, &'a Scalar, Marker)> = Vec::new();
                for (key_node, value) in entries {
                    self.walk(key_node);
                    let Some(key) = key_of(key_node) else {
                        self.walk(value);
                        continue;
                    };
                    if CONTAINER_KEYS.contains(&key)
                        && let Node::Sequence(containers) = value
                    {
                        for (index, container) in containers.iter().enumerate() {
                            if let Some(image) = self.lookup(container, "image") {
                                self.path.push(Segment::Key(key));
                                self.path.push(Segment::Index(index));
                                self.single(
                                    TargetKind::KubernetesContainer,
                                    "containers",
                                    image,
                                    "image",
                                    Strictness::Strict,
                                );
                                self.path.truncate(self.path.len() - 2);
                            }
                        }
                    }
                    if let Some(strictness) = image_key(key) {
                        self.single(
                            TargetKind::HelmString,
                            "image-key",
                            (value, None),
                            key,
                            strictness,
                        );
                    }
                    if let Node::Scalar(scalar) = value
                        && !self.claimed.contains(&scalar.start)
                        && let Some(found) = self.marker_of(scalar)
                    {
                        marked.push((key, value, scalar, found));
                    }
                    self.path.push(Segment::Key(key));
                    self.walk(value);
                    self.path.pop();
                }
                if !marked.is_empty() {
                    self.marked(marked);
                }
            }
        }
    }

    /// Scalars that only a marker names: a whole reference, or Flux field markers of one mapping
    /// combined into one reference.
    fn marked(&mut self, marked: Vec<(&'a str, &'a Node, &'a Scalar, Marker)>) {
        let mut by_policy: HashMap<String, Vec<(Role, &'a Scalar, &'a str)>> = HashMap::new();
        for (key, node, scalar, found) in marked {
            let role = match &found {
                Marker::Flux {
                    field: Some(FluxField::Tag),
                    ..
                } => Role::Tag,
                Marker::Flux {
                    field: Some(FluxField::Name),
                    ..
                } => Role::Repository,
                Marker::Flux {
                    field: Some(FluxField::Digest),
                    ..
                } => Role::Digest,
                _ => Role::Reference,
            };
            if role == Role::Reference {
                self.single(
                    TargetKind::Marker,
                    "marker",
                    (node, None),
                    key,
                    Strictness::Strict,
                );
                continue;
            }
            let policy = found.policy().unwrap_or_default();
            by_policy
                .entry(policy)
                .or_default()
                .push((role, scalar, key));
        }
        let mut policies: Vec<_> = by_policy.into_iter().collect();
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        for (policy, parts) in policies {
            let part = |role| {
                parts
                    .iter()
                    .find(|(r, _, _)| *r == role)
                    .map(|(_, s, _)| *s)
            };
            let first = parts[0];
            let Some(name) = part(Role::Repository) else {
                self.warn(
                    first.1.line,
                    WarningKind::Marker,
                    format!(
                        "marker for policy `{policy}` names a field but no `:name` field in the same mapping; not bumped"
                    ),
                );
                continue;
            };
            let mut written = name.value.clone();
            if let Some(tag) = part(Role::Tag) {
                written = format!("{written}:{}", tag.value);
            }
            if let Some(digest) = part(Role::Digest) {
                written = format!("{written}@{}", digest.value);
            }
            let path = self.path_string(&[Segment::Key(first.2)]);
            let reference = match ImageReference::parse(&written) {
                Ok(reference) => reference,
                Err(error) => {
                    self.warn(
                        name.line,
                        WarningKind::InvalidReference,
                        format!("{path}: {error}; not bumped"),
                    );
                    continue;
                }
            };
            let parts = parts
                .iter()
                .map(|(role, scalar, _)| Part {
                    role: *role,
                    scalar,
                    merged: None,
                })
                .collect();
            self.add_target(
                TargetKind::Marker,
                "marker",
                (reference, written),
                path,
                parts,
                false,
            );
        }
    }
}
