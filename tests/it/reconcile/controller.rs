//! The controller core fails closed (issue "Reconcile as a controller"): each test is named for the
//! behaviour it protects, against the real registry, real git remotes and the validating fake forge.

use std::time::Duration;

use tagwatch::reconcile::{Mode, ReconcileError, Scope, Trigger};

use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER, PullState};

use super::*;

const TOKEN: &str = "forge-token-c0ffee";

fn pull_request_entry(name: &str, url: &str, paths: &str, api: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    paths: [{paths}]\n    writeBack:\n      mode: pull-request\n{extra}      author: {{ name: tagwatch-bot, email: bot@example.com }}\n      forge: {{ kind: github, api: \"{api}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\n"
    )
}

/// A registry outage must not close (or touch) the pull request of the group it affects: a policy that
/// does not resolve leaves its group exactly as it is, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_leaves_the_open_pull_request_alone() {
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
        &pull_request_entry("local", &file_url(&bare), "apps", &fake.api_url(), ""),
        &policy(&host, ""),
    );
    let env = [("FORGE_TOKEN", TOKEN)];
    reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let opened = fake.pulls();
    assert_eq!(opened.len(), 1);
    let branch = git_bare(&bare, &["rev-parse", "tagwatch/local"]);

    drop(registry);
    let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
    let plan = outcomes[0].plan.as_ref().unwrap();
    assert_eq!(plan.problems.len(), 1, "{plan:?}");
    assert_eq!(plan.problems[0].scope, Scope::Policy("app".into()));
    assert!(plan.troubled.contains("local"));
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert!(applied.closed.is_empty(), "{applied:?}");
    let pull = fake.pull(opened[0].number);
    assert_eq!(pull.state, PullState::Open);
    assert_eq!(
        (pull.title, pull.body),
        (opened[0].title.clone(), opened[0].body.clone())
    );
    assert!(pull.comments.is_empty());
    assert_eq!(git_bare(&bare, &["rev-parse", "tagwatch/local"]), branch);
    fake.assert_clean();
}

/// `order: newest` ranks by the image's creation time: a newer build whose tag sorts lower byte-wise is
/// a bump, not "newer".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_order_bumps_a_newer_build_whose_tag_sorts_lower() {
    let registry = Registry::plain().await;
    let seeder = registry.seeder(IMAGE);
    seeder
        .push_image(IMAGE, "build-zzz", "2024-01-01T00:00:00Z")
        .await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "build-zzz", ""))],
    );
    let policies = format!(
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app }}\nspec:\n  image: {host}/{IMAGE}\n  filter: {{ pattern: '^build-' }}\n  order: newest\n"
    );
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policies,
    );
    seeder
        .push_image(IMAGE, "build-aaa", "2024-02-01T00:00:00Z")
        .await;
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        show(&bare, "apps/a.yaml"),
        deployment(&host, "build-aaa", "")
    );
    // And an older build is never written over a newer one.
    seeder
        .push_image(IMAGE, "build-bbb", "2023-06-01T00:00:00Z")
        .await;
    let output = tagwatch(&config, &["plan", "--output", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        !text(&output.stdout).contains("build-bbb"),
        "{}",
        text(&output.stdout)
    );
}

/// Two entries on one remote in pull-request mode (different paths, `group: image`): each keeps its own
/// head branch and pull request, and neither closes the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_sharing_a_remote_keep_their_own_pull_requests() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "shared",
        &[
            ("staging/a.yaml", deployment(&host, "1.0.0", "")),
            ("prod/a.yaml", deployment(&host, "1.0.0", "")),
        ],
    );
    let fake = FakeForge::start(Flavor::GitHub, &bare, TOKEN).await;
    let url = file_url(&bare);
    let group = "      group: image\n";
    let repositories = [
        pull_request_entry("staging", &url, "staging", &fake.api_url(), group),
        pull_request_entry("prod", &url, "prod", &fake.api_url(), group),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let env = [("FORGE_TOKEN", TOKEN)];
    for _ in 0..2 {
        let outcomes = reconciler(&config, &env).run_all(chrono::Utc::now()).await;
        for outcome in &outcomes {
            assert_eq!(outcome.failures(), 0, "{outcome:?}");
            let applied = outcome.applied.as_ref().unwrap().as_ref().unwrap();
            assert!(applied.closed.is_empty(), "{applied:?}");
        }
    }
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 2);
    assert!(pulls.iter().all(|pull| pull.state == PullState::Open));
    let mut heads: Vec<&str> = pulls.iter().map(|pull| pull.head.as_str()).collect();
    heads.sort();
    let image = format!("{host}/{IMAGE}").replace([':', '/'], "-");
    assert_eq!(
        heads,
        [
            format!("tagwatch/prod-{image}"),
            format!("tagwatch/staging-{image}")
        ]
    );
    let prod_branch = git_bare(
        &bare,
        &["show", &format!("tagwatch/prod-{image}:prod/a.yaml")],
    );
    assert_eq!(prod_branch, deployment(&host, "1.2.0", ""));
    let prod_staging = git_bare(
        &bare,
        &["show", &format!("tagwatch/prod-{image}:staging/a.yaml")],
    );
    assert_eq!(
        prod_staging,
        deployment(&host, "1.0.0", ""),
        "prod's branch touched staging"
    );
    fake.assert_clean();
}

/// Listing open pull requests fails after a pull request was opened: the report still has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_request_listing_keeps_the_opened_one_in_the_report() {
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
        &pull_request_entry("local", &file_url(&bare), "apps", &fake.api_url(), ""),
        &policy(&host, ""),
    );
    // Find (1), open (2), then the listing of open pull requests is refused.
    fake.fail_after(2, 422, 1);
    let outcomes = reconciler(&config, &[("FORGE_TOKEN", TOKEN)])
        .run_all(chrono::Utc::now())
        .await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.pull_requests.len(), 1, "{applied:?}");
    assert_eq!(applied.opened.len(), 1);
    assert_eq!(applied.bumps.len(), 1);
    assert_eq!(applied.problems.len(), 1);
    assert!(matches!(
        applied.problems[0].error.as_ref(),
        ReconcileError::Forge(_)
    ));
    assert_eq!(outcomes[0].failures(), 1);
    assert_eq!(fake.pulls().len(), 1);
    fake.assert_clean();
}

/// A registry that accepts connections and never answers costs only its own images, once, within the
/// resolve deadline: the other image of the same repository is bumped and pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_registry_costs_only_its_own_images() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let root = tempfile::tempdir().unwrap();
    let silent_image = format!("{silent_host}/acme/silent");
    let bare = bare_repo(
        root.path(),
        "local",
        &[
            ("apps/a.yaml", deployment(&host, "1.0.0", "")),
            (
                "apps/silent.yaml",
                format!("services:\n  silent:\n    image: {silent_image}:1.0.0\n"),
            ),
        ],
    );
    let policies = format!(
        "{}---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: silent }}\nspec:\n  image: {silent_image}\n  semver: {{ range: \"^1\" }}\n",
        policy(&host, "")
    );
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policies,
    );
    let config_text = std::fs::read_to_string(&config).unwrap().replace(
        "registries:\n",
        &format!("registries:\n  - host: {silent_host}\n    insecure: true\n"),
    );
    std::fs::write(&config, config_text).unwrap();
    let context = reconciler(&config, &[]).with_resolve_deadline(Duration::from_secs(2));
    let outcome = context
        .reconcile_repository("local", Trigger::Once, chrono::Utc::now(), Mode::Apply)
        .await;
    let plan = outcome.plan.as_ref().unwrap();
    assert_eq!(plan.problems.len(), 1, "{plan:?}");
    assert_eq!(plan.problems[0].scope, Scope::Policy("silent".into()));
    assert!(matches!(
        plan.problems[0].error.as_ref(),
        ReconcileError::Deadline { .. }
    ));
    let applied = outcome.applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(applied.pushes, 1);
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    assert_eq!(
        show(&bare, "apps/silent.yaml"),
        format!("services:\n  silent:\n    image: {silent_image}:1.0.0\n")
    );
    held.abort();
}

/// `plan`, `run` need repositories: with no config file they exit 2 and say so.
#[test]
fn plan_and_run_without_a_config_file_exit_2_and_say_so() {
    let root = tempfile::tempdir().unwrap();
    for args in [&["plan"][..], &["run", "--once"][..]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tagwatch"))
            .args(args)
            .current_dir(root.path())
            .env_clear()
            .env("HOME", root.path())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr
                .contains("needs a config file with repositories: there is no tagwatch.yaml here"),
            "{stderr}"
        );
    }
}

/// Several policies for one image and no marker: `plan` lists the target as ambiguous, naming the
/// policies and the place, and nothing is bumped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_lists_targets_several_policies_claim() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let policies = format!(
        "{}---\n{}",
        policy(&host, ""),
        policy(&host, "").replace("name: app", "name: app-too")
    );
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policies,
    );
    let output = tagwatch(&config, &["plan", "--output", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    assert_eq!(line["status"], "ambiguous");
    assert_eq!(line["policies"], serde_json::json!(["app", "app-too"]));
    assert_eq!(
        (line["file"].as_str(), line["line"].as_u64()),
        (Some("apps/a.yaml"), Some(10))
    );
    assert!(
        text(&output.stderr).contains("several policies track this image"),
        "{}",
        text(&output.stderr)
    );
}

/// `plan --at` evaluates windows at that instant: inside the window the bump is planned, outside it
/// waits until the next opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_at_evaluates_windows_at_that_instant() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let window = "  windows: [{ schedule: \"0 0 9 * * Mon-Fri\", duration: 8h, timezone: UTC }]\n";
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policy(&host, window),
    );
    // Thursday 10:00 UTC: inside.
    let inside = tagwatch(
        &config,
        &["plan", "--output", "json", "--at", "2026-11-26T10:00:00Z"],
        &[],
    );
    assert_eq!(inside.status.code(), Some(0), "{}", text(&inside.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&inside.stdout).trim()).unwrap();
    assert!(line.get("status").is_none(), "{line}");
    assert_eq!(line["to"], format!("{host}/{IMAGE}:1.2.0"));
    // Saturday: waits for Monday 09:00.
    let outside = tagwatch(
        &config,
        &["plan", "--output", "json", "--at", "2026-11-28T10:00:00Z"],
        &[],
    );
    let line: serde_json::Value = serde_json::from_str(text(&outside.stdout).trim()).unwrap();
    assert_eq!(line["status"], "waiting");
    assert_eq!(line["until"], "2026-11-30T09:00:00Z");
    // A bad instant is a usage error.
    let bad = tagwatch(&config, &["plan", "--at", "tomorrow"], &[]);
    assert_eq!(bad.status.code(), Some(2));
}
