//! `tagwatch rollback IMAGE` (README.md "Using it", docs/review.md): the latest bump undone byte-exactly as a commit or a pull
//! request; the restored field then holds as a human rollback does, until a newer tag appears.

use crate::support::fake_forge::{FakeForge, Flavor, NAME, OWNER};

use super::*;

fn count(bare: &Path) -> usize {
    git_bare(bare, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_previous_version_and_then_holds_it() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let original = deployment(&host, "1.0.0", " # keep this comment");
    let bare = bare_repo(root.path(), "local", &[("apps/a.yaml", original.clone())]);
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policy(&host, ""),
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        show(&bare, "apps/a.yaml"),
        deployment(&host, "1.2.0", " # keep this comment")
    );
    let bump = head(&bare);

    let image = format!("{host}/{IMAGE}");
    let output = tagwatch(&config, &["rollback", &image], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(&format!("local: {}", head(&bare))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("reverts {}", &bump[..12])),
        "{stdout}"
    );
    // Byte-exact: the file is what it was before the bump.
    assert_eq!(show(&bare, "apps/a.yaml"), original);
    let message = git_bare(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains(&format!(
            "Tagwatch-Rollback: apps/a.yaml {image} 1.2.0 -> 1.0.0"
        )),
        "{message}"
    );
    assert!(!message.contains("Tagwatch-Bump"), "{message}");

    // Held like a human rollback: not bumped back to 1.2.0.
    let plan = tagwatch(&config, &["plan", "--output", "json"], &[]);
    let line: serde_json::Value = serde_json::from_str(text(&plan.stdout).trim()).unwrap();
    assert_eq!(line["status"], "rollback");
    assert_eq!(line["reverted"], "1.2.0");
    let before = count(&bare);
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(count(&bare), before);
    // A newer tag ends the hold.
    push_tags(&registry, &["1.3.0"]).await;
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        show(&bare, "apps/a.yaml"),
        deployment(&host, "1.3.0", " # keep this comment")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_errors_are_clear() {
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
    let image = format!("{host}/{IMAGE}");
    // Nothing bumped yet.
    let output = tagwatch(&config, &["rollback", &image], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("no bump of"),
        "{}",
        text(&output.stderr)
    );
    // Unknown image and repository: usage errors.
    let output = tagwatch(&config, &["rollback", "ghcr.io/acme/unknown"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let output = tagwatch(&config, &["rollback", &image, "--repository", "nope"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    // The field changed since the bump: nothing is written.
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    human_commit(
        &bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.1.0", ""),
        "pin 1.1.0 by hand",
    );
    let before = count(&bare);
    let output = tagwatch(&config, &["rollback", &image], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("the field changed since"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(count(&bare), before);
    // `--to` restores a chosen version instead.
    human_commit(
        &bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.2.0", ""),
        "back to 1.2.0",
    );
    let output = tagwatch(&config, &["rollback", &image, "--to", "0.9.0"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "0.9.0", ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_in_pull_request_mode_opens_a_revert_pull_request() {
    const TOKEN: &str = "forge-token-r0llb4ck";
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.2.0", ""))],
    );
    // A bump tagwatch made earlier, merged to the base.
    human_commit(
        &bare,
        "main",
        "apps/a.yaml",
        &deployment(&host, "1.2.0", " "),
        &format!("chore(images): bump\n\nTagwatch-Bump: apps/a.yaml {host}/{IMAGE} 1.0.0 -> 1.2.0"),
    );
    let fake = FakeForge::start(Flavor::GitHub, &bare, TOKEN).await;
    let repository = format!(
        "  - name: local\n    url: {}\n    paths: [apps]\n    writeBack:\n      mode: pull-request\n      forge: {{ kind: github, api: \"{}\", repo: {OWNER}/{NAME}, tokenEnv: FORGE_TOKEN }}\n",
        file_url(&bare),
        fake.api_url()
    );
    let config = write_config(root.path(), &registry, &repository, &policy(&host, ""));
    let before = head(&bare);
    let output = tagwatch(
        &config,
        &["rollback", &format!("{host}/{IMAGE}")],
        &[("FORGE_TOKEN", TOKEN)],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        head(&bare),
        before,
        "the base is never written in pull-request mode"
    );
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(
        pulls[0].title.starts_with("Revert: roll"),
        "{}",
        pulls[0].title
    );
    assert!(
        pulls[0].body.contains("reverting the bump in"),
        "{}",
        pulls[0].body
    );
    assert!(
        text(&output.stdout).contains(&format!("/{}", pulls[0].number)),
        "{}",
        text(&output.stdout)
    );
    let restored = git_bare(&bare, &["show", &format!("{}:apps/a.yaml", pulls[0].head)]);
    assert_eq!(restored, deployment(&host, "1.0.0", " "));
    fake.assert_clean();
}
