//! `run --once` in pull-request mode against the fake forge (which validates every request and
//! response against the forge's official API description): open, update in place on the next cycle
//! (branch rebuilt from the base and force-pushed), no second pull request after a restart with no
//! local state, and closed with a comment when the base already has the change.

use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER, PullState};

use super::*;

const TOKEN: &str = "forge-token-9f8e7d";
const HEAD: &str = "tagwatch/local";

fn pull_request_repository(url: &str, kind: &str, api: &str, reviewer: &str) -> String {
    format!(
        "  - name: local\n    url: {url}\n    paths: [apps]\n    writeBack:\n      mode: pull-request\n      branch: tagwatch/{{group}}\n      author: {{ name: tagwatch-bot, email: bot@example.com }}\n      forge: {{ kind: {kind}, api: \"{api}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN, labels: [dependencies], reviewers: [\"{reviewer}\"] }}\n"
    )
}

async fn lifecycle(flavor: Flavor, kind: &str, reviewer: &str) {
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
        &pull_request_repository(&file_url(&bare), kind, &fake.api_url(), reviewer),
        &policy(&host, ""),
    );
    let env = [("FORGE_TOKEN", TOKEN)];
    let base = head(&bare);
    let image = format!("{host}/{IMAGE}");
    let branch_file = || git_bare(&bare, &["show", &format!("{HEAD}:apps/a.yaml")]);

    // Cycle 1: the pull request is opened from a head branch with the bump.
    let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.pull_requests.len(), 1, "{outcomes:?}");
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        pulls[0].title,
        format!("chore(images): bump {image} 1.0.0 → 1.2.0")
    );
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].base.as_str()),
        (HEAD, "main")
    );
    assert!(
        pulls[0]
            .body
            .contains("<!-- tagwatch:group=local%0Alocal -->"),
        "{}",
        pulls[0].body
    );
    if flavor == Flavor::GitHub {
        // The age of an image changes with the day the test runs.
        let age = regex::Regex::new(r"\(\d+ (days?|hours?|minutes?) old\)").unwrap();
        insta::assert_snapshot!(
            "pull_request_body",
            age.replace_all(&pulls[0].body.replace(&host, "REGISTRY"), "(AGE old)")
        );
    }
    assert_eq!(branch_file(), deployment(&host, "1.2.0", ""));
    assert_eq!(head(&bare), base, "pull-request mode pushed to the base");

    // Cycle 2, after a restart with no local state and a newer tag: the same pull request is updated
    // and its branch rebuilt from the base.
    push_tags(&registry, &["1.3.0"]).await;
    std::fs::remove_dir_all(root.path().join("state")).unwrap();
    reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1, "a second pull request for the same group");
    assert_eq!(
        pulls[0].title,
        format!("chore(images): bump {image} 1.0.0 → 1.3.0")
    );
    assert_eq!(branch_file(), deployment(&host, "1.3.0", ""));
    assert_eq!(
        git_bare(&bare, &["rev-parse", &format!("{HEAD}~1")]).trim(),
        base
    );
    let pushed = git_bare(&bare, &["rev-parse", HEAD]);

    // Cycle 3, nothing new: no force-push, no update.
    let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.pushes, 0);
    assert_eq!(git_bare(&bare, &["rev-parse", HEAD]), pushed);

    // Cycle 4: a human made the same change on the base; the pull request is closed, saying why.
    human_commit(
        &bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.3.0", ""),
        "bump by hand",
    );
    let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.closed.len(), 1, "{outcomes:?}");
    let pull = fake.pull(pulls[0].number);
    assert_eq!(pull.state, PullState::Closed);
    assert_eq!(pull.comments.len(), 1);
    assert!(
        pull.comments[0].contains("already on the base branch"),
        "{}",
        pull.comments[0]
    );
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_pull_request_is_opened_updated_and_closed() {
    lifecycle(Flavor::GitHub, "github", "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_merge_request_is_opened_updated_and_closed() {
    lifecycle(Flavor::GitLab, "gitlab", "7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgejo_pull_request_is_opened_updated_and_closed() {
    lifecycle(Flavor::Forgejo, "forgejo", "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_pull_request_is_opened_updated_and_closed() {
    lifecycle(Flavor::Gitea, "gitea", "alice").await;
}

/// A human freezes the field on the base: the group has nothing left to bump and its pull request is
/// closed as no longer needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_no_longer_wanted_is_closed_with_the_reason() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let fake = FakeForge::start(Flavor::GitHub, &bare, TOKEN).await;
    let config = write_config(
        root.path(),
        &registry,
        &pull_request_repository(&file_url(&bare), "github", &fake.api_url(), "alice"),
        &policy(&host, ""),
    );
    let env = [("FORGE_TOKEN", TOKEN)];
    reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let number = fake.pulls()[0].number;
    human_commit(
        &bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.0.0", " # tagwatch: hold"),
        "freeze app",
    );
    let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.closed.len(), 1, "{outcomes:?}");
    let pull = fake.pull(number);
    assert_eq!(pull.state, PullState::Closed);
    assert!(
        pull.comments[0].contains("no policy wants these changes any more"),
        "{}",
        pull.comments[0]
    );
    assert_eq!(fake.pulls().len(), 1);
    fake.assert_clean();
}

/// Outside the policy's window an open pull request is left exactly as it is: not updated to a newer
/// tag, not closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_an_open_pull_request_is_left_alone() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let fake = FakeForge::start(Flavor::Gitea, &bare, TOKEN).await;
    let config = write_config(
        root.path(),
        &registry,
        &pull_request_repository(&file_url(&bare), "gitea", &fake.api_url(), "alice"),
        &policy(&host, ""),
    );
    let env = [("FORGE_TOKEN", TOKEN)];
    reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let opened = fake.pulls()[0].clone();
    let branch = git_bare(&bare, &["rev-parse", HEAD]);

    push_tags(&registry, &["1.3.0"]).await;
    let closed = "  windows: [{ schedule: \"0 0 0 1 1 *\", duration: 1s, timezone: UTC }]\n";
    std::fs::write(root.path().join("policies/app.yaml"), policy(&host, closed)).unwrap();
    let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert!(applied.closed.is_empty(), "{outcomes:?}");
    let pull = fake.pull(opened.number);
    assert_eq!(pull.state, PullState::Open);
    assert_eq!(pull.title, opened.title);
    assert_eq!(git_bare(&bare, &["rev-parse", HEAD]), branch);
    fake.assert_clean();
}

/// A forge error on one group's pull request is reported and the other groups still get theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_error_on_one_group_does_not_stop_the_others() {
    let root = tempfile::tempdir().unwrap();
    let (registry, bare, policies) = two_images(root.path()).await;
    let host = registry.host.clone();
    let fake = FakeForge::start(Flavor::GitHub, &bare, TOKEN).await;
    let repository = pull_request_repository(&file_url(&bare), "github", &fake.api_url(), "alice")
        .replace(
            "      mode: pull-request\n",
            "      mode: pull-request\n      group: image\n",
        );
    let config = write_config(root.path(), &registry, &repository, &policies);
    // The first request (looking up the first group's pull request) is refused.
    fake.fail_next(422, 1);
    let outcomes = reconciler(&config, &[("FORGE_TOKEN", TOKEN)])
        .run_all(chrono::Utc::now())
        .await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.problems.len(), 1, "{applied:?}");
    assert_eq!(
        applied.problems[0].scope,
        tagwatch::reconcile::Scope::Group(format!("{host}/{IMAGE}")),
        "{:?}",
        applied.problems
    );
    assert_eq!(outcomes[0].failures(), 1);
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        pulls[0].title,
        format!("chore(images): bump {host}/acme/web 2.0.0 → 2.1.0")
    );
    fake.assert_clean();
}
