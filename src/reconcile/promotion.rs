//! Promotion between environments (docs/promotion.md): which versions an upstream environment has proven. Pure:
//! the upstream's history arrives as a [`Timeline`] (gathered from git), the answer is each version's
//! [`Readiness`] and the evidence that backs it.
//!
//! A **stint** of a version runs from the committer time of the upstream commit that put it into the
//! upstream's targets until the commit that took it out, or until `now` (commits after `now` are
//! ignored, so `plan --at` sees the past as it was). A version is **ready** when one of its stints lasted
//! at least the soak time and no later commit replaced it by an *older* version; replacement by a newer
//! version keeps it known-good, a rollback from it disqualifies it until a new stint soaks again.
//!
//! Must not: read git, the clock or the forge (facts come in), or decide what to bump (that is
//! `decide`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// One upstream commit along the branch's first-parent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCommit {
    /// Full hex id.
    pub id: String,
    /// Committer time.
    pub time: DateTime<Utc>,
    /// Normalized image → the tags its targets hold after this commit.
    pub versions: BTreeMap<String, BTreeSet<String>>,
}

/// An upstream's history, oldest commit first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The upstream repository entry's name.
    pub upstream: String,
    pub commits: Vec<UpstreamCommit>,
}

/// One continuous run of a version upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stint {
    /// Index of the commit that put the version in place.
    pub start: usize,
    /// Index of the commit that took it out; `None` while it still runs.
    pub end: Option<usize>,
    /// Taken out by an older version (a rollback from it).
    pub rolled_back: bool,
}

/// What backs a promotion: the upstream stint (and the statuses seen on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub upstream: String,
    /// Short id of the commit that started the stint.
    pub commit: String,
    pub since: DateTime<Utc>,
    /// Required statuses / checks and their state, as the forge reported them.
    pub statuses: Vec<(String, String)>,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ran in {} since {} (commit {})",
            self.upstream,
            self.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.commit
        )?;
        if !self.statuses.is_empty() {
            let statuses: Vec<String> = self
                .statuses
                .iter()
                .map(|(name, state)| format!("{name}={state}"))
                .collect();
            write!(f, ", statuses {}", statuses.join(" "))?;
        }
        Ok(())
    }
}

/// Whether a version may be promoted at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Soaked: these qualifying stints (newest first) back it; statuses are checked on their commits.
    Ready(Vec<Stint>),
    /// Its current stint soaks until then.
    Soaking { until: DateTime<Utc>, stint: Stint },
    /// It never ran upstream, or a rollback from it has not been followed by a new stint.
    Not,
}

/// Every stint of `version` of `image`, oldest first, ignoring commits after `now`. `is_older(a, b)`
/// says whether tag `a` is older than tag `b` in the policy's order (`None`: not comparable, which
/// counts as a rollback — fail closed).
pub fn stints(
    timeline: &Timeline,
    image: &str,
    version: &str,
    now: DateTime<Utc>,
    is_older: &dyn Fn(&str, &str) -> Option<bool>,
) -> Vec<Stint> {
    let mut stints = Vec::new();
    let mut open: Option<usize> = None;
    for (index, commit) in timeline.commits.iter().enumerate() {
        if commit.time > now {
            // Not yet (dates need not grow along history): its change is ignored.
            continue;
        }
        let versions = commit.versions.get(image);
        let present = versions.is_some_and(|versions| versions.contains(version));
        match (open, present) {
            (None, true) => open = Some(index),
            (Some(start), false) => {
                let rolled_back = versions.is_some_and(|versions| {
                    versions
                        .iter()
                        .any(|other| is_older(other, version).unwrap_or(true))
                });
                stints.push(Stint {
                    start,
                    end: Some(index),
                    rolled_back,
                });
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        stints.push(Stint {
            start,
            end: None,
            rolled_back: false,
        });
    }
    stints
}

/// The readiness of `version` of `image` for a soak of `soak` at `now`.
pub fn readiness(
    timeline: &Timeline,
    image: &str,
    version: &str,
    soak: Duration,
    now: DateTime<Utc>,
    is_older: &dyn Fn(&str, &str) -> Option<bool>,
) -> Readiness {
    let stints = stints(timeline, image, version, now, is_older);
    let time = |index: usize| timeline.commits[index].time;
    // Only stints after the last rollback from this version count.
    let last_rollback = stints
        .iter()
        .filter(|stint| stint.rolled_back)
        .filter_map(|stint| stint.end)
        .max();
    let counting: Vec<&Stint> = stints
        .iter()
        .filter(|stint| last_rollback.is_none_or(|rollback| stint.start > rollback))
        .filter(|stint| !stint.rolled_back)
        .collect();
    let lasted = |stint: &Stint| {
        let end = stint.end.map_or(now, time);
        (end - time(stint.start)).to_std().unwrap_or(Duration::ZERO)
    };
    let ready: Vec<Stint> = counting
        .iter()
        .rev()
        .filter(|stint| lasted(stint) >= soak)
        .map(|stint| (*stint).clone())
        .collect();
    if !ready.is_empty() {
        return Readiness::Ready(ready);
    }
    match counting.last() {
        Some(stint) if stint.end.is_none() => Readiness::Soaking {
            until: time(stint.start)
                + chrono::Duration::from_std(soak).unwrap_or(chrono::Duration::MAX),
            stint: (*stint).clone(),
        },
        _ => Readiness::Not,
    }
}

/// Every tag of `image` that ever ran upstream (up to `now`): the universe promotion chooses from.
pub fn versions_seen(timeline: &Timeline, image: &str, now: DateTime<Utc>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    for commit in timeline.commits.iter().filter(|commit| commit.time <= now) {
        if let Some(versions) = commit.versions.get(image) {
            seen.extend(versions.iter().cloned());
        }
    }
    seen.into_iter().collect()
}

/// The commits during which `stint` ran (newest first), for status checks.
pub fn commits_of(timeline: &Timeline, stint: &Stint, now: DateTime<Utc>) -> Vec<String> {
    let end = stint.end.unwrap_or(timeline.commits.len());
    timeline.commits[stint.start..end]
        .iter()
        .filter(|commit| commit.time <= now)
        .rev()
        .map(|commit| commit.id.clone())
        .collect()
}

/// The evidence of `stint`.
pub fn evidence(timeline: &Timeline, stint: &Stint, statuses: Vec<(String, String)>) -> Evidence {
    let commit = &timeline.commits[stint.start];
    Evidence {
        upstream: timeline.upstream.clone(),
        commit: commit.id.chars().take(7).collect(),
        since: commit.time,
        statuses,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const IMAGE: &str = "r.io/acme/app";
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn t(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(hours)
    }

    /// Commits at the given hours, each putting these tags in place.
    fn timeline(steps: &[(i64, &[&str])]) -> Timeline {
        Timeline {
            upstream: "staging".into(),
            commits: steps
                .iter()
                .enumerate()
                .map(|(index, (hour, tags))| UpstreamCommit {
                    id: format!("{index:040x}"),
                    time: t(*hour),
                    versions: BTreeMap::from([(
                        IMAGE.to_string(),
                        tags.iter().map(|tag| tag.to_string()).collect(),
                    )]),
                })
                .collect(),
        }
    }

    fn semver_older(a: &str, b: &str) -> Option<bool> {
        let parse = |tag: &str| crate::policy::Version::parse(tag).ok();
        Some(parse(a)?.compare_build(&parse(b)?) == std::cmp::Ordering::Less)
    }

    fn ready_at(timeline: &Timeline, version: &str, hour: i64) -> Readiness {
        readiness(timeline, IMAGE, version, DAY, t(hour), &semver_older)
    }

    #[test]
    fn the_specs_worked_example() {
        // 1.1.0 at T, 1.2.0 at T+30h, reverted to 1.1.0 at T+32h, soak 24h; at T+40h.
        let history = timeline(&[(0, &["1.1.0"]), (30, &["1.2.0"]), (32, &["1.1.0"])]);
        assert!(matches!(
            ready_at(&history, "1.1.0", 40),
            Readiness::Ready(_)
        ));
        assert_eq!(ready_at(&history, "1.2.0", 40), Readiness::Not);
    }

    #[test]
    fn a_version_soaks_until_its_stint_is_long_enough() {
        let history = timeline(&[(0, &["1.0.0"]), (10, &["1.1.0"])]);
        assert_eq!(
            ready_at(&history, "1.1.0", 20),
            Readiness::Soaking {
                until: t(34),
                stint: Stint {
                    start: 1,
                    end: None,
                    rolled_back: false
                }
            }
        );
        assert!(matches!(
            ready_at(&history, "1.1.0", 34),
            Readiness::Ready(_)
        ));
    }

    #[test]
    fn replaced_by_a_newer_version_stays_known_good() {
        let history = timeline(&[(0, &["1.0.0"]), (30, &["1.1.0"])]);
        match ready_at(&history, "1.0.0", 31) {
            Readiness::Ready(stints) => assert_eq!(stints[0].end, Some(1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rollback_disqualifies_until_a_new_stint_soaks() {
        let history = timeline(&[
            (0, &["1.1.0"]),
            (30, &["1.0.0"]), // rolled back from 1.1.0 after it soaked
            (40, &["1.1.0"]), // back again
        ]);
        assert!(matches!(
            ready_at(&history, "1.1.0", 50),
            Readiness::Soaking { until, .. } if until == t(64)
        ));
        assert!(matches!(
            ready_at(&history, "1.1.0", 64),
            Readiness::Ready(_)
        ));
    }

    #[test]
    fn a_version_that_never_ran_upstream_is_never_ready() {
        let history = timeline(&[(0, &["1.0.0"])]);
        assert_eq!(ready_at(&history, "9.9.9", 1000), Readiness::Not);
    }

    #[test]
    fn commits_after_now_are_ignored() {
        let history = timeline(&[(0, &["1.0.0"]), (10, &["1.1.0"]), (100, &["1.0.0"])]);
        // At hour 50 the rollback at hour 100 has not happened yet.
        assert!(matches!(
            ready_at(&history, "1.1.0", 50),
            Readiness::Ready(_)
        ));
        assert_eq!(ready_at(&history, "1.1.0", 101), Readiness::Not);
        assert_eq!(
            versions_seen(&history, IMAGE, t(5)),
            vec!["1.0.0".to_string()]
        );
    }

    #[test]
    fn an_incomparable_replacement_counts_as_a_rollback() {
        let history = timeline(&[(0, &["1.0.0"]), (30, &["latest"])]);
        assert_eq!(ready_at(&history, "1.0.0", 40), Readiness::Not);
    }

    #[test]
    fn evidence_names_the_commit_that_started_the_stint() {
        let history = timeline(&[(0, &["1.0.0"]), (5, &["1.1.0"])]);
        let Readiness::Ready(stints) = ready_at(&history, "1.1.0", 40) else {
            panic!()
        };
        let evidence = evidence(
            &history,
            &stints[0],
            vec![("acceptance".into(), "success".into())],
        );
        assert_eq!(
            evidence.to_string(),
            "ran in staging since 2026-11-01T05:00:00Z (commit 0000000), statuses acceptance=success"
        );
        assert_eq!(commits_of(&history, &stints[0], t(40)).len(), 1);
    }
}
