//! Targets tagwatch must not bump now: a field a human rolled back (held until a newer tag than the
//! reverted one appears, docs/design/reconcile.md) and a policy outside its windows (`plan` says when it lands).

use chrono::{Datelike, TimeZone, Utc};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_rollback_is_held_until_a_newer_tag_than_the_reverted_one() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policy(&host, ""),
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));

    // 1.2.0 is broken in production: a human sets the field back.
    human_commit(
        &bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.0.0", ""),
        "roll back app: 1.2.0 crashes",
    );
    let rolled_back = head(&bare);
    let output = tagwatch(&config, &["plan", "--output", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let image = format!("{host}/{IMAGE}");
    assert_eq!(
        text(&output.stdout),
        format!(
            "{{\"repo\":\"local\",\"file\":\"apps/a.yaml\",\"line\":10,\"policy\":\"app\",\"image\":\"{image}\",\"from\":\"{image}:1.0.0\",\"to\":\"{image}:1.2.0\",\"status\":\"rollback\",\"reverted\":\"1.2.0\"}}\n"
        )
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(head(&bare), rolled_back, "tagwatch fought the rollback");

    // A tag newer than the reverted one ends the hold.
    push_tags(&registry, &["1.2.1"]).await;
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.1", ""));
    assert_eq!(
        git_bare(&bare, &["rev-parse", "main~1"]).trim(),
        rolled_back
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_a_bump_waits_and_plan_says_when_it_lands() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    // Opens for one second at midnight UTC on New Year's Day: closed whenever this test runs.
    let closed = "  windows: [{ schedule: \"0 0 0 1 1 *\", duration: 1s, timezone: UTC }]\n";
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policy(&host, closed),
    );
    let before = head(&bare);
    let output = tagwatch(&config, &["plan", "--output", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let next_new_year = Utc
        .with_ymd_and_hms(Utc::now().year() + 1, 1, 1, 0, 0, 0)
        .unwrap();
    let image = format!("{host}/{IMAGE}");
    assert_eq!(
        text(&output.stdout),
        format!(
            "{{\"repo\":\"local\",\"file\":\"apps/a.yaml\",\"line\":10,\"policy\":\"app\",\"image\":\"{image}\",\"from\":\"{image}:1.0.0\",\"to\":\"{image}:1.2.0\",\"status\":\"waiting\",\"until\":\"{}\"}}\n",
            next_new_year.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    );
    let output = tagwatch(&config, &["plan"], &[]);
    assert!(
        text(&output.stdout).contains("waits for its window; lands at"),
        "{}",
        text(&output.stdout)
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(head(&bare), before, "written outside the window");

    // A window open all day: the bump lands.
    let open =
        "  windows: [{ schedule: \"0 0 0 * * *\", duration: 24h, timezone: Europe/Berlin }]\n";
    std::fs::write(root.path().join("policies/app.yaml"), policy(&host, open)).unwrap();
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
}
