//! One test per decision: every `Status`, never-downgrade per order, markers, holds, rollbacks,
//! windows, and every fail-closed rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::config::{Author, GitAuth, Grouping, WriteBack, WriteBackMode};
use crate::git::Signing;
use crate::policy::{Direction, Origin, Range, SemverOrder};
use crate::reconcile::history::commit;
use crate::reference::ImageReference;

const IMAGE: &str = "r.io/acme/app";

fn repository(grouping: Grouping) -> RepositoryConfig {
    RepositoryConfig {
        name: "prod".into(),
        url: "file:///srv/prod.git".into(),
        branch: "main".into(),
        paths: Vec::new(),
        auth: GitAuth::None,
        write_back: WriteBack {
            mode: WriteBackMode::Push,
            branch: "main".into(),
            group: grouping,
            author: Author {
                name: "tagwatch".into(),
                email: "tagwatch@localhost".into(),
            },
            message: "chore(images): {summary}".into(),
            forge: None,
            signing: Signing::None,
            merge: None,
        },
        ca_file: None,
    }
}

fn origin() -> Origin {
    Origin {
        file: PathBuf::from("policies.yaml"),
        line: 1,
        column: 1,
    }
}

fn semver_policy(name: &str, image: &str, range: &str) -> Policy {
    Policy::new(
        name,
        ImageReference::parse(image).unwrap(),
        Order::Semver(SemverOrder {
            range: Range::parse(range, false).unwrap(),
            variant: None,
        }),
        origin(),
    )
}

fn newest_policy(name: &str) -> Policy {
    Policy::new(
        name,
        ImageReference::parse(IMAGE).unwrap(),
        Order::Newest,
        origin(),
    )
}

fn file(path: &str, text: &str) -> ScannedFile {
    ScannedFile {
        path: path.to_string(),
        bytes: text.as_bytes().to_vec(),
        discovery: manifest::discover(Path::new(path), text.as_bytes()),
    }
}

fn pod(images: &[&str]) -> String {
    let mut text = String::from("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n");
    for (index, image) in images.iter().enumerate() {
        text.push_str(&format!("    - name: c{index}\n      image: {image}\n"));
    }
    text
}

fn chose(tag: &str) -> Result<Resolution, Problem> {
    Ok(Resolution {
        tag: tag.to_string(),
        digest: None,
        created: None,
        rejected: Vec::new(),
    })
}

/// A choice whose image was built at `created`.
fn built(tag: &str, created: DateTime<Utc>) -> Result<Resolution, Problem> {
    Ok(Resolution {
        tag: tag.to_string(),
        digest: None,
        created: Some(created),
        rejected: Vec::new(),
    })
}

fn failed(policy: &str) -> Result<Resolution, Problem> {
    Err(Problem::new(
        "prod",
        Scope::Policy(policy.to_string()),
        ReconcileError::Deadline {
            image: IMAGE.into(),
            after: Duration::from_secs(20),
        },
    ))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// The inputs of one decision, owned, with defaults a test changes field by field.
struct Case {
    repository: RepositoryConfig,
    policies: Vec<Policy>,
    files: Vec<ScannedFile>,
    resolutions: BTreeMap<String, Result<Resolution, Problem>>,
    history: Result<Written, Problem>,
    created: CreatedTimes,
    promotions: BTreeMap<String, Promoted>,
    now: DateTime<Utc>,
}

impl Case {
    fn new(policies: Vec<Policy>, files: Vec<ScannedFile>) -> Self {
        Case {
            repository: repository(Grouping::Repository),
            policies,
            files,
            resolutions: BTreeMap::new(),
            history: Ok(Written::default()),
            created: CreatedTimes::new(),
            promotions: BTreeMap::new(),
            now: now(),
        }
    }

    fn resolve(mut self, policy: &str, result: Result<Resolution, Problem>) -> Self {
        self.resolutions.insert(policy.to_string(), result);
        self
    }

    fn decide(&self) -> RepositoryPlan {
        decide(&Facts {
            repository: &self.repository,
            policies: &self.policies,
            files: &self.files,
            resolutions: &self.resolutions,
            history: &self.history,
            created: &self.created,
            promotions: &self.promotions,
            now: self.now,
        })
    }
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, hour, 0, 0).unwrap()
}

#[test]
fn a_newer_choice_is_a_bump_with_the_exact_new_text() {
    let case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:1.0.0"]))],
    )
    .resolve("app", chose("1.2.0"));
    let plan = case.decide();
    assert_eq!(plan.bumps.len(), 1, "{plan:?}");
    let bump = &plan.bumps[0];
    assert_eq!(
        (bump.from.as_str(), bump.to.as_str()),
        ("r.io/acme/app:1.0.0", "r.io/acme/app:1.2.0")
    );
    assert_eq!(
        (bump.from_version.as_str(), bump.to_version.as_str()),
        ("1.0.0", "1.2.0")
    );
    assert_eq!(bump.group, "prod");
    assert!(plan.problems.is_empty() && plan.troubled.is_empty());
    assert!(plan.images.contains(IMAGE));
}

#[test]
fn the_same_version_is_nothing_to_do() {
    let case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:1.2.0"]))],
    )
    .resolve("app", chose("1.2.0"));
    let plan = case.decide();
    assert!(plan.bumps.is_empty(), "{plan:?}");
    assert_eq!(plan.notes.len(), 1);
    assert_eq!(plan.notes[0].status, Status::Current);
    assert_eq!(plan.choices.get("app").map(String::as_str), Some("1.2.0"));
}

#[test]
fn semver_never_downgrades_a_target_above_the_range() {
    let case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:2.0.0"]))],
    )
    .resolve("app", chose("1.9.0"));
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(plan.notes[0].status, Status::Newer);
}

#[test]
fn numerical_order_never_downgrades() {
    let mut policy = Policy::new(
        "app",
        ImageReference::parse(IMAGE).unwrap(),
        Order::Numerical(Direction::Ascending),
        origin(),
    );
    policy.filter = None;
    let case = Case::new(
        vec![policy],
        vec![file("a.yaml", &pod(&["r.io/acme/app:20"]))],
    )
    .resolve("app", chose("3"));
    assert_eq!(case.decide().notes[0].status, Status::Newer);
}

#[test]
fn newest_order_bumps_a_newer_build_whose_tag_sorts_lower() {
    // `main-abc` was built after `main-fff`: byte order says older, `created` says newer.
    let mut case = Case::new(
        vec![newest_policy("app")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:main-fff"]))],
    )
    .resolve("app", built("main-abc", at(10)));
    case.created
        .insert((IMAGE.into(), "main-fff".into()), Ok(Some(at(9))));
    let plan = case.decide();
    assert_eq!(plan.bumps.len(), 1, "{plan:?}");
    assert_eq!(plan.bumps[0].to, "r.io/acme/app:main-abc");
}

#[test]
fn newest_order_never_downgrades_a_newer_build() {
    let mut case = Case::new(
        vec![newest_policy("app")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:main-zzz"]))],
    )
    .resolve("app", built("main-abc", at(10)));
    case.created
        .insert((IMAGE.into(), "main-zzz".into()), Ok(Some(at(11))));
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(plan.notes[0].status, Status::Newer);
}

#[test]
fn newest_order_fails_closed_when_the_current_build_time_cannot_be_read() {
    let mut case = Case::new(
        vec![newest_policy("app")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:main-zzz"]))],
    )
    .resolve("app", built("main-abc", at(10)));
    case.created.insert(
        (IMAGE.into(), "main-zzz".into()),
        failed("app").map(|_| None),
    );
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(plan.problems.len(), 1);
    assert!(plan.troubled.contains("prod"));
}

#[test]
fn newest_order_bumps_when_the_current_tag_has_no_build_time() {
    let case = Case::new(
        vec![newest_policy("app")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:gone"]))],
    )
    .resolve("app", built("main-abc", at(10)));
    assert_eq!(case.decide().bumps.len(), 1);
}

#[test]
fn a_hold_marker_freezes_the_field() {
    let text = pod(&["r.io/acme/app:1.0.0 # tagwatch: hold"]);
    let case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", &text)],
    )
    .resolve("app", chose("1.2.0"));
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(plan.notes[0].status, Status::Held);
    assert_eq!(plan.notes[0].policy.as_deref(), Some("app"));
}

#[test]
fn several_policies_for_one_image_are_ambiguous_and_listed() {
    let case = Case::new(
        vec![
            semver_policy("app", IMAGE, "^1"),
            semver_policy("app-next", IMAGE, "^2"),
        ],
        vec![file("a.yaml", &pod(&["r.io/acme/app:1.0.0"]))],
    );
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(
        plan.notes[0].status,
        Status::Ambiguous {
            policies: vec!["app".into(), "app-next".into()]
        }
    );
    assert_eq!(
        (plan.notes[0].file.as_str(), plan.notes[0].line),
        ("a.yaml", 6)
    );
}

#[test]
fn a_marker_chooses_among_several_policies() {
    let text = pod(&["r.io/acme/app:1.0.0 # tagwatch: app-next"]);
    let case = Case::new(
        vec![
            semver_policy("app", IMAGE, "^1"),
            semver_policy("app-next", IMAGE, "^2"),
        ],
        vec![file("a.yaml", &text)],
    )
    .resolve("app-next", chose("2.0.0"));
    let plan = case.decide();
    assert_eq!(plan.bumps.len(), 1);
    assert_eq!(plan.bumps[0].policy, "app-next");
}

#[test]
fn a_marker_naming_an_unknown_policy_troubles_its_group() {
    let text = pod(&["r.io/acme/app:1.0.0 # tagwatch: nope"]);
    let case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", &text)],
    );
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(plan.problems.len(), 1);
    assert!(matches!(
        plan.problems[0].error.as_ref(),
        ReconcileError::UnknownMarker { line: 6, .. }
    ));
    assert!(plan.troubled.contains("prod"));
}

#[test]
fn a_policy_that_did_not_resolve_troubles_its_group_and_is_reported_once() {
    let mut case = Case::new(
        vec![
            semver_policy("app", IMAGE, "^1"),
            semver_policy("web", "r.io/acme/web", "^2"),
        ],
        vec![
            file(
                "a.yaml",
                &pod(&["r.io/acme/app:1.0.0", "r.io/acme/app:1.0.0"]),
            ),
            file("w.yaml", &pod(&["r.io/acme/web:2.0.0"])),
        ],
    )
    .resolve("app", failed("app"))
    .resolve("web", chose("2.1.0"));
    case.repository = repository(Grouping::Policy);
    let plan = case.decide();
    assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
    assert_eq!(plan.troubled, BTreeSet::from(["app".to_string()]));
    // The other group goes on.
    assert_eq!(plan.bumps.len(), 1);
    assert_eq!(plan.bumps[0].policy, "web");
}

#[test]
fn a_problem_troubles_the_whole_repository_group_but_the_other_bumps_stay_planned() {
    let case = Case::new(
        vec![
            semver_policy("app", IMAGE, "^1"),
            semver_policy("web", "r.io/acme/web", "^2"),
        ],
        vec![
            file("a.yaml", &pod(&["r.io/acme/app:1.0.0"])),
            file("w.yaml", &pod(&["r.io/acme/web:2.0.0"])),
        ],
    )
    .resolve("app", failed("app"))
    .resolve("web", chose("2.1.0"));
    let plan = case.decide();
    assert_eq!(plan.bumps.len(), 1, "{:?}", plan.bumps);
    assert_eq!(plan.bumps[0].policy, "web");
    assert!(plan.troubled.contains("prod"));
}

#[test]
fn unreadable_history_defers_every_bump_and_reports() {
    let mut case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:1.0.0"]))],
    )
    .resolve("app", chose("1.2.0"));
    case.history = Err(Problem::new(
        "prod",
        Scope::Repository,
        ReconcileError::Rewrite {
            reason: "stand-in for a git error".into(),
        },
    ));
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(plan.problems.len(), 1);
    assert!(plan.incomplete);
    assert!(plan.troubled.contains("prod"));
}

#[test]
fn a_human_rollback_holds_until_a_newer_tag_appears() {
    let written = Written::from_commits([&commit(
        "bump\n\nTagwatch-Bump: a.yaml r.io/acme/app 1.1.0 -> 1.2.0\n",
    )]);
    let files = vec![file("a.yaml", &pod(&["r.io/acme/app:1.1.0"]))];
    let mut held = Case::new(vec![semver_policy("app", IMAGE, "^1")], files.clone())
        .resolve("app", chose("1.2.0"));
    held.history = Ok(written.clone());
    let plan = held.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(
        plan.notes[0].status,
        Status::Rollback {
            reverted: "1.2.0".into()
        }
    );
    assert_eq!(plan.notes[0].to.as_deref(), Some("r.io/acme/app:1.2.0"));
    let mut released =
        Case::new(vec![semver_policy("app", IMAGE, "^1")], files).resolve("app", chose("1.3.0"));
    released.history = Ok(written);
    assert_eq!(released.decide().bumps.len(), 1);
}

#[test]
fn a_newest_order_rollback_compares_build_times_not_tag_text() {
    let written = Written::from_commits([&commit(
        "bump\n\nTagwatch-Bump: a.yaml r.io/acme/app main-old -> main-zzz\n",
    )]);
    let mut case = Case::new(
        vec![newest_policy("app")],
        vec![file("a.yaml", &pod(&["r.io/acme/app:main-old"]))],
    )
    .resolve("app", built("main-abc", at(12)));
    case.history = Ok(written);
    case.created
        .insert((IMAGE.into(), "main-zzz".into()), Ok(Some(at(11))));
    case.created
        .insert((IMAGE.into(), "main-old".into()), Ok(Some(at(9))));
    // `main-abc` sorts below the reverted `main-zzz` but was built after it: the hold ends.
    let plan = case.decide();
    assert_eq!(plan.bumps.len(), 1, "{plan:?}");
}

#[test]
fn outside_every_window_a_bump_waits_until_the_next_opening() {
    let mut policy = semver_policy("app", IMAGE, "^1");
    policy.windows = vec![crate::policy::window::Window {
        schedule: cron::Schedule::from_str("0 0 9 * * Mon-Fri").unwrap(),
        duration: Duration::from_secs(3600),
        timezone: chrono_tz::UTC,
    }];
    let case = Case::new(
        vec![policy],
        vec![file("a.yaml", &pod(&["r.io/acme/app:1.0.0"]))],
    )
    .resolve("app", chose("1.2.0"));
    // 2026-11-26 is a Thursday; 12:00 is after the 09:00–10:00 window.
    let plan = case.decide();
    assert!(plan.bumps.is_empty());
    assert_eq!(
        plan.notes[0].status,
        Status::Waiting {
            until: Some(Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap())
        }
    );
    assert_eq!(
        plan.next_due(),
        Some(Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap())
    );
}

#[test]
fn a_file_that_cannot_be_rewritten_is_left_unchanged_and_troubles_its_group() {
    // A double-quoted scalar with an escape is not written verbatim: not rewritable.
    let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: a\n      image: \"r.io/acme/app:1.0\\u002e0\"\n";
    let case = Case::new(
        vec![semver_policy("app", IMAGE, "^1")],
        vec![file("a.yaml", text)],
    )
    .resolve("app", chose("1.2.0"));
    let plan = case.decide();
    assert!(plan.bumps.is_empty(), "{:?}", plan.bumps);
    assert_eq!(plan.problems.len(), 1);
    assert_eq!(plan.problems[0].scope, Scope::File("a.yaml".into()));
    assert!(
        plan.problems[0]
            .error
            .to_string()
            .starts_with("left unchanged: ")
    );
    assert!(plan.troubled.contains("prod"));
}

#[test]
fn a_moved_digest_of_the_same_tag_is_a_bump() {
    let digest_a = format!("sha256:{}", "a".repeat(64));
    let digest_b = format!("sha256:{}", "b".repeat(64));
    let mut policy = semver_policy("app", IMAGE, "^1");
    policy.digest = true;
    let case = Case::new(
        vec![policy],
        vec![file(
            "a.yaml",
            &pod(&[&format!("r.io/acme/app:1.2.0@{digest_a}")]),
        )],
    )
    .resolve(
        "app",
        Ok(Resolution {
            tag: "1.2.0".into(),
            digest: Some(digest_b.clone()),
            created: None,
            rejected: Vec::new(),
        }),
    );
    let plan = case.decide();
    assert_eq!(plan.bumps.len(), 1);
    assert_eq!(plan.bumps[0].to_version, format!("1.2.0@{digest_b}"));
}

#[test]
fn needed_policies_and_created_times_follow_ownership() {
    let written = Written::from_commits([&commit(
        "bump\n\nTagwatch-Bump: a.yaml r.io/acme/app main-old -> main-zzz\n",
    )]);
    let files = vec![file(
        "a.yaml",
        &pod(&["r.io/acme/app:main-old", "r.io/acme/other:1"]),
    )];
    let policies = vec![newest_policy("app")];
    let index = PolicyIndex::new(&policies, "prod");
    let needed = needed_policies(&files, &index);
    assert_eq!(needed.len(), 1);
    let resolutions = BTreeMap::from([("app".to_string(), chose("main-abc"))]);
    let times = needed_created_times(&files, &index, &resolutions, &Ok(written));
    assert_eq!(
        times,
        vec![
            (IMAGE.to_string(), "main-old".to_string()),
            (IMAGE.to_string(), "main-zzz".to_string())
        ]
    );
}
