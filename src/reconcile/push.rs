//! Write-back in `push` mode (docs/design/reconcile.md): the planned bumps become one commit per group, built in git's
//! object database on top of the planned head, and one push per repository and branch. A rejected push
//! (someone pushed first) is never forced: the branch is fetched again, the plan is made again on the new
//! head (a human's commit may have changed or reverted what we meant to bump), and the new commits are
//! pushed, with exponential backoff, at most [`MAX_PUSH_ATTEMPTS`] times. Nothing is written anywhere but
//! new objects until the push, so a process killed at any point leaves nothing to clean up.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backoff::Backoff;
use crate::config::RepositoryConfig;
use crate::git::{CommitIdentity, Oid, PushOutcome, Signing, Store};
use crate::manifest;
use crate::source::TagSource;

use super::context::{Context, SharedStore, blocking};
use super::gather::lock;
use super::rewrite::{Planned, rewrite};
use super::{Bump, Problem, ReconcileError, RepositoryPlan, Scope, render_message};

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
    /// Commits created and pushed, oldest first (hex ids).
    pub commits: Vec<String>,
    /// Successful pushes.
    pub pushes: usize,
    /// Pushes rejected because someone pushed first.
    pub rejected: usize,
    /// Pull requests opened or kept up to date.
    pub pull_requests: Vec<PullRequestRef>,
    /// Pull requests opened this cycle (web addresses; also in `pull_requests`).
    pub opened: Vec<String>,
    /// Pull requests whose title or body was refreshed this cycle (web addresses).
    pub updated: Vec<String>,
    /// Pull requests closed because their group has nothing left to bump.
    pub closed: Vec<String>,
    /// Pull requests merged by tagwatch (`writeBack.merge`) this cycle.
    pub merged: Vec<String>,
    /// What happened to each pull request, for notifications.
    pub events: Vec<PullRequestEvent>,
    /// Groups or pull requests that failed while the rest went on; each counts as a failure.
    pub problems: Vec<Problem>,
}

/// Something that happened to one of tagwatch's pull requests this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub change: PullRequestChange,
    pub number: u64,
    pub url: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullRequestChange {
    Opened,
    Updated,
    Merged,
    /// Closed, and why.
    Closed(String),
}

/// One of tagwatch's pull requests: its group and web address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRef {
    pub group: String,
    pub url: String,
}

/// Commits and pushes `plan`; returns the plan finally written (after any re-plan) and what was done.
pub(super) async fn push_mode<S: TagSource + Send + Sync + 'static>(
    context: &Context<S>,
    repository: &RepositoryConfig,
    store: &SharedStore,
    mut plan: RepositoryPlan,
    now: DateTime<Utc>,
) -> (RepositoryPlan, Result<Applied, Problem>) {
    let name = repository.name.as_str();
    let problem = |error: ReconcileError| Problem::new(name, Scope::Repository, error);
    let mut applied = Applied::default();
    // The loop counts the attempts; the backoff only spaces them.
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP, u32::MAX);
    for attempt in 1..=MAX_PUSH_ATTEMPTS {
        if plan.bumps.is_empty() {
            return (plan, Ok(applied));
        }
        let Ok(head) = Oid::from_str(&plan.head) else {
            return (
                plan,
                Err(problem(ReconcileError::Join("no planned head".into()))),
            );
        };
        if context.stopping() {
            tracing::info!("stopping: no new push starts");
            return (plan, Ok(applied));
        }
        context.fault("before-commit");
        let groups = by_group(&plan.bumps);
        let write = Write::of(repository);
        let shared = store.clone();
        let committed = blocking(move || {
            let store = lock(&shared);
            commit_groups(&store, head, &groups, &write)
        })
        .await;
        let (tip, commits) = match committed {
            Ok(Ok(Some(done))) => done,
            Ok(Ok(None)) => return (plan, Ok(applied)),
            Ok(Err(error)) => return (plan, Err(problem(error))),
            Err(error) => return (plan, Err(problem(error))),
        };
        if let Some(hook) = context.before_push() {
            hook(name);
        }
        context.fault("before-push");
        let shared = store.clone();
        let pushed = blocking(move || lock(&shared).push(tip)).await;
        match pushed {
            Err(error) => return (plan, Err(problem(error))),
            Ok(Err(error)) => return (plan, Err(problem(error.into()))),
            Ok(Ok(PushOutcome::Pushed)) => {
                tracing::info!(commit = %tip, commits = commits.len(), bumps = plan.bumps.len(), "pushed");
                context.fault("after-push");
                applied.pushes += 1;
                applied.commits = commits;
                applied.bumps = plan.bumps.clone();
                return (plan, Ok(applied));
            }
            Ok(Ok(PushOutcome::Rejected { reason })) => {
                applied.rejected += 1;
                if attempt == MAX_PUSH_ATTEMPTS {
                    tracing::warn!(attempt, %reason, "push rejected; giving up until the next cycle");
                    break;
                }
                tracing::info!(attempt, %reason, "push rejected; re-planning on the new head");
                tokio::time::sleep(backoff.step()).await;
                match context.plan_on(repository, store, now).await {
                    Ok(replanned) => plan = replanned,
                    Err(problem) => return (plan, Err(problem)),
                }
            }
        }
    }
    (
        plan,
        Err(problem(ReconcileError::PushContention {
            attempts: MAX_PUSH_ATTEMPTS,
        })),
    )
}

/// How commits are written for one repository.
#[derive(Debug, Clone)]
pub(super) struct Write {
    pub identity: CommitIdentity,
    pub template: String,
    pub signing: Signing,
}

impl Write {
    pub fn of(repository: &RepositoryConfig) -> Self {
        Write {
            identity: CommitIdentity::new(
                repository.write_back.author.name.clone(),
                repository.write_back.author.email.clone(),
            ),
            template: repository.write_back.message.clone(),
            signing: repository.write_back.signing.clone(),
        }
    }
}

/// Bumps by group, groups in name order (stable commit order).
pub(super) fn by_group(bumps: &[Bump]) -> Vec<(String, Vec<Bump>)> {
    let mut groups: BTreeMap<String, Vec<Bump>> = BTreeMap::new();
    for bump in bumps {
        groups
            .entry(bump.group.clone())
            .or_default()
            .push(bump.clone());
    }
    groups.into_iter().collect()
}

/// Commits each group in turn on top of `base`: returns the last commit and every commit id, or `None`
/// when nothing changed. Every file is rewritten with the checks of [`rewrite`]; any failure writes
/// nothing.
pub(super) fn commit_groups(
    store: &Store,
    base: Oid,
    groups: &[(String, Vec<Bump>)],
    write: &Write,
) -> Result<Option<(Oid, Vec<String>)>, ReconcileError> {
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut parent = base;
    let mut commits = Vec::new();
    for (group, bumps) in groups {
        let mut changes = Vec::new();
        for (file, file_bumps) in by_file(bumps) {
            let bytes = match contents.get(&file) {
                Some(bytes) => bytes.clone(),
                None => store
                    .file_at(base, &file, manifest::discover::MAX_FILE_SIZE as u64)?
                    .ok_or_else(|| ReconcileError::Rewrite {
                        reason: format!("{file} is gone from the planned commit"),
                    })?,
            };
            let path = Path::new(&file);
            let discovery = manifest::discover(path, &bytes);
            let planned: Vec<Planned<'_>> =
                file_bumps.iter().map(|bump| Planned::from(*bump)).collect();
            let rewritten = rewrite(path, &bytes, &discovery, &planned).map_err(|reason| {
                ReconcileError::Rewrite {
                    reason: format!("{file}: {reason}"),
                }
            })?;
            if rewritten.after != bytes {
                contents.insert(file.clone(), rewritten.after.clone());
                changes.push((file, rewritten.after));
            }
        }
        if changes.is_empty() {
            continue;
        }
        let message = render_message(&write.template, bumps);
        let commit = store.commit(parent, &changes, &write.identity, &message, &write.signing)?;
        if let Some(id) = commit {
            tracing::info!(group = %group, commit = %id, bumps = bumps.len(), "committed");
            commits.push(id.to_string());
            parent = id;
        }
    }
    if commits.is_empty() {
        return Ok(None);
    }
    Ok(Some((parent, commits)))
}

fn by_file(bumps: &[Bump]) -> BTreeMap<String, Vec<&Bump>> {
    let mut files: BTreeMap<String, Vec<&Bump>> = BTreeMap::new();
    for bump in bumps {
        files.entry(bump.file.clone()).or_default().push(bump);
    }
    files
}
