//! A forge in trouble (the validating fake forge): server errors, rate limits (403 with a long and a
//! short wait), a 422 on create; and a human pushing to the base during every phase of opening a pull
//! request. Each failure is reported with its class; the next run (or the daemon's retry, on its
//! schedule) converges to exactly one pull request; `main` is never written or forced.

use std::path::{Path, PathBuf};

use super::*;
use crate::reconcile::{deployment, policy, registry_with};
use crate::support::daemon::{Daemon, daemon_block};
use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER, PullState, RateLimit};
use crate::support::git_http::GitHttpServer;
use crate::support::ports::free_port;

const FORGE_TOKEN: &str = "forge-token-f0r63";
const HEAD_BRANCH: &str = "tagwatch/local";

fn entry(url: &str, kind: &str, api: &str) -> String {
    format!(
        "  - name: local\n    url: {url}\n    paths: [apps]\n    auth: {{ username: {GIT_USER}, passwordEnv: GIT_PASSWORD }}\n    writeBack:\n      mode: pull-request\n      branch: tagwatch/{{group}}\n      author: {{ name: tagwatch-bot, email: {BOT_EMAIL} }}\n      forge: {{ kind: {kind}, api: \"{api}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\n"
    )
}

fn env() -> Vec<(&'static str, &'static str)> {
    let mut env = git_env();
    env.push(("FORGE_TOKEN", FORGE_TOKEN));
    env
}

/// A remote on `server` deploying app 1.0.0 (protected `main`), its fake forge and a config.
async fn scenario(
    server: &GitHttpServer,
    root: &Path,
    host: &str,
    name: &str,
    flavor: Flavor,
    kind: &str,
) -> (PathBuf, FakeForge, PathBuf) {
    let bare = server.create_repo(name);
    crate::reconcile::add_files(&bare, &[("apps/a.yaml", deployment(host, "1.0.0", ""))]);
    protect_main(&bare, "");
    let fake = FakeForge::start(flavor, &bare, FORGE_TOKEN).await;
    let config =
        write_config_for_host(root, host, &entry(&server.url(name), kind, &fake.api_url()));
    (bare, fake, config)
}

fn write_config_for_host(root: &Path, host: &str, repositories: &str) -> PathBuf {
    crate::reconcile::write_config_for(root, host, repositories, &policy(host, ""))
}

/// Exactly one open pull request, from the head branch, whose branch holds the bump on top of `main`.
fn one_pull_request(bare: &Path, fake: &FakeForge, host: &str) {
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].state, PullState::Open);
    assert_eq!(pulls[0].head, HEAD_BRANCH);
    assert_eq!(
        git_bare(bare, &["show", &format!("{HEAD_BRANCH}:apps/a.yaml")]),
        deployment(host, "1.2.0", "")
    );
    assert_eq!(bot_commits(bare), 0, "pull-request mode wrote to main");
    assert_eq!(force_pushes(bare), 0);
}

/// Server errors on every attempt of a lookup (transient), a 403 rate limit with a reset an hour away
/// (rate-limited, no hour-long wait), a 403 rate limit with a short `Retry-After` (waited out in the
/// run), and a 422 on create (permanent): each reported with its class, and the next run converges to
/// one pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_failures_are_reported_by_class_and_the_next_run_converges() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let server = git_server();
    // (name, flavor, kind, how it fails, the class reported, or None: the run rides it out).
    type Break = fn(&FakeForge);
    let cases: [(&str, Flavor, &str, Break, Option<&str>); 4] = [
        (
            "server-errors",
            Flavor::Gitea,
            "gitea",
            |fake| fake.fail_next(500, 4),
            Some("transient"),
        ),
        (
            "rate-limited-long",
            Flavor::GitHub,
            "github",
            |fake| {
                fake.rate_limit(
                    RateLimit::Reset {
                        status: 403,
                        seconds: 3600,
                    },
                    1,
                )
            },
            Some("rate-limited"),
        ),
        (
            "rate-limited-short",
            Flavor::GitHub,
            "github",
            |fake| {
                fake.rate_limit(
                    RateLimit::RetryAfter {
                        status: 403,
                        seconds: 1,
                    },
                    1,
                )
            },
            None,
        ),
        (
            "create-422",
            Flavor::GitHub,
            "github",
            |fake| fake.fail_after(1, 422, 1),
            Some("permanent"),
        ),
    ];
    for (name, flavor, kind, breaks, class) in cases {
        let root = tempfile::tempdir().unwrap();
        let (bare, fake, config) = scenario(&server, root.path(), &host, name, flavor, kind).await;
        breaks(&fake);
        let output = tagwatch(&config, &["--log-format", "json", "run", "--once"], &env());
        let problems = reported(&output);
        match class {
            Some(class) => {
                assert_eq!(
                    output.status.code(),
                    Some(1),
                    "{name}: {}",
                    text(&output.stderr)
                );
                // A rate limit may cost the later calls of the run too (they fail fast, unsent).
                assert!(!problems.is_empty(), "{name}");
                for problem in &problems {
                    assert_eq!(problem.1, class, "{name}: {problems:?}");
                }
                assert!(fake.pulls().is_empty(), "{name}");
                // The next run (for the rate limit: an hour later, which the test does not wait).
                run_once_ok(&config, &env(), name);
                if name == "rate-limited-long" {
                    let early = fake.take_violations();
                    assert!(
                        early
                            .iter()
                            .all(|v| v.contains("before the announced time")),
                        "{early:?}"
                    );
                }
            }
            None => {
                assert_eq!(output.status.code(), Some(0), "{name}: {problems:?}");
            }
        }
        one_pull_request(&bare, &fake, &host);
        run_once_ok(&config, &env(), name);
        one_pull_request(&bare, &fake, &host);
        fake.assert_clean();
    }
}

/// The daemon retries a transient forge failure on its retry schedule (seconds), not at the next
/// regular re-read (an hour here): the pull request is opened with no new event; the status API named
/// the failure's class meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_retries_a_transient_forge_failure_on_schedule() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let server = git_server();
    let root = tempfile::tempdir().unwrap();
    let (bare, fake, config) = scenario(
        &server,
        root.path(),
        &host,
        "daemon",
        Flavor::Gitea,
        "gitea",
    )
    .await;
    let address = format!("127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("daemon: { stateDir: state }\n", &daemon_block(&address, ""));
    std::fs::write(&config, text).unwrap();
    fake.fail_next(500, 4);
    let daemon = Daemon::start(&config, &address, &env()).await;
    daemon
        .until("the failure in the status report", async || {
            let Some((200, body)) = daemon.get("/api/v1/status").await else {
                return false;
            };
            let report: serde_json::Value = serde_json::from_str(&body).unwrap();
            report["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["class"] == "transient"))
        })
        .await;
    daemon
        .until("the retried pull request", async || {
            !fake.pulls().is_empty()
        })
        .await;
    one_pull_request(&bare, &fake, &host);
    drop(daemon);
    fake.assert_clean();
}

/// A human pushes to `main` during every phase of opening a pull request: the human's commit is kept,
/// `main` is never written or forced, one pull request is opened, and the next run rebuilds the head
/// branch on the human's commit (still one pull request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_pushing_during_every_pull_request_phase_loses_nothing() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let server = git_server();
    for (index, point) in OPEN_POINTS.iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        let name = format!("pr-phase-{index}");
        let (bare, fake, config) =
            scenario(&server, root.path(), &host, &name, Flavor::GitHub, "github").await;
        let human = std::sync::Mutex::new(String::new());
        let output = paused_at(&config, &["run", "--once"], &env(), point, || {
            *human.lock().unwrap() = human_readme(&bare, &format!("# pushed during {point}\n"));
        });
        succeeded(&output, point);
        let human = human.into_inner().unwrap();
        assert!(kept(&bare, &human), "{point}: lost human commit");
        one_pull_request(&bare, &fake, &host);
        run_once_ok(&config, &env(), point);
        one_pull_request(&bare, &fake, &host);
        assert_eq!(
            git_bare(&bare, &["rev-parse", &format!("{HEAD_BRANCH}~1")]).trim(),
            human,
            "{point}: the head branch is not rebuilt on the new base"
        );
        assert!(kept(&bare, &human));
        fake.assert_clean();
    }
}
