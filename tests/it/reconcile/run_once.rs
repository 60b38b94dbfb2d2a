//! `tagwatch run --once` in push mode: the exact commit on the remote, a second run that changes
//! nothing, a human pushing between plan and push, a run killed between commit and push, and failing
//! repositories that do not stop the others.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::support::git_http::GitHttpServer;
use crate::support::sshd::SshServer;

fn count(bare: &Path) -> usize {
    git_bare(bare, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .unwrap()
}

/// Two files need the same bump: one commit, one push; the second run is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_pushes_one_exact_commit_and_a_second_run_is_a_no_op() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[
            ("apps/a.yaml", deployment(&host, "1.0.0", "")),
            (
                "apps/b.yaml",
                deployment(&host, "1.0.0", " # tagwatch: app"),
            ),
        ],
    );
    let before = head(&bare);
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policy(&host, ""),
    );

    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let image = format!("{host}/{IMAGE}");
    assert_eq!(
        text(&output.stdout),
        format!(
            "local apps/a.yaml:10 {image}:1.0.0 -> {image}:1.2.0 [app]\n\
             local apps/b.yaml:10 {image}:1.0.0 -> {image}:1.2.0 [app]\n\
             local: 2 bump(s), 1 commit(s), 1 push(es)\n"
        )
    );
    assert_eq!(
        git_bare(&bare, &["rev-parse", "main~1"]).trim(),
        before,
        "exactly one commit on top of the human's"
    );
    assert_eq!(
        git_bare(
            &bare,
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"]
        )
        .trim(),
        "tagwatch-bot <bot@example.com>|tagwatch-bot <bot@example.com>"
    );
    assert_eq!(
        git_bare(&bare, &["log", "-1", "--format=%B", "main"]),
        format!(
            "chore(images): bump {image} 1.0.0 → 1.2.0\n\n\
             - apps/a.yaml:10 {image} 1.0.0 → 1.2.0 (app)\n\
             - apps/b.yaml:10 {image} 1.0.0 → 1.2.0 (app)\n\n\
             Tagwatch-Policy: app\n\
             Tagwatch-Bump: apps/a.yaml {image} 1.0.0 -> 1.2.0\n\
             Tagwatch-Bump: apps/b.yaml {image} 1.0.0 -> 1.2.0\n\n"
        )
    );
    // The diff touches the tag bytes and nothing else.
    assert_eq!(
        git_bare(&bare, &["diff", "--numstat", "main~1", "main"]),
        "1\t1\tapps/a.yaml\n1\t1\tapps/b.yaml\n"
    );
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    assert_eq!(
        show(&bare, "apps/b.yaml"),
        deployment(&host, "1.2.0", " # tagwatch: app")
    );

    let after = head(&bare);
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "local: 0 bump(s), 0 commit(s), 0 push(es)\n"
    );
    assert_eq!(head(&bare), after, "the second run changed the remote");
}

/// A human pushes between tagwatch's plan and its push: the push is rejected, tagwatch re-plans on the
/// human's commit and pushes on top of it; nothing of the human's is lost, nothing is forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_push_is_replanned_on_the_new_head_and_keeps_the_human_commit() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[
            ("apps/a.yaml", deployment(&host, "1.0.0", "")),
            ("apps/b.yaml", deployment(&host, "1.0.0", "")),
        ],
    );
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policy(&host, ""),
    );
    let fired = Arc::new(AtomicBool::new(false));
    let human = Arc::new(std::sync::Mutex::new(String::new()));
    let hook = {
        let (fired, human, bare, host) = (fired.clone(), human.clone(), bare.clone(), host.clone());
        Arc::new(move |_: &str| {
            if !fired.swap(true, Ordering::SeqCst) {
                // The human also holds b.yaml back on 1.0.0 with a marker: the re-plan must see it.
                let id = human_commit(
                    &bare,
                    "main",
                    "apps/b.yaml",
                    &deployment(&host, "1.0.0", " # tagwatch: hold"),
                    "hold b",
                );
                *human.lock().unwrap() = id;
            }
        })
    };
    let reconciler = reconciler(&config, &[]).with_before_push(hook);
    let outcomes = reconciler.run_all(chrono::Utc::now()).await;
    let applied = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap();
    assert_eq!((applied.rejected, applied.pushes), (1, 1));
    assert_eq!(applied.commits.len(), 1);
    assert_eq!(applied.bumps.len(), 1, "b.yaml is held after the re-plan");
    assert_eq!(applied.bumps[0].file, "apps/a.yaml");
    let human = human.lock().unwrap().clone();
    assert_eq!(git_bare(&bare, &["rev-parse", "main~1"]).trim(), human);
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    assert_eq!(
        show(&bare, "apps/b.yaml"),
        deployment(&host, "1.0.0", " # tagwatch: hold")
    );
}

/// `kill -9` at each fault point of a write-back (before the commit, after the commit and before the
/// push, after the push), then run again: the remote ends with exactly one bump commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_write_back_step_then_run_again_makes_exactly_one_commit() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    for point in ["before-commit", "before-push", "after-push"] {
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
        let before = count(&bare);
        killed_at(&config, &["run", "--once"], &[], point);
        let output = tagwatch(&config, &["run", "--once"], &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{point}: {}",
            text(&output.stderr)
        );
        assert_eq!(count(&bare), before + 1, "{point}");
        assert_eq!(
            show(&bare, "apps/a.yaml"),
            deployment(&host, "1.2.0", ""),
            "{point}"
        );
        let output = tagwatch(&config, &["run", "--once"], &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{point}: {}",
            text(&output.stderr)
        );
        assert_eq!(count(&bare), before + 1, "{point}: a second commit");
    }
}

/// Unreachable remote, bad credentials, missing branch and missing path each give a clear error; the
/// good repository is still written; exit code 1. (A path escaping the repository is a config error,
/// exit 2, checked by `validate`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_repositories_do_not_stop_the_others() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let files = [("apps/a.yaml", deployment(&host, "1.0.0", ""))];
    let good = bare_repo(root.path(), "good", &files);
    let other = bare_repo(root.path(), "other", &files);
    let server = GitHttpServer::start("bot", "right-password");
    let http = server.create_repo("http");
    add_files(&http, &files);
    let write_back = "    writeBack: { mode: push }\n";
    let repositories = [
        push_repository(
            "bad-credentials",
            &server.url("http"),
            "    auth: { username: bot, passwordEnv: WRONG }\n",
        ),
        format!("  - name: unreachable\n    url: http://127.0.0.1:9/nothing.git\n{write_back}"),
        push_repository("missing-branch", &file_url(&other), "    branch: nope\n"),
        format!(
            "  - name: missing-path\n    url: {}\n    paths: [nope]\n{write_back}",
            file_url(&other)
        ),
        push_repository("good", &file_url(&good), ""),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let output = tagwatch(&config, &["run", "--once"], &[("WRONG", "wrong-password")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        text(&output.stdout).contains("good: 1 bump(s), 1 commit(s), 1 push(es)"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(show(&good, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    for (repository, needle) in [
        ("unreachable", "cannot reach"),
        ("bad-credentials", "authentication"),
        ("missing-branch", "branch `nope` does not exist"),
        ("missing-path", "path `nope` does not exist"),
    ] {
        let line = stderr
            .lines()
            .find(|line| line.contains(&format!("repository {repository}")))
            .unwrap_or_else(|| panic!("no error for {repository}: {stderr}"));
        assert!(line.contains(needle), "{repository}: {line}");
    }
    assert!(
        !stderr.contains("wrong-password"),
        "a secret leaked: {stderr}"
    );
}

/// The same cycle over SSH (key + known_hosts) and smart HTTP with a token; the token never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_writes_back_over_ssh_and_http_with_a_token() {
    const TOKEN: &str = "git-token-5a4b3c2d1e";
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let files = [("apps/a.yaml", deployment(&host, "1.0.0", ""))];
    let sshd = SshServer::start();
    let ssh_bare = sshd.create_repo("over-ssh");
    add_files(&ssh_bare, &files);
    let server = GitHttpServer::start("x-access-token", TOKEN);
    let http_bare = server.create_repo("over-http");
    add_files(&http_bare, &files);
    let repositories = [
        push_repository(
            "ssh",
            &sshd.url(&ssh_bare),
            &format!(
                "    auth: {{ sshKeyFile: {}, knownHostsFile: {} }}\n",
                sshd.client_key().display(),
                sshd.known_hosts().display()
            ),
        ),
        push_repository(
            "http",
            &server.url("over-http"),
            "    auth: { tokenEnv: GIT_TOKEN }\n",
        ),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    // Debug logs (-vv) too must never show the token.
    let output = tagwatch(&config, &["-vv", "run", "--once"], &[("GIT_TOKEN", TOKEN)]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for (name, bare) in [("ssh", &ssh_bare), ("http", &http_bare)] {
        assert!(
            stdout.contains(&format!("{name}: 1 bump(s), 1 commit(s), 1 push(es)")),
            "{stdout}"
        );
        assert_eq!(show(bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
        assert_eq!(
            git_bare(bare, &["log", "-1", "--format=%an", "main"]).trim(),
            "tagwatch-bot"
        );
    }
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
}

/// A policy whose registry cannot be reached fails alone: the other policy's bump is written, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_registry_fails_only_its_policies() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let ghost_image = "127.0.0.1:9/acme/ghost";
    let bare = bare_repo(
        root.path(),
        "local",
        &[
            ("apps/a.yaml", deployment(&host, "1.0.0", "")),
            (
                "apps/ghost.yaml",
                format!("services:\n  ghost:\n    image: {ghost_image}:1.0.0\n"),
            ),
        ],
    );
    let policies = format!(
        "{}---\napiVersion: tagwatch.dev/v1alpha1\nkind: TagPolicy\nmetadata: {{ name: ghost }}\nspec:\n  image: {ghost_image}\n  semver: {{ range: \"^1\" }}\n",
        policy(&host, "")
    );
    let config = write_config(
        root.path(),
        &registry,
        &push_repository("local", &file_url(&bare), ""),
        &policies,
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: repository local: policy ghost: listing the tags of 127.0.0.1:9/acme/ghost"
        ),
        "{stderr}"
    );
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    assert_eq!(
        show(&bare, "apps/ghost.yaml"),
        format!("services:\n  ghost:\n    image: {ghost_image}:1.0.0\n")
    );
}

/// `digest: true` writes `tag@digest`, and a tag moved to another image is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_policy_pins_the_digest_and_follows_a_moved_tag() {
    let registry = registry_with(&["1.0.0"]).await;
    let seeder = registry.seeder(IMAGE);
    let first = seeder.push_image(IMAGE, "1.2.0", CREATED).await;
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
        &policy(&host, "  digest: true\n"),
    );
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        show(&bare, "apps/a.yaml"),
        deployment(&host, &format!("1.2.0@{first}"), "")
    );
    let pinned = head(&bare);
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(head(&bare), pinned, "an unchanged digest was bumped");

    // CI rebuilds and re-pushes 1.2.0: same tag, new digest.
    let second = seeder
        .push_image(IMAGE, "1.2.0", "2024-06-01T00:00:00Z")
        .await;
    assert_ne!(first, second);
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        show(&bare, "apps/a.yaml"),
        deployment(&host, &format!("1.2.0@{second}"), "")
    );
    assert!(
        git_bare(&bare, &["log", "-1", "--format=%B", "main"]).contains(&format!(
            "Tagwatch-Bump: apps/a.yaml {host}/{IMAGE} 1.2.0@{first} -> 1.2.0@{second}"
        ))
    );
}

/// `group: image`: one commit per image, still one push for the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_image_makes_one_commit_per_image_and_one_push() {
    let root = tempfile::tempdir().unwrap();
    let (registry, bare, policies) = two_images(root.path()).await;
    let host = registry.host.clone();
    let before = count(&bare);
    let repository = format!(
        "  - name: local\n    url: {}\n    paths: [apps]\n    writeBack: {{ mode: push, group: image }}\n",
        file_url(&bare)
    );
    let config = write_config(root.path(), &registry, &repository, &policies);
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("local: 2 bump(s), 2 commit(s), 1 push(es)"));
    assert_eq!(count(&bare), before + 2);
    let subjects = git_bare(&bare, &["log", "-2", "--format=%s", "main"]);
    assert_eq!(
        subjects,
        format!(
            "chore(images): bump {host}/acme/web 2.0.0 → 2.1.0\nchore(images): bump {host}/{IMAGE} 1.0.0 → 1.2.0\n"
        )
    );
}

/// `writeBack.signing.sshKeyFile`: the commit on the remote carries a signature `git verify-commit`
/// accepts for the configured author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_signed_commit_is_verified_by_git() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        root.path(),
        "local",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let key = root.path().join("signing_ed25519");
    crate::support::sshd::keygen(&key, "tagwatch-signing");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = root.path().join("allowed_signers");
    std::fs::write(&allowed, format!("bot@example.com {public}")).unwrap();
    let repository = format!(
        "  - name: local\n    url: {}\n    paths: [apps]\n    writeBack:\n      mode: push\n      author: {{ name: tagwatch-bot, email: bot@example.com }}\n      signing: {{ sshKeyFile: {} }}\n",
        file_url(&bare),
        key.display()
    );
    let config = write_config(root.path(), &registry, &repository, &policy(&host, ""));
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let verify = Command::new("git")
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["-c", "safe.directory=*", "--git-dir"])
        .arg(&bare)
        .args(["verify-commit", "-v", "main"])
        .output()
        .unwrap();
    let report = text(&verify.stderr);
    assert!(verify.status.success(), "verify-commit failed: {report}");
    assert!(
        report.contains("Good \"git\" signature for bot@example.com"),
        "{report}"
    );
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
}

/// A signing block naming both kinds of key, or none, is a validation error at the field (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_config_must_name_exactly_one_key() {
    let registry = registry_with(&[]).await;
    let root = tempfile::tempdir().unwrap();
    let repositories = [
        "  - name: both\n    url: file:///nowhere.git\n    writeBack: { signing: { sshKeyFile: k, gpgKeyId: ABC } }\n",
        "  - name: none\n    url: file:///nowhere.git\n    writeBack: { signing: { gnupgHome: g } }\n",
    ]
    .concat();
    let config = write_config(
        root.path(),
        &registry,
        &repositories,
        &policy(&registry.host, ""),
    );
    let output = tagwatch(&config, &["validate"], &[]);
    let stderr = text(&output.stdout) + &text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("repositories[0].writeBack.signing: choose one: sshKeyFile or gpgKeyId"),
        "{stderr}"
    );
    assert!(
        stderr.contains("repositories[1].writeBack.signing: missing: sshKeyFile or gpgKeyId"),
        "{stderr}"
    );
}

/// Someone always pushes first: tagwatch gives up after `MAX_PUSH_ATTEMPTS` rejected pushes with a
/// clear error, never forces, and every human commit stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_contention_gives_up_after_bounded_attempts_without_forcing() {
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
    let pushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook = {
        let (pushes, bare) = (pushes.clone(), bare.clone());
        Arc::new(move |_: &str| {
            let n = pushes.fetch_add(1, Ordering::SeqCst);
            human_commit(
                &bare,
                "main",
                "README.md",
                &format!("edit {n}\n"),
                &format!("edit {n}"),
            );
        })
    };
    let before = count(&bare);
    let outcomes = reconciler(&config, &[])
        .with_before_push(hook)
        .run_all(chrono::Utc::now())
        .await;
    let error = outcomes[0].applied.as_ref().unwrap().as_ref().unwrap_err();
    assert_eq!(error.repository, "local");
    assert_eq!(
        error.error.to_string(),
        format!(
            "the push was rejected {} times (others keep pushing first)",
            tagwatch::reconcile::MAX_PUSH_ATTEMPTS
        )
    );
    assert_eq!(
        pushes.load(Ordering::SeqCst),
        tagwatch::reconcile::MAX_PUSH_ATTEMPTS
    );
    assert_eq!(
        count(&bare),
        before + tagwatch::reconcile::MAX_PUSH_ATTEMPTS
    );
    assert_eq!(
        git_bare(&bare, &["log", "-1", "--format=%s", "main"]).trim(),
        format!("edit {}", tagwatch::reconcile::MAX_PUSH_ATTEMPTS - 1)
    );
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.0.0", ""));
}

/// Two config entries on one remote and branch (different paths) share the cache clone: they run one
/// after the other, and both land, while other repositories run beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_sharing_a_remote_run_in_turn_and_both_land() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let shared = bare_repo(
        root.path(),
        "shared",
        &[
            ("apps/a.yaml", deployment(&host, "1.0.0", "")),
            ("other/b.yaml", deployment(&host, "1.0.0", "")),
        ],
    );
    let alone = bare_repo(
        root.path(),
        "alone",
        &[("apps/a.yaml", deployment(&host, "1.0.0", ""))],
    );
    let before = count(&shared);
    let repositories = [
        push_repository("apps", &file_url(&shared), ""),
        push_repository("alone", &file_url(&alone), ""),
        format!(
            "  - name: other\n    url: {}\n    paths: [other]\n    writeBack: {{ mode: push }}\n",
            file_url(&shared)
        ),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let output = tagwatch(&config, &["run", "--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summaries: Vec<String> = text(&output.stdout)
        .lines()
        .filter(|line| line.contains("push(es)"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        summaries,
        [
            "apps: 1 bump(s), 1 commit(s), 1 push(es)",
            "alone: 1 bump(s), 1 commit(s), 1 push(es)",
            "other: 1 bump(s), 1 commit(s), 1 push(es)",
        ],
        "results in config order"
    );
    assert_eq!(count(&shared), before + 2);
    assert_eq!(show(&shared, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
    assert_eq!(
        show(&shared, "other/b.yaml"),
        deployment(&host, "1.2.0", "")
    );
}

/// `kill -9` while the push is in flight (the server's pre-receive hook holds it), and the server then
/// accepts it anyway: the next run finds the commit on the remote and adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_push_then_run_again_adds_no_duplicate() {
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
    let config = write_config(
        root.path(),
        &registry,
        &push_repository(
            "hooked",
            &server.url("hooked"),
            "    auth: { username: bot, passwordEnv: GIT_PASSWORD }\n",
        ),
        &policy(&host, ""),
    );
    let before = count(&bare);
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagwatch"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--once"])
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PASSWORD", "hook-Pa55")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the push never reached the hook"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&block).unwrap();
    while count(&bare) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never took the push"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(&bare), before + 1);
    std::fs::remove_file(&hook).unwrap();

    let output = tagwatch(
        &config,
        &["run", "--once"],
        &[("GIT_PASSWORD", "hook-Pa55")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "hooked: 0 bump(s), 0 commit(s), 0 push(es)\n"
    );
    assert_eq!(count(&bare), before + 1, "a duplicate commit");
    assert_eq!(show(&bare, "apps/a.yaml"), deployment(&host, "1.2.0", ""));
}

/// An HTTPS remote signed by a private CA: trusted with `caFile`, a clear certificate error without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_remote_with_a_private_ca_needs_its_ca_file() {
    let registry = registry_with(&["1.0.0", "1.2.0"]).await;
    let host = registry.host.clone();
    let root = tempfile::tempdir().unwrap();
    let server = GitHttpServer::start_tls("bot", "tls-Pa55");
    let trusted = server.create_repo("trusted");
    let untrusted = server.create_repo("untrusted");
    for bare in [&trusted, &untrusted] {
        add_files(bare, &[("apps/a.yaml", deployment(&host, "1.0.0", ""))]);
    }
    let auth = "    auth: { username: bot, passwordEnv: GIT_PASSWORD }\n";
    let repositories = [
        push_repository(
            "trusted",
            &server.url("trusted"),
            &format!("{auth}    caFile: {}\n", server.ca_file().display()),
        ),
        push_repository("untrusted", &server.url("untrusted"), auth),
    ]
    .concat();
    let config = write_config(root.path(), &registry, &repositories, &policy(&host, ""));
    let output = tagwatch(&config, &["run", "--once"], &[("GIT_PASSWORD", "tls-Pa55")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        show(&trusted, "apps/a.yaml"),
        deployment(&host, "1.2.0", "")
    );
    assert_eq!(
        show(&untrusted, "apps/a.yaml"),
        deployment(&host, "1.0.0", "")
    );
    let line = stderr
        .lines()
        .find(|line| line.contains("repository untrusted"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("certificate"), "{line}");
}
