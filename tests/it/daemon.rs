//! `tagwatch daemon` end to end: the binary with a real registry, a real git remote and real signals. A
//! registry push plus its webhook becomes a commit; bad credentials, oversized bodies and unconfigured
//! endpoints change nothing; bursts coalesce; SIGHUP with an invalid config keeps the old one; SIGTERM
//! drains and exits 0; `kill -9` at a fault point, then a restart, converges to one commit.

use std::path::{Path, PathBuf};

use crate::reconcile::{
    IMAGE, add_files, bare_repo, deployment, file_url, policy, push_repository, push_tags,
    registry_with, show,
};
use crate::support::daemon::{Daemon, daemon_block};
use crate::support::fake_kube::FakeKube;
use crate::support::git_http::{GitHttpServer, git_bare};
use crate::support::ports::free_port;
use crate::support::registry::Registry;

const HOOK_TOKEN: &str = "hook-token-5d1e0b";

/// A config for one push-mode repository tracking `acme/app` with the generic and distribution
/// webhooks on; returns (config path, listen address).
fn daemon_config(root: &Path, registry: &Registry, bare: &Path) -> (PathBuf, String) {
    let address = format!("127.0.0.1:{}", free_port());
    let webhooks =
        "    generic: { tokenEnv: HOOK_TOKEN }\n    distribution: { tokenEnv: HOOK_TOKEN }\n";
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::write(root.join("policies/app.yaml"), policy(&registry.host, "")).unwrap();
    let config = root.join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {}\n    insecure: true\nrepositories:\n{}policies: [policies/]\n{}",
            registry.host,
            push_repository("local", &file_url(bare), ""),
            daemon_block(&address, webhooks)
        ),
    )
    .unwrap();
    (config, address)
}

/// A registry with `tags` of `acme/app`, a bare repository whose `apps/a.yaml` deploys 1.0.0, and a
/// daemon config for them (not started).
struct Setup {
    registry: Registry,
    host: String,
    root: tempfile::TempDir,
    bare: PathBuf,
    config: PathBuf,
    address: String,
}

async fn setup(tags: &[&str]) -> Setup {
    let registry = registry_with(tags).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let (config, address) = daemon_config(root.path(), &registry, &bare);
    Setup {
        registry,
        host,
        root,
        bare,
        config,
        address,
    }
}

impl Setup {
    async fn daemon(&self) -> Daemon {
        let daemon = Daemon::start(&self.config, &self.address, &env()).await;
        daemon.ready().await;
        daemon
    }

    /// The generic webhook for `tag` of the tracked image, with the right token: its status.
    async fn hook(&self, daemon: &Daemon, tag: &str) -> u16 {
        daemon
            .post(
                "/webhook/generic",
                &[("authorization", &format!("Bearer {HOOK_TOKEN}"))],
                generic(&format!("{}/{IMAGE}", self.host), tag),
            )
            .await
    }

    /// Pushes `tag` of the tracked image and sends `daemon` its generic webhook: accepted (202).
    async fn push_and_hook(&self, daemon: &Daemon, tag: &str) {
        push_tags(&self.registry, &[tag]).await;
        assert_eq!(self.hook(daemon, tag).await, 202);
    }

    /// Waits (`daemon`'s bounded wait) until the remote deploys `tag`.
    async fn until_deploys(&self, daemon: &Daemon, what: &str, tag: &str) {
        daemon.until(what, async || self.deploys(tag)).await;
    }

    fn file(&self) -> String {
        show(&self.bare, "apps/a.yaml")
    }

    fn deploys(&self, tag: &str) -> bool {
        self.file() == deployment(&self.host, tag, "")
    }
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![("HOOK_TOKEN", HOOK_TOKEN)]
}

fn generic(image: &str, tag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "image": image, "tag": tag })).unwrap()
}

fn count(bare: &Path) -> usize {
    git_bare(bare, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_its_generic_webhook_become_a_commit() {
    let setup = setup(&["1.0.0"]).await;
    let daemon = setup.daemon().await;
    let before = count(&setup.bare);
    setup.push_and_hook(&daemon, "1.2.0").await;
    setup
        .until_deploys(&daemon, "the bump commit on the remote", "1.2.0")
        .await;
    assert_eq!(count(&setup.bare), before + 1);
    // The status API and the metrics say what happened.
    let (status, body) = daemon.get("/api/v1/status").await.unwrap();
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["policies"][0]["name"], "app");
    assert_eq!(report["policies"][0]["tag"], "1.2.0");
    assert!(report["policies"][0]["checkedAt"].is_string());
    let target = &report["targets"][0];
    assert_eq!(target["repository"], "local");
    assert_eq!(target["file"], "apps/a.yaml");
    assert_eq!(target["state"], "current");
    assert_eq!(target["current"], format!("{}/{IMAGE}:1.2.0", setup.host));
    let (_, metrics) = daemon.get("/metrics").await.unwrap();
    for expected in [
        "tagwatch_commits_total{repository=\"local\"} 1",
        "tagwatch_webhook_events_total{endpoint=\"generic\",outcome=\"accepted\"} 1",
        "tagwatch_push_to_commit_seconds_count 1",
        &format!(
            "tagwatch_registry_requests_total{{registry=\"{}\",outcome=\"ok\"}}",
            setup.host
        ),
    ] {
        assert!(metrics.contains(expected), "{expected} in {metrics}");
    }
}

/// An event whose new tag no policy takes changes the listing, re-plans, and settles without a commit:
/// it does not linger to be counted as the latency of a later push of the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_for_a_tag_no_policy_takes_settles_without_a_commit() {
    let setup = setup(&["1.0.0"]).await;
    let daemon = setup.daemon().await;
    let before = count(&setup.bare);
    setup.push_and_hook(&daemon, "2.0.0").await;
    daemon
        .until("the event settled", async || {
            daemon.logged("webhook events settled")
        })
        .await;
    assert!(daemon.logged("the tag list changed; re-planning"));
    assert_eq!(count(&setup.bare), before);
    assert!(setup.deploys("1.0.0"));
    setup.push_and_hook(&daemon, "1.2.0").await;
    setup
        .until_deploys(&daemon, "the bump commit on the remote", "1.2.0")
        .await;
    assert_eq!(count(&setup.bare), before + 1);
    let settled = || {
        daemon
            .log()
            .iter()
            .filter(|line| line.contains("webhook events settled"))
            .count()
    };
    // The push settles the second event (the loop hears of the push just after the remote has it).
    daemon
        .until("the second event settled", async || settled() == 2)
        .await;
    let (_, metrics) = daemon.get("/metrics").await.unwrap();
    assert!(
        metrics.contains("tagwatch_push_to_commit_seconds_count 1"),
        "{metrics}"
    );
    assert_eq!(
        settled(),
        2,
        "one settled line per event: {:#?}",
        daemon.log()
    );
}

/// A registry may announce a push before its tag is listed (`docker-registry` sends the event when the
/// manifest is stored, before it links the tag): an event whose tag the listing does not hold yet is
/// listed again shortly, so the push still becomes a commit without waiting for the hourly poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_arrives_before_its_tag_is_listed_still_becomes_a_commit() {
    let setup = setup(&["1.0.0"]).await;
    let daemon = setup.daemon().await;
    let before = count(&setup.bare);
    // The event first; the tag only after the daemon listed the image without it.
    assert_eq!(setup.hook(&daemon, "1.3.0").await, 202);
    daemon
        .until("the pushed tag reported as not listed yet", async || {
            daemon.logged("the pushed tag is not listed yet")
        })
        .await;
    assert!(!setup.deploys("1.3.0"));
    push_tags(&setup.registry, &["1.3.0"]).await;
    setup
        .until_deploys(&daemon, "the bump commit on the remote", "1.3.0")
        .await;
    assert_eq!(count(&setup.bare), before + 1);
    assert!(
        !daemon.logged("the regular poll takes over"),
        "{:#?}",
        daemon.log()
    );
}

/// The real registry's own notifications (`notifications.endpoints` with a bearer header) reach
/// `/webhook/distribution`: a push becomes a commit with no other help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registrys_push_notification_becomes_a_commit() {
    let address = format!("127.0.0.1:{}", free_port());
    let registry = Registry::notifying(
        &format!("http://{address}/webhook/distribution"),
        HOOK_TOKEN,
    )
    .await;
    push_tags(&registry, &["1.0.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let (config, _) = daemon_config(root.path(), &registry, &bare);
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("listen: "))
        .unwrap()
        .to_string();
    std::fs::write(&config, text.replace(&listen, &address)).unwrap();
    let daemon = Daemon::start(&config, &address, &env()).await;
    daemon.ready().await;
    let before = count(&bare);
    push_tags(&registry, &["1.2.0"]).await;
    daemon
        .until("the bump from the registry's notification", async || {
            show(&bare, "apps/a.yaml") == deployment(&host, "1.2.0", "")
        })
        .await;
    assert_eq!(count(&bare), before + 1);
    let (_, metrics) = daemon.get("/metrics").await.unwrap();
    assert!(
        metrics.contains(
            "tagwatch_webhook_events_total{endpoint=\"distribution\",outcome=\"accepted\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_oversized_bodies_and_unconfigured_endpoints_change_nothing() {
    let setup = setup(&["1.0.0"]).await;
    let daemon = setup.daemon().await;
    push_tags(&setup.registry, &["1.2.0"]).await;
    let before = count(&setup.bare);
    let body = generic(&format!("{}/{IMAGE}", setup.host), "1.2.0");
    let wrong = [("authorization", "Bearer wrong")];
    assert_eq!(
        daemon.post("/webhook/generic", &wrong, body.clone()).await,
        401
    );
    assert_eq!(
        daemon.post("/webhook/generic", &[], body.clone()).await,
        401
    );
    let right = format!("Bearer {HOOK_TOKEN}");
    let big = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(
        daemon
            .post("/webhook/generic", &[("authorization", &right)], big)
            .await,
        413
    );
    assert_eq!(
        daemon
            .post(
                "/webhook/harbor",
                &[("authorization", HOOK_TOKEN)],
                body.clone()
            )
            .await,
        404,
        "an endpoint without a credential configured is off"
    );
    let dockerhub = format!("/webhook/dockerhub/{HOOK_TOKEN}");
    assert_eq!(daemon.post(&dockerhub, &[], body).await, 404);
    // Nothing was re-checked: no commit, even well after.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(count(&setup.bare), before);
    assert!(setup.deploys("1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fifty_pushes_is_coalesced_and_ends_on_the_newest() {
    let setup = setup(&["1.0.0"]).await;
    let daemon = setup.daemon().await;
    let before = count(&setup.bare);
    let tags: Vec<String> = (1..=50).map(|patch| format!("1.0.{patch}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    push_tags(&setup.registry, &tag_refs).await;
    // The registry's notifications for a burst of pushes arrive together.
    let statuses =
        futures_util::future::join_all(tags.iter().map(|tag| setup.hook(&daemon, tag))).await;
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    setup
        .until_deploys(&daemon, "the newest tag on the remote", "1.0.50")
        .await;
    // The burst ends in one line saying so (one image: all its events settle with its push).
    daemon
        .until("the burst's settled line", async || {
            daemon.logged("webhook events settled")
        })
        .await;
    let commits = count(&setup.bare) - before;
    assert!(
        (1..=3).contains(&commits),
        "{commits} commits for 50 events: not coalesced"
    );
    let log = git_bare(
        &setup.bare,
        &[
            "log",
            "--format=%(trailers:key=Tagwatch-Bump,valueonly)",
            "main",
        ],
    );
    let bumps: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(bumps.len(), commits, "{log}");
    let (_, metrics) = daemon.get("/metrics").await.unwrap();
    let accepted = "tagwatch_webhook_events_total{endpoint=\"generic\",outcome=\"accepted\"} 50";
    assert!(metrics.contains(accepted), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_an_invalid_policy_keeps_the_old_config_and_a_valid_one_applies() {
    let setup = setup(&["1.0.0"]).await;
    let daemon = setup.daemon().await;
    let policy_file = setup.root.path().join("policies/app.yaml");
    let tracking = |range: &str| policy(&setup.host, "").replace("^1", range);
    std::fs::write(&policy_file, tracking("not a range")).unwrap();
    daemon.signal("HUP");
    daemon
        .until("the invalid config reported", async || {
            daemon.logged("the new config is invalid; the old one stays in force")
        })
        .await;
    assert!(daemon.logged("app.yaml:"), "{:#?}", daemon.log());
    // The old policy still works.
    setup.push_and_hook(&daemon, "1.2.0").await;
    setup
        .until_deploys(&daemon, "the bump under the old config", "1.2.0")
        .await;
    // A valid new policy (track ^2) applies after SIGHUP.
    std::fs::write(&policy_file, tracking("^2")).unwrap();
    daemon.signal("HUP");
    daemon
        .until("the reload", async || daemon.logged("config reloaded"))
        .await;
    setup.push_and_hook(&daemon, "2.0.0").await;
    setup
        .until_deploys(&daemon, "the bump under the new config", "2.0.0")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_0_and_status_reads_the_state_afterwards() {
    let setup = setup(&["1.0.0", "1.2.0"]).await;
    let mut daemon = setup.daemon().await;
    assert!(setup.deploys("1.2.0"));
    // Asked while it runs.
    let status =
        || crate::reconcile::tagwatch(&setup.config, &["status", "--output", "json"], &env());
    let asked = status();
    assert_eq!(
        asked.status.code(),
        Some(0),
        "{}",
        crate::reconcile::text(&asked.stderr)
    );
    let live: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(live["policies"][0]["tag"], "1.2.0");
    daemon.signal("TERM");
    let exit = daemon.wait();
    assert_eq!(exit.code(), Some(0), "{:#?}", daemon.log());
    // Without a daemon, status reads what the state directory kept.
    let kept = status();
    assert_eq!(
        kept.status.code(),
        Some(0),
        "{}",
        crate::reconcile::text(&kept.stderr)
    );
    let kept: serde_json::Value = serde_json::from_slice(&kept.stdout).unwrap();
    assert_eq!(kept["targets"], live["targets"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_the_push_then_a_restart_converges_to_one_commit() {
    let setup = setup(&["1.0.0", "1.2.0"]).await;
    let before = count(&setup.bare);
    for point in ["before-push", "after-push"] {
        let mut environment = env();
        environment.push((tagwatch::reconcile::FAULT_POINT_VARIABLE, point));
        let daemon = Daemon::start(&setup.config, &setup.address, &environment).await;
        daemon
            .until("the fault point", async || {
                daemon.logged(&format!("fault point {point} reached"))
            })
            .await;
        daemon.signal("KILL");
        drop(daemon);
    }
    let _daemon = setup.daemon().await;
    assert!(setup.deploys("1.2.0"));
    assert_eq!(count(&setup.bare), before + 1, "no duplicate commit");
}

/// `--log-format json`: every stderr line is a JSON object, the final error included; without a
/// terminal there is no colour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_makes_every_line_json() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("missing.git");
    let (config, _) = daemon_config(root.path(), &registry, &bare);
    let invalid = root.path().join("invalid.yaml");
    std::fs::write(&invalid, "repositories: 7\n").unwrap();
    for (config, args) in [
        (&config, &["--log-format", "json", "-v", "plan"][..]),
        (&invalid, &["--log-format", "json", "daemon"][..]),
    ] {
        let output = crate::reconcile::tagwatch(config, args, &env());
        assert_ne!(output.status.code(), Some(0));
        let stderr = crate::reconcile::text(&output.stderr);
        assert!(!stderr.trim().is_empty());
        for line in stderr.lines() {
            let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
            assert!(parsed.is_ok(), "not JSON: {line}");
            assert!(!line.contains('\u{1b}'), "colour in {line}");
        }
    }
}

/// SIGTERM while a push is in flight (held by the server's pre-receive hook): the daemon lets the push
/// finish, starts nothing new, and exits 0; the commit is on the remote exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_push_lets_it_finish_and_exits_0() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let server = GitHttpServer::start("bot", "hook-Pa55");
    let bare = server.create_repo("hooked");
    add_files(&bare, &[("apps/a.yaml", deployment(&host, "1.0.0", ""))]);
    let started = root.path().join("hook-started");
    let block = root.path().join("hook-block");
    std::fs::write(&block, "").unwrap();
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\ntouch '{}'\nwhile [ -e '{}' ]; do sleep 0.05; done\nexit 0\n",
            started.display(),
            block.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    std::fs::write(root.path().join("policies/app.yaml"), policy(&host, "")).unwrap();
    let config = root.path().join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n{}policies: [policies/]\n{}",
            push_repository(
                "hooked",
                &server.url("hooked"),
                "    auth: { username: bot, passwordEnv: GIT_PASSWORD }\n",
            ),
            daemon_block(&address, "    generic: { tokenEnv: HOOK_TOKEN }\n")
        ),
    )
    .unwrap();
    let before = count(&bare);
    let mut environment = env();
    environment.push(("GIT_PASSWORD", "hook-Pa55"));
    let mut daemon = Daemon::start(&config, &address, &environment).await;
    daemon
        .until("the push to reach the hook", async || started.exists())
        .await;
    daemon.signal("TERM");
    daemon
        .until("the daemon to stop taking work", async || {
            daemon.logged("stopping: no new work")
        })
        .await;
    std::fs::remove_file(&block).unwrap();
    let exit = daemon.wait();
    assert_eq!(exit.code(), Some(0), "{:#?}", daemon.log());
    assert_eq!(count(&bare), before + 1);
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
}

/// Pull-request mode: `kill -9` after the head branch was pushed and before the pull request was
/// opened, then a restart: exactly one pull request, listed by `/api/v1/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_the_pull_request_then_a_restart_opens_exactly_one() {
    use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER, PullState};
    const FORGE_TOKEN: &str = "forge-token-d43m0n";
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let fake = FakeForge::start(Flavor::GitHub, &bare, FORGE_TOKEN).await;
    let address = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    std::fs::write(root.path().join("policies/app.yaml"), policy(&host, "")).unwrap();
    let config = root.path().join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n  - name: local\n    url: {}\n    paths: [apps]\n    writeBack:\n      mode: pull-request\n      forge: {{ kind: github, api: \"{}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\npolicies: [policies/]\n{}",
            file_url(&bare),
            fake.api_url(),
            daemon_block(&address, "    generic: { tokenEnv: HOOK_TOKEN }\n")
        ),
    )
    .unwrap();
    let mut environment = env();
    environment.push(("FORGE_TOKEN", FORGE_TOKEN));
    let mut faulty = environment.clone();
    faulty.push((
        tagwatch::reconcile::FAULT_POINT_VARIABLE,
        "before-pull-request",
    ));
    let daemon = Daemon::start(&config, &address, &faulty).await;
    daemon
        .until("the fault point", async || {
            daemon.logged("fault point before-pull-request reached")
        })
        .await;
    daemon.signal("KILL");
    drop(daemon);
    assert!(fake.pulls().is_empty());
    let daemon = Daemon::start(&config, &address, &environment).await;
    daemon.ready().await;
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].state, PullState::Open);
    let (_, body) = daemon.get("/api/v1/status").await.unwrap();
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["pullRequests"][0]["repository"], "local");
    assert_eq!(report["pullRequests"][0]["group"], "local");
    assert_eq!(report["targets"][0]["state"], "pending");
    drop(daemon);
    // One more restart: still one pull request.
    let daemon = Daemon::start(&config, &address, &environment).await;
    daemon.ready().await;
    assert_eq!(fake.pulls().len(), 1);
    fake.assert_clean();
}

/// Promotion in the daemon: an upstream bump tagwatch writes itself starts the clock, and once it has
/// soaked the downstream bump is written with no new registry event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_version_lands_downstream_after_its_soak_without_a_new_event() {
    let registry = registry_with(&["1.0.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "envs",
        &[
            ("staging/a.yaml", deployment(&host, "1.0.0", "")),
            ("prod/a.yaml", deployment(&host, "1.0.0", "")),
        ],
    );
    let address = format!("127.0.0.1:{}", free_port());
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    let policies = format!(
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [staging]\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-prod }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [prod]\n  promotion: {{ from: staging, soak: 3s }}\n"
    );
    std::fs::write(root.path().join("policies/app.yaml"), policies).unwrap();
    let url = file_url(&bare);
    let entry = |name: &str| {
        format!(
            "  - name: {name}\n    url: {url}\n    paths: [{name}]\n    writeBack: {{ mode: push }}\n"
        )
    };
    let config = root.path().join("tagwatch.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n  - host: {host}\n    insecure: true\nrepositories:\n{}{}policies: [policies/]\n{}",
            entry("staging"),
            entry("prod"),
            daemon_block(&address, "    generic: { tokenEnv: HOOK_TOKEN }\n")
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config, &address, &env()).await;
    daemon.ready().await;
    push_tags(&registry, &["1.1.0"]).await;
    let status = daemon
        .post(
            "/webhook/generic",
            &[("authorization", &format!("Bearer {HOOK_TOKEN}"))],
            generic(&format!("{host}/{IMAGE}"), "1.1.0"),
        )
        .await;
    assert_eq!(status, 202);
    daemon
        .until("the promoted bump in prod", async || {
            show(&bare, "prod/a.yaml") == deployment(&host, "1.1.0", "")
        })
        .await;
    assert_eq!(
        show(&bare, "staging/a.yaml"),
        deployment(&host, "1.1.0", "")
    );
    let time = |path: &str| -> i64 {
        git_bare(&bare, &["log", "-1", "--format=%ct", "main", "--", path])
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        time("prod") - time("staging") >= 3,
        "prod was bumped before staging ran 1.1.0 for the soak"
    );
    let message = git_bare(&bare, &["log", "-1", "--format=%B", "main", "--", "prod"]);
    assert!(message.contains("ran in staging since"), "{message}");
}

/// `notify`: a bump written by the daemon is posted once, as plain JSON, to a local receiver; the URL
/// comes from an environment variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_bump_is_posted_to_the_notify_receiver() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(value) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(value);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let setup = setup(&["1.0.0"]).await;
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!("{text}notify:\n  - {{ urlEnv: NOTIFY_URL, format: json, events: [bump] }}\n"),
    )
    .unwrap();
    let mut environment = env();
    environment.push(("NOTIFY_URL", hook.as_str()));
    let daemon = Daemon::start(&setup.config, &setup.address, &environment).await;
    daemon.ready().await;
    setup.push_and_hook(&daemon, "1.2.0").await;
    daemon
        .until("the notification", async || {
            !received.lock().unwrap().is_empty()
        })
        .await;
    let events = received.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "bump.written", "{events:?}");
    assert_eq!(events[0]["repository"], "local");
    assert!(
        !daemon.log().iter().any(|line| line.contains(&hook)),
        "the URL reached the log"
    );
    server.abort();
}

// ---------------------------------------------------------------------------------------------------
// Leader election against the fake Lease API (tests/it/support/fake_kube.rs)
// ---------------------------------------------------------------------------------------------------

const KUBE_TOKEN: &str = "kube-token-9a7c41";
const NAMESPACE: &str = "tagwatch";

/// Leader election for tests: a dead leader's Lease expires after 3 s, renewals every 300 ms.
const ELECTION: &str = "  leaderElection:\n    namespace: tagwatch\n    leaseDuration: 3s\n    renewDeadline: 2s\n    retryPeriod: 300ms\n";

impl Setup {
    /// The setup's config with leader election on, plus a kubeconfig for `kube`.
    fn elect(&self, kube: &FakeKube) -> PathBuf {
        let kubeconfig = self.root.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, NAMESPACE);
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(ELECTION);
        std::fs::write(&self.config, &text).unwrap();
        kubeconfig
    }

    /// A second replica's config beside the first (its own listen address, state and home): its path
    /// and address.
    fn second_replica(&self) -> (PathBuf, String) {
        let directory = self.root.path().join("b");
        std::fs::create_dir_all(&directory).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let text = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace(&self.address, &address)
            .replace("policies: [policies/]", "policies: [../policies/]");
        let config = directory.join("tagwatch.yaml");
        std::fs::write(&config, text).unwrap();
        (config, address)
    }
}

fn replica_env<'a>(kubeconfig: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("HOOK_TOKEN", HOOK_TOKEN),
        ("KUBECONFIG", kubeconfig),
        ("POD_NAME", name),
    ]
}

async fn leads(daemon: &Daemon) -> bool {
    let Some((200, body)) = daemon.get("/api/v1/status").await else {
        return false;
    };
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    report["leader"] == true
}

/// Two replicas on one Lease: only the holder writes, a webhook that reaches the follower is dropped
/// (the leader's work is untouched), and after `kill -9` of the leader the follower takes the expired
/// Lease over and writes the next bump. Every request and answer of the Lease API matched the
/// Kubernetes API description.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_and_a_follower_takes_over_after_kill_9() {
    let setup = setup(&["1.0.0"]).await;
    let kube = FakeKube::start(KUBE_TOKEN).await;
    let kubeconfig = setup.elect(&kube);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let a = Daemon::start(
        &setup.config,
        &setup.address,
        &replica_env(kubeconfig, "replica-a"),
    )
    .await;
    a.ready().await;
    a.until("replica-a to lead", async || leads(&a).await).await;
    let (config_b, address_b) = setup.second_replica();
    let b = Daemon::start(&config_b, &address_b, &replica_env(kubeconfig, "replica-b")).await;
    // A follower is ready (a rollout is not held up) and says it does not lead.
    b.ready().await;
    assert!(!leads(&b).await);
    assert!(leads(&a).await);
    let (_, metrics) = b.get("/metrics").await.unwrap();
    assert!(metrics.contains("tagwatch_leader 0"), "{metrics}");
    let (_, metrics) = a.get("/metrics").await.unwrap();
    assert!(metrics.contains("tagwatch_leader 1"), "{metrics}");
    assert_eq!(
        kube.holder(NAMESPACE, "tagwatch").as_deref(),
        Some("replica-a")
    );

    let before = count(&setup.bare);
    push_tags(&setup.registry, &["1.2.0"]).await;
    // The follower accepts the hint (registries must get their 2xx) and does nothing with it.
    assert_eq!(setup.hook(&b, "1.2.0").await, 202);
    b.until("the follower to drop the hint", async || {
        b.logged("webhook while following")
    })
    .await;
    assert_eq!(setup.hook(&a, "1.2.0").await, 202);
    a.until("the leader's bump on the remote", async || {
        setup.deploys("1.2.0")
    })
    .await;
    assert_eq!(count(&setup.bare), before + 1);
    let (_, metrics) = b.get("/metrics").await.unwrap();
    assert!(
        !metrics.contains("tagwatch_commits_total{"),
        "the follower wrote: {metrics}"
    );
    let (_, metrics) = a.get("/metrics").await.unwrap();
    assert!(
        metrics.contains("tagwatch_commits_total{repository=\"local\"} 1"),
        "{metrics}"
    );

    // The leader dies without handing the Lease back; the follower takes it when it expires.
    a.signal("KILL");
    b.until("replica-b to take the Lease over", async || leads(&b).await)
        .await;
    assert_eq!(
        kube.holder(NAMESPACE, "tagwatch").as_deref(),
        Some("replica-b")
    );
    let lease = kube.lease(NAMESPACE, "tagwatch").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    setup.push_and_hook(&b, "1.3.0").await;
    b.until("the new leader's bump on the remote", async || {
        setup.deploys("1.3.0")
    })
    .await;
    assert_eq!(count(&setup.bare), before + 2);
    // The Lease changed hands once: every write before the takeover was replica-a's, every one after
    // it replica-b's (never two holders taking turns).
    let holders: Vec<Option<String>> = kube
        .writes()
        .into_iter()
        .map(|write| write.holder)
        .collect();
    let takeover = holders
        .iter()
        .position(|holder| holder.as_deref() == Some("replica-b"))
        .unwrap();
    assert!(
        holders[..takeover]
            .iter()
            .all(|holder| holder.as_deref() == Some("replica-a")),
        "{holders:?}"
    );
    assert!(
        holders[takeover..]
            .iter()
            .all(|holder| holder.as_deref() == Some("replica-b")),
        "{holders:?}"
    );
    assert_eq!(kube.problems(), Vec::<String>::new());
}

/// A leader whose API server stops answering steps down before its Lease could be taken over, drops
/// hints while it follows, leads again when the API server answers (and then catches up with what it
/// missed), and hands the Lease back on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_then_leads_again_and_releases_on_sigterm() {
    let setup = setup(&["1.0.0"]).await;
    let kube = FakeKube::start(KUBE_TOKEN).await;
    let kubeconfig = setup.elect(&kube);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let mut a = Daemon::start(
        &setup.config,
        &setup.address,
        &replica_env(kubeconfig, "replica-a"),
    )
    .await;
    a.ready().await;
    a.until("replica-a to lead", async || leads(&a).await).await;
    let before = count(&setup.bare);

    kube.fail(true);
    a.until("the leader to step down", async || !leads(&a).await)
        .await;
    let (_, metrics) = a.get("/metrics").await.unwrap();
    assert!(metrics.contains("tagwatch_leader 0"), "{metrics}");
    setup.push_and_hook(&a, "1.2.0").await;
    a.until("the hint to be dropped", async || {
        a.logged("webhook while following")
    })
    .await;
    assert_eq!(count(&setup.bare), before);

    kube.fail(false);
    a.until("replica-a to lead again", async || leads(&a).await)
        .await;
    // No new event: the new leader polls what it missed while following.
    a.until("the missed bump on the remote", async || {
        setup.deploys("1.2.0")
    })
    .await;
    assert_eq!(count(&setup.bare), before + 1);

    a.signal("TERM");
    assert!(a.wait().success());
    assert_eq!(kube.holder(NAMESPACE, "tagwatch"), None);
    assert_eq!(kube.problems(), Vec::<String>::new());
}
