//! The store without a work tree: what `list_files` lists and leaves out (symlinks, submodules, hidden
//! directories), what `commit` refuses (anything but an existing regular file), what it keeps (modes,
//! every other entry, exact bytes), and the size cap read from the object header.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{PermissionsExt as _, symlink};

use tagwatch::git::{SkipReason, Skipped};

use super::*;

/// A bare repository `root/remote.git` whose `main` holds what `build` put into a work tree (symlinks
/// and modes included), committed with the `git` CLI; a store on it and the fetched head.
fn store_on(root: &Path, build: impl FnOnce(&Path)) -> (PathBuf, Store, Oid) {
    let bare = root.join("remote.git");
    git_in(root, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
    let work = tempfile::tempdir().unwrap();
    git_in(work.path(), &["init", "-q", "-b", "main"]);
    build(work.path());
    git_in(work.path(), &["add", "-A"]);
    git_in(work.path(), &["commit", "-q", "-m", "content"]);
    git_in(
        work.path(),
        &["push", "-q", &bare.display().to_string(), "main"],
    );
    let settings = RemoteSettings::new(format!("file://{}", bare.display()), "main");
    let (store, head) = open_and_fetch(&root.join("cache"), &settings).unwrap();
    (bare, store, head)
}

fn write(work: &Path, path: &str, bytes: &[u8]) {
    let path = work.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The tree the symlink and listing tests share.
fn build_mixed_tree(work: &Path) {
    write(work, "README.md", b"# config\n");
    write(work, "apps/a.yaml", b"a: 1\n");
    write(work, "apps/run.sh", b"#!/bin/sh\n");
    std::fs::set_permissions(
        work.join("apps/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    write(work, "apps/sub/b.yml", b"b: 2\n");
    write(work, "apps/.hidden/c.yaml", b"c: 3\n");
    write(work, ".github/workflows/ci.yaml", b"on: push\n");
    symlink("/etc/passwd", work.join("apps/link.yaml")).unwrap();
    symlink("../..", work.join("apps/dir")).unwrap();
    std::fs::write(work.join(OsStr::from_bytes(b"bad\xff.yaml")), "x: 1\n").unwrap();
    // A nested repository: `git add` records it as a submodule entry (gitlink, mode 160000).
    let vendor = work.join("apps/vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    git_in(&vendor, &["init", "-q", "-b", "main"]);
    write(&vendor, "chart.yaml", b"name: vendor\n");
    git_in(&vendor, &["add", "-A"]);
    git_in(&vendor, &["commit", "-q", "-m", "vendor"]);
}

fn paths(files: &[tagwatch::git::TreeFile]) -> Vec<&str> {
    files.iter().map(|file| file.path.as_str()).collect()
}

fn skipped(path: &str, reason: SkipReason) -> Skipped {
    Skipped {
        path: path.to_string(),
        reason,
    }
}

#[test]
fn list_files_lists_regular_files_and_reports_symlinks_and_submodules_without_following_them() {
    let root = tempfile::tempdir().unwrap();
    let (bare, store, head) = store_on(root.path(), build_mixed_tree);

    let whole = store.list_files(head, &[]).unwrap();
    assert_eq!(
        paths(&whole.files),
        vec!["README.md", "apps/a.yaml", "apps/run.sh", "apps/sub/b.yml"],
        "sorted; hidden directories are not walked"
    );
    assert_eq!(
        whole.skipped,
        vec![
            skipped("apps/dir", SkipReason::Symlink),
            skipped("apps/link.yaml", SkipReason::Symlink),
            skipped("apps/vendor", SkipReason::Submodule),
            skipped("bad\u{fffd}.yaml", SkipReason::NotUtf8Name),
        ]
    );
    for file in &whole.files {
        let blob = git_bare(&bare, &["rev-parse", &format!("main:{}", file.path)]);
        assert_eq!(file.blob.to_string(), blob.trim(), "{}", file.path);
        let size = git_bare(&bare, &["cat-file", "-s", blob.trim()]);
        let read = store.read_file(file, u64::MAX).unwrap();
        assert_eq!(read.len().to_string(), size.trim(), "{}", file.path);
    }

    // Configured paths: overlapping ones list a file once; a hidden directory named explicitly is
    // walked; a path that is, or passes through, a symlink or submodule is skipped, not followed.
    let configured = [
        "apps",
        "apps/sub",
        "./apps/sub/b.yml",
        ".github",
        "apps/link.yaml",
        "apps/dir/etc/passwd",
        "apps/vendor/charts",
    ]
    .map(PathBuf::from);
    let listing = store.list_files(head, &configured).unwrap();
    assert_eq!(
        paths(&listing.files),
        vec![
            ".github/workflows/ci.yaml",
            "apps/a.yaml",
            "apps/run.sh",
            "apps/sub/b.yml"
        ]
    );
    assert_eq!(
        listing.skipped,
        vec![
            skipped("apps/dir", SkipReason::Symlink),
            skipped("apps/link.yaml", SkipReason::Symlink),
            skipped("apps/vendor", SkipReason::Submodule),
        ]
    );
    let hidden = store
        .list_files(head, &[PathBuf::from("apps/.hidden")])
        .unwrap();
    assert_eq!(paths(&hidden.files), vec!["apps/.hidden/c.yaml"]);
}

#[test]
fn symlinks_cannot_lead_reads_or_writes_outside_the_clone() {
    let root = tempfile::tempdir().unwrap();
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let (bare, store, head) = store_on(root.path(), build_mixed_tree);
    let before = remote_head(&bare);

    // Reads: neither the link nor anything through the linked directory is a file of the repository.
    let listing = store.list_files(head, &[PathBuf::from("apps")]).unwrap();
    assert!(
        listing
            .files
            .iter()
            .all(|file| !file.path.contains("link") && !file.path.starts_with("apps/dir")),
        "{listing:?}"
    );
    for path in ["apps/link.yaml", "apps/dir/etc/passwd", "apps/dir"] {
        assert_eq!(
            store.file_at(head, path, MAX_BYTES).unwrap(),
            None,
            "{path}"
        );
    }

    // Writes: refused, naming what is there.
    let refuse = |path: &str| {
        store
            .commit(
                head,
                &[(path.to_string(), b"owned: true\n".to_vec())],
                &identity(),
                "attempt",
                &Signing::None,
            )
            .unwrap_err()
    };
    match refuse("apps/link.yaml") {
        GitError::NotRegularFile { path, found, .. } => {
            assert_eq!(path, "apps/link.yaml");
            assert_eq!(found, "a symbolic link");
        }
        other => panic!("unexpected: {other:?}"),
    }
    match refuse("apps/dir/etc/passwd") {
        GitError::NotRegularFile { path, found, .. } => {
            assert_eq!(path, "apps/dir", "the link on the way is named");
            assert_eq!(found, "a symbolic link");
        }
        other => panic!("unexpected: {other:?}"),
    }
    match refuse("apps/vendor") {
        GitError::NotRegularFile { found, .. } => assert_eq!(found, "a submodule"),
        other => panic!("unexpected: {other:?}"),
    }
    match refuse("apps/sub") {
        GitError::NotRegularFile { found, .. } => assert_eq!(found, "a directory"),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(matches!(
        refuse("apps/new.yaml"),
        GitError::MissingPath { .. }
    ));
    for outside in ["../outside.yaml", "/etc/passwd", "apps/../../x"] {
        assert!(
            matches!(refuse(outside), GitError::PathOutsideRepository { .. }),
            "{outside}"
        );
    }

    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    assert_eq!(remote_head(&bare), before);
    assert!(
        !store.directory().join("apps").exists(),
        "the store has no work tree to write into"
    );
}

#[test]
fn commit_swaps_only_the_changed_blobs_and_keeps_file_modes_and_bytes() {
    let root = tempfile::tempdir().unwrap();
    let (bare, store, head) = store_on(root.path(), build_mixed_tree);
    let tree_before = git_bare(&bare, &["ls-tree", "-r", "main"]);

    // CRLF, no final newline, not UTF-8: stored exactly as given.
    let yaml = b"a: 2\r\nb: \xe9\r\nc: 3".to_vec();
    let script = b"#!/bin/sh\necho bumped\n".to_vec();
    let changes = [
        ("apps/a.yaml".to_string(), yaml.clone()),
        ("./apps/run.sh".to_string(), script.clone()),
        ("README.md".to_string(), b"# config\n".to_vec()),
    ];
    let commit = store
        .commit(head, &changes, &identity(), "bump", &Signing::None)
        .unwrap()
        .unwrap();
    assert_eq!(store.push(commit).unwrap(), PushOutcome::Pushed);

    let raw = |path: &str| {
        let output = Command::new("git")
            .args(["-c", "safe.directory=*", "--git-dir"])
            .arg(&bare)
            .args(["cat-file", "blob", &format!("main:{path}")])
            .output()
            .unwrap();
        assert!(output.status.success());
        output.stdout
    };
    assert_eq!(raw("apps/a.yaml"), yaml);
    assert_eq!(raw("apps/run.sh"), script);
    let changed = git_bare(&bare, &["diff", "--name-only", &head.to_string(), "main"]);
    assert_eq!(changed, "apps/a.yaml\napps/run.sh\n");

    // Every other entry (symlinks, the submodule, hidden files) is untouched, and the changed files
    // kept their modes.
    let entries = |tree: &str| -> std::collections::BTreeMap<String, (String, String)> {
        tree.lines()
            .map(|line| {
                let (meta, path) = line.split_once('\t').unwrap();
                let fields: Vec<&str> = meta.split(' ').collect();
                (
                    path.to_string(),
                    (fields[0].to_string(), fields[2].to_string()),
                )
            })
            .collect()
    };
    let before = entries(&tree_before);
    let after = entries(&git_bare(&bare, &["ls-tree", "-r", "main"]));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, (mode, blob)) in &before {
        let (new_mode, new_blob) = &after[path];
        assert_eq!(mode, new_mode, "{path}");
        let changed = path == "apps/a.yaml" || path == "apps/run.sh";
        assert_eq!(blob != new_blob, changed, "{path}");
    }
    assert_eq!(after["apps/run.sh"].0, "100755");
    assert_eq!(after["apps/link.yaml"].0, "120000");
    assert_eq!(after["apps/vendor"].0, "160000");

    // One path twice in one commit is a caller's mistake, not a last-one-wins.
    let twice = [
        ("apps/a.yaml".to_string(), b"a: 3\n".to_vec()),
        ("apps/a.yaml".to_string(), b"a: 4\n".to_vec()),
    ];
    assert!(
        store
            .commit(commit, &twice, &identity(), "twice", &Signing::None)
            .is_err()
    );
}

#[test]
fn the_size_cap_is_checked_from_the_object_header_before_the_content_is_read() {
    let root = tempfile::tempdir().unwrap();
    let (_bare, store, head) = store_on(root.path(), |work| {
        write(work, "apps/big.yaml", &[b'x'; 100]);
    });
    match store.file_at(head, "apps/big.yaml", 99) {
        Err(GitError::TooLarge {
            object,
            size,
            limit,
        }) => {
            assert_eq!((object.as_str(), size, limit), ("apps/big.yaml", 100, 99));
        }
        other => panic!("unexpected: {other:?}"),
    }
    assert_eq!(
        store
            .file_at(head, "apps/big.yaml", 100)
            .unwrap()
            .unwrap()
            .len(),
        100,
        "the limit itself is allowed"
    );
    let blob = store.list_files(head, &[]).unwrap().files[0].blob;
    match store.read_blob(blob, 10) {
        Err(error @ GitError::TooLarge { .. }) => {
            assert!(error.to_string().contains(&blob.to_string()), "{error}");
            assert_eq!(error.class(), ErrorClass::Permanent);
        }
        other => panic!("unexpected: {other:?}"),
    }

    // A loose object whose header claims 50 MB and whose content is cut off after three bytes: refused
    // as too large, which only the header can tell — reading the content would fail instead.
    let forged = Oid::from_str("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0").unwrap();
    let hex = forged.to_string();
    let path = store
        .directory()
        .join("objects")
        .join(&hex[..2])
        .join(&hex[2..]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, zlib_stored(b"blob 50000000\0abc")).unwrap();
    match store.read_blob(forged, 1 << 20) {
        Err(GitError::TooLarge { size, .. }) => assert_eq!(size, 50_000_000),
        other => panic!("unexpected: {other:?}"),
    }
    let unreadable = store.read_blob(forged, u64::MAX).unwrap_err();
    assert!(
        !matches!(unreadable, GitError::TooLarge { .. }),
        "{unreadable:?}"
    );
}

/// `data` as a zlib stream of one stored (uncompressed) deflate block: the loose-object format,
/// without a compression library.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let length = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&(!length).to_le_bytes());
    out.extend_from_slice(data);
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}
