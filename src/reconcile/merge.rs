//! Merging tagwatch's own pull requests (docs/review.md, `writeBack.merge`): when the forge reports one
//! approved (if required) and every check green (if required), and only inside a merge window. Outside
//! the window one comment says when it will merge — updated in place, never repeated. A pull request
//! whose head is not exactly tagwatch's one commit on the current base is never merged.
//!
//! [`decide_merge`] is pure; [`merge_pull_request`] gathers the forge's answers and acts.
//!
//! Must not: merge anything a human changed, or retry a refused merge within the cycle.

use chrono::{DateTime, Utc};

use crate::config::MergeSettings;
use crate::forge::render::{self, MergeWait};
use crate::forge::{AnyForge, Approval, CheckState, Checks, Forge, ForgeError};
use crate::policy::window;

/// What is known about one open pull request when deciding.
#[derive(Debug, Clone)]
pub struct MergeFacts<'a> {
    pub settings: &'a MergeSettings,
    /// `None` when approval is not required (not asked).
    pub approval: Option<Approval>,
    /// `None` when checks are not required (not asked).
    pub checks: Option<Checks>,
    /// The head is tagwatch's one commit directly on the current base.
    pub head_is_ours: bool,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeAction {
    Merge,
    /// Not yet, and why.
    Wait(String),
    /// Approved and green, but outside every merge window: say when it will merge (`None`: the
    /// schedule never opens again).
    Announce(Option<DateTime<Utc>>),
    /// Never, as it stands.
    Refuse(String),
}

/// Decides what to do with one pull request.
pub fn decide_merge(facts: &MergeFacts<'_>) -> MergeAction {
    if !facts.head_is_ours {
        return MergeAction::Refuse(
            "its head is not tagwatch's one commit on the current base (a human pushed to it, or the base moved)"
                .into(),
        );
    }
    if facts.settings.require_approval {
        match &facts.approval {
            Some(approval) if approval.changes_requested => {
                return MergeAction::Wait("a reviewer asked for changes".into());
            }
            Some(approval) if approval.approved => {}
            _ => return MergeAction::Wait("not approved yet".into()),
        }
    }
    if facts.settings.require_checks {
        match facts.checks.as_ref().map(|checks| checks.state) {
            Some(CheckState::Success) => {}
            Some(CheckState::Failure) => return MergeAction::Wait("a check failed".into()),
            Some(CheckState::Pending) => return MergeAction::Wait("checks are running".into()),
            Some(CheckState::None) | None => {
                return MergeAction::Wait(
                    "no check reported on the head commit (set requireChecks: false without CI)"
                        .into(),
                );
            }
        }
    }
    let windows = &facts.settings.windows;
    if !windows.is_empty() && !window::any_open(windows, facts.now) {
        return MergeAction::Announce(window::next_any_open(windows, facts.now));
    }
    MergeAction::Merge
}

/// What happened to one pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    Merged,
    Waiting(String),
    Announced,
    Refused(String),
}

/// Asks the forge what [`decide_merge`] needs and carries out its answer.
pub async fn merge_pull_request(
    forge: &AnyForge,
    settings: &MergeSettings,
    number: u64,
    head_sha: &str,
    head_is_ours: bool,
    now: DateTime<Utc>,
) -> Result<Merged, ForgeError> {
    let approval = if settings.require_approval && head_is_ours {
        Some(forge.review_state(number).await?)
    } else {
        None
    };
    let checks = if settings.require_checks && head_is_ours {
        Some(forge.checks(head_sha).await?)
    } else {
        None
    };
    let action = decide_merge(&MergeFacts {
        settings,
        approval,
        checks,
        head_is_ours,
        now,
    });
    match action {
        MergeAction::Merge => {
            let outcome = forge.merge(number, settings.method, head_sha).await?;
            tracing::info!(
                pull_request = number,
                already = outcome.already_merged,
                "merged"
            );
            Ok(Merged::Merged)
        }
        MergeAction::Wait(why) => Ok(Merged::Waiting(why)),
        MergeAction::Refuse(why) => Ok(Merged::Refused(why)),
        MergeAction::Announce(at) => {
            let Some(opens) = at else {
                // The windows never open again: validation refuses such schedules, so say it in the log.
                tracing::warn!(pull_request = number, "the merge windows never open again");
                return Ok(Merged::Waiting("no merge window opens again".into()));
            };
            let text = render::merge_notice(&MergeWait::Window { opens });
            let comments = forge.comments(number).await?;
            match comments
                .iter()
                .find(|comment| render::is_merge_notice(&comment.body))
            {
                Some(existing) if existing.body == text => {}
                Some(existing) => {
                    forge.edit_comment(number, existing.id, &text).await?;
                }
                None => {
                    forge.add_comment(number, &text).await?;
                }
            }
            Ok(Merged::Announced)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::forge::{CheckContext, MergeMethod};
    use crate::policy::window::Window;

    fn settings(windows: Vec<Window>) -> MergeSettings {
        MergeSettings {
            require_approval: true,
            require_checks: true,
            method: MergeMethod::Merge,
            windows,
        }
    }

    fn green() -> Checks {
        Checks {
            state: CheckState::Success,
            contexts: vec![CheckContext {
                name: "ci".into(),
                state: CheckState::Success,
            }],
        }
    }

    fn approved() -> Approval {
        Approval {
            approved: true,
            changes_requested: false,
        }
    }

    /// Thursday 2026-11-26 12:00 UTC.
    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn facts(settings: &MergeSettings) -> MergeFacts<'_> {
        MergeFacts {
            settings,
            approval: Some(approved()),
            checks: Some(green()),
            head_is_ours: true,
            now: noon(),
        }
    }

    #[test]
    fn approved_and_green_merges_without_windows() {
        let settings = settings(Vec::new());
        assert_eq!(decide_merge(&facts(&settings)), MergeAction::Merge);
    }

    #[test]
    fn a_head_tagwatch_did_not_make_is_never_merged() {
        let settings = settings(Vec::new());
        let mut facts = facts(&settings);
        facts.head_is_ours = false;
        assert!(matches!(decide_merge(&facts), MergeAction::Refuse(_)));
    }

    #[test]
    fn unapproved_changes_requested_and_red_or_pending_checks_wait() {
        let settings = settings(Vec::new());
        let mut unapproved = facts(&settings);
        unapproved.approval = Some(Approval {
            approved: false,
            changes_requested: false,
        });
        assert!(matches!(decide_merge(&unapproved), MergeAction::Wait(_)));
        let mut changes = facts(&settings);
        changes.approval = Some(Approval {
            approved: true,
            changes_requested: true,
        });
        assert!(
            matches!(decide_merge(&changes), MergeAction::Wait(why) if why.contains("changes"))
        );
        for state in [CheckState::Failure, CheckState::Pending, CheckState::None] {
            let mut red = facts(&settings);
            red.checks = Some(Checks {
                state,
                contexts: Vec::new(),
            });
            assert!(
                matches!(decide_merge(&red), MergeAction::Wait(_)),
                "{state:?}"
            );
        }
    }

    #[test]
    fn requirements_switched_off_are_not_asked() {
        let mut settings = settings(Vec::new());
        settings.require_approval = false;
        settings.require_checks = false;
        let mut facts = facts(&settings);
        facts.approval = None;
        facts.checks = None;
        assert_eq!(decide_merge(&facts), MergeAction::Merge);
    }

    #[test]
    fn outside_the_window_it_announces_the_next_opening() {
        let window = Window {
            schedule: cron::Schedule::from_str("0 0 9 * * Mon-Thu").unwrap(),
            duration: Duration::from_secs(2 * 3600),
            timezone: chrono_tz::UTC,
        };
        let settings = settings(vec![window]);
        let outside = facts(&settings);
        let next_monday = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
        assert_eq!(
            decide_merge(&outside),
            MergeAction::Announce(Some(next_monday))
        );
        let mut inside = facts(&settings);
        inside.now = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        assert_eq!(decide_merge(&inside), MergeAction::Merge);
    }
}
