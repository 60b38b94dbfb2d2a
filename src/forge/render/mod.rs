//! Pull-request text: the title and Markdown body for one group of bumps, and the hidden marker that lets
//! tagwatch recognise its own pull requests. Pure: no I/O, no forge calls.
//!
//! Everything that comes from outside (file paths, image names, tags, policy names, group names,
//! image labels and annotations, promotion evidence) is escaped so it can neither break the table nor
//! forge a marker.

mod images;
mod notice;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

pub use crate::registry::ImageFacts;
pub use notice::{MergeWait, is_merge_notice, merge_notice};

/// Prefix of every title: conventional-commit style, so changelog tools file bumps as chores.
pub const TITLE_PREFIX: &str = "chore(images): ";
/// Titles are cut at this many characters (GitHub allows 256, GitLab 255; a shorter title reads better
/// in notifications).
pub const MAX_TITLE_CHARS: usize = 200;
/// Body budget in bytes. GitHub rejects bodies over 65,536 characters and Gitea and GitLab are near that
/// too; the rest of the table is summarised in one line so the marker always survives.
pub const MAX_BODY_BYTES: usize = 60_000;

const MARKER_START: &str = "<!-- tagwatch:group=";
const MARKER_END: &str = " -->";

/// One planned change to one target, as shown to reviewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path of the file inside the repository.
    pub file: String,
    /// 1-based line of the target.
    pub line: u32,
    /// Normalized image name without tag (`ghcr.io/acme/api`).
    pub image: String,
    /// Old version as written (`1.2.3`, `1.2.3@sha256:…`).
    pub from: String,
    /// New version.
    pub to: String,
    /// Name of the policy that chose `to`.
    pub policy: String,
    /// Web page of the new tag at its registry, when one is known.
    pub registry_link: Option<String>,
}

/// A change with what a reviewer needs to decide on it in seconds, gathered by the caller (this module
/// does no I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub change: Change,
    /// The rule that chose `to`: `semver ^1.2`, `newest`, `filter+numerical`, or a promotion's evidence
    /// (upstream repository, the commit that started the stint, its start time, the statuses seen).
    pub why: String,
    /// The image `from` names, as its registry describes it (all `None` when unknown).
    pub from_image: ImageFacts,
    /// The image `to` names.
    pub to_image: ImageFacts,
}

impl Reviewed {
    /// A change with nothing known beyond it.
    pub fn bare(change: Change) -> Self {
        Reviewed {
            change,
            why: String::new(),
            from_image: ImageFacts::default(),
            to_image: ImageFacts::default(),
        }
    }
}

/// The title of the pull request for `changes` (one group).
///
/// One image: `chore(images): bump IMAGE FROM → TO`; several images: `chore(images): bump N images (GROUP)`.
pub fn title(group: &str, changes: &[Change]) -> String {
    let images: BTreeSet<&str> = changes.iter().map(|c| c.image.as_str()).collect();
    let text = match images.len() {
        0 => format!("{TITLE_PREFIX}bump images ({})", one_line(group)),
        1 => {
            let image = one_line(&changes[0].image);
            let froms: BTreeSet<&str> = changes.iter().map(|c| c.from.as_str()).collect();
            let tos: BTreeSet<&str> = changes.iter().map(|c| c.to.as_str()).collect();
            match (froms.len(), tos.len()) {
                (1, 1) => format!(
                    "{TITLE_PREFIX}bump {image} {} → {}",
                    short_version(&changes[0].from),
                    short_version(&changes[0].to)
                ),
                (_, 1) => format!(
                    "{TITLE_PREFIX}bump {image} to {}",
                    short_version(&changes[0].to)
                ),
                _ => format!("{TITLE_PREFIX}bump {image} ({} changes)", changes.len()),
            }
        }
        n => format!("{TITLE_PREFIX}bump {n} images ({})", one_line(group)),
    };
    truncate_chars(&text, MAX_TITLE_CHARS)
}

/// The Markdown body: a sentence, a table of every change, and the hidden group marker (last line).
pub fn body(group: &str, changes: &[Change]) -> String {
    let reviewed: Vec<Reviewed> = changes.iter().cloned().map(Reviewed::bare).collect();
    body_with_marker(group, group, &reviewed, None)
}

/// The marker value of `group` of repository entry `repository`: entries that share a remote keep
/// their pull requests apart by it.
pub fn group_key(repository: &str, group: &str) -> String {
    format!("{repository}\n{group}")
}

/// `(repository, group)` of a marker value written by [`group_key`]; `None` for any other value.
pub fn split_group_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('\n')
}

/// [`body`] for `group` of repository entry `repository`: the marker carries both ([`group_key`]).
pub fn entry_body(repository: &str, group: &str, changes: &[Change]) -> String {
    let reviewed: Vec<Reviewed> = changes.iter().cloned().map(Reviewed::bare).collect();
    body_with_marker(group, &group_key(repository, group), &reviewed, None)
}

/// The body a reviewer decides on in seconds, for `group` of repository entry `repository`: every
/// change with why it was chosen, then per image when the new version was built (its age at `now`),
/// its digest and the source changes between the two versions. The marker is [`entry_body`]'s.
pub fn review_body(
    repository: &str,
    group: &str,
    changes: &[Reviewed],
    now: DateTime<Utc>,
) -> String {
    body_with_marker(group, &group_key(repository, group), changes, Some(now))
}

fn body_with_marker(
    group: &str,
    marker_value: &str,
    changes: &[Reviewed],
    now: Option<DateTime<Utc>>,
) -> String {
    let mut sorted: Vec<&Reviewed> = changes.iter().collect();
    sorted.sort_by(|a, b| {
        let (a, b) = (&a.change, &b.change);
        (&a.file, a.line, &a.image).cmp(&(&b.file, b.line, &b.image))
    });

    let images: BTreeSet<&str> = changes.iter().map(|c| c.change.image.as_str()).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tagwatch bumps {} in {} of group {}.\n",
        plural(images.len(), "image"),
        plural(changes.len(), "place"),
        code_span(&one_line(group))
    );
    out.push_str("| File | Image | From → To | Policy | Why |\n| --- | --- | --- | --- | --- |\n");

    let footer = format!(
        "\n---\nThis pull request is managed by tagwatch: its branch is rebuilt from the base when the base \
         moves. Once anyone else pushes to it, tagwatch leaves it alone (never overwrites, never merges \
         it). tagwatch closes it when its changes land on the base or are no longer wanted.\n\n{}\n",
        marker(marker_value)
    );
    let image_rows = now.map(|now| image_rows(&sorted, now)).unwrap_or_default();
    let images_section = if image_rows.is_empty() {
        String::new()
    } else {
        format!(
            "\n### Images\n\n| Image | From → To | Built | Digest | Source changes |\n\
             | --- | --- | --- | --- | --- |\n{}",
            image_rows.concat()
        )
    };
    let mut shown_all = true;
    for (index, change) in sorted.iter().enumerate() {
        let row = table_row(change);
        let remaining = sorted.len() - index;
        // Keep room for the images, the summary line and the footer so the marker is never cut off.
        if out.len() + row.len() + images_section.len() + footer.len() + 100 > MAX_BODY_BYTES {
            let _ = writeln!(
                out,
                "\n… and {} not shown (the body would be too long for the forge); the commit lists them all.",
                plural(remaining, "more change")
            );
            shown_all = false;
            break;
        }
        out.push_str(&row);
    }
    if shown_all || out.len() + images_section.len() + footer.len() <= MAX_BODY_BYTES {
        out.push_str(&images_section);
    }
    out.push_str(&footer);
    out
}

/// One row per image and version pair, in the order of the changes: when the new image was built,
/// its digest, and the source changes.
fn image_rows(sorted: &[&Reviewed], now: DateTime<Utc>) -> Vec<String> {
    let mut seen: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    let mut rows = Vec::new();
    for reviewed in sorted {
        let change = &reviewed.change;
        if !seen.insert((&change.image, &change.from, &change.to)) {
            continue;
        }
        if reviewed.from_image == ImageFacts::default()
            && reviewed.to_image == ImageFacts::default()
        {
            continue;
        }
        rows.push(format!(
            "| {} | {} → {} | {} | {} | {} |\n",
            code(&change.image),
            code(&change.from),
            code(&change.to),
            images::created_cell(reviewed.to_image.created, now),
            images::digest_cell(reviewed.to_image.digest.as_deref()),
            images::source_cell(&reviewed.from_image, &reviewed.to_image),
        ));
    }
    rows
}

/// Why tagwatch closes one of its pull requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The base already has every change (merged elsewhere, or a human made the same edit).
    AlreadyOnBase,
    /// The group no longer has anything to bump (policy removed, target held or reverted, group gone).
    NoLongerNeeded,
    /// Another pull request carries these changes now.
    Superseded { by: String },
}

/// The comment posted when closing a pull request, saying why.
pub fn close_comment(reason: &CloseReason) -> String {
    let reopen = "\n\ntagwatch opens a new pull request when a policy chooses a newer tag.";
    match reason {
        CloseReason::AlreadyOnBase => format!(
            "tagwatch closes this pull request: its changes are already on the base branch, so \
             there is nothing left to merge.{reopen}"
        ),
        CloseReason::NoLongerNeeded => format!(
            "tagwatch closes this pull request: no policy wants these changes any more (a policy was \
             removed or changed, a target is held or was rolled back, or its group is gone).{reopen}"
        ),
        CloseReason::Superseded { by } => format!(
            "tagwatch closes this pull request: {} carries these changes now.",
            one_line(by)
        ),
    }
}

/// A web page of `tag` of `image` (normalized name) at its registry, for the registries whose page
/// address follows from the name alone.
pub fn registry_link(image: &str, tag: &str) -> Option<String> {
    let (host, path) = image.split_once('/')?;
    // OCI tags are URL-safe; anything else came from somewhere it should not have.
    if tag.is_empty()
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return None;
    }
    match host {
        "docker.io" => Some(match path.strip_prefix("library/") {
            Some(name) => format!("https://hub.docker.com/_/{name}/tags?name={tag}"),
            None => format!("https://hub.docker.com/r/{path}/tags?name={tag}"),
        }),
        "quay.io" => Some(format!(
            "https://quay.io/repository/{path}?tab=tags&tag={tag}"
        )),
        _ => None,
    }
}

/// The hidden marker that names tagwatch's group in a body.
pub fn marker(group: &str) -> String {
    format!("{MARKER_START}{}{MARKER_END}", encode_marker_value(group))
}

/// The group named by the marker in `body`, if the body carries one (the last marker wins, so a quoted
/// marker in a human's edit above ours does not take over).
pub fn parse_marker(body: &str) -> Option<String> {
    let start = body.rfind(MARKER_START)? + MARKER_START.len();
    let rest = &body[start..];
    let end = rest.find(MARKER_END)?;
    decode_marker_value(&rest[..end])
}

fn table_row(reviewed: &Reviewed) -> String {
    let change = &reviewed.change;
    let image = match change.registry_link.as_deref().and_then(safe_link) {
        Some(link) => format!("[{}]({link})", cell_text(&change.image)),
        None => code(&change.image),
    };
    let why = if reviewed.why.trim().is_empty() {
        "—".to_string()
    } else {
        cell_text(&reviewed.why)
    };
    format!(
        "| {} | {image} | {} → {} | {} | {why} |\n",
        code(&format!("{}:{}", change.file, change.line)),
        code(&change.from),
        code(&change.to),
        code(&change.policy),
    )
}

/// A table cell in a code span. Pipes are escaped even inside code spans (GFM splits cells first);
/// newlines would end the row.
fn code(text: &str) -> String {
    code_span(&one_line(text).replace('|', "\\|"))
}

/// A code span whose fence is longer than any run of backticks inside.
fn code_span(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    if longest_run > 0 {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

/// Plain text in a cell (link text): Markdown and HTML specials escaped.
fn cell_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in one_line(text).chars() {
        match c {
            '|' | '[' | ']' | '\\' | '*' | '_' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Only absolute http(s) links, with the characters that would end a Markdown link target encoded.
fn safe_link(link: &str) -> Option<String> {
    if !(link.starts_with("https://") || link.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(link.len());
    for c in link.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '|' => out.push_str("%7C"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Control characters (newlines included) become spaces: titles and cells are one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A version for the title: a digest is cut to 12 hex digits, as `docker images` shows it.
fn short_version(version: &str) -> String {
    let version = one_line(version);
    match version.split_once("@sha256:") {
        Some((tag, hex)) if hex.len() > 12 => format!("{tag}@sha256:{}", &hex[..12]),
        _ => match version.strip_prefix("sha256:") {
            Some(hex) if hex.len() > 12 => format!("sha256:{}", &hex[..12]),
            _ => version,
        },
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Percent-encodes everything but a conservative set, so a group name can never close the comment.
fn encode_marker_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"._/:@+".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn decode_marker_value(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = value.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pipes that end a table cell (not preceded by a backslash).
    fn cell_separators(row: &str) -> usize {
        row.char_indices()
            .filter(|&(i, ch)| ch == '|' && (i == 0 || row.as_bytes()[i - 1] != b'\\'))
            .count()
    }

    proptest! {
        #[test]
        fn any_group_name_round_trips_through_the_marker(group in any::<String>()) {
            let text = body(&group, &[]);
            prop_assert_eq!(parse_marker(&text), Some(group));
            prop_assert_eq!(text.matches("-->").count(), 1);
        }

        #[test]
        fn any_change_is_one_row_of_five_cells(
            file in any::<String>(),
            image in any::<String>(),
            from in any::<String>(),
            to in any::<String>(),
            policy in any::<String>(),
            link in proptest::option::of(any::<String>()),
        ) {
            let row = table_row(&Reviewed {
                why: policy.clone(),
                ..Reviewed::bare(Change {
                    file, line: 1, image, from, to, policy,
                    registry_link: link.map(|l| format!("https://{l}")),
                })
            });
            prop_assert_eq!(row.matches('\n').count(), 1);
            prop_assert!(!row.contains('\r'));
            prop_assert_eq!(cell_separators(&row), 6, "{}", row);
        }
    }

    fn change(image: &str, from: &str, to: &str) -> Change {
        Change {
            file: "clusters/prod/app.yaml".into(),
            line: 7,
            image: image.into(),
            from: from.into(),
            to: to.into(),
            policy: "app".into(),
            registry_link: None,
        }
    }

    #[test]
    fn registry_links_for_registries_with_known_pages() {
        assert_eq!(
            registry_link("docker.io/library/nginx", "1.27.1").as_deref(),
            Some("https://hub.docker.com/_/nginx/tags?name=1.27.1")
        );
        assert_eq!(
            registry_link("docker.io/grafana/grafana", "11.0.0").as_deref(),
            Some("https://hub.docker.com/r/grafana/grafana/tags?name=11.0.0")
        );
        assert_eq!(
            registry_link("quay.io/prometheus/node-exporter", "v1.8.0").as_deref(),
            Some("https://quay.io/repository/prometheus/node-exporter?tab=tags&tag=v1.8.0")
        );
        assert_eq!(registry_link("127.0.0.1:5000/app", "1"), None);
        assert_eq!(registry_link("nginx", "1"), None);
        assert_eq!(registry_link("docker.io/library/nginx", "a&b=c"), None);
    }

    #[test]
    fn close_comments_say_why_on_one_paragraph_each() {
        let superseded = close_comment(&CloseReason::Superseded {
            by: "#12\nsneaky".into(),
        });
        assert!(superseded.starts_with("tagwatch closes this pull request: #12 sneaky carries"));
        assert!(close_comment(&CloseReason::AlreadyOnBase).contains("already on the base"));
        assert!(close_comment(&CloseReason::NoLongerNeeded).contains("no policy wants"));
    }

    #[test]
    fn marker_round_trips_any_group_name() {
        for group in ["prod", "tagwatch/api", "a -->b", "grüße|x", "", "%41"] {
            let body = body(group, &[change("ghcr.io/a/b", "1", "2")]);
            assert_eq!(parse_marker(&body).as_deref(), Some(group), "{group:?}");
        }
    }

    #[test]
    fn marker_cannot_be_closed_by_a_group_name() {
        let text = marker("x --> <!-- tagwatch:group=evil -->");
        assert_eq!(text.matches("-->").count(), 1);
        assert_eq!(
            parse_marker(&text).as_deref(),
            Some("x --> <!-- tagwatch:group=evil -->")
        );
    }

    #[test]
    fn last_marker_wins_over_a_quoted_one() {
        let text = format!("> {}\n\n{}", marker("quoted"), marker("real"));
        assert_eq!(parse_marker(&text).as_deref(), Some("real"));
        assert_eq!(parse_marker("no marker here"), None);
        assert_eq!(parse_marker("<!-- tagwatch:group=%zz -->"), None);
    }

    #[test]
    fn pipes_and_newlines_cannot_break_a_row() {
        let mut c = change("ghcr.io/a|b", "1|2", "3\n| x | y |");
        c.policy = "`tick`".into();
        let row = table_row(&Reviewed {
            why: "semver |x| <!-- tagwatch:group=evil -->\n| y |".into(),
            ..Reviewed::bare(c)
        });
        assert!(!row.contains("<!--"), "{row}");
        assert_eq!(row.matches('\n').count(), 1, "{row}");
        assert_eq!(cell_separators(&row), 6, "{row}");
        assert!(row.contains("`` `tick` ``"), "{row}");
    }

    #[test]
    fn links_are_http_only_and_cannot_end_early() {
        assert_eq!(safe_link("javascript:alert(1)"), None);
        assert_eq!(
            safe_link("https://r.example/a (b)|c").as_deref(),
            Some("https://r.example/a%20%28b%29%7Cc")
        );
    }

    #[test]
    fn title_is_one_line_and_bounded() {
        let long = "r.example/".to_string() + &"x".repeat(400);
        let t = title("g", &[change(&long, "1\n2", "3")]);
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
        assert!(!t.contains('\n'));
        assert!(t.ends_with('…'));
    }

    #[test]
    fn title_shortens_digests() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let t = title(
            "g",
            &[change(
                "a/b",
                &format!("1.0@{digest}"),
                &format!("1.1@{digest}"),
            )],
        );
        assert_eq!(
            t,
            "chore(images): bump a/b 1.0@sha256:abababababab → 1.1@sha256:abababababab"
        );
    }

    #[test]
    fn huge_groups_keep_the_marker_and_say_what_is_left_out() {
        let changes: Vec<Change> = (0..2000)
            .map(|i| Change {
                line: i,
                ..change(&format!("ghcr.io/acme/service-{i}"), "1.0.0", "1.0.1")
            })
            .collect();
        let text = body("big", &changes);
        assert!(text.len() <= MAX_BODY_BYTES, "{}", text.len());
        assert_eq!(parse_marker(&text).as_deref(), Some("big"));
        assert!(text.contains("more changes not shown"));
    }
}
