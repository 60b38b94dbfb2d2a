//! Write-back mechanics: commit, push and its rejection, recovery from killed runs and broken caches,
//! pull-request head branches, shallow fetches.

use super::*;

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
    assert_eq!(commit_count(&bare), 5);

    // The rejected-push loop works on a shallow clone too.
    commit_bump(&workspace, "4.1.0", &Signing::None);
    let human = human_commit(&bare, "main", "README.md", "late\n", "docs");
    assert!(matches!(
        workspace.push().unwrap(),
        PushOutcome::Rejected { .. }
    ));
    assert_eq!(workspace.refresh().unwrap().to_string(), human);
    let commit = bump_and_push(&workspace, "4.1.0");
    assert_eq!(remote_head(&bare), commit);
    git_bare(&bare, &["fsck", "--no-progress"]);
    assert_eq!(commit_count(&bare), 7);
}
