//! Write-back in `push` mode (SPEC §7): the planned bumps are written into the workspace, committed
//! once per group, and pushed once per repository and branch. A rejected push (someone pushed first)
//! is never forced: the workspace is fetched and reset onto the new head, the plan is made again there
//! (a human's commit may have changed or reverted what we meant to bump), and the new commits are pushed,
//! with exponential backoff, at most [`MAX_PUSH_ATTEMPTS`] times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::config::{RepositoryConfig, WriteBackMode};
use crate::git::{CommitIdentity, PushOutcome, Signing, Workspace};
use crate::manifest::{self, files};
use crate::source::TagSource;

use super::plan::blocking;
use super::rewrite::rewrite;
use super::{Bump, ReconcileError, Reconciler, RepositoryPlan, render_message};

/// Pushes tried per repository and cycle before giving up until the next cycle: enough to get past a
/// burst of human pushes, few enough that a cycle always ends.
pub const MAX_PUSH_ATTEMPTS: usize = 5;
/// First wait after a rejected push; doubled per attempt, with jitter ([`Backoff`]), up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// What write-back did for one repository.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The bumps that were written (after any re-plan).
    pub bumps: Vec<Bump>,
    /// Commits created, oldest first (hex ids).
    pub commits: Vec<String>,
    /// Successful pushes (0 or 1 in push mode).
    pub pushes: usize,
    /// Pushes rejected because someone pushed first.
    pub rejected: usize,
    /// Pull requests opened or kept up to date (web addresses).
    pub pull_requests: Vec<String>,
    /// Pull requests closed because their group has nothing left to bump.
    pub closed: Vec<String>,
    /// Groups or pull requests that failed while the rest went on; each counts as a failure.
    pub problems: Vec<String>,
}

impl<S: TagSource + Sync> Reconciler<S> {
    pub(super) async fn write_back(
        &self,
        repository: &RepositoryConfig,
        workspace: Workspace,
        plan: &RepositoryPlan,
    ) -> Result<Applied, ReconcileError> {
        match repository.write_back.mode {
            WriteBackMode::Push => self.push_mode(repository, workspace, plan.clone()).await,
            WriteBackMode::PullRequest => self.pull_request_mode(repository, workspace, plan).await,
        }
    }

    async fn push_mode(
        &self,
        repository: &RepositoryConfig,
        mut workspace: Workspace,
        mut plan: RepositoryPlan,
    ) -> Result<Applied, ReconcileError> {
        let git_error = |source| ReconcileError::Git {
            repository: repository.name.clone(),
            source,
        };
        let mut applied = Applied::default();
        // The loop counts the attempts; the backoff only spaces them.
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP, u32::MAX);
        for attempt in 1..=MAX_PUSH_ATTEMPTS {
            if plan.bumps.is_empty() {
                return Ok(applied);
            }
            let groups = by_group(&plan.bumps);
            let identity = CommitIdentity::new(
                repository.write_back.author.name.clone(),
                repository.write_back.author.email.clone(),
            );
            let template = repository.write_back.message.clone();
            let signing = repository.write_back.signing.clone();
            let (returned, committed) = blocking(move || {
                let result = commit_groups(&workspace, &groups, &identity, &template, &signing);
                (workspace, result)
            })
            .await?;
            workspace = returned;
            let commits = committed?;
            if commits.is_empty() {
                return Ok(applied);
            }
            if let Some(hook) = &self.before_push {
                hook(&repository.name);
            }
            let (returned, pushed) = blocking(move || {
                let pushed = workspace.push();
                (workspace, pushed)
            })
            .await?;
            workspace = returned;
            match pushed.map_err(git_error)? {
                PushOutcome::Pushed => {
                    applied.pushes += 1;
                    applied.commits = commits;
                    applied.bumps = plan.bumps;
                    return Ok(applied);
                }
                PushOutcome::Rejected { reason } => {
                    applied.rejected += 1;
                    if attempt == MAX_PUSH_ATTEMPTS {
                        tracing::warn!(attempt, %reason, "push rejected; giving up until the next cycle");
                        break;
                    }
                    tracing::info!(attempt, %reason, "push rejected; re-planning on the new head");
                    tokio::time::sleep(backoff.step()).await;
                    let (returned, refreshed) = blocking(move || {
                        let refreshed = workspace.refresh();
                        (workspace, refreshed)
                    })
                    .await?;
                    refreshed.map_err(git_error)?;
                    let (returned, replanned) = self.plan_workspace(repository, returned).await?;
                    workspace = returned;
                    plan = replanned;
                }
            }
        }
        Err(ReconcileError::PushContention {
            repository: repository.name.clone(),
            attempts: MAX_PUSH_ATTEMPTS,
        })
    }
}

/// Bumps by group, groups in name order (stable commit order).
pub(crate) fn by_group(bumps: &[Bump]) -> Vec<(String, Vec<Bump>)> {
    let mut groups: BTreeMap<String, Vec<Bump>> = BTreeMap::new();
    for bump in bumps {
        groups
            .entry(bump.group.clone())
            .or_default()
            .push(bump.clone());
    }
    groups.into_iter().collect()
}

/// Writes and commits each group in turn; returns the commit ids.
pub(crate) fn commit_groups(
    workspace: &Workspace,
    groups: &[(String, Vec<Bump>)],
    identity: &CommitIdentity,
    template: &str,
    signing: &Signing,
) -> Result<Vec<String>, ReconcileError> {
    let mut commits = Vec::new();
    for (group, bumps) in groups {
        let changed =
            write_bumps(workspace.workdir(), bumps).map_err(|message| ReconcileError::Files {
                repository: bumps[0].repository.clone(),
                message,
            })?;
        let message = render_message(template, bumps);
        let committed = workspace
            .commit_files(&changed, identity, &message, signing)
            .map_err(|source| ReconcileError::Git {
                repository: bumps[0].repository.clone(),
                source,
            })?;
        if let Some(id) = committed {
            tracing::info!(group = %group, commit = %id, bumps = bumps.len(), "committed");
            commits.push(id.to_string());
        }
    }
    Ok(commits)
}

/// Carries out `bumps` in the files of the work tree (each file atomically); returns the changed
/// files, relative to the work tree.
pub(crate) fn write_bumps(workdir: &Path, bumps: &[Bump]) -> Result<Vec<PathBuf>, String> {
    let mut by_file: BTreeMap<&str, Vec<&Bump>> = BTreeMap::new();
    for bump in bumps {
        by_file.entry(bump.file.as_str()).or_default().push(bump);
    }
    let mut changed = Vec::new();
    for (file, bumps) in by_file {
        let relative = PathBuf::from(file);
        let path = workdir.join(&relative);
        let bytes = files::read(&path).map_err(|error| error.to_string())?;
        let discovery = manifest::discover(&path, &bytes);
        let edits: Vec<_> = bumps
            .iter()
            .map(|bump| (bump.target, bump.edit.clone()))
            .collect();
        if edits
            .iter()
            .any(|(index, _)| *index >= discovery.targets.len())
        {
            return Err(format!("{file}: changed since it was planned; left alone"));
        }
        let rewritten = rewrite(&path, &bytes, &discovery, &edits)
            .map_err(|message| format!("{file}: {message}"))?;
        if rewritten.after != bytes {
            files::write_atomic(&path, &rewritten.after).map_err(|error| error.to_string())?;
            changed.push(relative);
        }
    }
    Ok(changed)
}
