//! Tag policies (docs/reference/policy.md): which candidate tag an image should move to.
//!
//! Owns: the validated [`Policy`] type, ranking candidates ([`select`], pure and synchronous, so one tag
//! listing can be shared by every policy of an image), node-semver ranges ([`semver`]), schedule windows
//! ([`window`]), and [`resolve`], the one async step that asks a [`TagSource`] for the facts ranking
//! cannot know (image `created` times for `minAge`, the chosen tag's digest).
//! Must not: read files or the environment, talk HTTP, or print a tag that breaks the OCI tag grammar.

pub mod semver;
pub mod window;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::GlobMatcher;
use regex::Regex;

use crate::reference::{ImageReference, is_valid_digest, is_valid_tag};
use crate::source::TagSource;

pub use self::semver::{Range, Version};
pub use self::window::Window;

/// How many candidates `resolve` asks for a `created` time before giving up on `minAge`: enough to skip a
/// burst of fresh pushes, few enough that a policy never costs more than a handful of registry requests.
pub const MAX_CREATED_LOOKUPS: usize = 10;
/// How many candidates `order: newest` asks for a `created` time per resolve (docs/reference/policy.md: bounded, so a
/// registry's rate limit is never the price of this order). The registry client caches configs by
/// digest, so a steady state costs manifest HEADs only.
pub const MAX_NEWEST_LOOKUPS: usize = 25;

/// A validated policy, from a `TagPolicy` document or a Flux `ImagePolicy` (+ its `ImageRepository`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// The name `resolve` and markers use: `metadata.name` for a TagPolicy, `NAMESPACE:NAME` for Flux.
    pub name: String,
    pub kind: PolicyKind,
    /// The image whose tags are candidates (normalized, no tag or digest).
    pub image: ImageReference,
    pub filter: Option<TagFilter>,
    pub order: Order,
    pub exclude: Vec<Exclusion>,
    /// Write `tag@digest` and follow digest changes of the chosen tag.
    pub digest: bool,
    /// Poll period for this image; `None`: the daemon's interval.
    pub interval: Option<Duration>,
    /// Bumps are written only inside these (none: always).
    pub windows: Vec<Window>,
    /// Candidates younger than this (image config `created`) are skipped.
    pub min_age: Duration,
    /// Candidates come from what an upstream environment ran (docs/promotion.md).
    pub promotion: Option<Promotion>,
    /// The repositories (names from `tagwatch.yaml`) this policy applies to; empty: all of them.
    /// Flux `ImagePolicy` objects have no such field and apply everywhere.
    pub repositories: Vec<String>,
    /// Where the policy was defined (the document's `metadata.name`).
    pub origin: Origin,
}

impl Policy {
    /// A TagPolicy with only a rank order: no filter, exclusions, digest, windows or minAge.
    pub fn new(
        name: impl Into<String>,
        image: ImageReference,
        order: Order,
        origin: Origin,
    ) -> Self {
        Policy {
            name: name.into(),
            kind: PolicyKind::TagPolicy,
            image,
            filter: None,
            order,
            exclude: Vec::new(),
            digest: false,
            interval: None,
            windows: Vec::new(),
            min_age: Duration::ZERO,
            repositories: Vec::new(),
            promotion: None,
            origin,
        }
    }

    /// Whether this policy applies to targets in the repository named `repository`: it names no
    /// repositories (all), or names this one.
    /// A promotion policy never applies to its own upstream (it would take its candidates from itself).
    pub fn applies_to(&self, repository: &str) -> bool {
        if self
            .promotion
            .as_ref()
            .is_some_and(|promotion| promotion.from == repository)
        {
            return false;
        }
        self.repositories.is_empty() || self.repositories.iter().any(|name| name == repository)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    TagPolicy,
    FluxImagePolicy { namespace: String },
}

/// `spec.promotion`: take the versions an upstream repository ran for at least `soak`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The upstream repository entry's name.
    pub from: String,
    /// Where in the upstream to look; empty: that repository's own `paths`.
    pub paths: Vec<std::path::PathBuf>,
    pub soak: Duration,
    /// Status / check names that must have succeeded on an upstream commit running the version.
    pub require_status: Vec<String>,
    /// Where `spec.promotion.from` is written (for errors about the chain).
    pub origin: Origin,
}

/// A position in a config or policy file (line and column count from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// `pattern` every candidate must match; `extract` (e.g. `$ts`) builds the sort key from its groups.
#[derive(Debug, Clone)]
pub struct TagFilter {
    pub pattern: Regex,
    /// Replacement template over the named groups; `None`: the whole tag is the key.
    pub extract: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Order {
    Semver(SemverOrder),
    /// The key is a number (a float, like Flux).
    Numerical(Direction),
    /// The key compares byte-wise.
    Alphabetical(Direction),
    /// The image config's `created` time ranks; the filtered candidates are asked newest-looking first
    /// (byte-wise greatest key), at most [`MAX_NEWEST_LOOKUPS`] of them.
    Newest,
}

#[derive(Debug, Clone)]
pub struct SemverOrder {
    /// The range with its `includePrerelease` flag (the policy's `prerelease`).
    pub range: Range,
    /// Track `X.Y.Z-VARIANT` tags as `X.Y.Z` (docs/reference/policy.md variants).
    pub variant: Option<String>,
}

/// Flux's meaning: `Ascending` sorts keys ascending and the last (greatest) wins; `Descending` picks the
/// smallest key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

#[derive(Debug, Clone)]
pub enum Exclusion {
    /// A glob on the whole tag (TagPolicy `exclude`).
    Glob { glob: String, matcher: GlobMatcher },
    /// A regex searched in the tag (Flux `exclusionList`).
    Regex(Regex),
}

impl Exclusion {
    fn matches(&self, tag: &str) -> bool {
        match self {
            Exclusion::Glob { matcher, .. } => matcher.is_match(tag),
            Exclusion::Regex(regex) => regex.is_match(tag),
        }
    }
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::Glob { glob, .. } => write!(f, "{glob:?}"),
            Exclusion::Regex(regex) => write!(f, "/{}/", regex.as_str()),
        }
    }
}

/// The ranked outcome of a policy over a tag listing.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Candidates that qualify, best first.
    pub candidates: Vec<String>,
    /// Every other tag and why it was rejected, in listing order.
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub tag: String,
    pub reason: Reason,
}

impl fmt::Display for Rejection {
    // The tag is shown escaped: it may be a registry's attempt to inject text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.tag, self.reason)
    }
}

/// Why a tag is not a candidate. The variants are the categories of the "no tag qualifies" summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    InvalidTag,
    Duplicate,
    Excluded(String),
    FilterMismatch,
    VariantMismatch,
    NotSemver,
    OutOfRange,
    PrereleaseExcluded,
    NotANumber(String),
    TooYoung { created: DateTime<Utc> },
    NoCreatedTime,
    NotChecked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidTag => f.write_str("breaks the OCI tag grammar"),
            Reason::Duplicate => f.write_str("listed twice"),
            Reason::Excluded(by) => write!(f, "excluded by {by}"),
            Reason::FilterMismatch => f.write_str("does not match the filter pattern"),
            Reason::VariantMismatch => f.write_str("not of the policy's variant"),
            Reason::NotSemver => f.write_str("not a semver version"),
            Reason::OutOfRange => f.write_str("outside the semver range"),
            Reason::PrereleaseExcluded => {
                f.write_str("a prerelease the range does not name (set prerelease: true to allow)")
            }
            Reason::NotANumber(key) => write!(f, "extracted key {key:?} is not a number"),
            Reason::TooYoung { created } => write!(f, "younger than minAge (created {created})"),
            Reason::NoCreatedTime => {
                f.write_str("image has no created time; minAge cannot be checked")
            }
            Reason::NotChecked => f.write_str(
                "not checked: only the best-looking candidates are asked for their created time",
            ),
        }
    }
}

impl Reason {
    fn category(&self) -> &'static str {
        match self {
            Reason::InvalidTag => "break the tag grammar",
            Reason::Duplicate => "are duplicates",
            Reason::Excluded(_) => "are excluded",
            Reason::FilterMismatch => "do not match the filter",
            Reason::VariantMismatch => "are not of the variant",
            Reason::NotSemver => "are not semver",
            Reason::OutOfRange => "are outside the range",
            Reason::PrereleaseExcluded => "are prereleases the range does not allow",
            Reason::NotANumber(_) => "have a key that is not a number",
            Reason::TooYoung { .. } => "are younger than minAge",
            Reason::NoCreatedTime => "have no created time",
            Reason::NotChecked => "were not asked for their created time",
        }
    }
}

/// A one-line account of why nothing qualified, e.g. `12 tags: 10 are outside the range, 2 are not semver`.
pub fn summarize(rejected: &[Rejection]) -> String {
    if rejected.is_empty() {
        return "the registry lists no tags".to_string();
    }
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for rejection in rejected {
        *counts.entry(rejection.reason.category()).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(category, count)| format!("{count} {category}"))
        .collect();
    format!("{} tags: {}", rejected.len(), parts.join(", "))
}

/// A candidate's sort key.
enum Key {
    Semver(Version),
    Number(f64),
    Text(String),
}

/// Ranks `tags` under `policy`: grammar filter, exclusions, filter/extract, then the order. Pure.
pub fn select(policy: &Policy, tags: &[String]) -> Selection {
    select_from(policy, tags.iter().map(String::as_str))
}

/// [`select`] over tags kept in any form (the daemon's cache keeps a listing in one buffer).
pub fn select_from<'t>(policy: &Policy, tags: impl IntoIterator<Item = &'t str>) -> Selection {
    let mut seen = HashSet::new();
    let mut rejected = Vec::new();
    let mut keyed: Vec<(Key, &str)> = Vec::new();
    for tag in tags {
        match candidate_key(policy, tag, &mut seen) {
            Ok(key) => keyed.push((key, tag)),
            Err(reason) => {
                if reason == Reason::InvalidTag {
                    log_invalid_tag(policy, tag);
                }
                rejected.push(Rejection {
                    tag: tag.to_string(),
                    reason,
                });
            }
        }
    }
    let descending_wins = match policy.order {
        Order::Semver(_) | Order::Newest => false,
        Order::Numerical(direction) | Order::Alphabetical(direction) => {
            direction == Direction::Descending
        }
    };
    keyed.sort_by(|(a, a_tag), (b, b_tag)| {
        let order = match (a, b) {
            (Key::Semver(a), Key::Semver(b)) => a.compare_build(b),
            (Key::Number(a), Key::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Key::Text(a), Key::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => Ordering::Equal,
        };
        let order = if descending_wins {
            order.reverse()
        } else {
            order
        };
        // Best first; equal keys: the byte-wise greater tag first.
        order
            .then_with(|| a_tag.as_bytes().cmp(b_tag.as_bytes()))
            .reverse()
    });
    Selection {
        candidates: keyed.into_iter().map(|(_, tag)| tag.to_string()).collect(),
        rejected,
    }
}

/// Tags remembered as already warned about, at most: a registry listing junk must not grow memory.
const MAX_WARNED_TAGS: usize = 10_000;

/// A tag that breaks the grammar is a warning the first time (per image) and a debug line on every poll
/// after that, so the daemon's log is not flooded; the tag is always printed escaped.
fn log_invalid_tag(policy: &Policy, tag: &str) {
    static WARNED: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Default::default);
    let key = (policy.image.name(), tag.to_string());
    let first = WARNED.lock().is_ok_and(|mut warned| {
        if warned.len() >= MAX_WARNED_TAGS {
            warned.clear();
        }
        warned.insert(key)
    });
    if first {
        tracing::warn!(policy = %policy.name, image = %policy.image.name(), tag = ?tag, "dropped a tag that breaks the OCI tag grammar");
    } else {
        tracing::debug!(policy = %policy.name, image = %policy.image.name(), tag = ?tag, "dropped a tag that breaks the OCI tag grammar");
    }
}

fn candidate_key<'t>(
    policy: &Policy,
    tag: &'t str,
    seen: &mut HashSet<&'t str>,
) -> Result<Key, Reason> {
    if !is_valid_tag(tag) {
        return Err(Reason::InvalidTag);
    }
    if !seen.insert(tag) {
        return Err(Reason::Duplicate);
    }
    if let Some(exclusion) = policy.exclude.iter().find(|e| e.matches(tag)) {
        return Err(Reason::Excluded(exclusion.to_string()));
    }
    // Borrowed unless a template builds a new key: ranking 10,000 tags should not copy them all.
    let key: Cow<'_, str> = match &policy.filter {
        None => Cow::Borrowed(tag),
        Some(filter) => {
            let captures = filter.pattern.captures(tag).ok_or(Reason::FilterMismatch)?;
            match &filter.extract {
                None => Cow::Borrowed(tag),
                Some(template) => {
                    let mut key = String::new();
                    captures.expand(template, &mut key);
                    Cow::Owned(key)
                }
            }
        }
    };
    match &policy.order {
        Order::Semver(order) => semver_key(order, &key).map(Key::Semver),
        Order::Numerical(_) => key
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Key::Number)
            .ok_or_else(|| Reason::NotANumber(key.into_owned())),
        Order::Alphabetical(_) | Order::Newest => Ok(Key::Text(key.into_owned())),
    }
}

/// docs/reference/policy.md: strip the variant suffix, then one leading lowercase `v`; the rest must start with a digit
/// and be a strict node-semver version inside the range.
fn semver_key(order: &SemverOrder, key: &str) -> Result<Version, Reason> {
    let key = match &order.variant {
        None => key,
        Some(variant) => match key.split_once('-') {
            Some((base, suffix)) if suffix == variant => base,
            _ => return Err(Reason::VariantMismatch),
        },
    };
    let text = key.strip_prefix('v').unwrap_or(key);
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Reason::NotSemver);
    }
    let version = Version::parse(text).map_err(|_| Reason::NotSemver)?;
    if order.range.test(&version) {
        Ok(version)
    } else if version.is_prerelease()
        && !order.range.include_prerelease()
        && order.range.test_ignoring_prerelease_rule(&version)
    {
        Err(Reason::PrereleaseExcluded)
    } else {
        Err(Reason::OutOfRange)
    }
}

/// The policy's choice.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub tag: String,
    /// Set when the policy has `digest: true`.
    pub digest: Option<String>,
    /// The chosen image's config `created`, when it was read (always for `order: newest`, and when
    /// `minAge` is set): what never-downgrade compares for `order: newest`.
    pub created: Option<DateTime<Utc>>,
    /// Every tag that did not win on its own merits, with the reason (for `--verbose`).
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("listing the tags of {image}")]
    ListTags {
        image: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading the created time of {image}:{tag}")]
    Created {
        image: String,
        tag: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("resolving the digest of {image}:{tag}")]
    Digest {
        image: String,
        tag: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the registry answered an invalid digest for {image}:{tag}: {digest:?}")]
    InvalidDigest {
        image: String,
        tag: String,
        digest: String,
    },
    #[error("no tag qualifies for policy {policy}: {summary}")]
    NoCandidate {
        policy: String,
        summary: String,
        rejected: Vec<Rejection>,
    },
}

/// Lists the image's tags and resolves the policy against them.
pub async fn resolve<S: TagSource>(
    policy: &Policy,
    source: &S,
    now: DateTime<Utc>,
) -> Result<Resolution, ResolveError> {
    let tags = source
        .list_tags(&policy.image)
        .await
        .map_err(|error| ResolveError::ListTags {
            image: policy.image.name(),
            source: Box::new(error),
        })?;
    choose(policy, select(policy, &tags), source, now).await
}

/// Walks the ranked candidates: the first one old enough for `minAge` wins (creation times are fetched
/// only when `minAge` is set, best candidate first, at most [`MAX_CREATED_LOOKUPS`]); then its digest is
/// resolved when the policy wants one. `order: newest` first ranks the newest-looking candidates by
/// their `created` time.
pub async fn choose<S: TagSource>(
    policy: &Policy,
    selection: Selection,
    source: &S,
    now: DateTime<Utc>,
) -> Result<Resolution, ResolveError> {
    let Selection {
        candidates,
        mut rejected,
    } = selection;
    let image = || policy.image.name();
    let created_of =
        |tag: String| async move {
            let created = source.created(&policy.image, &tag).await.map_err(|error| {
                ResolveError::Created {
                    image: policy.image.name(),
                    tag: tag.clone(),
                    source: Box::new(error),
                }
            })?;
            Ok::<_, ResolveError>((tag, created))
        };
    // (tag, created time when already fetched)
    let candidates: Vec<(String, Option<DateTime<Utc>>)> = if matches!(policy.order, Order::Newest)
    {
        let mut dated = Vec::new();
        for (index, tag) in candidates.into_iter().enumerate() {
            if index >= MAX_NEWEST_LOOKUPS {
                rejected.push(Rejection {
                    tag,
                    reason: Reason::NotChecked,
                });
                continue;
            }
            match created_of(tag).await? {
                (tag, Some(created)) => dated.push((tag, Some(created))),
                (tag, None) => rejected.push(Rejection {
                    tag,
                    reason: Reason::NoCreatedTime,
                }),
            }
        }
        dated.sort_by(|(a_tag, a), (b_tag, b)| {
            b.cmp(a)
                .then_with(|| b_tag.as_bytes().cmp(a_tag.as_bytes()))
        });
        dated
    } else {
        candidates.into_iter().map(|tag| (tag, None)).collect()
    };
    let mut chosen = None;
    let mut chosen_created = None;
    for (index, (tag, known)) in candidates.iter().enumerate() {
        if policy.min_age.is_zero() {
            chosen = Some(index);
            chosen_created = *known;
            break;
        }
        let created = match known {
            Some(created) => Some(*created),
            None if index >= MAX_CREATED_LOOKUPS => {
                rejected.extend(candidates[index..].iter().map(|(tag, _)| Rejection {
                    tag: tag.clone(),
                    reason: Reason::NotChecked,
                }));
                break;
            }
            None => created_of(tag.clone()).await?.1,
        };
        let reason = match created {
            None => Reason::NoCreatedTime,
            Some(created) => {
                let age = (now - created).to_std().unwrap_or(Duration::ZERO);
                if age >= policy.min_age {
                    chosen = Some(index);
                    chosen_created = Some(created);
                    break;
                }
                Reason::TooYoung { created }
            }
        };
        rejected.push(Rejection {
            tag: tag.clone(),
            reason,
        });
    }
    let Some(index) = chosen else {
        return Err(ResolveError::NoCandidate {
            policy: policy.name.clone(),
            summary: summarize(&rejected),
            rejected,
        });
    };
    let tag = candidates[index].0.clone();
    let digest = if policy.digest {
        let digest = source
            .manifest_digest(&policy.image, &tag)
            .await
            .map_err(|error| ResolveError::Digest {
                image: image(),
                tag: tag.clone(),
                source: Box::new(error),
            })?;
        if !is_valid_digest(&digest) {
            return Err(ResolveError::InvalidDigest {
                image: image(),
                tag,
                digest,
            });
        }
        Some(digest)
    } else {
        None
    };
    Ok(Resolution {
        tag,
        digest,
        created: chosen_created,
        rejected,
    })
}

#[cfg(test)]
mod tests;
