//! The work-tree cache clone [`Workspace`]: checked out and hard-reset every cycle. Superseded by the
//! bare [`Store`](super::Store); kept until `reconcile` has moved over, then deleted.

use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{Repository, ResetType, Signature};

use super::error::GitError;
use super::history::{self, CommitInfo, FileHistory};
use super::lock::CacheLock;
use super::remote::{self, tracking_ref, valid_branch_name};
use super::settings::{CommitIdentity, RemoteSettings, Signing};
use super::{Oid, PushOutcome, cache_key, relative_path, sign};

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
        remote::fetch(&self.repository, &self.settings, branch)
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
        remote::push(&self.repository, &self.settings, refspec, branch)
    }

    fn configure(&self) -> Result<(), GitError> {
        remote::configure(&self.repository, &self.settings)
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
        remote::local_error(&self.settings, operation)
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
