//! The first fetch from a remote on this machine (`file:///path`, `/path`), done as `git clone --local`
//! does it: the remote's object files are hard-linked (copied when a link is refused) into the cache
//! clone, and the tracking ref is pointed at the remote's branch head.
//!
//! Why: libgit2's local transport builds a pack *in our process* — it reads every object reachable from
//! the branch, searches for deltas, compresses, and then indexes its own output — which was 40 % of a
//! cold `plan` over 1,000 files (BENCHMARKS.md). Objects are immutable and named by their content, so a
//! link is the same object at the cost of one system call.
//!
//! Only a first fetch (no tracking ref yet) takes this path; later fetches go through libgit2, whose
//! negotiation sends only what is new. Anything unusual — a URL that is not a plain absolute path, a
//! remote that cannot be opened, a shallow remote, alternates, a partial clone's promisor packs, a file
//! that is not a regular file, a file that vanishes while it is copied (a concurrent `git gc`) — and
//! nothing is decided here: the caller falls back to libgit2's fetch, which reports errors as before.
//!
//! Why a vanished file is the only race to care about: the branch head is read first. Every object it
//! reaches is then, at any instant, either a loose object or in a pack (git writes a new pack before it
//! deletes the loose objects or old packs it replaces), so listing the loose objects first and the packs
//! second sees each of them at least once, or a listed file is gone when it is linked — and then the
//! whole attempt is abandoned. A pack is linked before its index (libgit2 only looks at indexes), and a
//! copy goes through a temporary name and a rename, so a file present in the cache is always whole;
//! the tracking ref is written last, after the head commit is found in the cache.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository};

/// What the remote's branch turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cloned {
    /// Every object of the remote is in the cache; the branch head.
    Head(Oid),
    /// The remote has no such branch.
    NoBranch,
}

/// Links the objects of the local remote at `url` into `cache` and returns `branch`'s head; `None`
/// when this path does not apply or did not complete (the caller fetches with libgit2 instead).
pub(super) fn clone_objects(cache: &Repository, url: &str, branch: &str) -> Option<Cloned> {
    let path = local_path(url)?;
    match try_clone(cache, &path, branch) {
        Ok(cloned) => Some(cloned),
        Err(reason) => {
            tracing::debug!(remote = %path.display(), %reason, "not cloned by linking objects; fetching instead");
            None
        }
    }
}

/// The directory a `file://` URL or an absolute path names; `None` for anything that needs decoding
/// or resolving (percent escapes, a host, a relative path): libgit2 handles those.
fn local_path(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    (path.starts_with('/') && !path.contains('%')).then(|| PathBuf::from(path))
}

fn try_clone(cache: &Repository, remote_path: &Path, branch: &str) -> Result<Cloned, String> {
    let remote = Repository::open(remote_path).map_err(|error| error.message().to_string())?;
    if remote.is_shallow() {
        return Err("the remote is shallow".to_string());
    }
    let head = match remote.find_reference(&format!("refs/heads/{branch}")) {
        Ok(reference) => reference
            .resolve()
            .map_err(|error| error.message().to_string())?
            .target()
            .ok_or("the branch is not a direct reference")?,
        Err(error) if error.code() == ErrorCode::NotFound => return Ok(Cloned::NoBranch),
        Err(error) => return Err(error.message().to_string()),
    };
    let from = remote.commondir().join("objects");
    let to = cache.path().join("objects");
    if from.join("info").join("alternates").exists() {
        return Err("the remote borrows objects from elsewhere (alternates)".to_string());
    }
    let text = |error: io::Error| error.to_string();
    // Loose objects first, packs second (see the module comment).
    for fan_out in read_dir(&from).map_err(text)? {
        let (name, kind) = fan_out;
        if name.len() != 2 || !is_hex(&name) {
            continue;
        }
        if !kind.is_dir() {
            return Err(format!("objects/{name} is not a directory"));
        }
        let objects = read_dir(&from.join(&name)).map_err(text)?;
        if objects.is_empty() {
            continue;
        }
        let target = to.join(&name);
        match fs::create_dir(&target) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(text(error)),
        }
        for (object, kind) in objects {
            if !is_hex(&object) {
                // `tmp_obj_*` of a write in progress, or anything else git leaves there.
                continue;
            }
            if !kind.is_file() {
                return Err(format!("objects/{name}/{object} is not a regular file"));
            }
            link_or_copy(&from.join(&name).join(&object), &target.join(&object)).map_err(text)?;
        }
    }
    let packs = from.join("pack");
    let entries = match read_dir(&packs) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(text(error)),
    };
    if entries.iter().any(|(name, _)| name.ends_with(".promisor")) {
        return Err("the remote is a partial clone (promisor packs)".to_string());
    }
    let mut linked = false;
    for (name, kind) in &entries {
        let Some(stem) = name
            .strip_suffix(".idx")
            .filter(|stem| stem.starts_with("pack-"))
        else {
            continue;
        };
        if !kind.is_file() {
            return Err(format!("objects/pack/{name} is not a regular file"));
        }
        if !linked {
            match fs::create_dir(to.join("pack")) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(text(error)),
            }
            linked = true;
        }
        // The pack before its index: libgit2 finds packs by their index.
        for extension in ["pack", "idx"] {
            let file = format!("{stem}.{extension}");
            link_or_copy(&packs.join(&file), &to.join("pack").join(&file)).map_err(text)?;
        }
    }
    let odb = cache.odb().map_err(|error| error.message().to_string())?;
    odb.refresh().map_err(|error| error.message().to_string())?;
    if !odb.exists(head) {
        return Err(format!("the head {head} is not among the linked objects"));
    }
    Ok(Cloned::Head(head))
}

/// The names and types (not followed) of a directory's entries.
fn read_dir(directory: &Path) -> io::Result<Vec<(String, fs::FileType)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(directory)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        entries.push((name, entry.file_type()?));
    }
    Ok(entries)
}

fn is_hex(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Hard-links `from` to `to`; copies it (through a temporary name, so `to` is whole or absent) when the
/// file system refuses the link. An existing `to` is the same object already: left as it is.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(error),
        // Another file system, or a link the kernel refuses (`fs.protected_hardlinks`): copy.
        Err(_) => {}
    }
    if to.exists() {
        return Ok(());
    }
    let mut temporary = to.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    fs::copy(from, &temporary)?;
    fs::rename(&temporary, to).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// A bare remote whose `main` holds one file, written as loose objects; its head.
    fn remote(root: &Path) -> (PathBuf, Oid) {
        let path = root.join("remote.git");
        let repository = Repository::init_bare(&path).unwrap();
        let blob = repository.blob(b"image: nginx:1.0\n").unwrap();
        let mut tree = repository.treebuilder(None).unwrap();
        tree.insert("app.yaml", blob, 0o100644).unwrap();
        let tree = repository.find_tree(tree.write().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let head = repository
            .commit(
                Some("refs/heads/main"),
                &signature,
                &signature,
                "one",
                &tree,
                &[],
            )
            .unwrap();
        (path, head)
    }

    fn cache(root: &Path) -> Repository {
        Repository::init_bare(root.join("cache.git")).unwrap()
    }

    fn url(path: &Path) -> String {
        format!("file://{}", path.display())
    }

    #[test]
    fn loose_and_packed_objects_are_linked_and_the_head_reads_back() {
        let root = tempfile::tempdir().unwrap();
        let (path, first) = remote(root.path());
        // A second commit, and everything so far also in a pack (git's own repack keeps both).
        let repository = Repository::open_bare(&path).unwrap();
        let mut builder = repository.packbuilder().unwrap();
        builder.insert_commit(first).unwrap();
        builder.write(&path.join("objects/pack"), 0o444).unwrap();
        let parent = repository.find_commit(first).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let head = repository
            .commit(
                Some("refs/heads/main"),
                &signature,
                &signature,
                "two",
                &parent.tree().unwrap(),
                &[&parent],
            )
            .unwrap();
        let cache = cache(root.path());
        assert_eq!(
            clone_objects(&cache, &url(&path), "main"),
            Some(Cloned::Head(head))
        );
        let commit = cache.find_commit(head).unwrap();
        let tree = commit.tree().unwrap();
        let blob = cache
            .find_blob(tree.get_name("app.yaml").unwrap().id())
            .unwrap();
        assert_eq!(blob.content(), b"image: nginx:1.0\n");
        // Linked, not copied: the same file.
        let hex = head.to_string();
        let loose = |root: &Path| {
            std::fs::metadata(root.join("objects").join(&hex[..2]).join(&hex[2..]))
                .unwrap()
                .ino()
        };
        assert_eq!(loose(&path), loose(cache.path()));
        let packs = read_dir(&cache.path().join("objects/pack")).unwrap();
        assert!(
            packs.iter().any(|(name, _)| name.ends_with(".idx")),
            "{packs:?}"
        );
        // Twice is harmless: every file is there already.
        assert_eq!(
            clone_objects(&cache, &url(&path), "main"),
            Some(Cloned::Head(head))
        );
    }

    #[test]
    fn a_missing_branch_is_reported_as_such() {
        let root = tempfile::tempdir().unwrap();
        let (path, _) = remote(root.path());
        assert_eq!(
            clone_objects(&cache(root.path()), &url(&path), "production"),
            Some(Cloned::NoBranch)
        );
    }

    #[test]
    fn alternates_a_shallow_remote_or_no_repository_fall_back_to_fetching() {
        let root = tempfile::tempdir().unwrap();
        let (path, head) = remote(root.path());
        let cache = cache(root.path());
        assert_eq!(
            clone_objects(&cache, &url(&root.path().join("absent.git")), "main"),
            None
        );
        std::fs::write(path.join("shallow"), format!("{head}\n")).unwrap();
        assert_eq!(clone_objects(&cache, &url(&path), "main"), None);
        std::fs::remove_file(path.join("shallow")).unwrap();
        std::fs::write(path.join("objects/info/alternates"), "/elsewhere/objects\n").unwrap();
        assert_eq!(clone_objects(&cache, &url(&path), "main"), None);
        assert!(!cache.odb().unwrap().exists(head), "nothing was linked");
    }

    #[test]
    fn only_plain_absolute_paths_are_taken() {
        assert_eq!(
            local_path("file:///srv/git/config.git"),
            Some(PathBuf::from("/srv/git/config.git"))
        );
        assert_eq!(
            local_path("/srv/git/config.git"),
            Some(PathBuf::from("/srv/git/config.git"))
        );
        for other in [
            "file:///srv/git/with%20space.git",
            "file://host/srv/config.git",
            "relative/config.git",
            "https://example.com/config.git",
        ] {
            assert_eq!(local_path(other), None, "{other}");
        }
    }
}
