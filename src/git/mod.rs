//! Git adapter (on `git2`): owns the cache clones, fetch, commit, signing, push and history access.
//!
//! A [`Workspace`] is one cached clone of one remote branch. Every cycle starts with
//! [`Workspace::prepare`], which fetches and hard-resets the local branch to the remote head, so whatever
//! a killed run left behind (an unpushed commit, a half-written file, a stale lock) is discarded and
//! re-planned instead of pushed twice.
//!
//! Must not: decide what to change, which commit is a human's revert, or when to retry — that is
//! `reconcile`. Must not: force-push the protected target branch, or put a credential in a log line or
//! an error. The API is blocking (libgit2 is); async callers wrap it in `spawn_blocking`.

mod error;
mod history;
mod known_hosts;
mod lock;
mod settings;
mod sign;
mod store_stub;
mod transport;
pub use store_stub::*;

use std::path::{Component, Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{AutotagOption, FetchOptions, PushOptions, Repository, ResetType, Signature};
use sha2::{Digest, Sha256};

pub use error::{ErrorClass, GitError};
pub use git2::Oid;
pub use history::{CommitInfo, FileHistory, Person};
pub use known_hosts::{HostKeyStatus, KnownHosts};
pub use settings::{
    CommitIdentity, DEFAULT_SSH_USERNAME, DEFAULT_TOKEN_USERNAME, GitAuth, RemoteSettings, Signing,
};

use error::scrub;
use lock::CacheLock;
use transport::Transport;

/// The remote name inside every cache clone.
const REMOTE: &str = "origin";

/// Upper bound on commits returned by [`Workspace::file_history`] when the caller passes no limit of
/// its own: rollback detection only looks back to tagwatch's last commit on a file.
pub const DEFAULT_HISTORY_LIMIT: usize = 1000;

/// Result of a push that reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed,
    /// The branch moved on the remote (someone else pushed first): fetch, re-plan, commit again.
    Rejected {
        reason: String,
    },
}

/// One cached clone of one remote branch.
pub struct Workspace {
    settings: RemoteSettings,
    repository: Repository,
    directory: PathBuf,
    _lock: CacheLock,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("remote", &self.settings)
            .field("directory", &self.directory)
            .finish()
    }
}

impl Workspace {
    /// Opens (or clones into) the cache directory for `settings` under `cache_root`, fetches the target
    /// branch and hard-resets the work tree to the remote head. Unpushed local commits are discarded.
    pub fn prepare(cache_root: &Path, settings: &RemoteSettings) -> Result<Self, GitError> {
        let span = tracing::info_span!("git.prepare", repository = %settings.redacted_url(), branch = %settings.branch);
        let _entered = span.enter();
        if !valid_branch_name(&settings.branch) {
            return Err(GitError::MissingBranch {
                url: settings.redacted_url(),
                branch: settings.branch.clone(),
            });
        }
        let directory = cache_root.join(cache_key(settings));
        let cache_error = |source| GitError::Cache {
            path: directory.clone(),
            source,
        };
        std::fs::create_dir_all(cache_root).map_err(cache_error)?;
        let lock = CacheLock::acquire(&directory)?;
        let repository = open_or_init(&directory, settings)?;
        let workspace = Workspace {
            settings: settings.clone(),
            repository,
            directory,
            _lock: lock,
        };
        workspace.configure()?;
        workspace.remove_stale_locks();
        let Some(head) = workspace.fetch_branch(&settings.branch)? else {
            return Err(GitError::MissingBranch {
                url: settings.redacted_url(),
                branch: settings.branch.clone(),
            });
        };
        workspace.checkout_branch_at(&settings.branch, head)?;
        tracing::debug!(head = %head, "workspace ready");
        Ok(workspace)
    }

    /// The work tree: files to scan and rewrite.
    pub fn workdir(&self) -> &Path {
        self.repository
            .workdir()
            .expect("cache clones are never bare")
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// The commit checked out now.
    pub fn head(&self) -> Result<Oid, GitError> {
        self.repository
            .head()
            .and_then(|head| head.peel_to_commit())
            .map(|commit| commit.id())
            .map_err(self.local("read HEAD"))
    }

    /// The branch checked out now (the target branch, or a head branch after [`Self::start_branch`]).
    pub fn current_branch(&self) -> Result<String, GitError> {
        let head = self.repository.head().map_err(self.local("read HEAD"))?;
        Ok(head.shorthand().unwrap_or_default().to_string())
    }

    /// Fetches `branch` from the remote. Returns its head, or `None` when the remote has no such branch.
    pub fn fetch_branch(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        if !valid_branch_name(branch) {
            return Ok(None);
        }
        let tracking = tracking_ref(branch);
        // A branch deleted on the remote must not survive as a stale tracking ref.
        if let Ok(mut reference) = self.repository.find_reference(&tracking) {
            reference
                .delete()
                .map_err(self.local("delete tracking ref"))?;
        }
        let transport = Transport::new(&self.settings)?;
        let mut remote = self
            .repository
            .find_remote(REMOTE)
            .map_err(self.local("find remote"))?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(transport.callbacks());
        options.download_tags(AutotagOption::None);
        if let Some(depth) = self.settings.depth
            && !is_local(&self.settings.url)
        {
            options.depth(i32::try_from(depth).unwrap_or(i32::MAX));
        }
        let refspec = format!("+refs/heads/{branch}:{tracking}");
        remote
            .fetch(&[&refspec], Some(&mut options), None)
            .map_err(|error| transport.classify("fetch", &error))?;
        Ok(self
            .repository
            .refname_to_id(&tracking)
            .ok()
            .filter(|id| !id.is_zero()))
    }

    /// Discards every local change and commit: the target branch is reset to the remote head fetched
    /// last, and checked out.
    pub fn reset_to_remote(&self) -> Result<Oid, GitError> {
        let head = self
            .repository
            .refname_to_id(&tracking_ref(&self.settings.branch))
            .map_err(|_| GitError::MissingBranch {
                url: self.settings.redacted_url(),
                branch: self.settings.branch.clone(),
            })?;
        self.checkout_branch_at(&self.settings.branch, head)?;
        Ok(head)
    }

    /// Fetches the target branch again and resets onto it (after a rejected push).
    pub fn refresh(&self) -> Result<Oid, GitError> {
        match self.fetch_branch(&self.settings.branch)? {
            Some(_) => self.reset_to_remote(),
            None => Err(GitError::MissingBranch {
                url: self.settings.redacted_url(),
                branch: self.settings.branch.clone(),
            }),
        }
    }

    /// Creates (or resets) local branch `name` at the remote target branch and checks it out: a
    /// pull-request head branch is always rebuilt from the base.
    pub fn start_branch(&self, name: &str) -> Result<Oid, GitError> {
        if name == self.settings.branch {
            return Err(self.protected(name));
        }
        if !valid_branch_name(name) {
            return Err(GitError::Operation {
                operation: "create branch",
                url: self.settings.redacted_url(),
                detail: format!("`{name}` is not a valid branch name"),
                transient: false,
            });
        }
        let base = self
            .repository
            .refname_to_id(&tracking_ref(&self.settings.branch))
            .map_err(self.local("read the base branch"))?;
        self.checkout_branch_at(name, base)?;
        Ok(base)
    }

    /// Fails with [`GitError::MissingPath`] for the first configured path that does not exist in the
    /// work tree, or [`GitError::PathOutsideRepository`] for one that escapes it.
    pub fn check_paths<P: AsRef<Path>>(&self, paths: &[P]) -> Result<(), GitError> {
        for path in paths {
            let path = relative_path(path.as_ref())?;
            if !self.workdir().join(path).exists() {
                return Err(GitError::MissingPath {
                    url: self.settings.redacted_url(),
                    branch: self.current_branch()?,
                    path: path.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Stages `paths` (relative to the work tree; a missing file is staged as deleted) and commits them
    /// on the current branch. Returns `None` and commits nothing when the tree did not change.
    pub fn commit_files<P: AsRef<Path>>(
        &self,
        paths: &[P],
        identity: &CommitIdentity,
        message: &str,
        signing: &Signing,
    ) -> Result<Option<Oid>, GitError> {
        let repository = &self.repository;
        let mut index = repository.index().map_err(self.local("read the index"))?;
        for path in paths {
            let path = relative_path(path.as_ref())?;
            if self.workdir().join(path).exists() {
                index.add_path(path).map_err(self.local("stage a file"))?;
            } else {
                index
                    .remove_path(path)
                    .map_err(self.local("stage a deletion"))?;
            }
        }
        index.write().map_err(self.local("write the index"))?;
        let tree_id = index.write_tree().map_err(self.local("write the tree"))?;
        let parent = repository
            .head()
            .and_then(|head| head.peel_to_commit())
            .map_err(self.local("read HEAD"))?;
        if parent.tree_id() == tree_id {
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
                .commit(
                    Some("HEAD"),
                    &signature,
                    &signature,
                    message,
                    &tree,
                    &[&parent],
                )
                .map_err(self.local("commit"))?,
            Some(gpgsig) => {
                let content = std::str::from_utf8(&buffer).map_err(|_| GitError::Operation {
                    operation: "commit",
                    url: self.settings.redacted_url(),
                    detail: "the commit message is not UTF-8".to_string(),
                    transient: false,
                })?;
                let id = repository
                    .commit_signed(content, &gpgsig, Some("gpgsig"))
                    .map_err(self.local("write the signed commit"))?;
                let branch = repository.head().map_err(self.local("read HEAD"))?;
                let branch = branch.name().unwrap_or("HEAD").to_string();
                repository
                    .reference(&branch, id, true, "tagwatch: signed commit")
                    .map_err(self.local("move the branch"))?;
                id
            }
        };
        tracing::info!(commit = %id, signed = !matches!(signing, Signing::None), "committed");
        Ok(Some(id))
    }

    /// Pushes the local target branch to the remote target branch, never forced. A non-fast-forward
    /// (someone pushed first) is [`PushOutcome::Rejected`]; a refusal for any other reason (a hook, a
    /// protection rule) is [`GitError::PushRefused`].
    pub fn push(&self) -> Result<PushOutcome, GitError> {
        let branch = self.settings.branch.clone();
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        self.push_refspec(&refspec, &branch)
    }

    /// Force-pushes local branch `local` to `remote_branch`: only for tagwatch's own pull-request head
    /// branches. Refuses the protected target branch.
    pub fn force_push_branch(&self, local: &str, remote_branch: &str) -> Result<(), GitError> {
        if remote_branch == self.settings.branch {
            return Err(self.protected(remote_branch));
        }
        let refspec = format!("+refs/heads/{local}:refs/heads/{remote_branch}");
        match self.push_refspec(&refspec, remote_branch)? {
            PushOutcome::Pushed => Ok(()),
            PushOutcome::Rejected { reason } => Err(GitError::PushRefused {
                url: self.settings.redacted_url(),
                branch: remote_branch.to_string(),
                reason,
            }),
        }
    }

    /// Commits on the current branch that changed `path`, newest first, stopping at `since` (exclusive)
    /// or after `limit` commits.
    pub fn file_history(
        &self,
        path: &Path,
        since: Option<Oid>,
        limit: usize,
    ) -> Result<FileHistory, GitError> {
        let path = relative_path(path)?;
        let head = self.head()?;
        history::file_history(&self.repository, head, path, since, limit)
            .map_err(self.local("walk history"))
    }

    /// The newest `limit` commits of the current branch (first-parent and merged ones alike), newest
    /// first, without looking at their trees: one cheap walk from which `reconcile` reads tagwatch's
    /// trailers for every file at once. (Added for `reconcile`'s rollback detection.)
    pub fn recent_commits(&self, limit: usize) -> Result<Vec<CommitInfo>, GitError> {
        let head = self.head()?;
        let mut walk = self
            .repository
            .revwalk()
            .map_err(self.local("walk history"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)
            .map_err(self.local("walk history"))?;
        walk.push(head).map_err(self.local("walk history"))?;
        let mut commits = Vec::new();
        for id in walk.take(limit) {
            let id = id.map_err(self.local("walk history"))?;
            let commit = self
                .repository
                .find_commit(id)
                .map_err(self.local("read a commit"))?;
            commits.push(history::commit_info(&commit));
        }
        Ok(commits)
    }

    /// Whether commits `a` and `b` hold exactly the same files: a rebuilt head branch equal to the one
    /// already pushed needs no force-push (and its pull request no update).
    pub fn same_tree(&self, a: Oid, b: Oid) -> Result<bool, GitError> {
        let tree = |id| {
            self.repository
                .find_commit(id)
                .map(|commit| commit.tree_id())
                .map_err(self.local("read a commit"))
        };
        Ok(tree(a)? == tree(b)?)
    }

    /// One commit's metadata.
    pub fn commit_info(&self, id: Oid) -> Result<CommitInfo, GitError> {
        let commit = self
            .repository
            .find_commit(id)
            .map_err(self.local("read a commit"))?;
        Ok(history::commit_info(&commit))
    }

    /// The bytes of `path` at commit `id`, or `None` when the file does not exist there.
    pub fn file_at(&self, id: Oid, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        let path = relative_path(path)?;
        let commit = self
            .repository
            .find_commit(id)
            .map_err(self.local("read a commit"))?;
        let Some(blob) = history::blob_at(&commit, path) else {
            return Ok(None);
        };
        let blob = self
            .repository
            .find_blob(blob)
            .map_err(self.local("read a file"))?;
        Ok(Some(blob.content().to_vec()))
    }

    fn push_refspec(&self, refspec: &str, branch: &str) -> Result<PushOutcome, GitError> {
        let span = tracing::info_span!("git.push", repository = %self.settings.redacted_url(), branch = %branch);
        let _entered = span.enter();
        let transport = Transport::new(&self.settings)?;
        let mut remote = self
            .repository
            .find_remote(REMOTE)
            .map_err(self.local("find remote"))?;
        let mut options = PushOptions::new();
        options.remote_callbacks(transport.callbacks());
        match remote.push(&[refspec], Some(&mut options)) {
            Ok(()) => {}
            Err(error) if error.code() == git2::ErrorCode::NotFastForward => {
                let reason = scrub(error.message(), &self.settings.url, &[]);
                tracing::info!(%reason, "push rejected");
                return Ok(PushOutcome::Rejected { reason });
            }
            Err(error) => return Err(transport.classify("push", &error)),
        }
        if let Some((reference, status)) = transport.take_push_statuses().into_iter().next() {
            let status = scrub(&status, &self.settings.url, &self.settings.auth.secrets());
            // The server checks fast-forward too (and a concurrent push can win the ref lock): both
            // mean "someone else was first".
            let moved = [
                "fetch first",
                "non-fast-forward",
                "failed to lock",
                "cannot lock",
            ]
            .iter()
            .any(|needle| status.contains(needle));
            if moved {
                tracing::info!(reason = %status, "push rejected");
                return Ok(PushOutcome::Rejected { reason: status });
            }
            return Err(GitError::PushRefused {
                url: self.settings.redacted_url(),
                branch: reference.trim_start_matches("refs/heads/").to_string(),
                reason: status,
            });
        }
        tracing::info!("pushed");
        Ok(PushOutcome::Pushed)
    }

    fn configure(&self) -> Result<(), GitError> {
        let repository = &self.repository;
        match repository.find_remote(REMOTE) {
            Ok(remote) if remote.url() == Ok(self.settings.url.as_str()) => {}
            Ok(_) => repository
                .remote_set_url(REMOTE, &self.settings.url)
                .map_err(self.local("set the remote URL"))?,
            Err(_) => {
                repository
                    .remote(REMOTE, &self.settings.url)
                    .map_err(self.local("add the remote"))?;
            }
        }
        let mut config = repository.config().map_err(self.local("open config"))?;
        // Files are read and written byte-exactly: no line-ending conversion on checkout or commit,
        // whatever the machine's global git config says.
        for (key, value) in [("core.autocrlf", "false"), ("core.safecrlf", "false")] {
            config
                .set_str(key, value)
                .map_err(self.local("write config"))?;
        }
        Ok(())
    }

    /// Lock files left by a process killed mid-operation. Safe because the cache lock guarantees that
    /// no other workspace uses this clone.
    fn remove_stale_locks(&self) {
        let git_dir = self.repository.path();
        let mut candidates = vec![git_dir.join("index.lock"), git_dir.join("HEAD.lock")];
        candidates.push(git_dir.join(format!("refs/heads/{}.lock", self.settings.branch)));
        for lock in candidates {
            if std::fs::remove_file(&lock).is_ok() {
                tracing::warn!(lock = %lock.display(), "removed a stale lock file");
            }
        }
    }

    fn checkout_branch_at(&self, branch: &str, id: Oid) -> Result<(), GitError> {
        let repository = &self.repository;
        let name = format!("refs/heads/{branch}");
        let commit = repository
            .find_commit(id)
            .map_err(self.local("read the remote head"))?;
        repository
            .reference(&name, id, true, "tagwatch: reset to the remote head")
            .map_err(self.local("move the branch"))?;
        repository
            .set_head(&name)
            .map_err(self.local("switch branch"))?;
        repository
            .reset(commit.as_object(), ResetType::Hard, None)
            .map_err(self.local("reset the work tree"))?;
        // A hard reset keeps untracked files (libgit2 forces its own checkout strategy); a killed run
        // may have left some, so a second checkout removes them.
        let mut checkout = CheckoutBuilder::new();
        checkout.force().remove_untracked(true).remove_ignored(true);
        repository
            .checkout_head(Some(&mut checkout))
            .map_err(self.local("clean the work tree"))
    }

    fn protected(&self, branch: &str) -> GitError {
        GitError::ProtectedBranch {
            url: self.settings.redacted_url(),
            branch: branch.to_string(),
        }
    }

    /// Maps a failure of a local (non-network) operation.
    fn local(&self, operation: &'static str) -> impl Fn(git2::Error) -> GitError + '_ {
        move |error| GitError::Operation {
            operation,
            url: self.settings.redacted_url(),
            detail: scrub(
                error.message(),
                &self.settings.url,
                &self.settings.auth.secrets(),
            ),
            transient: error.code() == git2::ErrorCode::Locked,
        }
    }
}

fn open_or_init(directory: &Path, settings: &RemoteSettings) -> Result<Repository, GitError> {
    if directory.exists() {
        match Repository::open(directory) {
            Ok(repository) if !repository.is_bare() => return Ok(repository),
            _ => {
                // A clone interrupted before it became a repository: start over.
                tracing::warn!(directory = %directory.display(), "discarding an unusable cache directory");
                std::fs::remove_dir_all(directory).map_err(|source| GitError::Cache {
                    path: directory.to_path_buf(),
                    source,
                })?;
            }
        }
    }
    Repository::init(directory).map_err(|error| GitError::Operation {
        operation: "init the cache clone",
        url: settings.redacted_url(),
        detail: error.message().to_string(),
        transient: false,
    })
}

/// `<name>-<hash>`: readable, and distinct for every (URL without credentials, branch).
fn cache_key(settings: &RemoteSettings) -> String {
    let url = settings.redacted_url();
    let name: String = url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(url.as_bytes());
    hasher.update(b"\n");
    hasher.update(settings.branch.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/{REMOTE}/{branch}")
}

fn valid_branch_name(branch: &str) -> bool {
    !branch.is_empty() && git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
}

fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || !url.contains(':')
}

/// A path relative to the work tree that cannot leave it.
fn relative_path(path: &Path) -> Result<&Path, GitError> {
    let escapes = path.as_os_str().is_empty()
        || path
            .components()
            .any(|component| !matches!(component, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(GitError::PathOutsideRepository {
            path: path.display().to_string(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_ignores_credentials_and_separates_branches() {
        let with_user = RemoteSettings::new("https://bot:tok@example.com/acme/prod.git", "main");
        let without = RemoteSettings::new("https://example.com/acme/prod.git", "main");
        let other_branch = RemoteSettings::new("https://example.com/acme/prod.git", "staging");
        assert!(cache_key(&with_user).starts_with("prod-"));
        assert!(!cache_key(&with_user).contains("tok"));
        assert_ne!(cache_key(&without), cache_key(&other_branch));
    }

    #[test]
    fn relative_path_rejects_escapes() {
        assert!(relative_path(Path::new("clusters/prod/app.yaml")).is_ok());
        assert!(relative_path(Path::new("../etc/passwd")).is_err());
        assert!(relative_path(Path::new("/etc/passwd")).is_err());
        assert!(relative_path(Path::new("a/../../b")).is_err());
    }
}
