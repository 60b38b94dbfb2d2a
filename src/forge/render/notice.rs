//! The one comment tagwatch keeps on a pull request it will merge later ("will merge at …"), found
//! again by its own hidden marker: a second marker kind, apart from the body's group marker, so the
//! two can never be taken for each other.

use chrono::{DateTime, Utc};

/// The last line of every merge notice.
const NOTICE_MARKER: &str = "<!-- tagwatch:merge-notice -->";

/// Why tagwatch has not merged its pull request yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeWait {
    /// Outside the merge windows: it merges when the next one opens.
    Window { opens: DateTime<Utc> },
    /// `requireApproval`: no approval yet, or someone asked for changes.
    Approval,
    /// `requireChecks`: these checks are pending or failed (names as the forge reports them).
    Checks { waiting: Vec<String> },
}

/// The text of the merge notice for `wait`, ending with the hidden marker.
pub fn merge_notice(wait: &MergeWait) -> String {
    let text = match wait {
        MergeWait::Window { opens } => format!(
            "tagwatch will merge this pull request at {} (UTC), when its next merge window opens, \
             if it is still approved and its checks are green.",
            opens.format("%Y-%m-%d %H:%M")
        ),
        MergeWait::Approval => "tagwatch will merge this pull request once it is approved (and no \
                                review asks for changes)."
            .to_string(),
        MergeWait::Checks { waiting } => {
            let names: Vec<String> = waiting.iter().map(|name| quoted(name)).collect();
            if names.is_empty() {
                "tagwatch will merge this pull request once its checks are green.".to_string()
            } else {
                format!(
                    "tagwatch will merge this pull request once its checks are green; waiting for {}.",
                    names.join(", ")
                )
            }
        }
    };
    format!(
        "{text}\n\nA push to this branch by anyone else stops tagwatch from merging it.\n\n{NOTICE_MARKER}\n"
    )
}

/// `true` when `body` is a merge notice: its last line is the marker (a comment that merely quotes
/// the marker somewhere else is not).
pub fn is_merge_notice(body: &str) -> bool {
    body.trim_end().lines().last() == Some(NOTICE_MARKER)
}

/// A check name in backticks, one line, with backticks and markers made harmless.
fn quoted(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            '`' => '\'',
            '<' => '‹',
            '>' => '›',
            c => c,
        })
        .take(100)
        .collect();
    format!("`{clean}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_recognised_by_its_last_line_only() {
        let opens = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let notice = merge_notice(&MergeWait::Window { opens });
        assert!(
            notice.starts_with("tagwatch will merge this pull request at 2026-03-02 08:00 (UTC)")
        );
        assert!(is_merge_notice(&notice));
        assert!(is_merge_notice(&merge_notice(&MergeWait::Approval)));
        let quoting = format!("> {NOTICE_MARKER}\n\nwhy not now?");
        assert!(!is_merge_notice(&quoting));
        assert!(!is_merge_notice("LGTM"));
    }

    #[test]
    fn check_names_cannot_forge_a_marker() {
        let notice = merge_notice(&MergeWait::Checks {
            waiting: vec!["ci\n<!-- tagwatch:merge-notice -->".into(), "a`b".into()],
        });
        assert_eq!(notice.matches("<!--").count(), 1, "{notice}");
        assert!(
            notice.contains("`ci ‹!-- tagwatch:merge-notice --›`, `a'b`"),
            "{notice}"
        );
    }
}
