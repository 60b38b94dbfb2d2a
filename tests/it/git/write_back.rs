//! Write-back mechanics: commit, push and its rejection, recovery from killed runs and broken caches,
//! pull-request head branches, shallow fetches.

use super::*;

#[test]
fn file_remote_round_trip_commits_with_identity_and_reuses_the_bare_cache() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let (bare, url) = local_remote(root.path());
    let settings = RemoteSettings::new(url, "main");

    let (store, head) = open_and_fetch(&cache, &settings).unwrap();
    assert_eq!(head.to_string(), remote_head(&bare));
    assert_eq!(
        store.file_at(head, SEED_FILE, MAX_BYTES).unwrap().unwrap(),
        SEED_CONTENT.as_bytes()
    );
    let commit = bump_and_push(&store, head, "1.0.1");

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

    // A bare clone under its own name: an old work-tree cache of the same remote never collides.
    let directory = store.directory().to_path_buf();
    assert!(
        directory.to_string_lossy().ends_with(".git"),
        "{directory:?}"
    );
    assert_eq!(
        git_bare(&directory, &["rev-parse", "--is-bare-repository"]).trim(),
        "true"
    );
    assert!(!directory.join(SEED_FILE).exists(), "no work tree");

    let busy = Store::open(&cache, &settings).unwrap_err();
    assert!(
        matches!(busy, GitError::CacheBusy { .. }),
        "one store per cache directory at a time: {busy:?}"
    );
    assert_eq!(busy.class(), ErrorClass::Transient);
    drop(store);

    let (again, head) = open_and_fetch(&cache, &settings).unwrap();
    assert_eq!(again.directory(), directory, "the cache clone is reused");
    assert_eq!(head.to_string(), commit);
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
    let (bare, store, head) = local_store(root.path());
    let same = [(SEED_FILE.to_string(), SEED_CONTENT.as_bytes().to_vec())];
    let result = store
        .commit(head, &same, &identity(), "nothing", &Signing::None)
        .unwrap();
    assert_eq!(result, None);
    let result = store
        .commit(head, &[], &identity(), "nothing", &Signing::None)
        .unwrap();
    assert_eq!(result, None);
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
    let (store, head) = open_and_fetch(root.path(), &basic_settings(&server)).unwrap();
    let commit = commit_bump(&store, head, "1.0.1", &Signing::None);
    let before = remote_head(&bare);
    match store.push(commit) {
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
    let (bare, store, _) = local_store(root.path());
    let directory = store.directory().to_path_buf();
    let settings = store.settings().clone();
    drop(store);
    // A clone killed half-way: the directory exists but is no repository.
    std::fs::remove_dir_all(directory.join("objects")).unwrap();
    std::fs::remove_file(directory.join("HEAD")).unwrap();
    std::fs::write(directory.join("leftover"), "x").unwrap();

    let (store, head) = open_and_fetch(&root.path().join("cache"), &settings).unwrap();
    assert_eq!(store.directory(), directory);
    assert_eq!(head.to_string(), remote_head(&bare));
    assert!(!directory.join("leftover").exists());
}

#[test]
fn missing_branch_and_missing_path_are_named() {
    let root = tempfile::tempdir().unwrap();
    let (_bare, url) = local_remote(root.path());
    let error = open_and_fetch(
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
    let invalid = Store::open(
        &root.path().join("cache"),
        &RemoteSettings::new(url.clone(), "no..branch"),
    )
    .unwrap_err();
    assert!(
        matches!(invalid, GitError::MissingBranch { .. }),
        "{invalid:?}"
    );

    let (store, head) = open_and_fetch(
        &root.path().join("cache"),
        &RemoteSettings::new(url, "main"),
    )
    .unwrap();
    let listing = store
        .list_files(head, &[PathBuf::from("clusters/prod")])
        .unwrap();
    assert_eq!(listing.files.len(), 1);
    match store.list_files(
        head,
        &[
            PathBuf::from("clusters/prod"),
            PathBuf::from("clusters/staging"),
        ],
    ) {
        Err(GitError::MissingPath { path, branch, .. }) => {
            assert_eq!(path, "clusters/staging");
            assert_eq!(branch, "main");
        }
        other => panic!("unexpected: {other:?}"),
    }
    // A file on the way is not a directory.
    assert!(matches!(
        store.list_files(head, &[PathBuf::from("README.md/x")]),
        Err(GitError::MissingPath { .. })
    ));
    for outside in ["../outside", "/etc", "clusters/../../x"] {
        assert!(
            matches!(
                store.list_files(head, &[PathBuf::from(outside)]),
                Err(GitError::PathOutsideRepository { .. })
            ),
            "{outside}"
        );
    }
}

#[test]
fn rejected_push_is_reported_then_refetch_and_recommit_keeps_the_human_commit() {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    let root = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server);
    let (store, head) = open_and_fetch(root.path(), &settings).unwrap();
    let ours = commit_bump(&store, head, "1.0.1", &Signing::None);

    // Someone else pushes first.
    let human = human_commit(
        &bare,
        "main",
        "README.md",
        "# edited by a human\n",
        "docs: edit",
    );
    match store.push(ours).unwrap() {
        PushOutcome::Rejected { reason } => assert!(!reason.is_empty()),
        PushOutcome::Pushed => panic!("a non-fast-forward push must be rejected"),
    }
    assert_eq!(remote_head(&bare), human, "the remote is unchanged");

    // Reconcile's loop: fetch, re-plan on the new head, commit again, push.
    let head = store.fetch("main").unwrap().unwrap();
    assert_eq!(head.to_string(), human);
    assert_eq!(
        store
            .file_at(head, "README.md", MAX_BYTES)
            .unwrap()
            .unwrap(),
        b"# edited by a human\n"
    );
    let commit = bump_and_push(&store, head, "1.0.1");
    assert_eq!(remote_head(&bare), commit);
    let parents = git_bare(&bare, &["rev-list", "--parents", "-n1", "main"]);
    assert!(
        parents.contains(&human),
        "the human's commit is the parent: {parents}"
    );
    assert_eq!(commit_count(&bare), 3);
}

#[test]
fn an_unpushed_commit_from_a_killed_run_never_reaches_the_remote() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let (bare, url) = local_remote(root.path());
    let settings = RemoteSettings::new(url, "main");
    let before = remote_head(&bare);

    let (store, head) = open_and_fetch(&cache, &settings).unwrap();
    let orphan = commit_bump(&store, head, "9.9.9", &Signing::None);
    // The process dies between commit and push, leaving the commit and lock files of ref updates.
    let directory = store.directory().to_path_buf();
    drop(store);
    for lock in [
        "config.lock",
        "packed-refs.lock",
        "refs/remotes/origin/main.lock",
    ] {
        std::fs::write(directory.join(lock), "").unwrap();
    }

    let (store, head) = open_and_fetch(&cache, &settings).unwrap();
    assert_eq!(head.to_string(), before);
    let refs = git_bare(
        &directory,
        &["for-each-ref", "--format=%(objectname) %(refname)"],
    );
    assert!(
        !refs.contains(&orphan.to_string()),
        "a commit moves no ref: {refs}"
    );
    assert_eq!(remote_head(&bare), before, "nothing was pushed");

    // The next cycle re-plans and pushes exactly one commit.
    bump_and_push(&store, head, "9.9.9");
    assert_eq!(commit_count(&bare), 2);
}

#[test]
fn head_branch_is_force_pushed_but_the_base_branch_never_is() {
    let root = tempfile::tempdir().unwrap();
    let (bare, store, base) = local_store(root.path());
    let head_branch = "tagwatch/repository";

    // First cycle: the head branch is built on the base and pushed.
    assert_eq!(store.fetch(head_branch).unwrap(), None);
    let first = commit_bump(&store, base, "2.0.0", &Signing::None);
    store.force_push(first, head_branch).unwrap();
    assert_eq!(
        git_bare(&bare, &["rev-parse", &format!("refs/heads/{head_branch}")]).trim(),
        first.to_string()
    );

    // Next cycle, a newer tag: rebuilt on the base (not on top of the old one) and force-pushed.
    assert_eq!(store.fetch(head_branch).unwrap(), Some(first));
    let second = commit_bump(&store, base, "2.1.0", &Signing::None);
    store.force_push(second, head_branch).unwrap();
    let pushed = git_bare(&bare, &["rev-list", "--parents", "-n1", head_branch]);
    assert!(pushed.starts_with(&second.to_string()), "{pushed}");
    assert!(
        pushed.trim_end().ends_with(&base.to_string()),
        "parent is the base: {pushed}"
    );
    // A third cycle with the same bump rebuilds an identical tree: nothing to force-push.
    let remote = store.fetch(head_branch).unwrap().unwrap();
    let third = commit_bump(&store, base, "2.1.0", &Signing::None);
    assert!(store.same_tree(third, remote).unwrap());
    assert!(!store.same_tree(third, first).unwrap());

    // The base is protected: never forced, and a plain push that is not a fast-forward is rejected.
    let refused = store.force_push(third, "main").unwrap_err();
    assert!(
        matches!(refused, GitError::ProtectedBranch { .. }),
        "{refused:?}"
    );
    human_commit(&bare, "main", "README.md", "moved\n", "docs");
    let moved = remote_head(&bare);
    assert!(matches!(
        store.push(third).unwrap(),
        PushOutcome::Rejected { .. }
    ));
    assert_eq!(remote_head(&bare), moved, "the base never moved");

    // The head branch deleted on the remote (its pull request merged) reads as missing, not stale.
    git_bare(&bare, &["branch", "-D", head_branch]);
    assert_eq!(store.fetch(head_branch).unwrap(), None);
    // No private push ref is left behind.
    let refs = git_bare(store.directory(), &["for-each-ref", "refs/tagwatch"]);
    assert_eq!(refs.trim(), "");
}

#[test]
fn shallow_fetch_over_http_still_commits_and_pushes() {
    let (server, bare) = http_remote_with_commits(3);
    let root = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server).with_depth(1);
    let (store, head) = open_and_fetch(root.path(), &settings).unwrap();
    assert!(
        store.directory().join("shallow").exists(),
        "fetched shallow"
    );
    let history = store.file_history(head, "README.md", None, 100).unwrap();
    assert!(
        !history.complete,
        "history beyond the shallow edge is unknown"
    );
    let (recent, reached_root) = store.recent_commits(head, 100).unwrap();
    assert_eq!(recent.len(), 1);
    assert!(!reached_root, "the walk stopped at the shallow edge");

    let commit = bump_and_push(&store, head, "4.0.0");
    assert_eq!(remote_head(&bare), commit);
    assert_eq!(commit_count(&bare), 5);

    // The rejected-push loop works on a shallow clone too.
    let late = commit_bump(&store, commit.parse().unwrap(), "4.1.0", &Signing::None);
    let human = human_commit(&bare, "main", "README.md", "late\n", "docs");
    assert!(matches!(
        store.push(late).unwrap(),
        PushOutcome::Rejected { .. }
    ));
    let head = store.fetch("main").unwrap().unwrap();
    assert_eq!(head.to_string(), human);
    let commit = bump_and_push(&store, head, "4.1.0");
    assert_eq!(remote_head(&bare), commit);
    git_bare(&bare, &["fsck", "--no-progress"]);
    assert_eq!(commit_count(&bare), 7);
}

/// A shallow clone's later fetches bring only what is new: with nothing new no pack is asked for,
/// and the shallow edge stays where the first fetch put it (a depth on every fetch would download up to
/// `depth` commits each time and move the edge).
#[test]
fn a_shallow_clone_fetches_only_what_is_new() {
    let (server, bare) = http_remote_with_commits(3);
    let root = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server).with_depth(2);
    let packs = "POST /git/config.git/git-upload-pack HTTP/1.1\" 200";
    let address = server
        .url("config")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // The pack requests in the access log after the `fetches`-th fetch. lighttpd writes its log in
    // batches, in the order requests completed: a request made after the fetch returned (a marker)
    // is logged after every request of that fetch, so once the marker is in the log, so are they.
    let packs_after = |fetches: usize| {
        use std::io::{Read as _, Write as _};
        let marker = format!("GET /marker-{fetches} ");
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /marker-{fetches} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while server.logged_requests(&marker) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the access log was never written"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server.logged_requests(packs)
    };
    let (store, head) = open_and_fetch(root.path(), &settings).unwrap();
    let edge = std::fs::read_to_string(store.directory().join("shallow")).unwrap();
    let first = packs_after(1);
    assert!(first > 0, "the first fetch downloads a pack");
    assert_eq!(store.recent_commits(head, 100).unwrap().0.len(), 2);

    assert_eq!(store.fetch("main").unwrap(), Some(head));
    assert_eq!(packs_after(2), first, "nothing new: no pack asked for");

    let human = human_commit(&bare, "main", "README.md", "new\n", "docs");
    let new = store.fetch("main").unwrap().unwrap();
    assert_eq!(new.to_string(), human);
    assert!(packs_after(3) > first, "the new commit came in a pack");
    assert_eq!(
        std::fs::read_to_string(store.directory().join("shallow")).unwrap(),
        edge,
        "the shallow edge did not move"
    );
    let (recent, reached_root) = store.recent_commits(new, 100).unwrap();
    assert_eq!(
        recent.len(),
        3,
        "the two commits of the first fetch and the new one"
    );
    assert!(!reached_root);
    assert_eq!(
        store.file_at(new, "README.md", MAX_BYTES).unwrap().unwrap(),
        b"new\n"
    );
}

/// A fetch downloads the commits that are new and nothing else, over a shallow HTTP clone and a local
/// remote alike: not tagwatch's own pushed commit, not the history before it. The clone's tracking ref
/// is what libgit2 offers the server as "have"; while it was deleted before each fetch, every fetch
/// that brought something downloaded the whole history again (to the shallow edge, or the root).
#[test]
fn a_fetch_downloads_only_the_new_commits() {
    on_both_kinds_of_clone(fetches_only_the_new_commits);
}

fn fetches_only_the_new_commits(cache: &Path, settings: &RemoteSettings, bare: &Path) {
    let (store, head) = open_and_fetch(cache, settings).unwrap();
    bump_and_push(&store, head, "1.0.1");
    for n in 0..3 {
        let before = tagwatch::git::pack_files(store.directory());
        let human = human_commit(bare, "main", "README.md", &format!("{n}\n"), "docs");
        assert_eq!(store.fetch("main").unwrap().unwrap().to_string(), human);
        let new: Vec<PathBuf> = tagwatch::git::pack_files(store.directory())
            .into_iter()
            .filter(|pack| !before.contains(pack))
            .collect();
        assert_eq!(new.len(), 1, "fetch {n}: one pack came: {new:?}");
        let index = new[0].with_extension("idx");
        let listed = git_bare(
            store.directory(),
            &["verify-pack", "-v", index.to_str().unwrap()],
        );
        let commits = listed
            .lines()
            .filter(|line| line.split_whitespace().nth(1) == Some("commit"))
            .count();
        assert_eq!(
            commits, 1,
            "fetch {n}: only the human's commit came:\n{listed}"
        );
    }
}

/// A long-lived clone gains a pack per fetch that brings something, and loose objects per write-back;
/// past `MAX_PACK_FILES` packs it is rewritten into one pack, the loose objects go with the old packs,
/// and the clone still reads, fetches, commits and pushes — over a shallow HTTP clone (whose edge stays
/// where it was) and a local remote.
#[test]
fn a_clone_with_many_packs_is_consolidated_into_one_and_keeps_working() {
    on_both_kinds_of_clone(consolidates);
}

/// Runs `check(cache, settings, bare remote)` on a shallow clone over HTTP and on a full clone of a
/// local remote.
fn on_both_kinds_of_clone(check: fn(&Path, &RemoteSettings, &Path)) {
    let (server, bare) = http_remote_with_commits(3);
    let root = tempfile::tempdir().unwrap();
    check(root.path(), &basic_settings(&server).with_depth(2), &bare);

    let root = tempfile::tempdir().unwrap();
    let (bare, url) = local_remote(root.path());
    check(
        &root.path().join("cache"),
        &RemoteSettings::new(url, "main"),
        &bare,
    );
}

/// `store` reads `README.md` at `head` as `readme`, and its history from `head` holds `ours`.
fn still_reads(store: &Store, head: Oid, readme: &str, ours: &str) {
    assert_eq!(
        store
            .file_at(head, "README.md", MAX_BYTES)
            .unwrap()
            .unwrap(),
        readme.as_bytes()
    );
    let (recent, _) = store.recent_commits(head, 1_000).unwrap();
    assert!(recent.iter().any(|commit| commit.id.to_string() == ours));
}

/// The pack files in `store`'s clone.
fn pack_count(store: &Store) -> usize {
    tagwatch::git::pack_files(store.directory()).len()
}

fn consolidates(cache: &Path, settings: &RemoteSettings, bare: &Path) {
    let loose = |store: &Store| {
        std::fs::read_dir(store.directory().join("objects"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
            .filter(|name| name.len() == 2)
            .count()
    };
    let (mut store, head) = open_and_fetch(cache, settings).unwrap();
    let shallow = std::fs::read_to_string(store.directory().join("shallow")).ok();
    // tagwatch's own commit: loose objects in the clone.
    let ours = bump_and_push(&store, head, "1.0.1");
    assert!(loose(&store) > 0);
    let mut head = Oid::from_str(&ours).unwrap();
    let mut fetches = 0;
    while pack_count(&store) <= tagwatch::git::MAX_PACK_FILES {
        let human = human_commit(bare, "main", "README.md", &format!("{fetches}\n"), "docs");
        head = store.fetch("main").unwrap().unwrap();
        assert_eq!(head.to_string(), human);
        fetches += 1;
        assert!(fetches < 200, "fetches add no pack files");
    }
    let before = pack_count(&store);
    let tagwatch::git::Maintenance::Consolidated(done) = store.maintain().unwrap() else {
        panic!("over the limit: consolidated");
    };
    assert_eq!(done.packs_before, before);
    assert!(!done.for_loose_objects, "{done:?}");
    assert!(done.objects > 0);
    assert_eq!(pack_count(&store), 1, "one pack");
    assert_eq!(loose(&store), 0, "no loose objects");
    assert!(
        !store.directory().join("tagwatch-verify").exists(),
        "the scratch directory is gone"
    );
    assert_eq!(
        std::fs::read_to_string(store.directory().join("shallow")).ok(),
        shallow,
        "the shallow edge did not move"
    );
    assert_eq!(
        store.maintain().unwrap(),
        tagwatch::git::Maintenance::Nothing,
        "nothing more to do"
    );

    // Everything still reads: the files at the head, our commit in the history.
    still_reads(&store, head, &format!("{}\n", fetches - 1), &ours);
    // And it still fetches, commits and pushes.
    let human = human_commit(bare, "main", "README.md", "after\n", "docs");
    let head = store.fetch("main").unwrap().unwrap();
    assert_eq!(head.to_string(), human);
    let commit = bump_and_push(&store, head, "1.0.2");
    assert_eq!(remote_head(bare), commit);
    assert!(remote_file(bare, SEED_FILE).contains(":1.0.2"));
    // A clone opened afresh reads the same.
    drop(store);
    let again = reopen(cache, settings);
    let head = again.fetch("main").unwrap().unwrap();
    assert_eq!(head.to_string(), commit);
    assert!(again.file_at(head, SEED_FILE, MAX_BYTES).unwrap().is_some());
}

/// A clone only tagwatch writes to gains loose objects (each write-back's commit, trees and blobs) and
/// no pack files: past about `MAX_LOOSE_OBJECTS`, estimated from one fan-out directory as git does, it
/// is consolidated too, and still reads, commits and pushes.
#[test]
fn a_clone_with_many_loose_objects_is_consolidated_and_keeps_working() {
    let root = tempfile::tempdir().unwrap();
    let (bare, url) = local_remote(root.path());
    let settings = RemoteSettings::new(url, "main");
    let (mut store, head) = open_and_fetch(&root.path().join("cache"), &settings).unwrap();
    let ours = Oid::from_str(&bump_and_push(&store, head, "1.0.1")).unwrap();
    assert_eq!(
        store.maintain().unwrap(),
        tagwatch::git::Maintenance::Nothing
    );
    // Loose objects as many write-backs leave them (blobs here, unreachable ones included) until the
    // sampled directory holds more than its 256th.
    let repository = git2::Repository::open_bare(store.directory()).unwrap();
    let mut written = 0;
    while !tagwatch::git::too_many_loose_objects(store.directory()) {
        repository
            .blob(format!("a write-back's blob {written}\n").as_bytes())
            .unwrap();
        written += 1;
        assert!(written < 50_000, "the estimate never passed the limit");
    }
    assert!(
        written > tagwatch::git::MAX_LOOSE_OBJECTS / 2,
        "an estimate of {written} objects passed the limit"
    );
    let packs = pack_count(&store);
    let tagwatch::git::Maintenance::Consolidated(done) = store.maintain().unwrap() else {
        panic!("over the loose-object limit: consolidated");
    };
    assert_eq!(done.packs_before, packs);
    assert!(done.for_loose_objects, "{done:?}");
    assert!(done.removed_files > written, "{done:?}");
    assert_eq!(pack_count(&store), 1, "one pack");
    assert!(!tagwatch::git::too_many_loose_objects(store.directory()));
    assert_eq!(
        store.maintain().unwrap(),
        tagwatch::git::Maintenance::Nothing
    );
    // Our commit still reads and a new write-back still commits and pushes.
    assert!(store.file_at(ours, SEED_FILE, MAX_BYTES).unwrap().is_some());
    let commit = bump_and_push(&store, ours, "1.0.2");
    assert_eq!(remote_head(&bare), commit);
    assert!(remote_file(&bare, SEED_FILE).contains(":1.0.2"));
}

/// A shallow clone (every network remote is cloned to a depth) opened again by the next process walks
/// its history up to the edge, with or without a fetch first. libgit2's `open_bare` does not read the
/// `shallow` file, so every history read failed after a restart and each repository's bumps were
/// deferred for ever.
#[test]
fn a_shallow_clone_opened_again_walks_its_history_to_the_edge() {
    let (server, _bare) = http_remote_with_commits(4);
    let root = tempfile::tempdir().unwrap();
    let settings = basic_settings(&server).with_depth(2);
    let (store, head) = open_and_fetch(root.path(), &settings).unwrap();
    assert!(
        store.directory().join("shallow").exists(),
        "a shallow clone"
    );
    let walked = store.recent_commits(head, 100).unwrap();
    assert_eq!(walked.0.len(), 2);
    assert!(!walked.1, "the edge is not the root");
    drop(store);

    // The next process: nothing new on the remote, then a walk without any fetch at all.
    let store = reopen(root.path(), &settings);
    assert_eq!(store.fetch("main").unwrap(), Some(head));
    assert_eq!(store.recent_commits(head, 100).unwrap(), walked);
    drop(store);
    let store = reopen(root.path(), &settings);
    assert_eq!(store.recent_commits(head, 100).unwrap(), walked);
    assert_eq!(store.first_parent_commits(head, 100).unwrap().0.len(), 2);
}

/// A `git http-backend` remote (user `git`) whose `config` repository has `commits` human commits on top
/// of its seed.
fn http_remote_with_commits(commits: usize) -> (GitHttpServer, PathBuf) {
    let server = GitHttpServer::start("git", PASSWORD);
    let bare = server.create_repo("config");
    for n in 0..commits {
        human_commit(&bare, "main", "README.md", &format!("{n}\n"), "docs");
    }
    (server, bare)
}

#[test]
fn a_clone_is_opened_again_after_it_gained_reopen_after_packs_pack_files_and_keeps_working() {
    on_both_kinds_of_clone(reopens);
}

fn reopens(cache: &Path, settings: &RemoteSettings, bare: &Path) {
    let (mut store, head) = open_and_fetch(cache, settings).unwrap();
    let ours = bump_and_push(&store, head, "1.0.1");
    let mut head = Oid::from_str(&ours).unwrap();
    let mut fetches = 0;
    // Each human commit fetched is one more pack; the store is opened again exactly when the clone
    // holds REOPEN_AFTER_PACKS more than when it was opened, and counts from there.
    let mut reopened_at = Vec::new();
    while reopened_at.len() < 2 {
        let human = human_commit(bare, "main", "README.md", &format!("{fetches}\n"), "docs");
        head = store.fetch("main").unwrap().unwrap();
        assert_eq!(head.to_string(), human);
        fetches += 1;
        assert!(fetches < 100, "fetches add no pack files");
        if let tagwatch::git::Maintenance::Reopened { packs: count } = store.maintain().unwrap() {
            assert_eq!(count, pack_count(&store));
            reopened_at.push(count);
        }
    }
    // The clone was opened empty (no pack), before its first fetch.
    assert_eq!(
        reopened_at,
        vec![
            tagwatch::git::REOPEN_AFTER_PACKS,
            2 * tagwatch::git::REOPEN_AFTER_PACKS
        ]
    );
    assert_eq!(
        store.maintain().unwrap(),
        tagwatch::git::Maintenance::Nothing,
        "nothing more to do"
    );
    // The reopened store reads, walks the history, commits and pushes.
    still_reads(&store, head, &format!("{}\n", fetches - 1), &ours);
    let commit = bump_and_push(&store, head, "1.0.2");
    assert_eq!(remote_head(bare), commit);
    assert!(remote_file(bare, SEED_FILE).contains(":1.0.2"));
}
