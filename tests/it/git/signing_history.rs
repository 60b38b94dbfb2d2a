//! Signed commits checked by `git verify-commit`, and the history access rollback detection needs.

use super::*;

/// Commits a signed bump on `head`, pushes it, and runs `git verify-commit` on the remote with
/// `git_options` and `gnupg_home`; returns verify-commit's report.
fn push_signed_and_verify(
    (store, head): (&Store, Oid),
    bare: &Path,
    signing: &Signing,
    git_options: &[String],
    gnupg_home: Option<&Path>,
) -> String {
    let commit = commit_bump(store, head, "1.1.0", signing);
    assert_eq!(store.push(commit).unwrap(), PushOutcome::Pushed);
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
    let (bare, store, head) = local_store(root.path());
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
    let stderr = push_signed_and_verify((&store, head), &bare, &signing, &options, None);
    assert!(
        stderr.contains("Good \"git\" signature for tagwatch@localhost"),
        "{stderr}"
    );
}

#[test]
fn gpg_signed_commit_is_verified_by_git() {
    let root = tempfile::tempdir().unwrap();
    let (bare, store, head) = local_store(root.path());
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
    let stderr = push_signed_and_verify((&store, head), &bare, &signing, &[], Some(gnupg.path()));
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
    let (bare, store, head) = local_store(root.path());
    let objects = |kind: &str| {
        git_bare(
            store.directory(),
            &[
                "cat-file",
                "--batch-all-objects",
                "--batch-check=%(objecttype)",
            ],
        )
        .lines()
        .filter(|line| *line == kind)
        .count()
    };
    let commits_before = objects("commit");
    let signing = Signing::Ssh {
        key_file: root.path().join("no-such-key"),
    };
    let changes = [(SEED_FILE.to_string(), bumped(&store, head, "1.5.0"))];
    let error = store
        .commit(head, &changes, &identity(), &message("1.5.0"), &signing)
        .unwrap_err();
    match &error {
        GitError::Signing { program, detail } => {
            assert_eq!(program, "ssh-keygen");
            assert!(!detail.is_empty());
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(
        objects("commit"),
        commits_before,
        "no unsigned commit slipped in"
    );
    assert_eq!(commit_count(&bare), 1);
}

#[test]
fn history_tells_tagwatch_commits_from_a_human_revert() {
    let root = tempfile::tempdir().unwrap();
    let (bare, store, seed) = local_store(root.path());
    let ours = bump_and_push(&store, seed, "1.0.1");
    let revert = human_commit(
        &bare,
        "main",
        SEED_FILE,
        SEED_CONTENT,
        "Revert app to 1.0.0\n\nbroke checkout",
    );
    let docs = human_commit(&bare, "main", "README.md", "unrelated\n", "docs");
    let head = store.fetch("main").unwrap().unwrap();

    let history = store
        .file_history(head, SEED_FILE, Some(seed), 100)
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
    assert_eq!(store.commit_info(tagwatch.id).unwrap(), *tagwatch);

    let before_revert = store
        .file_at(tagwatch.id, SEED_FILE, MAX_BYTES)
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8(before_revert)
            .unwrap()
            .contains(":1.0.1 ")
    );
    assert_eq!(
        store.file_at(head, SEED_FILE, MAX_BYTES).unwrap().unwrap(),
        SEED_CONTENT.as_bytes()
    );
    assert_eq!(store.file_at(head, "absent.yaml", MAX_BYTES).unwrap(), None);
    assert_eq!(store.file_at(head, "clusters", MAX_BYTES).unwrap(), None);

    let limited = store.file_history(head, SEED_FILE, None, 1).unwrap();
    assert_eq!(limited.commits.len(), 1);
    assert!(!limited.complete, "the limit cut the walk short");

    // Every commit, newest first, in one walk; the root was reached only when nothing was cut off.
    let (recent, reached_root) = store.recent_commits(head, 100).unwrap();
    let ids: Vec<String> = recent.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, vec![docs, revert, ours, seed.to_string()]);
    assert!(reached_root);
    let (recent, reached_root) = store.recent_commits(head, 2).unwrap();
    assert_eq!(recent.len(), 2);
    assert!(!reached_root, "the limit cut the walk short");
    let (recent, reached_root) = store.recent_commits(head, 4).unwrap();
    assert_eq!(recent.len(), 4);
    assert!(reached_root, "exactly every commit");
}

/// The history walk reads the commits it returns and the few it must look at next, not the whole
/// history: a commit object older than that can be missing and the walk still answers. (libgit2's
/// sorted walk read every reachable commit on each call: as a daemon added commits, each reconcile read
/// more, and libgit2 kept what it unpacked.)
#[test]
fn the_history_walk_reads_only_the_newest_commits() {
    let root = tempfile::tempdir().unwrap();
    let (_bare, store, seed) = local_store(root.path());
    let mut chain = vec![seed];
    for n in 1..=30 {
        let parent = *chain.last().unwrap();
        chain.push(commit_bump(
            &store,
            parent,
            &format!("1.0.{n}"),
            &Signing::None,
        ));
    }
    let head = *chain.last().unwrap();
    let newest: Vec<Oid> = chain.iter().rev().take(10).copied().collect();

    // Commit 5 of the chain goes missing from the clone (its loose object file removed).
    let hex = chain[5].to_string();
    let object = store
        .directory()
        .join("objects")
        .join(&hex[..2])
        .join(&hex[2..]);
    std::fs::remove_file(&object).unwrap();

    let (recent, reached_root) = store.recent_commits(head, 10).unwrap();
    let ids: Vec<Oid> = recent.iter().map(|commit| commit.id).collect();
    assert_eq!(ids, newest, "the ten newest, newest first");
    assert!(!reached_root, "the limit cut the walk short");
    let walk_past_it = store.recent_commits(head, 100);
    assert!(
        walk_past_it.is_err(),
        "a walk reaching the missing commit fails: the files removed were the commit's"
    );
}
