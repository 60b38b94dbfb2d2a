//! [`Store`]: one cached bare clone of one remote branch, read from and written to through the object
//! database only. No work tree, no index, no checkout: files are blobs, a write-back is a new tree built
//! from the parent's with the changed blobs swapped in, and nothing on disk can point outside the
//! clone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use git2::build::TreeUpdateBuilder;
use git2::{ObjectType, Repository, Signature};

use super::error::GitError;
use super::history::{self, CommitInfo, FileHistory};
use super::lock::CacheLock;
use super::remote::{self, valid_branch_name};
use super::settings::{CommitIdentity, RemoteSettings, Signing};
use super::tree::{self, Found, Listing};
use super::{Oid, PushOutcome, cache_key, path_components, sign};

/// Where [`Store::push`] and [`Store::force_push`] put the commit to push: libgit2 pushes a reference,
/// and this namespace is tagwatch's own, so no local branch ever stands for the remote's.
const PUSH_REF_PREFIX: &str = "refs/tagwatch/push/";

/// One cached bare clone of one remote branch, locked for the life of the value.
pub struct Store {
    settings: RemoteSettings,
    repository: Repository,
    directory: PathBuf,
    /// Pack files in the clone when `repository` was opened ([`Store::maintain`]).
    packs_at_open: usize,
    _lock: CacheLock,
}

// `reconcile` moves a store between `spawn_blocking` calls and keeps it in a `Mutex`: checked at compile
// time.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Store>();
};

/// A read-only handle on a [`Store`]'s object database ([`Store::reader`]): reads listed files, nothing
/// else.
pub struct Reader {
    repository: Repository,
    settings: RemoteSettings,
}

const _: fn() = || {
    fn send<T: Send>() {}
    send::<Reader>();
};

impl Reader {
    /// As [`Store::read_file`].
    pub fn read_file(&self, file: &tree::TreeFile, max_bytes: u64) -> Result<Vec<u8>, GitError> {
        read_capped(
            &self.repository,
            &self.settings,
            file.blob,
            max_bytes,
            || file.path.clone(),
        )
    }
}

/// The bytes of blob `blob`, refused from its object header, before its content is read, when it is
/// larger than `max_bytes` ([`GitError::TooLarge`], naming it `name()`) or not a blob.
fn read_capped(
    repository: &Repository,
    settings: &RemoteSettings,
    blob: Oid,
    max_bytes: u64,
    name: impl FnOnce() -> String,
) -> Result<Vec<u8>, GitError> {
    let local = |operation| remote::local_error(settings, operation);
    let odb = repository
        .odb()
        .map_err(local("open the object database"))?;
    let (size, kind) = odb.read_header(blob).map_err(local("read a file"))?;
    if kind != ObjectType::Blob {
        return Err(GitError::Operation {
            operation: "read a file",
            url: settings.redacted_url(),
            detail: format!("object {blob} is a {kind}, not a blob"),
            transient: false,
        });
    }
    let size = size as u64;
    if size > max_bytes {
        return Err(GitError::TooLarge {
            object: name(),
            size,
            limit: max_bytes,
        });
    }
    let object = odb.read(blob).map_err(local("read a file"))?;
    Ok(object.data().to_vec())
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("remote", &self.settings)
            .field("directory", &self.directory)
            .finish()
    }
}

impl Store {
    /// Opens or initializes the bare cache clone for `settings` under `cache_root`
    /// (`<name>-<hash>.git`) and takes its kernel lock; [`GitError::CacheBusy`] while another process
    /// (or another `Store` here) holds it. A directory that is not a bare repository (a clone killed
    /// half-way) is rebuilt, and lock files a killed run left inside are removed. Nothing is fetched.
    pub fn open(cache_root: &Path, settings: &RemoteSettings) -> Result<Store, GitError> {
        super::initialized();
        if !valid_branch_name(&settings.branch) {
            return Err(GitError::MissingBranch {
                url: settings.redacted_url(),
                branch: settings.branch.clone(),
            });
        }
        let directory = cache_root.join(format!("{}.git", cache_key(settings)));
        std::fs::create_dir_all(cache_root).map_err(|source| GitError::Cache {
            path: cache_root.to_path_buf(),
            source,
        })?;
        let lock = CacheLock::acquire(&directory)?;
        let repository = open_or_init_bare(&directory, settings)?;
        remove_stale_lock_files(&directory);
        remote::configure(&repository, settings)?;
        let packs_at_open = super::maintenance::pack_files(&directory).len();
        Ok(Store {
            settings: settings.clone(),
            repository,
            packs_at_open,
            directory,
            _lock: lock,
        })
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// The bare clone's directory (for logs and tests; nothing in it is meant to be edited).
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Fetches `branch` (shallow to `settings.depth` for network remotes, the first time). Its head, or `None` when the
    /// remote has no such branch: a deleted branch leaves no stale tracking ref.
    pub fn fetch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        remote::fetch(&self.repository, &self.settings, branch)
    }

    /// Keeps a long-lived clone's pack files bounded (one is added per fetch that brings something)
    /// and its loose objects (every write-back adds some): past [`super::MAX_PACK_FILES`] packs or
    /// about [`super::MAX_LOOSE_OBJECTS`] loose objects it rewrites the object database into one
    /// pack; else, with [`super::REOPEN_AFTER_PACKS`] pack files more than when it was opened, it
    /// opens the clone again, which frees what libgit2 keeps per open pack (its delta-base cache).
    /// The pack directory and one loose-object directory are listed once. On an error nothing was
    /// removed and the open repository stays.
    pub fn maintain(&mut self) -> Result<super::Maintenance, GitError> {
        let packs = super::maintenance::pack_files(&self.directory);
        let too_many_packs = packs.len() > super::MAX_PACK_FILES;
        if too_many_packs || super::maintenance::too_many_loose_objects(&self.directory) {
            let done = super::maintenance::consolidate(
                &self.repository,
                &self.directory,
                &packs,
                !too_many_packs,
            )
            .map_err(self.local("consolidate the cache clone"))?;
            let now = super::maintenance::pack_files(&self.directory).len();
            self.reopen(now, "open the consolidated cache clone")?;
            return Ok(super::Maintenance::Consolidated(done));
        }
        if packs.len() >= self.packs_at_open + super::REOPEN_AFTER_PACKS {
            self.reopen(packs.len(), "open the cache clone again")?;
            return Ok(super::Maintenance::Reopened { packs: packs.len() });
        }
        Ok(super::Maintenance::Nothing)
    }

    /// Opens the clone again (now holding `packs` pack files); on an error the open one stays.
    fn reopen(&mut self, packs: usize, what: &'static str) -> Result<(), GitError> {
        let reopened = open_bare(&self.directory).map_err(self.local(what))?;
        self.repository = reopened;
        self.packs_at_open = packs;
        Ok(())
    }

    /// Every regular file (mode 100644 / 100755) under `paths` in `commit`'s tree, sorted by path.
    /// `paths` are relative (`clusters/prod`, or one file); none means the whole tree. A path that does
    /// not exist is [`GitError::MissingPath`], one that escapes (`..`, absolute) is
    /// [`GitError::PathOutsideRepository`]. Symlinks and submodules are never followed: they are
    /// listed in [`Listing::skipped`], also when a configured path is one or passes through one.
    /// Hidden directories are not walked unless named.
    pub fn list_files(&self, commit: Oid, paths: &[PathBuf]) -> Result<Listing, GitError> {
        let root = self.tree_of(commit)?;
        let mut listing = Listing::default();
        let whole = [PathBuf::new()];
        let paths = if paths.is_empty() { &whole[..] } else { paths };
        for path in paths {
            let components = if path.as_os_str().is_empty() {
                Vec::new()
            } else {
                path_components(path)?
            };
            let found = tree::find(&self.repository, &root, &components)
                .map_err(self.local("read a tree"))?;
            match found {
                Found::Directory(id) => {
                    tree::walk(&self.repository, id, &components.join("/"), &mut listing)
                        .map_err(self.local("read a tree"))?;
                }
                Found::File { blob, .. } => listing.files.push(tree::TreeFile {
                    path: components.join("/"),
                    blob,
                }),
                Found::Link { path, reason } => {
                    listing.skipped.push(tree::Skipped { path, reason });
                }
                Found::Missing => return Err(self.missing_path(&components.join("/"))),
            }
        }
        tree::finish(&mut listing);
        Ok(listing)
    }

    /// The bytes of blob `blob`. A blob larger than `max_bytes` is refused from its object header,
    /// before its content is read ([`GitError::TooLarge`]).
    pub fn read_blob(&self, blob: Oid, max_bytes: u64) -> Result<Vec<u8>, GitError> {
        self.read_capped(blob, max_bytes, || blob.to_string())
    }

    /// The bytes of a file [`Self::list_files`] listed, with [`Self::read_blob`]'s size cap; the error
    /// names the file's path.
    pub fn read_file(&self, file: &tree::TreeFile, max_bytes: u64) -> Result<Vec<u8>, GitError> {
        self.read_capped(file.blob, max_bytes, || file.path.clone())
    }

    /// A second, read-only handle on this clone's object database, for reading listed files on another
    /// thread while this store stays locked by its holder (a `git2::Repository` is used by one thread
    /// at a time: each thread takes its own reader). Objects are immutable, so a reader sees exactly
    /// what the store sees.
    pub fn reader(&self) -> Result<Reader, GitError> {
        let repository =
            open_bare(&self.directory).map_err(self.local("open the object database"))?;
        Ok(Reader {
            repository,
            settings: self.settings.clone(),
        })
    }

    /// `path`'s bytes at `commit`; `None` when it is absent or not a regular file (a symlink, a
    /// directory, a submodule). The same size cap as [`Self::read_blob`].
    pub fn file_at(
        &self,
        commit: Oid,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, GitError> {
        let components = path_components(Path::new(path))?;
        let root = self.tree_of(commit)?;
        match tree::find(&self.repository, &root, &components).map_err(self.local("read a tree"))? {
            Found::File { blob, .. } => self
                .read_capped(blob, max_bytes, || components.join("/"))
                .map(Some),
            _ => Ok(None),
        }
    }

    /// A new commit on top of `parent` whose tree is `parent`'s with each `(path, bytes)` swapped in:
    /// only the blobs are written and the tree is rebuilt around them, each file keeping its mode.
    /// Every path must be a regular file in `parent` — absent is [`GitError::MissingPath`], a symlink,
    /// submodule or directory (or a path through one) is [`GitError::NotRegularFile`]; nothing is
    /// created, deleted or followed. `None` when no content changed. Signed as configured. No branch
    /// moves, here or on the remote: [`Self::push`] does that.
    pub fn commit(
        &self,
        parent: Oid,
        changes: &[(String, Vec<u8>)],
        identity: &CommitIdentity,
        message: &str,
        signing: &Signing,
    ) -> Result<Option<Oid>, GitError> {
        let repository = &self.repository;
        let parent = repository
            .find_commit(parent)
            .map_err(self.local("read the parent commit"))?;
        let base = parent.tree().map_err(self.local("read a tree"))?;
        let mut seen = HashSet::new();
        let mut updates = TreeUpdateBuilder::new();
        let mut changed = false;
        for (path, bytes) in changes {
            let components = path_components(Path::new(path))?;
            let path = components.join("/");
            if !seen.insert(path.clone()) {
                return Err(GitError::Operation {
                    operation: "commit",
                    url: self.settings.redacted_url(),
                    detail: format!("`{path}` is changed twice in one commit"),
                    transient: false,
                });
            }
            let found =
                tree::find(repository, &base, &components).map_err(self.local("read a tree"))?;
            let (old, mode) = match found {
                Found::File { blob, mode } => (blob, mode),
                Found::Missing => return Err(self.missing_path(&path)),
                Found::Directory(_) => return Err(self.not_regular(path, "a directory")),
                Found::Link { path, reason } => {
                    return Err(self.not_regular(path, reason.describe()));
                }
            };
            if Oid::hash_object(ObjectType::Blob, bytes).map_err(self.local("hash a file"))? == old
            {
                continue;
            }
            let blob = repository.blob(bytes).map_err(self.local("write a file"))?;
            updates.upsert(path.as_str(), blob, mode);
            changed = true;
        }
        if !changed {
            return Ok(None);
        }
        crate::fault::point("blob-written");
        let tree_id = updates
            .create_updated(repository, &base)
            .map_err(self.local("write the tree"))?;
        if tree_id == base.id() {
            return Ok(None);
        }
        let tree = repository
            .find_tree(tree_id)
            .map_err(self.local("read the tree"))?;
        let signature = Signature::now(&identity.name, &identity.email)
            .map_err(self.local("build the commit identity"))?;
        let buffer = repository
            .commit_create_buffer(&signature, &signature, message, &tree, &[&parent])
            .map_err(self.local("build the commit"))?;
        let id = match sign::sign(signing, &buffer)? {
            None => repository
                .odb()
                .and_then(|odb| odb.write(ObjectType::Commit, &buffer))
                .map_err(self.local("write the commit"))?,
            Some(gpgsig) => {
                let content = std::str::from_utf8(&buffer).map_err(|_| GitError::Operation {
                    operation: "commit",
                    url: self.settings.redacted_url(),
                    detail: "the commit message is not UTF-8".to_string(),
                    transient: false,
                })?;
                repository
                    .commit_signed(content, &gpgsig, Some("gpgsig"))
                    .map_err(self.local("write the signed commit"))?
            }
        };
        tracing::info!(commit = %id, parent = %parent.id(), signed = !matches!(signing, Signing::None), "committed");
        crate::fault::point("commit-created");
        Ok(Some(id))
    }

    /// Pushes `commit` to the target branch (`settings.branch`), never forced. Someone else pushed
    /// first (a non-fast-forward) → [`PushOutcome::Rejected`]; refused by a hook or a protection rule
    /// → [`GitError::PushRefused`].
    pub fn push(&self, commit: Oid) -> Result<PushOutcome, GitError> {
        let branch = self.settings.branch.clone();
        self.push_through_private_ref(commit, &branch, false)
    }

    /// Force-pushes `commit` to `branch`: only for tagwatch's own pull-request head branch. The
    /// target branch is never forced ([`GitError::ProtectedBranch`]).
    pub fn force_push(&self, commit: Oid, branch: &str) -> Result<(), GitError> {
        if branch == self.settings.branch {
            return Err(GitError::ProtectedBranch {
                url: self.settings.redacted_url(),
                branch: branch.to_string(),
            });
        }
        match self.push_through_private_ref(commit, branch, true)? {
            PushOutcome::Pushed => Ok(()),
            PushOutcome::Rejected { reason } => Err(GitError::PushRefused {
                url: self.settings.redacted_url(),
                branch: branch.to_string(),
                reason,
            }),
        }
    }

    pub fn commit_info(&self, id: Oid) -> Result<CommitInfo, GitError> {
        let commit = self
            .repository
            .find_commit(id)
            .map_err(self.local("read a commit"))?;
        Ok(history::commit_info(&commit))
    }

    /// The newest `limit` commits reachable from `head` (first-parent and merged ones alike), newest
    /// first and each before its ancestors, without looking at their trees; and whether the walk
    /// reached the root (`false` when it stopped at `limit` or at the edge of a shallow fetch, so older
    /// commits may exist). Reads about `limit` commits however long the history is.
    pub fn recent_commits(
        &self,
        head: Oid,
        limit: usize,
    ) -> Result<(Vec<CommitInfo>, bool), GitError> {
        history::recent_commits(&self.repository, head, limit).map_err(self.local("walk history"))
    }

    /// The newest `limit` commits along the first-parent line from `head` (the branch's own history: a
    /// merge counts once, at its merge commit), newest first; and whether the walk reached the root.
    pub fn first_parent_commits(
        &self,
        head: Oid,
        limit: usize,
    ) -> Result<(Vec<CommitInfo>, bool), GitError> {
        let walk_error = self.local("walk history");
        let mut walk = self.repository.revwalk().map_err(&walk_error)?;
        walk.simplify_first_parent().map_err(&walk_error)?;
        walk.push(head).map_err(&walk_error)?;
        let shallow_edge = history::shallow_commits(&self.repository);
        let mut commits = Vec::new();
        let mut complete = true;
        for id in walk {
            let id = id.map_err(&walk_error)?;
            if commits.len() == limit {
                complete = false;
                break;
            }
            if shallow_edge.contains(&id) {
                complete = false;
            }
            let commit = self
                .repository
                .find_commit(id)
                .map_err(self.local("read a commit"))?;
            commits.push(history::commit_info(&commit));
        }
        Ok((commits, complete))
    }

    /// Commits reachable from `head` that changed `path` (compared with their first parent), newest
    /// first, stopping at `since` (exclusive) or after `limit` commits.
    pub fn file_history(
        &self,
        head: Oid,
        path: &str,
        since: Option<Oid>,
        limit: usize,
    ) -> Result<FileHistory, GitError> {
        let path: PathBuf = path_components(Path::new(path))?.iter().collect();
        history::file_history(&self.repository, head, &path, since, limit)
            .map_err(self.local("walk history"))
    }

    /// Whether commits `a` and `b` hold exactly the same files: a rebuilt head branch equal to the
    /// one already pushed needs no force-push.
    pub fn same_tree(&self, a: Oid, b: Oid) -> Result<bool, GitError> {
        let tree = |id| {
            self.repository
                .find_commit(id)
                .map(|commit| commit.tree_id())
                .map_err(self.local("read a commit"))
        };
        Ok(tree(a)? == tree(b)?)
    }

    /// Points tagwatch's private ref for `branch` at `commit` and pushes it to `refs/heads/<branch>`.
    /// The private ref is removed afterwards, pushed or not.
    fn push_through_private_ref(
        &self,
        commit: Oid,
        branch: &str,
        force: bool,
    ) -> Result<PushOutcome, GitError> {
        if !valid_branch_name(branch) {
            return Err(GitError::Operation {
                operation: "push",
                url: self.settings.redacted_url(),
                detail: format!("`{branch}` is not a valid branch name"),
                transient: false,
            });
        }
        self.repository
            .find_commit(commit)
            .map_err(self.local("read the commit to push"))?;
        let private = format!("{PUSH_REF_PREFIX}{branch}");
        let mut reference = self
            .repository
            .reference(&private, commit, true, "tagwatch: push")
            .map_err(self.local("write the push ref"))?;
        let plus = if force { "+" } else { "" };
        let refspec = format!("{plus}{private}:refs/heads/{branch}");
        let outcome = remote::push(&self.repository, &self.settings, &refspec, branch);
        if let Err(error) = reference.delete() {
            tracing::debug!(reference = %private, %error, "could not remove the push ref");
        }
        outcome
    }

    fn tree_of(&self, commit: Oid) -> Result<git2::Tree<'_>, GitError> {
        self.repository
            .find_commit(commit)
            .and_then(|commit| commit.tree())
            .map_err(self.local("read a commit"))
    }

    fn read_capped(
        &self,
        blob: Oid,
        max_bytes: u64,
        name: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, GitError> {
        read_capped(&self.repository, &self.settings, blob, max_bytes, name)
    }

    fn missing_path(&self, path: &str) -> GitError {
        GitError::MissingPath {
            url: self.settings.redacted_url(),
            branch: self.settings.branch.clone(),
            path: path.to_string(),
        }
    }

    fn not_regular(&self, path: String, found: &'static str) -> GitError {
        GitError::NotRegularFile {
            url: self.settings.redacted_url(),
            path,
            found,
        }
    }

    fn local(&self, operation: &'static str) -> impl Fn(git2::Error) -> GitError + '_ {
        remote::local_error(&self.settings, operation)
    }
}

fn open_or_init_bare(directory: &Path, settings: &RemoteSettings) -> Result<Repository, GitError> {
    if directory.exists() {
        match open_bare(directory) {
            Ok(repository) if repository.is_bare() => return Ok(repository),
            _ => {
                // A clone killed before it became a repository, or something else entirely: start over
                // (the cache holds nothing the remote does not).
                tracing::warn!(directory = %directory.display(), "discarding an unusable cache directory");
                std::fs::remove_dir_all(directory).map_err(|source| GitError::Cache {
                    path: directory.to_path_buf(),
                    source,
                })?;
            }
        }
    }
    Repository::init_bare(directory).map_err(|error| GitError::Operation {
        operation: "init the cache clone",
        url: settings.redacted_url(),
        detail: error.message().to_string(),
        transient: false,
    })
}

/// Opens the bare clone at `directory` through `git_repository_open_ext`, not `open_bare`: libgit2's
/// `git_repository_open_bare` skips loading the `shallow` file, so a shallow clone opened again (the
/// next process, or after [`Store::consolidate`]) walked past its edge into commits it never fetched
/// and every history read failed until a fetch happened to load it.
pub(super) fn open_bare(directory: &Path) -> Result<Repository, git2::Error> {
    Repository::open_ext(
        directory,
        git2::RepositoryOpenFlags::NO_SEARCH | git2::RepositoryOpenFlags::BARE,
        std::iter::empty::<&std::ffi::OsStr>(),
    )
}

/// `*.lock` files a killed run left in the clone (`config.lock`, `packed-refs.lock`, `shallow.lock`,
/// a ref's `.lock`): libgit2 would refuse to write through them. Safe because the cache lock guarantees
/// no one else is using this clone.
fn remove_stale_lock_files(directory: &Path) {
    let entries = |folder: &Path| {
        std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
                (entry.path(), is_dir)
            })
            .collect::<Vec<_>>()
    };
    // The top level's files, and everything under `refs/`.
    let mut files: Vec<PathBuf> = entries(directory)
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .map(|(path, _)| path)
        .collect();
    let mut folders = vec![directory.join("refs")];
    while let Some(folder) = folders.pop() {
        for (path, is_dir) in entries(&folder) {
            if is_dir {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        if path
            .extension()
            .is_some_and(|extension| extension == "lock")
            && std::fs::remove_file(&path).is_ok()
        {
            tracing::warn!(lock = %path.display(), "removed a stale lock file");
        }
    }
}
