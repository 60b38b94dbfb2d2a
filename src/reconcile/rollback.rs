//! `tagwatch rollback IMAGE` (README.md "Using it", docs/review.md): undo the latest bump of an image. The latest commit on the
//! target branch whose `Tagwatch-Bump` trailers name the image is found; every target it bumped is set
//! back to the version before (or to `--to`), byte-exactly, as a commit (push mode) or a pull request
//! titled as a revert (pull-request mode). The commit carries `Tagwatch-Rollback` trailers, never
//! `Tagwatch-Bump` ones: tagwatch's last write of each field stays the bumped version, so the restored
//! field is held exactly as a human rollback is (docs/design/reconcile.md) until a tag newer than the reverted one appears.
//!
//! Must not: touch a field that changed since the bump (it fails instead), or force-push the target
//! branch.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{RepositoryConfig, WriteBackMode};
use crate::forge::{Forge, NewPullRequest};
use crate::git::{CommitInfo, Oid, PushOutcome};
use crate::manifest::{self, DigestChange};
use crate::source::TagSource;

use super::context::{Context, blocking};
use super::decide::version;
use super::gather::lock;
use super::history::HISTORY_LIMIT;
use super::message::{TRAILER_BUMP, parse_bump_trailer};
use super::push::Write;
use super::rewrite::{Planned, rewrite};
use super::{ReconcileError, remote_settings};

/// One trailer per restored change: `FILE IMAGE FROM -> TO` (FROM the bumped version, TO the restored one).
pub const TRAILER_ROLLBACK: &str = "Tagwatch-Rollback";

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no repository named {0} in the config")]
    UnknownRepository(String),
    #[error("no policy tracks {0} and no tagwatch commit bumped it")]
    UnknownImage(String),
    #[error(
        "no bump of {image} to undo in {searched} (the newest {HISTORY_LIMIT} commits of each branch were read)"
    )]
    NoBump { image: String, searched: String },
    #[error("{0}")]
    Changed(Box<ChangedSince>),
    #[error("--to {0:?} is not a tag or tag@digest")]
    InvalidTo(String),
    #[error("repository {repository}")]
    Reconcile {
        repository: String,
        #[source]
        source: Box<ReconcileError>,
    },
}

/// A target no longer reads what the bump wrote.
#[derive(Debug)]
pub struct ChangedSince {
    pub repository: String,
    pub file: String,
    pub image: String,
    pub bumped: String,
    pub found: String,
    pub commit: String,
}

impl std::fmt::Display for ChangedSince {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "repository {}: {}: {} reads {} now, not {} as the bump in {} left it: the field changed since; nothing was written",
            self.repository, self.file, self.image, self.found, self.bumped, self.commit
        )
    }
}

/// One change a bump made, or a rollback restores: (file, from, to).
pub type Change = (String, String, String);

impl RollbackError {
    /// README.md "Using it": 2 for an unknown image or repository (and a bad `--to`), 1 otherwise.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RollbackError::UnknownRepository(_)
                | RollbackError::UnknownImage(_)
                | RollbackError::InvalidTo(_)
        )
    }
}

/// What a rollback wrote in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub repository: String,
    /// The bump commit undone (hex).
    pub reverted: String,
    /// The revert commit (push mode) or the pull request's address (pull-request mode).
    pub written: String,
    /// (file, bumped, restored) per restored target.
    pub changes: Vec<Change>,
}

/// The latest bump of `image` in `commits` (newest first): the commit and its (file, from, to) changes.
pub fn latest_bump(commits: &[CommitInfo], image: &str) -> Option<(Oid, Vec<Change>)> {
    commits.iter().find_map(|commit| {
        let changes: Vec<Change> = commit
            .trailers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(TRAILER_BUMP))
            .filter_map(|(_, value)| parse_bump_trailer(value))
            .filter(|bump| bump.image == image)
            .map(|bump| (bump.file, bump.from, bump.to))
            .collect();
        (!changes.is_empty()).then_some((commit.id, changes))
    })
}

/// `tag@digest` / `tag` / `@digest` → (tag, digest).
fn split_version(text: &str) -> (Option<String>, Option<String>) {
    match text.split_once('@') {
        Some((tag, digest)) => (
            (!tag.is_empty()).then(|| tag.to_string()),
            Some(digest.to_string()),
        ),
        None => ((!text.is_empty()).then(|| text.to_string()), None),
    }
}

impl<S: TagSource + Send + Sync + 'static> Context<S> {
    /// Undoes the latest bump of `image` (normalized) in `repository`, or in every repository that has
    /// one. `to` replaces the version restored.
    pub async fn rollback(
        &self,
        image: &str,
        repository: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<RolledBack>, RollbackError> {
        if let Some(to) = to {
            let (tag, digest) = split_version(to);
            let tag_ok = tag.as_deref().is_none_or(crate::reference::is_valid_tag);
            let digest_ok = digest
                .as_deref()
                .is_none_or(crate::reference::is_valid_digest);
            if tag.is_none() || !tag_ok || !digest_ok {
                return Err(RollbackError::InvalidTo(to.to_string()));
            }
        }
        let repositories: Vec<&RepositoryConfig> = match repository {
            Some(name) => vec![
                self.config()
                    .repositories
                    .iter()
                    .find(|candidate| candidate.name == name)
                    .ok_or_else(|| RollbackError::UnknownRepository(name.to_string()))?,
            ],
            None => self.config().repositories.iter().collect(),
        };
        let tracked = self
            .config()
            .policies
            .iter()
            .any(|policy| policy.image.name() == image);
        let mut done = Vec::new();
        let mut bumped_anywhere = false;
        for repository in &repositories {
            let found = self.rollback_in(repository, image, to).await?;
            if let Some(rolled_back) = found {
                bumped_anywhere = true;
                done.push(rolled_back);
            }
        }
        if !bumped_anywhere {
            if !tracked {
                return Err(RollbackError::UnknownImage(image.to_string()));
            }
            return Err(RollbackError::NoBump {
                image: image.to_string(),
                searched: repositories
                    .iter()
                    .map(|repository| repository.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(done)
    }

    async fn rollback_in(
        &self,
        repository: &RepositoryConfig,
        image: &str,
        to: Option<&str>,
    ) -> Result<Option<RolledBack>, RollbackError> {
        let name = repository.name.clone();
        let failed = |source: ReconcileError| RollbackError::Reconcile {
            repository: name.clone(),
            source: Box::new(source),
        };
        let settings = remote_settings(repository, self.environment()).map_err(failed)?;
        let lane = self.lane(&settings);
        let mut guard = lane.lock().await;
        let store = self.store_in(&mut guard, settings).await.map_err(failed)?;
        let write = Write::of(repository);
        let image_owned = image.to_string();
        let to_owned = to.map(str::to_string);
        let repository_name = name.clone();
        let shared = store.clone();
        // Gather and commit (objects only) on a blocking thread.
        let built = blocking(move || -> Result<Option<Built>, RollbackError> {
            let store = lock(&shared);
            let failed = |source: ReconcileError| RollbackError::Reconcile {
                repository: repository_name.clone(),
                source: Box::new(source),
            };
            let branch = store.settings().branch.clone();
            let head = store
                .fetch(&branch)
                .map_err(|error| failed(error.into()))?
                .ok_or_else(|| {
                    failed(ReconcileError::Git(crate::git::GitError::MissingBranch {
                        url: store.settings().redacted_url(),
                        branch: branch.clone(),
                    }))
                })?;
            let (commits, _) = store
                .recent_commits(head, HISTORY_LIMIT)
                .map_err(|error| failed(error.into()))?;
            let Some((bump_commit, changes)) = latest_bump(&commits, &image_owned) else {
                return Ok(None);
            };
            let short: String = bump_commit.to_string().chars().take(7).collect();
            // Per file, the (bumped, restored) versions.
            let mut by_file: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            for (file, from, bumped) in changes {
                let restored = to_owned.clone().unwrap_or(from);
                by_file.entry(file).or_default().push((bumped, restored));
            }
            let mut edited = Vec::new();
            let mut restored_changes = Vec::new();
            for (file, versions) in by_file {
                let bytes = store
                    .file_at(head, &file, manifest::discover::MAX_FILE_SIZE as u64)
                    .map_err(|error| failed(error.into()))?
                    .ok_or_else(|| RollbackError::Changed(Box::new(ChangedSince {
                        repository: repository_name.clone(),
                        file: file.clone(),
                        image: image_owned.clone(),
                        bumped: versions[0].0.clone(),
                        found: "no such file".into(),
                        commit: short.clone(),
                    })))?;
                let path = Path::new(&file);
                let discovery = manifest::discover(path, &bytes);
                let (bumped, restored) = versions[0].clone();
                let targets: Vec<usize> = discovery
                    .targets
                    .iter()
                    .enumerate()
                    .filter(|(_, target)| target.reference.name() == image_owned)
                    .map(|(index, _)| index)
                    .collect();
                let reads = |index: usize| {
                    let reference = &discovery.targets[index].reference;
                    version(reference.tag.as_deref(), reference.digest.as_deref())
                };
                let matching: Vec<usize> = targets
                    .iter()
                    .copied()
                    .filter(|index| reads(*index) == bumped)
                    .collect();
                if matching.is_empty() {
                    let found = targets
                        .first()
                        .map(|index| reads(*index))
                        .unwrap_or_else(|| "no reference to it".into());
                    return Err(RollbackError::Changed(Box::new(ChangedSince {
                        repository: repository_name.clone(),
                        file,
                        image: image_owned.clone(),
                        bumped,
                        found,
                        commit: short.clone(),
                    })));
                }
                let (tag, digest) = split_version(&restored);
                let edit = manifest::Bump {
                    name: None,
                    tag,
                    digest: match digest {
                        Some(digest) => DigestChange::Set(digest),
                        None => DigestChange::Remove,
                    },
                };
                let planned: Vec<Planned<'_>> = matching
                    .iter()
                    .map(|index| Planned {
                        target: *index,
                        from: &discovery.targets[*index].written,
                        image: &image_owned,
                        edit: &edit,
                        to: None,
                    })
                    .collect();
                let rewritten = rewrite(path, &bytes, &discovery, &planned).map_err(|reason| {
                    failed(ReconcileError::Rewrite {
                        reason: format!("{file}: {reason}"),
                    })
                })?;
                for _ in &matching {
                    restored_changes.push((file.clone(), bumped.clone(), restored.clone()));
                }
                edited.push((file, rewritten.after));
            }
            let mut message = format!(
                "revert(images): roll {image_owned} back from {} to {}\n\nReverts the bump of {image_owned} in {short}.\n\n",
                restored_changes[0].1, restored_changes[0].2
            );
            for (file, bumped, restored) in &restored_changes {
                message.push_str(&format!(
                    "{TRAILER_ROLLBACK}: {file} {image_owned} {bumped} -> {restored}\n"
                ));
            }
            let commit = store
                .commit(head, &edited, &write.identity, &message, &write.signing)
                .map_err(|error| failed(error.into()))?;
            let Some(commit) = commit else {
                return Ok(None);
            };
            Ok(Some(Built {
                commit,
                reverted: bump_commit,
                short,
                changes: restored_changes,
            }))
        })
        .await
        .map_err(failed)??;
        let Some(built) = built else {
            return Ok(None);
        };
        let written = match repository.write_back.mode {
            WriteBackMode::Push => {
                let shared = store.clone();
                let commit = built.commit;
                let pushed = blocking(move || lock(&shared).push(commit))
                    .await
                    .map_err(failed)?
                    .map_err(|error| failed(error.into()))?;
                match pushed {
                    PushOutcome::Pushed => built.commit.to_string(),
                    PushOutcome::Rejected { reason } => {
                        return Err(failed(ReconcileError::Git(
                            crate::git::GitError::PushRefused {
                                url: crate::secret::redact_url(&repository.url),
                                branch: repository.write_back.branch.clone(),
                                reason: format!(
                                    "someone pushed first ({reason}); run rollback again"
                                ),
                            },
                        )));
                    }
                }
            }
            WriteBackMode::PullRequest => {
                let forge = self.forge(repository).map_err(failed)?;
                let safe: String = image
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                let branch = format!(
                    "tagwatch/rollback-{}-{}",
                    safe.trim_matches('-'),
                    built.short
                );
                let shared = store.clone();
                let commit = built.commit;
                let head_branch = branch.clone();
                blocking(move || lock(&shared).force_push(commit, &head_branch))
                    .await
                    .map_err(failed)?
                    .map_err(|error| failed(error.into()))?;
                let title = format!(
                    "Revert: roll {image} back from {} to {}",
                    built.changes[0].1, built.changes[0].2
                );
                let mut body = format!(
                    "tagwatch rolls `{image}` back, reverting the bump in {} ({}).\n\n| File | From | To |\n| --- | --- | --- |\n",
                    built.short, built.reverted
                );
                for (file, bumped, restored) in &built.changes {
                    body.push_str(&format!("| `{file}` | `{bumped}` | `{restored}` |\n"));
                }
                body.push_str(
                    "\nOnce merged, the restored fields are held (as a human revert is) until a tag newer than the reverted one appears.\n",
                );
                let opened = forge
                    .open_pull_request(&NewPullRequest {
                        head: branch,
                        base: repository.branch.clone(),
                        title,
                        body,
                        labels: Vec::new(),
                        reviewers: Vec::new(),
                    })
                    .await
                    .map_err(|error| failed(error.into()))?;
                opened.url
            }
        };
        Ok(Some(RolledBack {
            repository: name,
            reverted: built.reverted.to_string(),
            written,
            changes: built.changes,
        }))
    }
}

struct Built {
    commit: Oid,
    reverted: Oid,
    short: String,
    changes: Vec<Change>,
}
