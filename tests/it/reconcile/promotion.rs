//! Promotion between environments (docs/promotion.md) against real git history with controlled committer dates:
//! staging and prod as two entries on one remote (two path sets), or on two remotes.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::support::git_http::git_in;

/// The day everything starts (committer dates are set explicitly, so `plan --at` can walk through it).
const T0: &str = "2026-01-05T00:00:00Z";

/// `T0` plus `hours`, RFC 3339.
fn at(hours: i64) -> String {
    let t0 = chrono::DateTime::parse_from_rfc3339(T0).unwrap();
    (t0 + chrono::Duration::hours(hours))
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Commits `file` = `content` on `main` of `bare` with author and committer date `date`.
fn dated_commit(bare: &Path, file: &str, content: &str, date: &str) {
    let work = tempfile::tempdir().unwrap();
    let status = Command::new("git")
        .args(["clone", "-q", "-b", "main"])
        .arg(bare)
        .arg(work.path())
        .status()
        .unwrap();
    assert!(status.success());
    let path = work.path().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    git_in(work.path(), &["add", "-A"]);
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Human",
            "-c",
            "user.email=human@example.com",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            &format!("{file} at {date}"),
        ])
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(status.success());
    git_in(work.path(), &["push", "-q", "origin", "main"]);
}

/// Policies: `app-staging` tracks `^1` in staging; `app-prod` promotes from staging after `soak`.
fn promotion_policies(host: &str, soak: &str, extra: &str) -> String {
    format!(
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-staging }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [staging]\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-prod }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [prod]\n  promotion: {{ from: staging, soak: {soak}{extra} }}\n"
    )
}

fn entry(name: &str, url: &str, path: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    paths: [{path}]\n    writeBack: {{ mode: push, author: {{ name: tagwatch-bot, email: bot@example.com }}, message: \"chore(images): {{summary}}\\n\\n{{changes}}\" }}\n"
    )
}

/// One remote with `staging/app.yaml` and `prod/app.yaml` on 1.0.0 at `T0`.
async fn monorepo(root: &Path, tags: &[&str]) -> (Registry, PathBuf, PathBuf) {
    let registry = registry_with(tags).await;
    let host = registry.host.clone();
    let bare = crate::support::git_http::seed_bare_repo_in(root, "envs");
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.0.0", ""),
        T0,
    );
    dated_commit(&bare, "prod/app.yaml", &deployment(&host, "1.0.0", ""), T0);
    let url = file_url(&bare);
    let config = write_config(
        root,
        &registry,
        &[
            entry("staging", &url, "staging"),
            entry("prod", &url, "prod"),
        ]
        .concat(),
        &promotion_policies(&host, "24h", ""),
    );
    (registry, bare, config)
}

/// The JSON lines `plan --at TIME` prints for repository `repo`.
fn plan_lines(config: &Path, time: &str, repo: &str) -> Vec<serde_json::Value> {
    let output = tagwatch(config, &["plan", "--output", "json", "--at", time], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["repo"] == repo)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_promoted_only_after_it_soaked_upstream() {
    let root = tempfile::tempdir().unwrap();
    let (registry, bare, config) = monorepo(root.path(), &["1.0.0", "1.1.0"]).await;
    let host = registry.host.clone();
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.1.0", ""),
        &at(1),
    );
    // Ten hours in: 1.1.0 soaks until T0+25h.
    let soaking = plan_lines(&config, &at(10), "prod");
    assert_eq!(soaking.len(), 1, "{soaking:?}");
    assert_eq!(soaking[0]["status"], "soaking");
    assert_eq!(soaking[0]["until"], at(25));
    assert_eq!(soaking[0]["to"], format!("{host}/{IMAGE}:1.1.0"));
    // After the soak: the bump.
    let ready = plan_lines(&config, &at(26), "prod");
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert!(ready[0].get("status").is_none(), "{ready:?}");
    assert_eq!(ready[0]["to"], format!("{host}/{IMAGE}:1.1.0"));
    assert_eq!(ready[0]["policy"], "app-prod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_rollback_disqualifies_the_version_it_left() {
    let root = tempfile::tempdir().unwrap();
    let (registry, bare, config) = monorepo(root.path(), &["1.0.0", "1.1.0", "1.2.0"]).await;
    let host = registry.host.clone();
    // The spec's example: 1.1.0 at T, 1.2.0 at T+30h, back to 1.1.0 at T+32h; at T+40h.
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.1.0", ""),
        &at(1),
    );
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.2.0", ""),
        &at(31),
    );
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.1.0", ""),
        &at(33),
    );
    let lines = plan_lines(&config, &at(41), "prod");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["to"], format!("{host}/{IMAGE}:1.1.0"));
    assert!(lines[0].get("next").is_none(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_never_ran_upstream_is_never_promoted() {
    let root = tempfile::tempdir().unwrap();
    // The registry has 1.2.0, staging never ran it.
    let (_registry, _bare, config) = monorepo(root.path(), &["1.0.0", "1.2.0"]).await;
    let lines = plan_lines(&config, &at(1000), "prod");
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_commit_states_its_evidence() {
    let root = tempfile::tempdir().unwrap();
    let (registry, bare, config) = monorepo(root.path(), &["1.0.0", "1.1.0"]).await;
    let host = registry.host.clone();
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.1.0", ""),
        &at(1),
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(show(&bare, "prod/app.yaml"), deployment(&host, "1.1.0", ""));
    let message = git_bare(&bare, &["log", "-1", "--format=%B", "main", "--", "prod"]);
    assert!(
        message.contains(&format!("ran in staging since {}", at(1))),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "Tagwatch-Promotion: {host}/{IMAGE} 1.1.0 ran in staging"
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_across_two_remotes_promotes_step_by_step() {
    let root = tempfile::tempdir().unwrap();
    let registry = registry_with(&["1.0.0", "1.1.0"]).await;
    let host = registry.host.clone();
    let dev = crate::support::git_http::seed_bare_repo_in(root.path(), "dev");
    let stage = crate::support::git_http::seed_bare_repo_in(root.path(), "stage");
    let prod = crate::support::git_http::seed_bare_repo_in(root.path(), "prod");
    for bare in [&dev, &stage, &prod] {
        dated_commit(bare, "apps/app.yaml", &deployment(&host, "1.0.0", ""), T0);
    }
    dated_commit(
        &dev,
        "apps/app.yaml",
        &deployment(&host, "1.1.0", ""),
        &at(1),
    );
    let policies = format!(
        "apiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-dev }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [dev]\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-staging }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [staging]\n  promotion: {{ from: dev, soak: 1h }}\n---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: app-prod }}\nspec:\n  image: {host}/{IMAGE}\n  semver: {{ range: \"^1\" }}\n  repositories: [prod]\n  promotion: {{ from: staging, soak: 1h }}\n"
    );
    let config = write_config(
        root.path(),
        &registry,
        &[
            entry("dev", &file_url(&dev), "apps"),
            entry("staging", &file_url(&stage), "apps"),
            entry("prod", &file_url(&prod), "apps"),
        ]
        .concat(),
        &policies,
    );
    // Staging takes 1.1.0 (it ran in dev for months); prod does not yet (staging never ran it).
    assert_eq!(plan_lines(&config, &at(3), "staging").len(), 1);
    assert!(plan_lines(&config, &at(3), "prod").is_empty());
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        show(&stage, "apps/app.yaml"),
        deployment(&host, "1.1.0", "")
    );
    assert_eq!(show(&prod, "apps/app.yaml"), deployment(&host, "1.0.0", ""));
    // Once staging has run it for the soak, prod follows (the staging commit was written now).
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let lines = plan_lines(&config, &soon, "prod");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["to"], format!("{host}/{IMAGE}:1.1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_statuses_must_be_green_on_an_upstream_commit_running_the_version() {
    use crate::support::fake_forge::{Check, FakeForge, Flavor, NAME, OWNER};
    const TOKEN: &str = "forge-token-acc3pt";
    let root = tempfile::tempdir().unwrap();
    let registry = registry_with(&["1.0.0", "1.1.0"]).await;
    let host = registry.host.clone();
    let bare = crate::support::git_http::seed_bare_repo_in(root.path(), "envs");
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.0.0", ""),
        T0,
    );
    dated_commit(&bare, "prod/app.yaml", &deployment(&host, "1.0.0", ""), T0);
    dated_commit(
        &bare,
        "staging/app.yaml",
        &deployment(&host, "1.1.0", ""),
        &at(1),
    );
    let staging_commit = git_bare(&bare, &["rev-parse", "main"]).trim().to_string();
    let fake = FakeForge::start(Flavor::GitHub, &bare, TOKEN).await;
    let url = file_url(&bare);
    let staging = format!(
        "  - name: staging\n    url: {url}\n    paths: [staging]\n    writeBack: {{ mode: push, forge: {{ kind: github, api: \"{}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }} }}\n",
        fake.api_url()
    );
    let config = write_config(
        root.path(),
        &registry,
        &[staging, entry("prod", &url, "prod")].concat(),
        &promotion_policies(&host, "24h", ", requireStatus: [acceptance]"),
    );
    let env = [("FORGE_TOKEN", TOKEN)];
    let prod_plan = || {
        let output = tagwatch(
            &config,
            &["plan", "--output", "json", "--at", &at(30)],
            &env,
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|line| line["repo"] == "prod")
            .collect::<Vec<_>>()
    };
    // Soaked, but no acceptance status yet: not promoted.
    assert!(prod_plan().is_empty());
    fake.set_status(&staging_commit, "acceptance", Check::Failure);
    assert!(prod_plan().is_empty());
    fake.set_status(&staging_commit, "acceptance", Check::Success);
    let lines = prod_plan();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["to"], format!("{host}/{IMAGE}:1.1.0"));
    // The evidence names the statuses.
    let output = tagwatch(&config, &["plan", "--at", &at(30)], &env);
    assert!(
        text(&output.stdout).contains("statuses acceptance=success"),
        "{}",
        text(&output.stdout)
    );
    fake.assert_clean();
}
