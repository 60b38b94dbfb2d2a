//! The review-to-merge calls on every forge against the fake forge and a real bare repository:
//! review state, checks, merging with an expected head (merge, squash, rebase), refusals, comments
//! and a pull request's commits.

use tagwatch::forge::{Approval, CheckState, Forge, ForgeError, MergeMethod, PullRequestState};

use super::{BASE, HEAD, Remote, TOKEN, client, open_ours, run_git};
use crate::support::fake_forge::{Check, FakeForge, Flavor, PullState, Verdict};

/// The latest verdict of each reviewer decides; a request for changes stands until its author
/// approves.
async fn review_state_follows_each_reviewers_latest_verdict(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, flavor).await;
    assert_eq!(
        forge.review_state(pull.number).await.unwrap(),
        Approval::default()
    );

    // An approval by someone without write access approves nothing.
    fake.add_review(pull.number, "mallory", Verdict::OutsiderApprove);
    assert_eq!(
        forge.review_state(pull.number).await.unwrap(),
        Approval::default()
    );

    fake.add_review(pull.number, "alice", Verdict::Comment);
    fake.add_review(pull.number, "bob", Verdict::RequestChanges);
    let state = forge.review_state(pull.number).await.unwrap();
    assert!(!state.approved && state.changes_requested, "{state:?}");

    fake.add_review(pull.number, "alice", Verdict::Approve);
    let state = forge.review_state(pull.number).await.unwrap();
    assert!(state.approved && state.changes_requested, "{state:?}");

    fake.add_review(pull.number, "bob", Verdict::Approve);
    assert_eq!(
        forge.review_state(pull.number).await.unwrap(),
        Approval {
            approved: true,
            changes_requested: false
        }
    );
    fake.assert_clean();
}

/// Every status, check run and job is reported by name (latest report per name), and one failure or
/// pending check decides the whole.
async fn checks_report_each_context_and_the_whole(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let sha = fake.branch_sha(HEAD);
    let none = forge.checks(&sha).await.unwrap();
    assert_eq!(none.state, CheckState::None);
    assert!(none.contexts.is_empty());

    fake.set_status(&sha, "ci", Check::Failure);
    fake.set_status(&sha, "ci", Check::Success);
    fake.set_status(&sha, "acceptance", Check::Pending);
    let checks = forge.checks(&sha).await.unwrap();
    assert_eq!(checks.context("ci"), Some(CheckState::Success));
    assert_eq!(checks.context("acceptance"), Some(CheckState::Pending));
    assert_eq!(checks.state, CheckState::Pending);

    fake.set_status(&sha, "acceptance", Check::Success);
    assert_eq!(forge.checks(&sha).await.unwrap().state, CheckState::Success);

    match flavor {
        Flavor::GitHub => {
            fake.set_check_run(&sha, "lint", Check::Pending);
            let checks = forge.checks(&sha).await.unwrap();
            assert_eq!(checks.context("lint"), Some(CheckState::Pending));
            assert_eq!(checks.state, CheckState::Pending);
            fake.set_check_run(&sha, "lint", Check::Failure);
            assert_eq!(forge.checks(&sha).await.unwrap().state, CheckState::Failure);
        }
        Flavor::GitLab => {
            // A job allowed to fail does not fail the whole; the newest pipeline does.
            fake.set_optional_job(&sha, "flaky", Check::Failure);
            fake.set_pipeline(&sha, Check::Success);
            let checks = forge.checks(&sha).await.unwrap();
            assert_eq!(checks.context("flaky"), Some(CheckState::None));
            assert_eq!(checks.state, CheckState::Success);
            fake.set_pipeline(&sha, Check::Failure);
            assert_eq!(forge.checks(&sha).await.unwrap().state, CheckState::Failure);
        }
        Flavor::Gitea | Flavor::Forgejo => {
            fake.set_status(&sha, "acceptance", Check::Failure);
            assert_eq!(forge.checks(&sha).await.unwrap().state, CheckState::Failure);
        }
    }
    // Another commit has none of these.
    let base = fake.branch_sha(BASE);
    assert_eq!(forge.checks(&base).await.unwrap().state, CheckState::None);
    fake.assert_clean();
}

/// Merging lands in the real repository the way `method` says; asking again after a lost answer
/// reports the merge instead of failing.
async fn merge_lands_with_the_method(flavor: Flavor, method: MergeMethod) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, flavor).await;
    let old_base = remote.base_sha().trim().to_string();
    let head = fake.branch_sha(HEAD);

    let outcome = forge.merge(pull.number, method, &head).await.unwrap();
    assert!(!outcome.already_merged);
    assert_eq!(remote.base_file(), "image: ghcr.io/acme/api:1.3.0\n");
    let new_base = remote.base_sha().trim().to_string();
    assert_eq!(outcome.merge_commit_sha.as_deref(), Some(new_base.as_str()));
    let parents = run_git(&remote.bare, &["log", "-1", "--format=%P", BASE]);
    let parents: Vec<&str> = parents.split_whitespace().collect();
    let author = run_git(&remote.bare, &["log", "-1", "--format=%ae", BASE]);
    match method {
        MergeMethod::Merge => assert_eq!(parents, [old_base.as_str(), head.as_str()]),
        MergeMethod::Squash => {
            assert_eq!(parents, [old_base.as_str()]);
            assert_ne!(new_base, head);
        }
        MergeMethod::Rebase => {
            assert_eq!(parents, [old_base.as_str()]);
            // The head's commit replayed, its author kept.
            assert_eq!(author.trim(), "test@example.com");
        }
    }
    let stored = fake.pull(pull.number);
    assert_eq!(stored.state, PullState::Merged);
    assert_eq!(
        stored.merge_method.as_deref(),
        Some(method.to_string().as_str())
    );

    let again = forge.merge(pull.number, method, &head).await.unwrap();
    assert!(again.already_merged);
    assert_eq!(remote.base_sha().trim(), new_base, "merged once");
    assert_eq!(
        forge.get_pull_request(pull.number).await.unwrap().state,
        PullRequestState::Merged
    );
    fake.assert_clean();
}

/// A human's commit on the head branch: the pull request is not merged, the base is untouched, and
/// the head's commits show who wrote them.
async fn merge_refuses_a_head_a_human_pushed_to(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, flavor).await;
    let ours = fake.branch_sha(HEAD);
    let commits = forge.head_commits(pull.number).await.unwrap();
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(commits[0].sha, ours);
    assert_eq!(commits[0].author_email, "test@example.com");
    assert_eq!(commits[0].committer_email, "test@example.com");

    let human = fake.push_foreign_commit(HEAD, "human@example.com");
    let base = remote.base_sha();
    let error = forge
        .merge(pull.number, MergeMethod::Merge, &ours)
        .await
        .unwrap_err();
    match &error {
        ForgeError::HeadMoved {
            expected, found, ..
        } => {
            assert_eq!(expected, &ours);
            assert_eq!(found.as_deref(), Some(human.as_str()));
        }
        other => panic!("expected HeadMoved, got {other:?}"),
    }
    assert_eq!(error.class(), tagwatch::forge::ErrorClass::Permanent);
    assert_eq!(remote.base_sha(), base, "nothing merged");
    assert_eq!(fake.pull(pull.number).state, PullState::Open);

    let commits = forge.head_commits(pull.number).await.unwrap();
    let emails: Vec<&str> = commits.iter().map(|c| c.author_email.as_str()).collect();
    assert_eq!(emails, ["test@example.com", "human@example.com"]);
    assert_eq!(commits[1].sha, human);
    fake.assert_clean();
}

/// A push that lands between tagwatch's last look and the merge: the forge's own head check refuses
/// it, and the refusal is `HeadMoved`.
async fn the_forge_refuses_a_head_that_moved_during_the_merge(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, flavor).await;
    let ours = fake.branch_sha(HEAD);
    let base = remote.base_sha();
    fake.race_next_merge("human@example.com");
    let error = forge
        .merge(pull.number, MergeMethod::Squash, &ours)
        .await
        .unwrap_err();
    match &error {
        ForgeError::HeadMoved { expected, .. } => assert_eq!(expected, &ours),
        other => panic!("expected HeadMoved, got {other:?}"),
    }
    assert_eq!(remote.base_sha(), base, "nothing merged");
    let statuses: Vec<u16> = fake.log().iter().map(|l| l.status).collect();
    assert!(statuses.contains(&409), "{statuses:?}");
    fake.assert_clean();
}

/// A conflict with the base and a protection rule are told apart, and neither merges.
async fn merge_refusals_are_told_apart(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, flavor).await;
    let head = fake.branch_sha(HEAD);

    fake.block_merges(Some("Required status check \"ci\" is expected."));
    let error = forge
        .merge(pull.number, MergeMethod::Merge, &head)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ForgeError::NotMergeable { .. }),
        "{error:?}"
    );
    fake.block_merges(None);

    // A human changes the same line on the base.
    run_git(
        &remote.work,
        &["checkout", "-q", "-B", BASE, &format!("origin/{BASE}")],
    );
    std::fs::write(
        remote.work.join("app.yaml"),
        "image: ghcr.io/acme/api:9.9.9\n",
    )
    .unwrap();
    run_git(&remote.work, &["commit", "-q", "-am", "pin by hand"]);
    run_git(&remote.work, &["push", "-q", "origin", BASE]);
    let base = remote.base_sha();
    let error = forge
        .merge(pull.number, MergeMethod::Merge, &head)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ForgeError::MergeConflict { .. }),
        "{error:?}"
    );
    assert_eq!(remote.base_sha(), base, "nothing merged");
    assert_eq!(fake.pull(pull.number).state, PullState::Open);
    fake.assert_clean();
}

/// tagwatch's comment is found again among the others and edited in place.
async fn comments_are_listed_added_and_edited(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, flavor).await;
    assert!(forge.comments(pull.number).await.unwrap().is_empty());

    let first = forge.add_comment(pull.number, "LGTM").await.unwrap();
    let ours = forge
        .add_comment(pull.number, "will merge at 09:00")
        .await
        .unwrap();
    assert_eq!(ours.body, "will merge at 09:00");
    let listed = forge.comments(pull.number).await.unwrap();
    assert_eq!(listed, [first.clone(), ours.clone()]);

    let edited = forge
        .edit_comment(pull.number, ours.id, "will merge at 10:00")
        .await
        .unwrap();
    assert_eq!(edited.id, ours.id);
    assert_eq!(edited.body, "will merge at 10:00");
    let listed = forge.comments(pull.number).await.unwrap();
    assert_eq!(listed[0], first);
    assert_eq!(listed[1].body, "will merge at 10:00");
    assert_eq!(
        fake.pull(pull.number).comments,
        ["LGTM", "will merge at 10:00"]
    );
    fake.assert_clean();
}

macro_rules! review_tests {
    ($module:ident, $flavor:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn review_state_follows_each_reviewers_latest_verdict() {
                super::review_state_follows_each_reviewers_latest_verdict($flavor).await;
            }

            #[tokio::test]
            async fn checks_report_each_context_and_the_whole() {
                super::checks_report_each_context_and_the_whole($flavor).await;
            }

            #[tokio::test]
            async fn merge_commit_lands_in_the_repository() {
                merge_lands_with_the_method($flavor, MergeMethod::Merge).await;
            }

            #[tokio::test]
            async fn squash_lands_in_the_repository() {
                merge_lands_with_the_method($flavor, MergeMethod::Squash).await;
            }

            #[tokio::test]
            async fn merge_refuses_a_head_a_human_pushed_to() {
                super::merge_refuses_a_head_a_human_pushed_to($flavor).await;
            }

            #[tokio::test]
            async fn the_forge_refuses_a_head_that_moved_during_the_merge() {
                super::the_forge_refuses_a_head_that_moved_during_the_merge($flavor).await;
            }

            #[tokio::test]
            async fn merge_refusals_are_told_apart() {
                super::merge_refusals_are_told_apart($flavor).await;
            }

            #[tokio::test]
            async fn comments_are_listed_added_and_edited() {
                super::comments_are_listed_added_and_edited($flavor).await;
            }
        }
    };
}

review_tests!(github, Flavor::GitHub);
review_tests!(gitlab, Flavor::GitLab);
review_tests!(gitea, Flavor::Gitea);
review_tests!(forgejo, Flavor::Forgejo);

#[tokio::test]
async fn rebase_lands_in_the_repository_on_github() {
    merge_lands_with_the_method(Flavor::GitHub, MergeMethod::Rebase).await;
}

#[tokio::test]
async fn rebase_lands_in_the_repository_on_gitea() {
    merge_lands_with_the_method(Flavor::Gitea, MergeMethod::Rebase).await;
}

#[tokio::test]
async fn rebase_lands_in_the_repository_on_forgejo() {
    merge_lands_with_the_method(Flavor::Forgejo, MergeMethod::Rebase).await;
}

/// GitLab merges with the project's merge method: asking for a rebase is a settings error, sent to
/// no one.
#[tokio::test]
async fn gitlab_refuses_rebase_as_a_settings_error() {
    let remote = Remote::new();
    let fake = FakeForge::start(Flavor::GitLab, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let pull = open_ours(&forge, Flavor::GitLab).await;
    let before = fake.log().len();
    let error = forge
        .merge(pull.number, MergeMethod::Rebase, &fake.branch_sha(HEAD))
        .await
        .unwrap_err();
    assert!(matches!(error, ForgeError::Settings(_)), "{error:?}");
    assert_eq!(fake.log().len(), before);
    assert_eq!(fake.pull(pull.number).state, PullState::Open);
    fake.assert_clean();
}
