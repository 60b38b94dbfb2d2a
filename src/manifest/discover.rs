//! Finding targets in one file (SPEC §5). Pure: bytes in, [`Discovery`] out.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use super::marker::{self, FluxField};
use super::yaml::{self, Node, Scalar, Stream, Style};
use super::{Discovery, Field, Marker, QuoteStyle, Role, Target, TargetKind, Warning};
use crate::reference::ImageReference;

/// Files larger than this are skipped: no manifest is that large, and parsing is bounded (SPEC §9).
pub const MAX_FILE_SIZE: usize = 16 * 1024 * 1024;
/// Keys whose sequence items are containers of a pod template.
const CONTAINER_KEYS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Finds every target in `bytes`, the content of the file at `path` (used only for messages).
pub fn discover(path: &Path, bytes: &[u8]) -> Discovery {
    let skipped = |message: String| Discovery {
        targets: Vec::new(),
        warnings: vec![Warning { line: 0, message }],
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
    let mut walker = Walker {
        text,
        stream: &stream,
        targets: Vec::new(),
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
    targets.sort_by_key(|target| (target.document, target.line));
    let mut warnings = walker.warnings;
    warnings.sort_by_key(|warning| warning.line);
    Discovery {
        targets,
        warnings,
        skipped: false,
        quote_style,
    }
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Walker<'a> {
    text: &'a str,
    stream: &'a Stream,
    targets: Vec<Target>,
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

    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(Warning { line, message });
    }

    fn marker_of(&mut self, scalar: &Scalar) -> Option<Marker> {
        let end = scalar.content.as_ref()?.end;
        let comment = marker::trailing_comment(self.text, end)?;
        match marker::parse(comment) {
            Ok(found) => found,
            Err(error) => {
                self.warn(scalar.line, error.to_string());
                None
            }
        }
    }

    fn field(&mut self, role: Role, scalar: &Scalar) -> Field {
        self.claimed.insert(scalar.start);
        Field {
            role,
            value: scalar.value.clone(),
            style: scalar.style,
            range: scalar.content.clone(),
            line: scalar.line,
            marker: self.marker_of(scalar),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_target(
        &mut self,
        kind: TargetKind,
        rule: &'static str,
        reference: ImageReference,
        written: String,
        path: String,
        fields: Vec<Field>,
        via_alias: bool,
    ) {
        let marker = fields.iter().find_map(|field| field.marker.clone());
        let line = fields.iter().map(|field| field.line).min().unwrap_or(0);
        self.targets.push(Target {
            kind,
            rule,
            reference,
            written,
            path,
            document: self.document,
            line,
            fields,
            marker,
            via_alias,
        });
    }

    /// A whole reference in one scalar (`image: nginx:1.0`).
    fn single(
        &mut self,
        kind: TargetKind,
        rule: &'static str,
        node: &'a Node,
        key: &'a str,
        strictness: Strictness,
    ) {
        let Some((scalar, via_alias)) = self.resolve(node) else {
            return;
        };
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
                let field = self.field(Role::Reference, scalar);
                self.push_target(
                    kind,
                    rule,
                    reference,
                    scalar.value.clone(),
                    path,
                    vec![field],
                    via_alias,
                );
            }
            Err(error) => {
                if strictness == Strictness::Strict {
                    self.claimed.insert(scalar.start);
                    let path = self.path_string(&[Segment::Key(key)]);
                    self.warn(scalar.line, format!("{path}: {error}; not bumped"));
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
            && let Some(Node::Mapping(services)) = root.get("services")
        {
            for (name, service) in services {
                let Some(name) = key_of(name) else { continue };
                if let Some(image) = service.get("image") {
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
        let scalar = |key| {
            entry
                .get(key)
                .and_then(|node| self.resolve(node))
                .map(|(s, _)| s)
        };
        let Some(name) = scalar("name") else { return };
        let (new_name, new_tag, digest) = (scalar("newName"), scalar("newTag"), scalar("digest"));
        if new_name.is_none() && new_tag.is_none() && digest.is_none() {
            return;
        }
        let mut written = new_name.unwrap_or(name).value.clone();
        if let Some(tag) = new_tag.filter(|tag| !tag.value.is_empty()) {
            written = format!("{written}:{}", tag.value);
        }
        if let Some(digest) = digest.filter(|digest| !digest.value.is_empty()) {
            written = format!("{written}@{}", digest.value);
        }
        let path = format!("images[{index}]");
        let reference = match ImageReference::parse(&written) {
            Ok(reference) => reference,
            Err(error) => {
                self.warn(name.line, format!("{path}: {error}; not bumped"));
                return;
            }
        };
        let mut fields = vec![self.field(Role::Name, name)];
        for (role, scalar) in [
            (Role::NewName, new_name),
            (Role::Tag, new_tag),
            (Role::Digest, digest),
        ] {
            if let Some(scalar) = scalar {
                fields.push(self.field(role, scalar));
            }
        }
        self.push_target(
            TargetKind::Kustomize,
            "kustomize-images",
            reference,
            written,
            path,
            fields,
            false,
        );
    }

    /// A Helm-style map: `repository` plus `tag`, `digest` or `registry`.
    fn helm_map(&mut self, map: &'a Node) {
        let scalar = |key| {
            map.get(key)
                .and_then(|node| self.resolve(node))
                .map(|(s, _)| s)
        };
        let (registry, tag, digest) = (scalar("registry"), scalar("tag"), scalar("digest"));
        // A lone `repository` counts only as the value of an image key (`image: {repository: …}`),
        // and so does `name` beside a `tag` (`image: {name: quay.io/x, tag: v1}`).
        let under_image_key =
            matches!(self.path.last(), Some(Segment::Key(key)) if image_key(key).is_some());
        let Some(repository) = scalar("repository").or_else(|| {
            scalar("name").filter(|_| under_image_key && (tag.is_some() || digest.is_some()))
        }) else {
            return;
        };
        if (registry.is_none() && tag.is_none() && digest.is_none() && !under_image_key)
            || repository.value.is_empty()
            || self.claimed.contains(&repository.start)
        {
            return;
        }
        let mut written = repository.value.clone();
        if let Some(registry) = registry.filter(|registry| !registry.value.is_empty()) {
            written = format!("{}/{written}", registry.value);
        }
        if let Some(tag) = tag.filter(|tag| !tag.value.is_empty()) {
            written = format!("{written}:{}", tag.value);
        }
        if let Some(digest) = digest.filter(|digest| !digest.value.is_empty()) {
            written = format!("{written}@{}", digest.value);
        }
        let path = self.path_string(&[]);
        let reference = match ImageReference::parse(&written) {
            Ok(reference) => reference,
            Err(error) => {
                self.warn(repository.line, format!("{path}: {error}; not bumped"));
                return;
            }
        };
        let mut fields = Vec::new();
        for (role, scalar) in [
            (Role::Registry, registry),
            (Role::Repository, Some(repository)),
            (Role::Tag, tag),
            (Role::Digest, digest),
        ] {
            if let Some(scalar) = scalar {
                fields.push(self.field(role, scalar));
            }
        }
        self.push_target(
            TargetKind::HelmMap,
            "helm-map",
            reference,
            written,
            path,
            fields,
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
            Node::Mapping(entries) => {
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
                            if let Some(image) = container.get("image") {
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
                        self.single(TargetKind::HelmString, "image-key", value, key, strictness);
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
                self.single(TargetKind::Marker, "marker", node, key, Strictness::Strict);
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
                    self.warn(name.line, format!("{path}: {error}; not bumped"));
                    continue;
                }
            };
            let fields = parts
                .iter()
                .map(|(role, scalar, _)| self.field(*role, scalar))
                .collect();
            self.push_target(
                TargetKind::Marker,
                "marker",
                reference,
                written,
                path,
                fields,
                false,
            );
        }
    }
}
