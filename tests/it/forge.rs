//! The forge clients against the fake forge (which checks every request and response against the forges'
//! official API descriptions) and a real bare git repository; PR title and body snapshots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tagwatch::forge::render::{self, Change};
use tagwatch::forge::{
    AnyForge, ErrorClass, Forge, ForgeKind, ForgeSettings, NewPullRequest, PullRequest,
    PullRequestState,
};
use tagwatch::secret::Secret;

use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER, PullState, RateLimit};

mod review;
mod review_text;

const TOKEN: &str = "tw-test-token-0123456789abcdef";
const HEAD: &str = "tagwatch/prod";
const BASE: &str = "main";

/// A bare repository with `main` holding `app.yaml` and the head branch bumping its tag.
struct Remote {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("config.git");
        let work = dir.path().join("work");
        run_git(
            dir.path(),
            &["init", "-q", "--bare", "-b", BASE, "config.git"],
        );
        run_git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), "work"]);
        std::fs::write(work.join("app.yaml"), "image: ghcr.io/acme/api:1.2.3\n").unwrap();
        run_git(&work, &["checkout", "-q", "-b", BASE]);
        run_git(&work, &["add", "app.yaml"]);
        run_git(&work, &["commit", "-q", "-m", "initial"]);
        run_git(&work, &["push", "-q", "origin", BASE]);
        let remote = Remote {
            _dir: dir,
            bare,
            work,
        };
        remote.push_bump("1.3.0");
        remote
    }

    /// Rebuilds the head branch from the base with the tag set to `to`, and force-pushes it.
    fn push_bump(&self, to: &str) {
        run_git(&self.work, &["fetch", "-q", "origin"]);
        run_git(
            &self.work,
            &["checkout", "-q", "-B", HEAD, &format!("origin/{BASE}")],
        );
        std::fs::write(
            self.work.join("app.yaml"),
            format!("image: ghcr.io/acme/api:{to}\n"),
        )
        .unwrap();
        run_git(
            &self.work,
            &["commit", "-q", "-am", &format!("bump to {to}")],
        );
        run_git(&self.work, &["push", "-q", "-f", "origin", HEAD]);
    }

    fn base_file(&self) -> String {
        run_git(&self.bare, &["show", &format!("{BASE}:app.yaml")])
    }

    fn base_sha(&self) -> String {
        run_git(&self.bare, &["rev-parse", BASE])
    }
}

fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn kind(flavor: Flavor) -> ForgeKind {
    match flavor {
        Flavor::GitHub => ForgeKind::GitHub,
        Flavor::GitLab => ForgeKind::GitLab,
        Flavor::Gitea => ForgeKind::Gitea,
        Flavor::Forgejo => ForgeKind::Forgejo,
    }
}

fn settings(fake: &FakeForge, token: &str) -> ForgeSettings {
    let mut settings = ForgeSettings::new(
        kind(fake.flavor),
        fake.api_url(),
        format!("{OWNER}/{NAME}"),
        Secret::new(token),
    );
    settings.labels = vec!["dependencies".into()];
    settings
}

fn client(fake: &FakeForge) -> AnyForge {
    AnyForge::connect(&settings(fake, TOKEN)).unwrap()
}

fn changes(to: &str) -> Vec<Change> {
    vec![Change {
        file: "app.yaml".into(),
        line: 1,
        image: "ghcr.io/acme/api".into(),
        from: "1.2.3".into(),
        to: to.into(),
        policy: "api".into(),
        registry_link: Some(format!("https://ghcr.io/acme/api:{to}")),
    }]
}

fn new_pull(flavor: Flavor, to: &str) -> NewPullRequest {
    let reviewers = match flavor {
        // GitLab's merge-request API takes user ids.
        Flavor::GitLab => vec!["17".to_string()],
        _ => vec!["alice".to_string(), "acme/platform".to_string()],
    };
    NewPullRequest {
        head: HEAD.into(),
        base: BASE.into(),
        title: render::title("prod", &changes(to)),
        body: render::body("prod", &changes(to)),
        labels: vec!["images".into()],
        reviewers,
    }
}

/// Opens tagwatch's pull request for group `prod` (bump to 1.3.0).
async fn open_ours(forge: &AnyForge, flavor: Flavor) -> PullRequest {
    forge
        .open_pull_request(&new_pull(flavor, "1.3.0"))
        .await
        .unwrap()
}

/// Open with labels and reviewers, find again without local state, no duplicate on a second open,
/// update in place after a force-push, close with a comment.
async fn pull_request_lifecycle(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);

    let opened = open_ours(&forge, flavor).await;
    assert_eq!(opened.state, PullRequestState::Open);
    assert_eq!(
        (opened.head_branch.as_str(), opened.base_branch.as_str()),
        (HEAD, BASE)
    );
    assert_eq!(opened.group().as_deref(), Some("prod"));
    assert_eq!(
        opened.title,
        "chore(images): bump ghcr.io/acme/api 1.2.3 → 1.3.0"
    );
    let stored = fake.pull(opened.number);
    assert_eq!(
        stored.labels,
        ["dependencies", "images"],
        "settings labels, then the PR's"
    );
    match flavor {
        Flavor::GitLab => assert_eq!(stored.reviewers, ["17"]),
        _ => {
            assert_eq!(stored.reviewers, ["alice"]);
            assert_eq!(stored.team_reviewers, ["platform"]);
        }
    }

    // A restart: a new client with no memory finds the same pull request by its head branch.
    let fresh = client(&fake);
    let found = fresh
        .find_pull_request(HEAD, BASE)
        .await
        .unwrap()
        .expect("found by head");
    assert_eq!(found.number, opened.number);
    assert_eq!(found.group().as_deref(), Some("prod"));
    assert!(
        fresh
            .find_pull_request("tagwatch/other", BASE)
            .await
            .unwrap()
            .is_none()
    );

    // Opening again (a lost answer, a second tagwatch) returns the existing one; never a second PR.
    let again = open_ours(&fresh, flavor).await;
    assert_eq!(again.number, opened.number);
    assert_eq!(fake.pulls().len(), 1);

    // A newer tag: the branch is rebuilt and force-pushed, the PR refreshed in place.
    remote.push_bump("1.4.0");
    let updated = fresh
        .update_pull_request(
            opened.number,
            &render::title("prod", &changes("1.4.0")),
            &render::body("prod", &changes("1.4.0")),
        )
        .await
        .unwrap();
    assert_eq!(
        updated.title,
        "chore(images): bump ghcr.io/acme/api 1.2.3 → 1.4.0"
    );
    assert!(updated.body.contains("`1.4.0`"));
    assert_eq!(fake.pull(opened.number).title, updated.title);
    let head_now = run_git(&remote.bare, &["rev-parse", HEAD]);
    assert_eq!(updated.head_sha.as_deref(), Some(head_now.trim()));

    let closed = fresh
        .close_pull_request(opened.number, "Superseded: no longer needed.")
        .await
        .unwrap();
    assert_eq!(closed.state, PullRequestState::Closed);
    let stored = fake.pull(opened.number);
    assert_eq!(stored.state, PullState::Closed);
    assert_eq!(stored.comments, ["Superseded: no longer needed."]);
    assert!(fresh.find_pull_request(HEAD, BASE).await.unwrap().is_none());
    let fetched = fresh.get_pull_request(opened.number).await.unwrap();
    assert_eq!(fetched.state, PullRequestState::Closed);
    fake.assert_clean();
}

/// A merge on the forge lands in the real repository and is reported as merged, with its commit.
async fn merged_pull_request_is_detected(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let forge = client(&fake);
    let opened = open_ours(&forge, flavor).await;
    assert_eq!(remote.base_file(), "image: ghcr.io/acme/api:1.2.3\n");

    let merge_commit = fake.merge(opened.number);
    assert_eq!(remote.base_file(), "image: ghcr.io/acme/api:1.3.0\n");
    assert_eq!(remote.base_sha().trim(), merge_commit);

    let fetched = forge.get_pull_request(opened.number).await.unwrap();
    assert_eq!(fetched.state, PullRequestState::Merged);
    assert_eq!(
        fetched.merge_commit_sha.as_deref(),
        Some(merge_commit.as_str())
    );
    // Merged is not open: a restart finds nothing to update.
    assert!(forge.find_pull_request(HEAD, BASE).await.unwrap().is_none());
    // Closing what is already merged changes nothing and posts no comment.
    let after = forge
        .close_pull_request(opened.number, "no longer needed")
        .await
        .unwrap();
    assert_eq!(after.state, PullRequestState::Merged);
    assert!(fake.pull(opened.number).comments.is_empty());
    fake.assert_clean();
}

/// The first answers are rate limited; the client waits as told (the fake flags an early retry) and
/// then succeeds.
async fn rate_limit_is_honoured(flavor: Flavor, limit: RateLimit, refusals: usize) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let opened = open_ours(&client(&fake), flavor).await;
    fake.rate_limit(limit, refusals);
    let found = client(&fake).find_pull_request(HEAD, BASE).await.unwrap();
    assert_eq!(found.map(|p| p.number), Some(opened.number));
    let statuses: Vec<u16> = fake.log().iter().map(|l| l.status).collect();
    let limited = statuses.iter().filter(|s| matches!(s, 403 | 429)).count();
    assert_eq!(limited, refusals, "{statuses:?}");
    assert!(matches!(statuses.last(), Some(200)), "{statuses:?}");
    fake.assert_clean();
}

/// A reset an hour away is not slept through: the call fails as rate-limited and carries the wait,
/// for the scheduler to postpone the work.
async fn distant_rate_limit_gives_up_with_the_wait(flavor: Flavor, status: u16) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    fake.rate_limit(
        RateLimit::Reset {
            status,
            seconds: 3600,
        },
        10,
    );
    let forge = client(&fake);
    let error = forge.find_pull_request(HEAD, BASE).await.unwrap_err();
    assert!(error.class().is_rate_limited(), "{error}");
    assert!(
        error.retry_after().unwrap() > Duration::from_secs(3000),
        "{error:?}"
    );
    assert_eq!(fake.log().len(), 1, "no retry against a reset an hour away");
    // The client remembers the exhausted quota: the next call does not spend a request on it.
    let again = forge.get_pull_request(1).await.unwrap_err();
    assert!(again.class().is_rate_limited(), "{again}");
    assert!(again.retry_after().unwrap() > Duration::from_secs(3000));
    assert_eq!(
        fake.log().len(),
        1,
        "no request is wasted on a certain refusal"
    );
    fake.assert_clean();
}

/// A wrong token: a permanent error naming the status, and the token in no error text and no log line.
async fn bad_token_is_a_clear_error_without_the_token(flavor: Flavor) {
    let remote = Remote::new();
    let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
    let wrong = "tw-wrong-token-fedcba9876543210";
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let forge = AnyForge::connect(&settings(&fake, wrong)).unwrap();
    let error = forge
        .open_pull_request(&new_pull(flavor, "1.3.0"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert!(error.hint().unwrap().contains("token"));
    let shown = format!("{error} / {error:?}");
    assert!(shown.contains("401"), "{shown}");
    assert!(!shown.contains(wrong) && !shown.contains(TOKEN), "{shown}");
    let logged = logs.text();
    assert!(!logged.is_empty(), "the call was logged");
    assert!(!logged.contains(wrong), "token in logs:\n{logged}");
    assert!(fake.pulls().is_empty());
    // The token did reach the forge, in the header its description names.
    let presented = fake.log()[0].authorization.clone().unwrap();
    assert!(presented.ends_with(wrong));
    fake.assert_clean();
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

macro_rules! forge_tests {
    ($module:ident, $flavor:expr, $reset_status:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn pull_request_lifecycle() {
                super::pull_request_lifecycle($flavor).await;
            }

            #[tokio::test]
            async fn merged_pull_request_is_detected() {
                super::merged_pull_request_is_detected($flavor).await;
            }

            #[tokio::test]
            async fn retry_after_is_honoured() {
                let limit = RateLimit::RetryAfter {
                    status: 429,
                    seconds: 1,
                };
                rate_limit_is_honoured($flavor, limit, 2).await;
            }

            #[tokio::test]
            async fn rate_limit_reset_is_honoured() {
                let limit = RateLimit::Reset {
                    status: $reset_status,
                    seconds: 0,
                };
                rate_limit_is_honoured($flavor, limit, 1).await;
            }

            #[tokio::test]
            async fn distant_rate_limit_gives_up_with_the_wait() {
                super::distant_rate_limit_gives_up_with_the_wait($flavor, $reset_status).await;
            }

            #[tokio::test]
            async fn bad_token_is_a_clear_error_without_the_token() {
                super::bad_token_is_a_clear_error_without_the_token($flavor).await;
            }
        }
    };
}

// GitHub's primary limit answers 403 with `x-ratelimit-remaining: 0`; GitLab's `RateLimit-Reset` comes
// with 429. Gitea and Forgejo have no rate-limit headers of their own; a proxy in front of them might,
// and the client treats them the same.
forge_tests!(github, Flavor::GitHub, 403);
forge_tests!(gitlab, Flavor::GitLab, 429);
forge_tests!(gitea, Flavor::Gitea, 429);
forge_tests!(forgejo, Flavor::Forgejo, 429);

#[tokio::test]
async fn github_secondary_limit_403_with_retry_after_is_honoured() {
    let limit = RateLimit::RetryAfter {
        status: 403,
        seconds: 1,
    };
    rate_limit_is_honoured(Flavor::GitHub, limit, 1).await;
}

#[tokio::test]
async fn a_human_pull_request_from_another_branch_is_not_ours() {
    let remote = Remote::new();
    run_git(
        &remote.work,
        &["checkout", "-q", "-b", "feature", "origin/main"],
    );
    std::fs::write(remote.work.join("other.txt"), "x\n").unwrap();
    run_git(&remote.work, &["add", "other.txt"]);
    run_git(&remote.work, &["commit", "-q", "-m", "feature"]);
    run_git(&remote.work, &["push", "-q", "origin", "feature"]);
    for flavor in [
        Flavor::GitHub,
        Flavor::GitLab,
        Flavor::Gitea,
        Flavor::Forgejo,
    ] {
        let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
        let human = fake.add_foreign_pull("feature", BASE, "a human's change");
        let forge = client(&fake);
        assert!(
            forge.find_pull_request(HEAD, BASE).await.unwrap().is_none(),
            "{flavor:?}"
        );
        let ours = open_ours(&forge, flavor).await;
        assert_ne!(ours.number, human);
        let found = forge.find_pull_request(HEAD, BASE).await.unwrap().unwrap();
        assert_eq!(found.number, ours.number, "{flavor:?}");
        // Listing every open pull request tells tagwatch's own (marker) from the human's.
        let open = forge.list_open_pull_requests(BASE).await.unwrap();
        let mut groups: Vec<(u64, Option<String>)> =
            open.iter().map(|p| (p.number, p.group())).collect();
        groups.sort();
        assert_eq!(
            groups,
            [(human, None), (ours.number, Some("prod".to_string()))],
            "{flavor:?}"
        );
        fake.assert_clean();
    }
}

#[tokio::test]
async fn find_follows_pagination_past_other_pull_requests() {
    // Gitea's list has no head filter: tagwatch's pull request can sit on a later page.
    let remote = Remote::new();
    run_git(
        &remote.work,
        &["checkout", "-q", "-b", "feature", "origin/main"],
    );
    run_git(&remote.work, &["push", "-q", "origin", "feature"]);
    let fake = FakeForge::start(Flavor::Gitea, &remote.bare, TOKEN).await;
    let ours = open_ours(&client(&fake), Flavor::Gitea).await;
    for i in 0..60 {
        fake.add_foreign_pull("feature", BASE, &format!("human {i}"));
    }
    let found = client(&fake)
        .find_pull_request(HEAD, BASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.number, ours.number);
    let lists = fake
        .log()
        .iter()
        .filter(|l| l.operation == "repoListPullRequests")
        .count();
    assert_eq!(lists, 2, "the second page holds the oldest pull request");
    fake.assert_clean();
}

/// Server errors on a read are retried with backoff; the call then succeeds.
#[tokio::test]
async fn server_errors_on_reads_are_retried() {
    let remote = Remote::new();
    // Statuses the descriptions list for these reads: GitHub `pulls/get` 503, Gitea `pulls` list 500.
    for (flavor, status) in [(Flavor::GitHub, 503), (Flavor::Gitea, 500)] {
        let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
        let forge = client(&fake);
        let opened = open_ours(&forge, flavor).await;
        fake.fail_next(status, 2);
        let found = match flavor {
            Flavor::GitHub => forge.get_pull_request(opened.number).await.unwrap(),
            _ => forge.find_pull_request(HEAD, BASE).await.unwrap().unwrap(),
        };
        assert_eq!(found.number, opened.number);
        let failed = fake.log().iter().filter(|l| l.status == status).count();
        assert_eq!(failed, 2, "{flavor:?}");
        fake.assert_clean();
    }
}

/// A 403 without rate-limit signs is a missing permission: one request, a permanent error, a hint.
/// (That a POST is not repeated after a 5xx is a unit test in `forge::http`: no description lists a
/// 5xx for creating a pull request, so the fake cannot answer one.)
#[tokio::test]
async fn a_permission_error_fails_at_once_with_a_hint() {
    let remote = Remote::new();
    let fake = FakeForge::start(Flavor::GitHub, &remote.bare, TOKEN).await;
    fake.fail_next(403, 1);
    let error = client(&fake)
        .open_pull_request(&new_pull(Flavor::GitHub, "1.3.0"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
    assert!(error.hint().is_some());
    assert_eq!(fake.log().len(), 1);
    fake.assert_clean();
}

/// The fake's checks are not vacuous: requests that break each description are caught.
#[tokio::test]
async fn fake_forge_flags_requests_that_break_the_description() {
    let remote = Remote::new();
    let http = reqwest::Client::new();
    let cases: [(
        Flavor,
        reqwest::Method,
        &str,
        Option<serde_json::Value>,
        &str,
    ); 5] = [
        (
            Flavor::GitHub,
            reqwest::Method::POST,
            "/repos/acme/config/pulls",
            Some(serde_json::json!({ "head": 5, "title": "t" })),
            "request body",
        ),
        (
            Flavor::GitHub,
            reqwest::Method::PATCH,
            "/repos/acme/config/pulls/1",
            Some(serde_json::json!({ "title": "t", "labels": ["x"] })),
            "field labels is not described",
        ),
        (
            Flavor::Gitea,
            reqwest::Method::GET,
            "/api/v1/repos/acme/config/pulls?head=tagwatch%2Fprod",
            None,
            "query parameter head is not described",
        ),
        (
            Flavor::GitLab,
            reqwest::Method::PUT,
            "/api/v4/projects/42/merge_requests/1",
            Some(serde_json::json!({ "state_event": "merge" })),
            "request body",
        ),
        (
            Flavor::Forgejo,
            reqwest::Method::GET,
            "/api/v1/repos/acme/config/pulls/x/y/z",
            None,
            "not an operation of the description",
        ),
    ];
    for (flavor, method, path, body, expected) in cases {
        let fake = FakeForge::start(flavor, &remote.bare, TOKEN).await;
        let mut request = http
            .request(method.clone(), format!("{}{path}", fake.api_url()))
            .header("user-agent", "test");
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap();
        let violations = fake.take_violations();
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "{flavor:?} {method} {path}: expected a violation containing {expected:?}, got {violations:?}"
        );
    }
}

// ---- PR text snapshots ----

fn change(file: &str, line: u32, image: &str, from: &str, to: &str, policy: &str) -> Change {
    Change {
        file: file.into(),
        line,
        image: image.into(),
        from: from.into(),
        to: to.into(),
        policy: policy.into(),
        registry_link: Some(format!("https://{image}/tags/{to}")),
    }
}

fn snapshot_text(group: &str, changes: &[Change]) -> String {
    format!(
        "TITLE: {}\n\n{}",
        render::title(group, changes),
        render::body(group, changes)
    )
}

#[test]
fn pr_text_single_change() {
    let changes = [change(
        "clusters/prod/api.yaml",
        12,
        "ghcr.io/acme/api",
        "1.2.3",
        "1.3.0",
        "api",
    )];
    insta::assert_snapshot!(snapshot_text("prod", &changes));
}

#[test]
fn pr_text_one_image_in_many_places() {
    let changes = [
        change(
            "clusters/prod/api.yaml",
            12,
            "ghcr.io/acme/api",
            "1.2.3",
            "1.3.0",
            "api",
        ),
        change(
            "clusters/prod/worker.yaml",
            30,
            "ghcr.io/acme/api",
            "1.2.3",
            "1.3.0",
            "api",
        ),
        change(
            "clusters/prod/cron.yaml",
            8,
            "ghcr.io/acme/api",
            "1.1.0",
            "1.3.0",
            "api",
        ),
    ];
    insta::assert_snapshot!(snapshot_text("image:ghcr.io/acme/api", &changes));
}

#[test]
fn pr_text_several_images() {
    let digest = format!("sha256:{}", "4f".repeat(32));
    let changes = [
        change(
            "apps/web/values.yaml",
            4,
            "ghcr.io/acme/web",
            "2.0.0",
            "2.1.0",
            "web",
        ),
        change(
            "apps/api/deploy.yaml",
            21,
            "ghcr.io/acme/api",
            "1.2.3",
            "1.3.0",
            "api",
        ),
        change(
            "apps/base/kustomization.yaml",
            9,
            "docker.io/library/nginx",
            "1.25.3-alpine",
            &format!("1.27.1-alpine@{digest}"),
            "nginx-alpine",
        ),
    ];
    insta::assert_snapshot!(snapshot_text("prod", &changes));
}

#[test]
fn pr_text_special_characters() {
    let mut tricky = change(
        "weird dir/a|b `x`.yaml",
        3,
        "registry.example:5000/team/app<script>",
        "v1|2",
        "v1_3*",
        "policy | with `ticks`",
    );
    tricky.registry_link = Some("https://registry.example:5000/app (tags)|x".into());
    let no_link = Change {
        registry_link: Some("javascript:alert(1)".into()),
        ..change("b.yaml", 1, "ghcr.io/a/b", "1", "2", "p")
    };
    insta::assert_snapshot!(snapshot_text("group -->|x", &[tricky, no_link]));
}

#[test]
fn pr_close_comments() {
    use render::CloseReason;
    let text = [
        CloseReason::AlreadyOnBase,
        CloseReason::NoLongerNeeded,
        CloseReason::Superseded { by: "#12".into() },
    ]
    .iter()
    .map(|reason| format!("{reason:?}:\n{}", render::close_comment(reason)))
    .collect::<Vec<_>>()
    .join("\n\n");
    insta::assert_snapshot!(text);
}
