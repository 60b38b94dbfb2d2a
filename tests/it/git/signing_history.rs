//! Signed commits checked by `git verify-commit`, and the history access rollback detection needs.

use super::*;

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
