//! The "Images" part of a pull-request body: per image, when the new version was built, its digest,
//! and a link to the source changes between the two versions. Pure: the facts come from the caller.

use chrono::{DateTime, Utc};

use super::{ImageFacts, cell_text, code, safe_link};

/// Longest source URL or revision taken from an image: labels are free text, a reviewer's page is not
/// the place for a kilobyte of it.
const MAX_FACT_CHARS: usize = 300;

/// Which web UI a source repository has, told from its host: GitLab's pages live under `/-/`,
/// GitHub, Gitea and Forgejo share theirs (`/compare/A...B`, `/commit/A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceForge {
    GitLab,
    Other,
}

/// `https://host/path` of an `org.opencontainers.image.source` value, without `.git` or a trailing
/// `/`; `None` for anything else (another scheme, a query or fragment, spaces, control characters).
fn source_url(source: &str) -> Option<(String, SourceForge)> {
    let source = source.trim();
    if source.chars().count() > MAX_FACT_CHARS
        || !(source.starts_with("https://") || source.starts_with("http://"))
        || source
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "?#<>\"`|()[]\\".contains(c))
    {
        return None;
    }
    let trimmed = source.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let host = trimmed.split("://").nth(1)?.split('/').next()?;
    if host.is_empty() || trimmed.split("://").nth(1)? == host {
        // A bare host is no repository.
        return None;
    }
    let forge = if host.to_ascii_lowercase().contains("gitlab") {
        SourceForge::GitLab
    } else {
        SourceForge::Other
    };
    Some((trimmed.to_string(), forge))
}

/// A commit id from `org.opencontainers.image.revision`: 7 to 64 hex digits, lower-cased.
fn revision(revision: &str) -> Option<String> {
    let revision = revision.trim();
    ((7..=64).contains(&revision.len()) && revision.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| revision.to_ascii_lowercase())
}

/// The source link of one image change, as a Markdown cell: the compare page between the two
/// revisions when both images name the same source repository and a revision, else the new image's
/// commit or repository page, else a dash.
pub(super) fn source_cell(from: &ImageFacts, to: &ImageFacts) -> String {
    let Some((source, forge)) = to.source.as_deref().and_then(source_url) else {
        return "—".into();
    };
    let web = |rest: &str| match forge {
        SourceForge::GitLab => format!("{source}/-/{rest}"),
        SourceForge::Other => format!("{source}/{rest}"),
    };
    let to_revision = to.revision.as_deref().and_then(revision);
    let from_revision = from
        .source
        .as_deref()
        .and_then(source_url)
        .filter(|(from_source, _)| from_source.eq_ignore_ascii_case(&source))
        .and(from.revision.as_deref().and_then(revision));
    let (text, target) = match (from_revision, to_revision) {
        (Some(old), Some(new)) if old != new => (
            format!("{}...{}", short(&old), short(&new)),
            web(&format!("compare/{old}...{new}")),
        ),
        (_, Some(new)) => (short(&new).to_string(), web(&format!("commit/{new}"))),
        (_, None) => ("source".to_string(), source.clone()),
    };
    match safe_link(&target) {
        Some(target) => format!("[{}]({target})", cell_text(&text)),
        None => "—".into(),
    }
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(7)]
}

/// When an image was built, with its age at `now`: `2026-01-02 03:04 UTC (3 days old)`.
pub(super) fn created_cell(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(created) = created else {
        return "unknown".into();
    };
    format!(
        "{} ({})",
        created.format("%Y-%m-%d %H:%M UTC"),
        age(created, now)
    )
}

/// `3 days old`, `5 hours old`, `12 minutes old`, `just built`; a time after `now` (a registry's
/// clock ahead of ours) is said so.
fn age(created: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - created).num_seconds();
    if seconds < 0 {
        return "built in the future by the registry's clock".into();
    }
    let (count, unit) = match seconds {
        0..60 => return "just built".into(),
        60..3_600 => (seconds / 60, "minute"),
        3_600..86_400 => (seconds / 3_600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    if count == 1 {
        format!("1 {unit} old")
    } else {
        format!("{count} {unit}s old")
    }
}

/// The digest cell: a well-formed digest cut to 12 hex digits, anything else escaped whole.
pub(super) fn digest_cell(digest: Option<&str>) -> String {
    match digest {
        None => "unknown".into(),
        Some(digest) => match digest.split_once(':') {
            Some((algorithm, hex))
                if algorithm.bytes().all(|b| b.is_ascii_alphanumeric())
                    && hex.len() > 12
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                code(&format!("{algorithm}:{}", &hex[..12]))
            }
            _ => code(&digest.chars().take(MAX_FACT_CHARS).collect::<String>()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(source: &str, revision: &str) -> ImageFacts {
        ImageFacts {
            source: Some(source.into()),
            revision: Some(revision.into()),
            ..ImageFacts::default()
        }
    }

    const OLD: &str = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const NEW: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn compare_links_follow_each_forges_url_scheme() {
        let github = source_cell(
            &facts("https://github.com/acme/api", OLD),
            &facts("https://github.com/acme/api.git", NEW),
        );
        assert_eq!(
            github,
            format!("[1111111...2222222](https://github.com/acme/api/compare/{OLD}...{NEW})")
        );
        let gitlab = source_cell(
            &facts("https://gitlab.example/group/api", OLD),
            &facts("https://gitlab.example/group/api/", NEW),
        );
        assert!(
            gitlab.contains("https://gitlab.example/group/api/-/compare/"),
            "{gitlab}"
        );
        let gitea = source_cell(
            &facts("https://codeberg.org/acme/api", OLD),
            &facts("https://codeberg.org/acme/api", NEW),
        );
        assert!(
            gitea.contains("https://codeberg.org/acme/api/compare/1111111"),
            "{gitea}"
        );
    }

    #[test]
    fn without_both_revisions_the_source_alone_is_linked() {
        let new_only = source_cell(
            &ImageFacts::default(),
            &facts("https://github.com/acme/api", NEW),
        );
        assert_eq!(
            new_only,
            format!("[2222222](https://github.com/acme/api/commit/{NEW})")
        );
        let moved = source_cell(
            &facts("https://github.com/acme/old", OLD),
            &facts("https://github.com/acme/api", NEW),
        );
        assert!(moved.contains("/commit/"), "{moved}");
        let no_revision = source_cell(
            &ImageFacts::default(),
            &ImageFacts {
                source: Some("https://github.com/acme/api".into()),
                ..ImageFacts::default()
            },
        );
        assert_eq!(no_revision, "[source](https://github.com/acme/api)");
        assert_eq!(
            source_cell(&ImageFacts::default(), &ImageFacts::default()),
            "—"
        );
    }

    #[test]
    fn hostile_sources_and_revisions_are_not_linked() {
        for source in [
            "javascript:alert(1)",
            "https://github.com/a/b) [x](https://evil.example",
            "https://github.com/a/b\n| x |",
            "https://github.com",
            "ftp://github.com/a/b",
        ] {
            assert_eq!(
                source_cell(&ImageFacts::default(), &facts(source, NEW)),
                "—",
                "{source}"
            );
        }
        let bad_revision = source_cell(
            &facts("https://github.com/a/b", "../../evil"),
            &facts("https://github.com/a/b", "main; rm -rf"),
        );
        assert_eq!(bad_revision, "[source](https://github.com/a/b)");
    }

    #[test]
    fn ages_are_in_the_largest_whole_unit() {
        let now = DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ago = |seconds: i64| age(now - chrono::Duration::seconds(seconds), now);
        assert_eq!(ago(5), "just built");
        assert_eq!(ago(60), "1 minute old");
        assert_eq!(ago(7_200), "2 hours old");
        assert_eq!(ago(86_400 * 3 + 5), "3 days old");
        assert_eq!(ago(-60), "built in the future by the registry's clock");
    }

    #[test]
    fn digests_are_shortened_only_when_well_formed() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(digest_cell(Some(&digest)), "`sha256:abababababab`");
        assert_eq!(digest_cell(Some("x|y")), "`x\\|y`");
        assert_eq!(digest_cell(None), "unknown");
    }
}
