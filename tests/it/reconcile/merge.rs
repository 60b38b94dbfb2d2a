//! `writeBack.merge` (docs/review.md) against the validating fake forge: tagwatch merges its own pull request
//! only when approved and green and inside a merge window; outside it one comment says when; a head a
//! human pushed to is never merged.

use crate::support::fake_forge::{Check, FakeForge, Flavor, NAME, OWNER, PullState, Verdict};

use super::*;

const TOKEN: &str = "forge-token-m3rge";

fn merging_repository(url: &str, flavor: &str, api: &str, merge: &str) -> String {
    format!(
        "  - name: local\n    url: {url}\n    paths: [apps]\n    writeBack:\n      mode: pull-request\n      author: {{ name: tagwatch-bot, email: bot@example.com }}\n      forge: {{ kind: {flavor}, api: \"{api}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\n      merge: {merge}\n"
    )
}

async fn opened(
    flavor: Flavor,
    kind: &str,
    merge: &str,
) -> (Registry, tempfile::TempDir, PathBuf, FakeForge, PathBuf) {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let fake = FakeForge::start(flavor, &bare, TOKEN).await;
    let config = write_config(
        root.path(),
        &registry,
        &merging_repository(&file_url(&bare), kind, &fake.api_url(), merge),
        &policy(&host, ""),
    );
    reconciler(&config, &[("FORGE_TOKEN", TOKEN)])
        .run_all(chrono::Utc::now())
        .await;
    assert_eq!(fake.pulls().len(), 1);
    (registry, root, bare, fake, config)
}

async fn cycle(config: &Path) -> tagwatch::reconcile::Applied {
    let outcomes = reconciler(config, &[("FORGE_TOKEN", TOKEN)])
        .run_all(chrono::Utc::now())
        .await;
    outcomes[0].applied.clone().unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_green_pull_request_is_merged_and_the_base_moves() {
    for (flavor, kind) in [(Flavor::GitHub, "github"), (Flavor::Gitea, "gitea")] {
        let (registry, _root, bare, fake, config) = opened(
            flavor,
            kind,
            "{ requireApproval: true, requireChecks: true }",
        )
        .await;
        let number = fake.pulls()[0].number;
        // Not approved, not green: waits.
        let applied = cycle(&config).await;
        assert!(applied.merged.is_empty(), "{applied:?}");
        assert_eq!(fake.pull(number).state, PullState::Open);
        fake.add_review(number, "alice", Verdict::Approve);
        let head = fake.pull(number).head_sha;
        fake.set_status(&head, "ci", Check::Pending);
        assert!(cycle(&config).await.merged.is_empty());
        fake.set_status(&head, "ci", Check::Success);
        let applied = cycle(&config).await;
        assert_eq!(applied.merged.len(), 1, "{kind}: {applied:?}");
        assert_eq!(fake.pull(number).state, PullState::Merged);
        assert_eq!(
            show(&bare, "apps/a.yaml"),
            deployment(&registry.host, "1.2.0", ""),
            "{kind}: the merge landed on the base"
        );
        fake.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_merge_window_one_comment_says_when_and_is_not_repeated() {
    let closed = "{ requireApproval: false, requireChecks: false, windows: [{ schedule: \"0 0 1 1 *\", duration: 1m, timezone: UTC }] }";
    let (_registry, _root, _bare, fake, config) = opened(Flavor::GitHub, "github", closed).await;
    let number = fake.pulls()[0].number;
    for _ in 0..2 {
        let applied = cycle(&config).await;
        assert!(applied.merged.is_empty());
    }
    let pull = fake.pull(number);
    assert_eq!(pull.state, PullState::Open);
    assert_eq!(pull.comments.len(), 1, "{:?}", pull.comments);
    assert!(
        pull.comments[0].contains("tagwatch will merge this pull request at"),
        "{}",
        pull.comments[0]
    );
    assert!(
        pull.comments[0].contains("-01-01 00:00"),
        "{}",
        pull.comments[0]
    );
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_a_human_pushed_to_is_neither_overwritten_nor_merged() {
    let (_registry, _root, bare, fake, config) = opened(
        Flavor::GitHub,
        "github",
        "{ requireApproval: true, requireChecks: false }",
    )
    .await;
    let number = fake.pulls()[0].number;
    let branch = fake.pulls()[0].head.clone();
    fake.add_review(number, "alice", Verdict::Approve);
    let human = fake.push_foreign_commit(&branch, "human@example.com");
    let applied = cycle(&config).await;
    assert!(applied.merged.is_empty(), "{applied:?}");
    assert_eq!(applied.problems.len(), 1, "{applied:?}");
    assert!(
        applied.problems[0]
            .error
            .to_string()
            .contains("did not make"),
        "{}",
        applied.problems[0].error
    );
    assert_eq!(fake.pull(number).state, PullState::Open);
    assert_eq!(
        git_bare(&bare, &["rev-parse", &branch]).trim(),
        human,
        "the human's commit was overwritten"
    );
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_push_racing_the_merge_is_refused_by_the_forge() {
    let (_registry, _root, _bare, fake, config) = opened(
        Flavor::GitHub,
        "github",
        "{ requireApproval: true, requireChecks: false }",
    )
    .await;
    let number = fake.pulls()[0].number;
    fake.add_review(number, "alice", Verdict::Approve);
    // A human pushes after tagwatch read the pull request and before the forge merges.
    fake.race_next_merge("human@example.com");
    let applied = cycle(&config).await;
    assert!(applied.merged.is_empty(), "{applied:?}");
    assert_eq!(applied.problems.len(), 1, "{applied:?}");
    assert_eq!(fake.pull(number).state, PullState::Open);
    fake.assert_clean();
}
