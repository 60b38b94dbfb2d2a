//! Gathering the facts of one repository, then deciding: fetch the branch, read its YAML files from the
//! object database (never checked out), resolve the policies the targets need, read history for
//! rollback detection and the creation times `order: newest` compares — then hand everything to the
//! pure [`decide`](super::decide::decide) on a blocking thread (re-parsing rewritten files is CPU work).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::RepositoryConfig;
use crate::git::{GitError, Oid, Store};
use crate::manifest::{self, files};
use crate::source::TagSource;

use super::context::{Context, SharedStore, blocking};
use super::decide::{self, Facts, ScannedFile};
use super::history::{HISTORY_LIMIT, Written};
use super::{Problem, ReconcileError, RepositoryPlan, Scope};

/// The YAML files of one commit, read and discovered.
pub(super) struct Scan {
    pub files: Vec<ScannedFile>,
    /// A YAML file could not be read whole (too large): the plan may miss targets.
    pub incomplete: bool,
}

impl<S: TagSource + Send + Sync + 'static> Context<S> {
    /// Fetches the repository's branch and plans on its head.
    pub(super) async fn plan_on(
        &self,
        repository: &RepositoryConfig,
        store: &SharedStore,
        now: DateTime<Utc>,
    ) -> Result<RepositoryPlan, Problem> {
        let name = repository.name.as_str();
        let repository_problem =
            |error: ReconcileError| Problem::new(name, Scope::Repository, error);
        let paths = repository.paths.clone();
        let shared = store.clone();
        let gathered = blocking(
            move || -> Result<(Oid, Scan, Result<Written, GitError>), GitError> {
                let store = lock(&shared);
                let branch = store.settings().branch.clone();
                let head = store
                    .fetch(&branch)?
                    .ok_or_else(|| GitError::MissingBranch {
                        url: store.settings().redacted_url(),
                        branch: branch.clone(),
                    })?;
                let scan = scan(&store, head, &paths)?;
                let history = store
                    .recent_commits(head, HISTORY_LIMIT)
                    .map(|(commits, _)| Written::from_commits(&commits));
                Ok((head, scan, history))
            },
        )
        .await
        .map_err(repository_problem)?;
        let (head, scan, history) = gathered.map_err(|error| repository_problem(error.into()))?;
        let history = history
            .map_err(|error| Problem::new(name, Scope::Repository, ReconcileError::History(error)));
        let config = Arc::clone(self.config_arc());
        let needed = decide::needed_policies(&scan.files, &config.policies, name);
        let resolutions = self.resolve_all(name, needed, now).await;
        let needed_created = decide::needed_created_times(
            &scan.files,
            &config.policies,
            name,
            &resolutions,
            &history,
        );
        let created = self.created_times(name, needed_created).await;
        let repository = repository.clone();
        let incomplete = scan.incomplete;
        let mut plan = blocking(move || {
            decide::decide(&Facts {
                repository: &repository,
                policies: &config.policies,
                files: &scan.files,
                resolutions: &resolutions,
                history: &history,
                created: &created,
                now,
            })
        })
        .await
        .map_err(repository_problem)?;
        plan.head = head.to_string();
        plan.incomplete |= incomplete;
        tracing::debug!(
            head = %plan.head,
            bumps = plan.bumps.len(),
            notes = plan.notes.len(),
            problems = plan.problems.len(),
            "planned"
        );
        Ok(plan)
    }
}

/// The store behind its lock (a panicked holder leaves nothing half-done in a store: every write is a
/// new object).
pub(super) fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads and discovers every YAML file under `paths` (the whole tree when none) in `commit`.
pub(super) fn scan(store: &Store, commit: Oid, paths: &[PathBuf]) -> Result<Scan, GitError> {
    let listing = store.list_files(commit, paths)?;
    for skipped in &listing.skipped {
        tracing::warn!(file = %skipped.path, reason = ?skipped.reason, "not followed: a symlink or submodule is never read or written");
    }
    let mut scanned = Vec::new();
    let mut incomplete = false;
    for file in listing.files {
        if !files::is_yaml_name(Path::new(&file.path)) {
            if paths.iter().any(|path| path == Path::new(&file.path)) {
                tracing::warn!(file = %file.path, "skipped a configured path that is not a YAML file");
            }
            continue;
        }
        let bytes = match store.read_blob(file.blob, manifest::discover::MAX_FILE_SIZE as u64) {
            Ok(bytes) => bytes,
            Err(error @ GitError::TooLarge { .. }) => {
                tracing::warn!(file = %file.path, error = %error, "skipped a file too large to read");
                incomplete = true;
                continue;
            }
            Err(error) => return Err(error),
        };
        let discovery = manifest::discover(Path::new(&file.path), &bytes);
        for warning in &discovery.warnings {
            tracing::warn!(file = %file.path, line = warning.line, "{}", warning.message);
        }
        if discovery.skipped || discovery.targets.is_empty() {
            continue;
        }
        scanned.push(ScannedFile {
            path: file.path,
            bytes,
            discovery,
        });
    }
    Ok(Scan {
        files: scanned,
        incomplete,
    })
}
