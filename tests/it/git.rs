//! The git adapter against real remotes: `file://`, smart HTTP (lighttpd + git http-backend, Basic auth,
//! token, TLS with a private CA) and SSH (a private sshd with known_hosts). Every outcome is checked
//! with the real `git` CLI on the remote's bare repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tagwatch::git::{
    CommitIdentity, ErrorClass, GitAuth, GitError, PushOutcome, RemoteSettings, Signing, Workspace,
};
use tagwatch::secret::Secret;

use crate::support::git_http::{
    GitHttpServer, SEED_CONTENT, SEED_FILE, git_bare, human_commit, seed_bare_repo,
};
use crate::support::sshd::{SshServer, keygen};

const PASSWORD: &str = "s3cret-Pa55word-for-tests";
const TOKEN: &str = "tok_7f3c9a1d2b8e4f60a5c3";

fn identity() -> CommitIdentity {
    CommitIdentity::new("tagwatch", "tagwatch@localhost")
}

/// A bare repo on disk and its `file://` URL.
fn local_remote(root: &Path) -> (PathBuf, String) {
    let bare = root.join("remote.git");
    seed_bare_repo(&bare);
    let url = format!("file://{}", bare.display());
    (bare, url)
}

/// A seeded `file://` remote under `root` and a workspace on its `main`.
fn local_workspace(root: &Path) -> (PathBuf, Workspace) {
    let (bare, url) = local_remote(root);
    let workspace =
        Workspace::prepare(&root.join("cache"), &RemoteSettings::new(url, "main")).unwrap();
    (bare, workspace)
}

/// Rewrites the seed file's tag in the work tree (what `manifest` will do).
fn bump(workspace: &Workspace, to: &str) {
    let path = workspace.workdir().join(SEED_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("repo-0001:").unwrap() + "repo-0001:".len();
    let end = start + text[start..].find(' ').unwrap();
    std::fs::write(&path, format!("{}{to}{}", &text[..start], &text[end..])).unwrap();
}

/// The `config` repository of `server` with Basic auth `git` / [`PASSWORD`].
fn basic_settings(server: &GitHttpServer) -> RemoteSettings {
    RemoteSettings::new(server.url("config"), "main").with_auth(GitAuth::Basic {
        username: "git".to_string(),
        password: Secret::new(PASSWORD),
    })
}

fn token_settings(server: &GitHttpServer, token: &str) -> RemoteSettings {
    RemoteSettings::new(server.url("config"), "main").with_auth(GitAuth::Token {
        token: Secret::new(token),
    })
}

fn message(to: &str) -> String {
    format!("chore(images): bump app to {to}\n\nTagwatch-Policy: seed-semver\nTagwatch-Tag: {to}\n")
}

/// Bumps the seed file to `to` and commits it (not pushed).
fn commit_bump(workspace: &Workspace, to: &str, signing: &Signing) -> tagwatch::git::Oid {
    bump(workspace, to);
    workspace
        .commit_files(&[SEED_FILE], &identity(), &message(to), signing)
        .unwrap()
        .expect("the bump changes the tree")
}

/// Commits a signed bump, pushes it, and runs `git verify-commit` on the remote with `git_options`
/// and `gnupg_home`; returns verify-commit's report.
fn push_signed_and_verify(
    workspace: &Workspace,
    bare: &Path,
    signing: &Signing,
    git_options: &[String],
    gnupg_home: Option<&Path>,
) -> String {
    let commit = commit_bump(workspace, "1.1.0", signing);
    assert_eq!(workspace.push().unwrap(), PushOutcome::Pushed);
    let mut verify = Command::new("git");
    if let Some(home) = gnupg_home {
        verify.env("GNUPGHOME", home);
    }
    for option in git_options {
        verify.arg("-c").arg(option);
    }
    let verify = verify
        .args(["-c", "safe.directory=*", "--git-dir"])
        .arg(bare)
        .args(["verify-commit", "-v", &commit.to_string()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success(), "verify-commit failed: {report}");
    report
}

/// Commits and pushes one bump; returns the commit id.
fn bump_and_push(workspace: &Workspace, to: &str) -> String {
    let commit = commit_bump(workspace, to, &Signing::None);
    assert_eq!(workspace.push().unwrap(), PushOutcome::Pushed);
    commit.to_string()
}

fn remote_head(bare: &Path) -> String {
    git_bare(bare, &["rev-parse", "refs/heads/main"])
        .trim()
        .to_string()
}

fn commit_count(bare: &Path) -> usize {
    git_bare(bare, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .unwrap()
}

fn remote_file(bare: &Path, path: &str) -> String {
    git_bare(bare, &["show", &format!("main:{path}")])
}

#[test]
fn file_remote_round_trip_commits_with_identity_and_reuses_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let (bare, url) = local_remote(root.path());
    let settings = RemoteSettings::new(url, "main");

    let workspace = Workspace::prepare(&cache, &settings).unwrap();
    assert_eq!(workspace.head().unwrap().to_string(), remote_head(&bare));
    assert_eq!(
        std::fs::read_to_string(workspace.workdir().join(SEED_FILE)).unwrap(),
        SEED_CONTENT
    );
    let commit = bump_and_push(&workspace, "1.0.1");

    assert_eq!(remote_head(&bare), commit);
    assert_eq!(
        remote_file(&bare, SEED_FILE),
        SEED_CONTENT.replace("repo-0001:1.0.0", "repo-0001:1.0.1")
    );
    let author = git_bare(
        &bare,
        &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", "main"],
    );
    assert!(author.starts_with("tagwatch <tagwatch@localhost>|tagwatch <tagwatch@localhost>|"));
    assert!(author.contains("Tagwatch-Policy: seed-semver"));
    let workdir = workspace.workdir().to_path_buf();
    let busy = Workspace::prepare(&cache, &settings).unwrap_err();
    assert!(
        matches!(busy, GitError::CacheBusy { .. }),
        "one workspace per cache directory at a time: {busy:?}"
    );
    assert_eq!(busy.class(), ErrorClass::Transient);
    drop(workspace);

    let again = Workspace::prepare(&cache, &settings).unwrap();
    assert_eq!(again.workdir(), workdir, "the cache clone is reused");
    assert_eq!(again.head().unwrap().to_string(), commit);
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(
        entries.len(),
        2,
        "one cache directory per remote and branch, plus its lock"
    );
}

#[test]
fn commit_without_changes_commits_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (bare, workspace) = local_workspace(root.path());
    let before = workspace.head().unwrap();
    let result = workspace
        .commit_files(&[SEED_FILE], &identity(), "nothing", &Signing::None)
        .unwrap();
    assert_eq!(result, None);
    assert_eq!(workspace.head().unwrap(), before);
    assert_eq!(commit_count(&bare), 1);
}

/// Prepares a workspace for `settings`, pushes a bump and checks it arrived in `bare`.
fn assert_round_trip(bare: &Path, settings: &RemoteSettings, to: &str) {
    let root = tempfile::tempdir().unwrap();
    let workspace = Workspace::prepare(root.path(), settings).unwrap();
    let commit = bump_and_push(&workspace, to);
    assert_eq!(remote_head(bare), commit);
}

#[test]
fn http_basic_auth_clone_commit_push() {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    assert_round_trip(&bare, &basic_settings(&server), "1.2.0");
}

#[test]
fn http_token_auth_pushes_as_x_access_token() {
    // The htpasswd file knows only `x-access-token`: a push that lands went through as that user.
    let server = GitHttpServer::start("x-access-token", TOKEN);
    let bare = server.create_repo("config");
    assert_round_trip(&bare, &token_settings(&server, TOKEN), "1.3.0");
}

#[test]
fn https_with_custom_ca_works_and_without_it_is_a_certificate_error() {
    let server = GitHttpServer::start_tls("git", PASSWORD);
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let untrusted = basic_settings(&server);
    let error = Workspace::prepare(&root.path().join("a"), &untrusted).unwrap_err();
    assert!(
        matches!(error, GitError::Certificate { .. }),
        "unexpected: {error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);

    let trusted = untrusted.with_ca_file(server.ca_file());
    let workspace = Workspace::prepare(&root.path().join("b"), &trusted).unwrap();
    let commit = bump_and_push(&workspace, "2.0.0");
    assert_eq!(remote_head(&bare), commit);
}

fn ssh_settings(
    server: &SshServer,
    bare: &Path,
    known_hosts: PathBuf,
    accept: bool,
) -> RemoteSettings {
    RemoteSettings::new(server.url(bare), "main").with_auth(GitAuth::Ssh {
        key_file: server.client_key(),
        known_hosts_file: Some(known_hosts),
        accept_unknown_hosts: accept,
    })
}

#[test]
fn ssh_with_known_hosts_clone_commit_push() {
    let server = SshServer::start();
    let bare = server.create_repo("config");
    let settings = ssh_settings(&server, &bare, server.known_hosts(), false);
    assert_round_trip(&bare, &settings, "3.0.0");
}

#[test]
fn ssh_unknown_or_changed_host_key_is_rejected() {
    let server = SshServer::start();
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();

    let unknown = Workspace::prepare(
        &root.path().join("a"),
        &ssh_settings(&server, &bare, empty.clone(), false),
    )
    .unwrap_err();
    match &unknown {
        GitError::HostKey { host, reason, .. } => {
            assert!(host.contains("127.0.0.1"), "{host}");
            assert!(reason.contains("not listed"), "{reason}");
        }
        other => panic!("expected a host key error, got {other:?}"),
    }
    assert_eq!(unknown.class(), ErrorClass::Permanent);

    let changed = Workspace::prepare(
        &root.path().join("b"),
        &ssh_settings(&server, &bare, server.wrong_known_hosts(), true),
    )
    .unwrap_err();
    match &changed {
        GitError::HostKey { reason, .. } => assert!(reason.contains("differs"), "{reason}"),
        other => panic!("a changed key is rejected even with acceptUnknownHosts: {other:?}"),
    }

    // Explicitly allowed: an unknown host is accepted.
    let accepted = Workspace::prepare(
        &root.path().join("c"),
        &ssh_settings(&server, &bare, empty, true),
    )
    .unwrap();
    assert_eq!(accepted.head().unwrap().to_string(), remote_head(&bare));
}

#[test]
fn wrong_password_is_an_authentication_error_that_hides_the_password() {
    let server = GitHttpServer::start("git", PASSWORD);
    server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let wrong = "wrong-Password-0f9e8d";
    let settings = RemoteSettings::new(server.url("config"), "main").with_auth(GitAuth::Basic {
        username: "git".to_string(),
        password: Secret::new(wrong),
    });
    let error = Workspace::prepare(root.path(), &settings).unwrap_err();
    assert!(
        matches!(error, GitError::Authentication { .. }),
        "unexpected: {error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("127.0.0.1"), "names the remote: {shown}");
    assert!(!shown.contains(wrong), "{shown}");

    // No credentials at all is the same kind of error, with its own explanation.
    let none = RemoteSettings::new(server.url("config"), "main");
    let error = Workspace::prepare(&root.path().join("none"), &none).unwrap_err();
    match error {
        GitError::Authentication { detail, .. } => assert!(detail.contains("none are configured")),
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn credentials_in_the_url_are_redacted_from_errors() {
    let server = GitHttpServer::start("git", PASSWORD);
    let root = tempfile::tempdir().unwrap();
    // The repository does not exist: the server answers 404 and libgit2 quotes the URL.
    let url = server
        .url("missing")
        .replace("://", &format!("://git:{PASSWORD}@"));
    let error = Workspace::prepare(root.path(), &RemoteSettings::new(url, "main")).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("***@127.0.0.1"), "{shown}");
}

#[test]
fn unreachable_remote_is_a_transient_error() {
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("key");
    keygen(&key, "unused");
    let http_port = crate::support::git_http::free_port();
    let ssh_port = crate::support::git_http::free_port();
    let http = RemoteSettings::new(
        format!("http://127.0.0.1:{http_port}/git/config.git"),
        "main",
    );
    let ssh = RemoteSettings::new(
        format!("ssh://git@127.0.0.1:{ssh_port}/srv/config.git"),
        "main",
    )
    .with_auth(GitAuth::Ssh {
        key_file: key,
        known_hosts_file: None,
        accept_unknown_hosts: false,
    });
    for (settings, port) in [(http, http_port), (ssh, ssh_port)] {
        let error = Workspace::prepare(root.path(), &settings).unwrap_err();
        assert!(
            matches!(error, GitError::Unreachable { .. }),
            "unexpected: {error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Transient);
        assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
    }
}

#[test]
fn missing_repository_is_named_on_every_transport() {
    let root = tempfile::tempdir().unwrap();
    let http = GitHttpServer::start("git", PASSWORD);
    let ssh = SshServer::start();
    let ssh_missing = ssh_settings(
        &ssh,
        &root.path().join("absent.git"),
        ssh.known_hosts(),
        false,
    );
    let cases = [
        RemoteSettings::new(
            format!("file://{}/absent.git", root.path().display()),
            "main",
        ),
        RemoteSettings {
            url: http.url("absent"),
            ..basic_settings(&http)
        },
        ssh_missing,
    ];
    for (n, settings) in cases.iter().enumerate() {
        let error = Workspace::prepare(&root.path().join(n.to_string()), settings).unwrap_err();
        assert!(
            matches!(error, GitError::MissingRepository { .. }),
            "{}: unexpected {error:?}",
            settings.url
        );
        assert_eq!(error.class(), ErrorClass::Permanent);
    }
}

#[test]
fn ssh_key_problems_are_authentication_errors() {
    let server = SshServer::start();
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let stranger = root.path().join("stranger");
    keygen(&stranger, "not-authorized");
    let missing = root.path().join("no-such-key");
    for (n, key_file) in [stranger, missing].into_iter().enumerate() {
        let settings = RemoteSettings::new(server.url(&bare), "main").with_auth(GitAuth::Ssh {
            key_file,
            known_hosts_file: Some(server.known_hosts()),
            accept_unknown_hosts: false,
        });
        let error = Workspace::prepare(&root.path().join(n.to_string()), &settings).unwrap_err();
        assert!(
            matches!(error, GitError::Authentication { .. }),
            "unexpected: {error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Permanent);
    }
}

#[test]
fn a_push_refused_by_the_server_is_not_reported_as_rejected() {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let workspace = Workspace::prepare(root.path(), &basic_settings(&server)).unwrap();
    commit_bump(&workspace, "1.0.1", &Signing::None);
    let before = remote_head(&bare);
    match workspace.push() {
        Err(GitError::PushRefused { branch, reason, .. }) => {
            assert_eq!(branch, "main");
            assert!(reason.contains("declined"), "{reason}");
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(remote_head(&bare), before);
}

#[test]
fn a_broken_cache_directory_is_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let (bare, workspace) = local_workspace(root.path());
    let workdir = workspace.workdir().to_path_buf();
    let settings = workspace.settings().clone();
    drop(workspace);
    // A clone killed half-way: the directory exists but is no repository.
    std::fs::remove_dir_all(workdir.join(".git")).unwrap();
    std::fs::write(workdir.join("leftover"), "x").unwrap();

    let workspace = Workspace::prepare(&root.path().join("cache"), &settings).unwrap();
    assert_eq!(workspace.workdir(), workdir);
    assert_eq!(workspace.head().unwrap().to_string(), remote_head(&bare));
    assert!(!workdir.join("leftover").exists());
}

#[test]
fn missing_branch_and_missing_path_are_named() {
    let root = tempfile::tempdir().unwrap();
    let (_bare, url) = local_remote(root.path());
    let error = Workspace::prepare(
        &root.path().join("cache"),
        &RemoteSettings::new(url.clone(), "production"),
    )
    .unwrap_err();
    match &error {
        GitError::MissingBranch { branch, .. } => assert_eq!(branch, "production"),
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!("branch `production` does not exist on {url}")
    );

    let workspace = Workspace::prepare(
        &root.path().join("cache"),
        &RemoteSettings::new(url, "main"),
    )
    .unwrap();
    workspace.check_paths(&["clusters/prod"]).unwrap();
    match workspace.check_paths(&["clusters/prod", "clusters/staging"]) {
        Err(GitError::MissingPath { path, branch, .. }) => {
            assert_eq!(path, "clusters/staging");
            assert_eq!(branch, "main");
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert!(matches!(
        workspace.check_paths(&["../outside"]),
        Err(GitError::PathOutsideRepository { .. })
    ));
}

#[test]
fn rejected_push_is_reported_then_refresh_and_recommit_keeps_the_human_commit() {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server);
    let workspace = Workspace::prepare(root.path(), &settings).unwrap();
    commit_bump(&workspace, "1.0.1", &Signing::None);

    // Someone else pushes first.
    let human = human_commit(
        &bare,
        "main",
        "README.md",
        "# edited by a human\n",
        "docs: edit",
    );
    match workspace.push().unwrap() {
        PushOutcome::Rejected { reason } => assert!(!reason.is_empty()),
        PushOutcome::Pushed => panic!("a non-fast-forward push must be rejected"),
    }
    assert_eq!(remote_head(&bare), human, "the remote is unchanged");

    // Reconcile's loop: fetch, reset, re-plan, commit again, push.
    let head = workspace.refresh().unwrap();
    assert_eq!(head.to_string(), human);
    assert_eq!(
        std::fs::read_to_string(workspace.workdir().join("README.md")).unwrap(),
        "# edited by a human\n"
    );
    let commit = bump_and_push(&workspace, "1.0.1");
    assert_eq!(remote_head(&bare), commit);
    let parents = git_bare(&bare, &["rev-list", "--parents", "-n1", "main"]);
    assert!(
        parents.contains(&human),
        "the human's commit is the parent: {parents}"
    );
    assert_eq!(commit_count(&bare), 3);
}

#[test]
fn an_unpushed_commit_from_a_killed_run_is_discarded_on_prepare() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let (bare, url) = local_remote(root.path());
    let settings = RemoteSettings::new(url, "main");
    let before = remote_head(&bare);

    let workspace = Workspace::prepare(&cache, &settings).unwrap();
    let orphan = commit_bump(&workspace, "9.9.9", &Signing::None);
    // The process dies between commit and push, leaving the commit, a dirty file and a lock.
    std::fs::write(workspace.workdir().join("stray.txt"), "half-written").unwrap();
    let git_dir = workspace.workdir().join(".git");
    drop(workspace);
    std::fs::write(git_dir.join("index.lock"), "").unwrap();

    let workspace = Workspace::prepare(&cache, &settings).unwrap();
    assert_eq!(workspace.head().unwrap().to_string(), before);
    assert_ne!(workspace.head().unwrap(), orphan);
    assert!(!workspace.workdir().join("stray.txt").exists());
    assert_eq!(
        std::fs::read_to_string(workspace.workdir().join(SEED_FILE)).unwrap(),
        SEED_CONTENT
    );
    assert_eq!(remote_head(&bare), before, "nothing was pushed");

    // The next cycle re-plans and pushes exactly one commit.
    bump_and_push(&workspace, "9.9.9");
    assert_eq!(commit_count(&bare), 2);
}

#[test]
fn ssh_signed_commit_is_verified_by_git() {
    let root = tempfile::tempdir().unwrap();
    let (bare, workspace) = local_workspace(root.path());
    let key = root.path().join("signing_ed25519");
    keygen(&key, "tagwatch-signing");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = root.path().join("allowed_signers");
    std::fs::write(&allowed, format!("tagwatch@localhost {public}")).unwrap();

    let options = [
        "gpg.format=ssh".to_string(),
        format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
    ];
    let signing = Signing::Ssh { key_file: key };
    let stderr = push_signed_and_verify(&workspace, &bare, &signing, &options, None);
    assert!(
        stderr.contains("Good \"git\" signature for tagwatch@localhost"),
        "{stderr}"
    );
}

#[test]
fn gpg_signed_commit_is_verified_by_git() {
    let root = tempfile::tempdir().unwrap();
    let (bare, workspace) = local_workspace(root.path());
    let gnupg = GnupgHome::new();
    let generate = Command::new("gpg")
        .env("GNUPGHOME", gnupg.path())
        .args(["--batch", "--passphrase", "", "--quick-gen-key"])
        .args(["tagwatch <tagwatch@localhost>", "ed25519", "sign", "never"])
        .output()
        .unwrap();
    assert!(
        generate.status.success(),
        "{}",
        String::from_utf8_lossy(&generate.stderr)
    );

    let signing = Signing::Gpg {
        key_id: "tagwatch@localhost".to_string(),
        gnupg_home: Some(gnupg.path().to_path_buf()),
    };
    let stderr = push_signed_and_verify(&workspace, &bare, &signing, &[], Some(gnupg.path()));
    assert!(
        stderr.contains("Good signature from \"tagwatch <tagwatch@localhost>\""),
        "{stderr}"
    );
}

/// A throw-away `GNUPGHOME` whose gpg-agent is stopped on drop, also when the test fails.
struct GnupgHome(tempfile::TempDir);

impl GnupgHome {
    fn new() -> Self {
        // gpg-agent's socket path must stay short: a temp dir directly under /tmp.
        let directory = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(
            directory.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        GnupgHome(directory)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        // Only the agent of this GNUPGHOME.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

#[test]
fn a_signing_failure_is_an_error_and_commits_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (_bare, workspace) = local_workspace(root.path());
    let before = workspace.head().unwrap();
    bump(&workspace, "1.5.0");
    let signing = Signing::Ssh {
        key_file: root.path().join("no-such-key"),
    };
    let error = workspace
        .commit_files(&[SEED_FILE], &identity(), &message("1.5.0"), &signing)
        .unwrap_err();
    match &error {
        GitError::Signing { program, detail } => {
            assert_eq!(program, "ssh-keygen");
            assert!(!detail.is_empty());
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(
        workspace.head().unwrap(),
        before,
        "no unsigned commit slipped in"
    );
}

#[test]
fn head_branch_is_force_pushed_but_the_base_branch_never_is() {
    let root = tempfile::tempdir().unwrap();
    let (bare, workspace) = local_workspace(root.path());
    let base = remote_head(&bare);
    let head_branch = "tagwatch/repository";

    // First cycle: the head branch is created from the base and pushed.
    assert_eq!(workspace.fetch_branch(head_branch).unwrap(), None);
    workspace.start_branch(head_branch).unwrap();
    let first = commit_bump(&workspace, "2.0.0", &Signing::None);
    workspace
        .force_push_branch(head_branch, head_branch)
        .unwrap();
    assert_eq!(
        git_bare(&bare, &["rev-parse", &format!("refs/heads/{head_branch}")]).trim(),
        first.to_string()
    );

    // Next cycle, a newer tag: rebuilt from the base (not on top of the old one) and force-pushed.
    assert_eq!(workspace.fetch_branch(head_branch).unwrap(), Some(first));
    workspace.start_branch(head_branch).unwrap();
    let second = commit_bump(&workspace, "2.1.0", &Signing::None);
    workspace
        .force_push_branch(head_branch, head_branch)
        .unwrap();
    let pushed = git_bare(&bare, &["rev-list", "--parents", "-n1", head_branch]);
    // A third cycle with the same bump rebuilds an identical tree: nothing to force-push.
    let remote = workspace.fetch_branch(head_branch).unwrap().unwrap();
    workspace.start_branch(head_branch).unwrap();
    let third = commit_bump(&workspace, "2.1.0", &Signing::None);
    assert!(workspace.same_tree(third, remote).unwrap());
    assert!(!workspace.same_tree(third, first).unwrap());
    assert!(pushed.starts_with(&second.to_string()), "{pushed}");
    assert!(
        pushed.trim_end().ends_with(&base),
        "parent is the base: {pushed}"
    );

    // The base is protected.
    let refused = workspace
        .force_push_branch(head_branch, "main")
        .unwrap_err();
    assert!(
        matches!(refused, GitError::ProtectedBranch { .. }),
        "{refused:?}"
    );
    assert!(matches!(
        workspace.start_branch("main"),
        Err(GitError::ProtectedBranch { .. })
    ));
    assert_eq!(remote_head(&bare), base, "the base never moved");
}

#[test]
fn history_tells_tagwatch_commits_from_a_human_revert() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let (bare, url) = local_remote(root.path());
    let settings = RemoteSettings::new(url, "main");
    let workspace = Workspace::prepare(&cache, &settings).unwrap();
    let seed = workspace.head().unwrap();
    let ours = bump_and_push(&workspace, "1.0.1");
    let revert = human_commit(
        &bare,
        "main",
        SEED_FILE,
        SEED_CONTENT,
        "Revert app to 1.0.0\n\nbroke checkout",
    );
    human_commit(&bare, "main", "README.md", "unrelated\n", "docs");
    let head = workspace.refresh().unwrap();

    let history = workspace
        .file_history(Path::new(SEED_FILE), Some(seed), 100)
        .unwrap();
    assert!(history.complete);
    let ids: Vec<String> = history.commits.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(
        ids,
        vec![revert.clone(), ours.clone()],
        "newest first, README commit left out"
    );
    let (human, tagwatch) = (&history.commits[0], &history.commits[1]);
    assert_eq!(human.author.email, "human@example.com");
    assert_eq!(human.trailer("Tagwatch-Policy"), None);
    assert_eq!(tagwatch.author.name, "tagwatch");
    assert_eq!(tagwatch.trailer("tagwatch-policy"), Some("seed-semver"));
    assert_eq!(tagwatch.trailer("Tagwatch-Tag"), Some("1.0.1"));

    let before_revert = workspace
        .file_at(tagwatch.id, Path::new(SEED_FILE))
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8(before_revert)
            .unwrap()
            .contains(":1.0.1 ")
    );
    assert_eq!(
        workspace
            .file_at(head, Path::new(SEED_FILE))
            .unwrap()
            .unwrap(),
        SEED_CONTENT.as_bytes()
    );
    assert_eq!(
        workspace.file_at(head, Path::new("absent.yaml")).unwrap(),
        None
    );

    let limited = workspace
        .file_history(Path::new(SEED_FILE), None, 1)
        .unwrap();
    assert_eq!(limited.commits.len(), 1);
    assert!(!limited.complete, "the limit cut the walk short");
}

#[test]
fn shallow_fetch_over_http_still_commits_and_pushes() {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    for n in 0..3 {
        human_commit(&bare, "main", "README.md", &format!("{n}\n"), "docs");
    }
    let root = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server).with_depth(1);
    let workspace = Workspace::prepare(root.path(), &settings).unwrap();
    let shallow_file = workspace.workdir().join(".git/shallow");
    assert!(shallow_file.exists(), "fetched shallow");
    let history = workspace
        .file_history(Path::new("README.md"), None, 100)
        .unwrap();
    assert!(
        !history.complete,
        "history beyond the shallow edge is unknown"
    );

    let commit = bump_and_push(&workspace, "4.0.0");
    assert_eq!(remote_head(&bare), commit);
    git_bare(&bare, &["fsck", "--no-progress"]);
    assert_eq!(commit_count(&bare), 5);
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn credentials_never_appear_in_logs_or_errors() {
    let server = GitHttpServer::start("x-access-token", TOKEN);
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // tracing-core caches per callsite whether anyone listens. With a single scoped subscriber alive it
    // asks only the *registering thread's* default, so a parallel test thread can mark the library's
    // callsites "never" for everyone. A second live dispatcher makes it consult every one of them.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let mut shown = String::new();
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        let good = token_settings(&server, TOKEN);
        shown.push_str(&format!("{good:?}"));
        let workspace = Workspace::prepare(&root.path().join("a"), &good).unwrap();
        shown.push_str(&format!("{workspace:?}"));
        bump_and_push(&workspace, "5.0.0");
        tracing::debug!(settings = ?good, "settings as logged by a caller");

        let bad = token_settings(&server, &format!("{TOKEN}-expired"));
        let error = Workspace::prepare(&root.path().join("b"), &bad).unwrap_err();
        shown.push_str(&format!("{error} {error:?}"));
        tracing::error!(error = %error, "write-back failed");
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("pushed"), "the capture saw the push: {logs}");
    assert!(logs.contains("[redacted]"), "{logs}");
    assert!(!logs.contains(TOKEN), "token in logs: {logs}");
    assert!(!shown.contains(TOKEN), "token in errors or Debug: {shown}");
    assert!(shown.contains("authentication"), "{shown}");
    assert_eq!(commit_count(&bare), 2);
    // And no commit message or file carries it either.
    assert!(!git_bare(&bare, &["log", "-p", "main"]).contains(TOKEN));
}
