//! Policy documents → [`Policy`]: tagwatch's `TagPolicy` and Flux's `ImagePolicy` + `ImageRepository`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use globset::GlobBuilder;
use regex::Regex;

use super::file::Context;
use super::raw::{
    RawDigestReflection, RawDirection, RawFilter, RawFluxImagePolicy, RawFluxImageRepository,
    RawOrder, RawTagPolicy, RawWindow,
};
use super::schema_check::{Positions, child};
use super::yaml::Node;
use super::{
    Checked, Diagnostic, Mark, Report, SecretCheck, check_document, parse_yaml, read_bounded,
    suppress_related,
};
use crate::environment::Environment;
use crate::policy::window::{MAX_WINDOW_DURATION, Window, parse_schedule};
use crate::policy::{
    Direction, Exclusion, Order, Origin, Policy, PolicyKind, Range, SemverOrder, TagFilter,
};
use crate::reference::ImageReference;

/// The TagPolicy API version this build reads.
pub const TAG_POLICY_API_VERSION: &str = "tagwatch.dev/v1alpha1";
const TAGWATCH_GROUP: &str = "tagwatch.dev/";
const FLUX_GROUP: &str = "image.toolkit.fluxcd.io/";
const FLUX_VERSIONS: &[&str] = &["v1beta2", "v1"];
/// The namespace of a Flux object that names none: where `flux bootstrap` puts image automation and
/// what Flux markers most often say.
pub const DEFAULT_FLUX_NAMESPACE: &str = "flux-system";
/// Flux's default `exclusionList` when an ImageRepository sets none (signature tags).
const FLUX_DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

static POLICY_SCHEMA: LazyLock<serde_json::Value> = LazyLock::new(super::policy_schema);
static FLUX_POLICY_SCHEMA: LazyLock<serde_json::Value> =
    LazyLock::new(super::schema_of::<RawFluxImagePolicy>);
static FLUX_REPOSITORY_SCHEMA: LazyLock<serde_json::Value> =
    LazyLock::new(super::schema_of::<RawFluxImageRepository>);

/// The policy files under `path`: the file itself, or every `*.yaml` / `*.yml` below a directory
/// (hidden entries skipped), in a stable order.
pub fn collect_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|error| error.to_string())?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|error| error.to_string())?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let entry_path = entry.path();
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A Flux ImagePolicy waiting for its ImageRepository.
struct FluxPolicy {
    origin: Origin,
    file: PathBuf,
    positions: Positions,
    broken: Vec<String>,
    namespace: String,
    name: String,
    raw: RawFluxImagePolicy,
}

struct FluxRepository {
    image: Option<ImageReference>,
    interval: Option<Duration>,
    exclude: Vec<Exclusion>,
}

/// Reads every policy document of `files`. Problems are added to `diagnostics`; the policies that are
/// valid are returned either way. Without a config, a policy's `repositories` names are not checked
/// (see [`load_policy_files_for`]).
pub fn load_policy_files(files: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Vec<Policy> {
    load_policy_files_for(files, None, diagnostics)
}

/// [`load_policy_files`] for a config whose repositories are named `repositories`: every name a
/// policy's `spec.repositories` lists must be one of them.
pub fn load_policy_files_for(
    files: &[PathBuf],
    repositories: Option<&[String]>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Policy> {
    // Policy documents name no secrets: an empty environment is enough for their checks.
    let environment = Environment::default();
    let mut policies: Vec<Policy> = Vec::new();
    let mut flux_policies: Vec<FluxPolicy> = Vec::new();
    let mut flux_repositories: HashMap<(String, String), FluxRepository> = HashMap::new();
    let mut names: HashMap<String, Origin> = HashMap::new();

    for file in files {
        let mut report = Report {
            file,
            diagnostics: &mut *diagnostics,
        };
        let Some(text) = read_bounded(file, &mut report) else {
            continue;
        };
        let Some(documents) = parse_yaml(&text, &mut report) else {
            continue;
        };
        for node in documents.into_iter().flatten() {
            let Some(kind) = document_kind(&node, &mut report) else {
                continue;
            };
            match kind {
                DocumentKind::TagPolicy => {
                    let Some(Checked {
                        raw,
                        positions,
                        broken,
                    }) = check_document::<RawTagPolicy>(&POLICY_SCHEMA, &node, &mut report)
                    else {
                        continue;
                    };
                    let semantic_from = report.diagnostics.len();
                    let mut context = Context {
                        report: Report {
                            file,
                            diagnostics: &mut *report.diagnostics,
                        },
                        positions: &positions,
                        environment: &environment,
                        base: file.parent().unwrap_or(Path::new("")),
                        secrets: SecretCheck::Skip,
                    };
                    // The name is claimed before the rest is judged, so a duplicate is reported even
                    // when the policy has other problems too.
                    let at = origin(file, positions.of("metadata.name"));
                    let unique =
                        claim_name(&mut context, &mut names, raw.metadata.name.trim(), &at);
                    if let Some(policy) = tag_policy(&mut context, file, raw, repositories)
                        && unique
                    {
                        policies.push(policy);
                    }
                    suppress_related(context.report.diagnostics, semantic_from, &broken);
                }
                DocumentKind::FluxPolicy => {
                    let Some(Checked {
                        raw,
                        positions,
                        broken,
                    }) = check_document::<RawFluxImagePolicy>(
                        &FLUX_POLICY_SCHEMA,
                        &node,
                        &mut report,
                    )
                    else {
                        continue;
                    };
                    let namespace = raw
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_FLUX_NAMESPACE.to_string());
                    let name = raw.metadata.name.clone();
                    let mark = positions.of("metadata.name");
                    flux_policies.push(FluxPolicy {
                        origin: origin(file, mark),
                        file: file.clone(),
                        positions,
                        broken,
                        namespace,
                        name,
                        raw,
                    });
                }
                DocumentKind::FluxRepository => {
                    let Some(Checked {
                        raw,
                        positions,
                        broken,
                    }) = check_document::<RawFluxImageRepository>(
                        &FLUX_REPOSITORY_SCHEMA,
                        &node,
                        &mut report,
                    )
                    else {
                        continue;
                    };
                    let semantic_from = report.diagnostics.len();
                    let mut context = Context {
                        report: Report {
                            file,
                            diagnostics: &mut *report.diagnostics,
                        },
                        positions: &positions,
                        environment: &environment,
                        base: file.parent().unwrap_or(Path::new("")),
                        secrets: SecretCheck::Skip,
                    };
                    let namespace = raw
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_FLUX_NAMESPACE.to_string());
                    let key = (namespace.clone(), raw.metadata.name.clone());
                    let repository = flux_repository(&mut context, raw);
                    match flux_repositories.entry(key) {
                        std::collections::hash_map::Entry::Occupied(entry) => {
                            let (namespace, name) = entry.key();
                            context.error(
                                "metadata.name",
                                format!("ImageRepository {namespace}:{name} is defined twice"),
                            );
                        }
                        std::collections::hash_map::Entry::Vacant(entry) => {
                            entry.insert(repository);
                        }
                    }
                    suppress_related(context.report.diagnostics, semantic_from, &broken);
                }
            }
        }
    }

    for flux in flux_policies {
        let mut context = Context {
            report: Report {
                file: &flux.file,
                diagnostics: &mut *diagnostics,
            },
            positions: &flux.positions,
            environment: &environment,
            base: flux.file.parent().unwrap_or(Path::new("")),
            secrets: SecretCheck::Skip,
        };
        let name = format!("{}:{}", flux.namespace, flux.name);
        let semantic_from = context.report.diagnostics.len();
        let unique = claim_name(&mut context, &mut names, &name, &flux.origin);
        if let Some(policy) = flux_policy(&mut context, &flux, &name, &flux_repositories)
            && unique
        {
            policies.push(policy);
        }
        suppress_related(context.report.diagnostics, semantic_from, &flux.broken);
    }
    policies
}

enum DocumentKind {
    TagPolicy,
    FluxPolicy,
    FluxRepository,
}

/// Which reader a document needs; `None` for documents that are not policies (skipped) or that name a
/// version this build does not read (reported).
fn document_kind(node: &Node, report: &mut Report<'_>) -> Option<DocumentKind> {
    let api_version = node.get("apiVersion");
    let kind = node.get("kind");
    let Some(api_version) = api_version.and_then(Node::as_scalar) else {
        let mark = api_version.map_or(node.mark, |n| n.mark);
        report.add(mark, "apiVersion", format!("missing: a policy document needs apiVersion: {TAG_POLICY_API_VERSION} and kind: TagPolicy"));
        return None;
    };
    let api_mark = node.get("apiVersion").map_or(node.mark, |n| n.mark);
    let kind_text = kind.and_then(Node::as_scalar).unwrap_or("");
    let kind_mark = kind.map_or(node.mark, |n| n.mark);
    if api_version.starts_with(TAGWATCH_GROUP) {
        if api_version != TAG_POLICY_API_VERSION {
            report.add(api_mark, "apiVersion", format!("unsupported apiVersion {api_version:?}: this tagwatch reads {TAG_POLICY_API_VERSION}"));
            return None;
        }
        if kind_text != "TagPolicy" {
            report.add(
                kind_mark,
                "kind",
                format!("unknown kind {kind_text:?}: expected TagPolicy"),
            );
            return None;
        }
        return Some(DocumentKind::TagPolicy);
    }
    if let Some(version) = api_version.strip_prefix(FLUX_GROUP) {
        if !matches!(kind_text, "ImagePolicy" | "ImageRepository") {
            // ImageUpdateAutomation and friends: Flux's business, not a policy.
            return None;
        }
        if !FLUX_VERSIONS.contains(&version) {
            report.add(api_mark, "apiVersion", format!("unsupported Flux apiVersion {api_version:?}: tagwatch reads {FLUX_GROUP}v1beta2 and {FLUX_GROUP}v1"));
            return None;
        }
        return Some(if kind_text == "ImagePolicy" {
            DocumentKind::FluxPolicy
        } else {
            DocumentKind::FluxRepository
        });
    }
    tracing::debug!(
        api_version,
        kind = kind_text,
        "skipping a document that is not a policy"
    );
    None
}

fn origin(file: &Path, mark: Mark) -> Origin {
    Origin {
        file: file.to_path_buf(),
        line: mark.line,
        column: mark.column,
    }
}

fn claim_name(
    context: &mut Context<'_, '_>,
    names: &mut HashMap<String, Origin>,
    name: &str,
    at: &Origin,
) -> bool {
    if let Some(first) = names.get(name) {
        context.error(
            "metadata.name",
            format!("duplicate policy name {name:?} (first defined at {first})"),
        );
        return false;
    }
    names.insert(name.to_string(), at.clone());
    true
}

fn tag_policy(
    context: &mut Context<'_, '_>,
    file: &Path,
    raw: RawTagPolicy,
    known_repositories: Option<&[String]>,
) -> Option<Policy> {
    let errors_before = context.report.diagnostics.len();
    let name = raw.metadata.name.trim().to_string();
    if name.is_empty() {
        context.error("metadata.name", "must not be empty");
    } else if name.contains(':') || name.contains(char::is_whitespace) {
        context.error("metadata.name", format!("{name:?}: a policy name has no `:` (reserved for Flux NAMESPACE:NAME) and no spaces"));
    }
    let spec = raw.spec;
    let image = image_name(context, "spec.image", &spec.image);
    let filter = spec
        .filter
        .as_ref()
        .and_then(|filter| tag_filter(context, "spec.filter", filter));
    let direction = match spec.direction {
        Some(RawDirection::Desc) => Direction::Descending,
        Some(RawDirection::Asc) | None => Direction::Ascending,
    };
    let order = match (&spec.semver, spec.order) {
        (Some(_), Some(_)) => {
            context.error(
                "spec.order",
                "choose one selection rule: semver, or order (numerical | alphabetical)",
            );
            None
        }
        (Some(semver), None) => {
            let variant = semver.variant.clone();
            if let Some(variant) = &variant
                && (variant.is_empty()
                    || !variant
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
            {
                context.error(
                    "spec.semver.variant",
                    format!("{variant:?} is not a tag suffix"),
                );
            }
            semver_range(
                context,
                "spec.semver.range",
                &semver.range,
                semver.prerelease.unwrap_or(false),
            )
            .map(|range| Order::Semver(SemverOrder { range, variant }))
        }
        (None, Some(RawOrder::Numerical)) => Some(Order::Numerical(direction)),
        (None, Some(RawOrder::Alphabetical)) => Some(Order::Alphabetical(direction)),
        (None, Some(RawOrder::Newest)) => {
            if spec.direction.is_some() {
                context.error(
                    "spec.direction",
                    "direction does not apply to order: newest",
                );
            }
            Some(Order::Newest)
        }
        (None, None)
            if context.positions.written("spec.semver")
                || context.positions.written("spec.order") =>
        {
            None
        }
        (None, None) => {
            context.error("spec", "a policy needs a selection rule: semver: { range: … }, or order: numerical | alphabetical (with an optional filter)");
            None
        }
    };
    if spec.direction.is_some() && spec.semver.is_some() {
        context.error(
            "spec.direction",
            "direction applies to order: numerical | alphabetical, not to semver",
        );
    }
    let mut exclude = Vec::new();
    for (index, glob) in spec.exclude.unwrap_or_default().iter().enumerate() {
        let path = format!("spec.exclude[{index}]");
        match GlobBuilder::new(glob).literal_separator(false).build() {
            Ok(compiled) => exclude.push(Exclusion::Glob {
                glob: glob.clone(),
                matcher: compiled.compile_matcher(),
            }),
            Err(error) => context.error(&path, format!("invalid glob {glob:?}: {}", error.kind())),
        }
    }
    let interval = spec
        .interval
        .as_deref()
        .and_then(|text| positive_duration(context, "spec.interval", text));
    let min_age = spec
        .min_age
        .as_deref()
        .and_then(|text| context.duration("spec.minAge", text))
        .unwrap_or(Duration::ZERO);
    let windows = spec
        .windows
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(index, window)| {
            schedule_window(context, &format!("spec.windows[{index}]"), window)
        })
        .collect();
    let repositories = policy_repositories(
        context,
        spec.repositories.unwrap_or_default(),
        known_repositories,
    );
    let promotion = spec
        .promotion
        .and_then(|raw| promotion(context, file, raw, known_repositories, &repositories));
    if context.report.diagnostics.len() > errors_before {
        return None;
    }
    Some(Policy {
        origin: origin(file, context.positions.of("metadata.name")),
        name,
        kind: PolicyKind::TagPolicy,
        image: image?,
        filter,
        order: order?,
        exclude,
        digest: spec.digest.unwrap_or(false),
        interval,
        windows,
        min_age,
        repositories,
        promotion,
    })
}

/// `spec.promotion`: an upstream repository of `tagwatch.yaml` (when loaded through one) that is not
/// also one this policy is restricted to, relative paths, a soak duration, status names. Chains and
/// cycles across policies are checked once every policy is loaded (`config::file`).
fn promotion(
    context: &mut Context<'_, '_>,
    file: &Path,
    raw: super::raw::RawPromotion,
    known: Option<&[String]>,
    restricted_to: &[String],
) -> Option<crate::policy::Promotion> {
    let errors_before = context.report.diagnostics.len();
    let from = raw.from.trim().to_string();
    if from.is_empty() {
        context.error("spec.promotion.from", "must name the upstream repository");
    } else if let Some(known) = known
        && !known.contains(&from)
    {
        context.error(
            "spec.promotion.from",
            format!("no repository named {from:?} in tagwatch.yaml"),
        );
    } else if restricted_to.contains(&from) {
        context.error(
            "spec.promotion.from",
            format!("{from:?} is also in spec.repositories: a policy cannot promote from a repository it writes"),
        );
    }
    let mut paths = Vec::new();
    for (index, text) in raw.paths.unwrap_or_default().iter().enumerate() {
        let path = Path::new(text);
        let escapes = text.is_empty()
            || path.components().any(|component| {
                !matches!(
                    component,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
        if escapes {
            context.error(
                &format!("spec.promotion.paths[{index}]"),
                format!("{text:?} must be a relative path inside the repository"),
            );
        } else {
            paths.push(path.to_path_buf());
        }
    }
    let soak = context.duration("spec.promotion.soak", &raw.soak);
    let mut require_status = Vec::new();
    for (index, name) in raw
        .require_status
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if name.trim().is_empty() {
            context.error(
                &format!("spec.promotion.requireStatus[{index}]"),
                "must not be empty",
            );
        } else if !require_status.contains(&name) {
            require_status.push(name);
        }
    }
    if context.report.diagnostics.len() > errors_before {
        return None;
    }
    Some(crate::policy::Promotion {
        from,
        paths,
        soak: soak?,
        require_status,
        origin: origin(file, context.positions.of("spec.promotion.from")),
    })
}

/// `spec.repositories`: names, each once, and each a repository of `tagwatch.yaml` when the policy is
/// loaded through one (`known`).
fn policy_repositories(
    context: &mut Context<'_, '_>,
    names: Vec<String>,
    known: Option<&[String]>,
) -> Vec<String> {
    let mut repositories: Vec<String> = Vec::new();
    for (index, name) in names.into_iter().enumerate() {
        let path = format!("spec.repositories[{index}]");
        let name = name.trim().to_string();
        if name.is_empty() {
            context.error(&path, "must not be empty");
        } else if repositories.contains(&name) {
            context.error(&path, format!("repository {name:?} is listed twice"));
        } else if let Some(known) = known
            && !known.contains(&name)
        {
            let listed = if known.is_empty() {
                "it lists none".to_string()
            } else {
                format!("it lists {}", known.join(", "))
            };
            context.error(
                &path,
                format!("no repository named {name:?} in tagwatch.yaml ({listed})"),
            );
        } else {
            repositories.push(name);
        }
    }
    repositories
}

fn flux_repository(context: &mut Context<'_, '_>, raw: RawFluxImageRepository) -> FluxRepository {
    let image = image_name(context, "spec.image", &raw.spec.image);
    let interval = raw
        .spec
        .interval
        .as_deref()
        .and_then(|text| positive_duration(context, "spec.interval", text));
    let patterns = raw
        .spec
        .exclusion_list
        .unwrap_or_else(|| vec![FLUX_DEFAULT_EXCLUSION.to_string()]);
    let mut exclude = Vec::new();
    for (index, pattern) in patterns.iter().enumerate() {
        if let Some(regex) =
            compile_regex(context, &format!("spec.exclusionList[{index}]"), pattern)
        {
            exclude.push(Exclusion::Regex(regex));
        }
    }
    FluxRepository {
        image,
        interval,
        exclude,
    }
}

fn flux_policy(
    context: &mut Context<'_, '_>,
    flux: &FluxPolicy,
    name: &str,
    repositories: &HashMap<(String, String), FluxRepository>,
) -> Option<Policy> {
    let errors_before = context.report.diagnostics.len();
    let spec = &flux.raw.spec;
    let reference = &spec.image_repository_ref;
    let repository_namespace = reference
        .namespace
        .clone()
        .unwrap_or_else(|| flux.namespace.clone());
    let repository = repositories.get(&(repository_namespace.clone(), reference.name.clone()));
    if repository.is_none() {
        context.error(
            "spec.imageRepositoryRef.name",
            format!(
                "no ImageRepository {repository_namespace}:{} in the policy paths",
                reference.name
            ),
        );
    }
    let filter = spec
        .filter_tags
        .as_ref()
        .and_then(|filter| tag_filter(context, "spec.filterTags", filter));
    let choice = &spec.policy;
    let chosen = [
        choice.semver.is_some(),
        choice.alphabetical.is_some(),
        choice.numerical.is_some(),
    ];
    let direction = |order: &Option<RawDirection>| match order {
        Some(RawDirection::Desc) => Direction::Descending,
        _ => Direction::Ascending,
    };
    let order = match chosen.iter().filter(|c| **c).count() {
        0 => {
            context.error(
                "spec.policy",
                "a policy needs a selection rule: semver, alphabetical or numerical",
            );
            None
        }
        1 => {
            if let Some(semver) = &choice.semver {
                // Flux (Masterminds semver) separates AND-ed comparators with commas.
                let range = semver.range.replace(',', " ");
                semver_range(context, "spec.policy.semver.range", &range, false).map(|range| {
                    Order::Semver(SemverOrder {
                        range,
                        variant: None,
                    })
                })
            } else if let Some(alphabetical) = &choice.alphabetical {
                Some(Order::Alphabetical(direction(&alphabetical.order)))
            } else {
                choice
                    .numerical
                    .as_ref()
                    .map(|numerical| Order::Numerical(direction(&numerical.order)))
            }
        }
        _ => {
            context.error(
                "spec.policy",
                "choose one of semver, alphabetical, numerical",
            );
            None
        }
    };
    let interval = spec
        .interval
        .as_deref()
        .and_then(|text| positive_duration(context, "spec.interval", text));
    if context.report.diagnostics.len() > errors_before {
        return None;
    }
    let repository = repository?;
    Some(Policy {
        name: name.to_string(),
        kind: PolicyKind::FluxImagePolicy {
            namespace: flux.namespace.clone(),
        },
        image: repository.image.clone()?,
        filter,
        order: order?,
        exclude: repository.exclude.clone(),
        digest: matches!(
            spec.digest_reflection_policy,
            Some(RawDigestReflection::IfNotPresent | RawDigestReflection::Always)
        ),
        interval: interval.or(repository.interval),
        windows: Vec::new(),
        min_age: Duration::ZERO,
        repositories: Vec::new(),
        promotion: None,
        origin: flux.origin.clone(),
    })
}

fn image_name(context: &mut Context<'_, '_>, path: &str, text: &str) -> Option<ImageReference> {
    match ImageReference::parse(text.trim()) {
        Ok(reference) if reference.tag.is_none() && reference.digest.is_none() => Some(reference),
        Ok(_) => {
            context.error(path, format!("{text:?}: the image is a name without tag or digest (the policy chooses the tag)"));
            None
        }
        Err(error) => {
            context.error(path, error.to_string());
            None
        }
    }
}

fn compile_regex(context: &mut Context<'_, '_>, path: &str, pattern: &str) -> Option<Regex> {
    match Regex::new(pattern) {
        Ok(regex) => Some(regex),
        Err(error) => {
            // The regex error is multi-line (it draws a caret); keep the report one line per problem.
            let detail = error.to_string();
            let detail = detail
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .trim_start_matches("error: ");
            context.error(path, format!("invalid regex {pattern:?}: {detail}"));
            None
        }
    }
}

fn tag_filter(context: &mut Context<'_, '_>, path: &str, raw: &RawFilter) -> Option<TagFilter> {
    let pattern = compile_regex(context, &child(path, "pattern"), &raw.pattern)?;
    if let Some(extract) = &raw.extract {
        let names: Vec<&str> = pattern.capture_names().flatten().collect();
        for reference in template_references(extract) {
            let known = names.contains(&reference.as_str())
                || reference
                    .parse::<usize>()
                    .is_ok_and(|n| n < pattern.captures_len());
            if !known {
                context.error(
                    &child(path, "extract"),
                    format!(
                        "${reference} names no group of the pattern (groups: {})",
                        names.join(", ")
                    ),
                );
                return None;
            }
        }
    }
    Some(TagFilter {
        pattern,
        extract: raw.extract.clone(),
    })
}

/// The group names `$name` / `${name}` in a replacement template (`$$` is a literal `$`).
fn template_references(template: &str) -> Vec<String> {
    let mut references = Vec::new();
    let mut chars = template.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            continue;
        }
        match chars.peek() {
            Some((_, '$')) => {
                chars.next();
            }
            Some((_, '{')) => {
                chars.next();
                let name: String = chars
                    .by_ref()
                    .map(|(_, c)| c)
                    .take_while(|c| *c != '}')
                    .collect();
                references.push(name);
            }
            _ => {
                let mut name = String::new();
                while let Some((_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || *c == '_' {
                        name.push(*c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if !name.is_empty() {
                    references.push(name);
                }
            }
        }
    }
    references
}

fn semver_range(
    context: &mut Context<'_, '_>,
    path: &str,
    text: &str,
    include_prerelease: bool,
) -> Option<Range> {
    match Range::parse(text, include_prerelease) {
        Ok(range) => Some(range),
        Err(error) => {
            context.error(path, error.to_string());
            None
        }
    }
}

fn positive_duration(context: &mut Context<'_, '_>, path: &str, text: &str) -> Option<Duration> {
    let duration = context.duration(path, text)?;
    if duration.is_zero() {
        context.error(path, "must be longer than zero");
        return None;
    }
    Some(duration)
}

pub(super) fn schedule_window(
    context: &mut Context<'_, '_>,
    path: &str,
    raw: &RawWindow,
) -> Option<Window> {
    let schedule = match parse_schedule(&raw.schedule) {
        // A window that can never open again would hold its bumps forever, silently.
        Ok(schedule) if schedule.upcoming(chrono_tz::UTC).next().is_none() => {
            context.error(
                &child(path, "schedule"),
                format!("cron schedule {:?} never fires again", raw.schedule),
            );
            None
        }
        Ok(schedule) => Some(schedule),
        Err(error) => {
            context.error(
                &child(path, "schedule"),
                format!("invalid cron schedule {:?}: {error}", raw.schedule),
            );
            None
        }
    };
    let duration = positive_duration(context, &child(path, "duration"), &raw.duration);
    if duration.is_some_and(|d| d > MAX_WINDOW_DURATION) {
        context.error(&child(path, "duration"), "a window lasts at most a year");
        return None;
    }
    let timezone = match &raw.timezone {
        None => Some(chrono_tz::UTC),
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                context.error(
                    &child(path, "timezone"),
                    format!("unknown time zone {name:?} (an IANA name, e.g. Europe/Berlin)"),
                );
                None
            }
        },
    };
    Some(Window {
        schedule: schedule?,
        duration: duration?,
        timezone: timezone?,
    })
}
