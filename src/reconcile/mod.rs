//! Planning and applying bumps: the product's main job (SPEC §2 `plan` / `run --once`, §7 write-back).
//!
//! Owns: per repository, preparing the cached clone, finding the targets under the configured paths,
//! matching each target to a policy (a marker wins; else the normalized repository equals the policy's
//! image; `hold` freezes), listing tags once per image (shared by every policy and repository of one
//! cycle), resolving, and turning the choices into [`Bump`]s — never a downgrade, never a field a human
//! rolled back, never outside a policy's windows. Then writing them back: one commit per group, one push
//! per repository and branch, retried on a rejected push after re-planning on the new head.
//! Must not: parse YAML itself (that is `manifest`), talk HTTP (that is `registry` through `TagSource`,
//! and `forge`), or drive libgit2 directly (that is `git`).
//!
//! Decisions: `docs/reconcile.md`.

mod message;
mod plan;
mod pull_request;
mod rewrite;
mod rollback;
mod settings;
mod writeback;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Grouping, RepositoryConfig};
use crate::environment::Environment;
use crate::git::GitError;
use crate::policy::Resolution;
use crate::source::TagSource;

pub use message::{TRAILER_BUMP, TRAILER_POLICY, render_message};
pub use settings::{forge_settings, remote_settings};
pub use writeback::{Applied, MAX_PUSH_ATTEMPTS};

/// Repositories reconciled side by side (each mostly waits on git and registries, not the CPU).
pub const MAX_CONCURRENT_REPOSITORIES: usize = 4;

/// Directory under the state directory that holds the cached clones (reused between runs).
pub const CACHE_DIRECTORY: &str = "git";

/// One planned change of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bump {
    /// The repository's `name` in the config.
    pub repository: String,
    /// Path of the file inside the repository, `/`-separated.
    pub file: String,
    /// 1-based line of the target.
    pub line: usize,
    pub policy: String,
    /// Normalized image name (`127.0.0.1:5000/acme/api`).
    pub image: String,
    /// The reference as written before and after (whole text, SPEC §2).
    pub from: String,
    pub to: String,
    /// The versions alone (`tag` or `tag@digest`), for messages and trailers.
    pub from_version: String,
    pub to_version: String,
    /// The commit / pull-request group this bump belongs to.
    pub group: String,
    /// Index of the target in the file's discovery (targets are re-found in the same order).
    #[serde(skip)]
    pub target: usize,
    /// The change as `manifest` carries it out.
    #[serde(skip)]
    pub edit: crate::manifest::Bump,
}

/// Why a target that a policy owns is not bumped now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// `# tagwatch: hold` on the field.
    Held,
    /// A human set the field back from `reverted`, a tag tagwatch wrote; held until a newer tag appears.
    Rollback { reverted: String },
    /// Outside every window of the policy; lands at `until` (`None`: the schedule never fires again).
    Waiting { until: Option<DateTime<Utc>> },
    /// The target is already newer than the policy's choice (never downgrade).
    Newer,
}

/// A target left alone, and why (shown by `plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub repo: String,
    pub file: String,
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub image: String,
    pub from: String,
    /// What it would become (absent for `held` and `newer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(flatten)]
    pub status: Status,
}

/// The plan of one repository, computed on one commit of its branch.
#[derive(Debug, Clone, Default)]
pub struct RepositoryPlan {
    pub repository: String,
    pub bumps: Vec<Bump>,
    pub notes: Vec<Note>,
    /// Problems that did not stop the rest of the repository (a policy that could not resolve, a file
    /// that could not be rewritten); each counts as a failure.
    pub problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("repository {repository}: environment variable {variable} is not set or empty")]
    MissingSecret {
        repository: String,
        variable: String,
    },
    #[error("repository {repository}: reading {}", path.display())]
    ReadSecret {
        repository: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "repository {repository}: writeBack.mode is pull-request but no writeBack.forge is set"
    )]
    NoForge { repository: String },
    #[error("repository {repository}")]
    Git {
        repository: String,
        #[source]
        source: GitError,
    },
    #[error("repository {repository}: {message}")]
    Files { repository: String, message: String },
    #[error(
        "repository {repository}: the push was rejected {attempts} times (others keep pushing first)"
    )]
    PushContention { repository: String, attempts: usize },
    #[error("repository {repository}: pull requests")]
    Forge {
        repository: String,
        #[source]
        source: crate::forge::ForgeError,
    },
    #[error("internal: a blocking git task failed: {0}")]
    Join(String),
}

/// The outcome of one repository in `plan` or `run --once`.
#[derive(Debug)]
pub struct RepositoryOutcome {
    pub repository: String,
    pub plan: Result<RepositoryPlan, ReconcileError>,
    /// `run --once` only: what was written back.
    pub applied: Option<Result<Applied, ReconcileError>>,
}

impl RepositoryOutcome {
    /// Number of failures: a repository error counts once, plus every problem of its plan.
    pub fn failures(&self) -> usize {
        let plan = match &self.plan {
            Ok(plan) => plan.problems.len(),
            Err(_) => 1,
        };
        let applied = match &self.applied {
            Some(Err(_)) => 1,
            Some(Ok(applied)) => applied.problems.len(),
            None => 0,
        };
        plan + applied
    }
}

/// One image's tag listing (or why it failed), shared for the cycle.
type TagListing = Arc<tokio::sync::OnceCell<Result<Arc<Vec<String>>, String>>>;

/// A hook called right before each push (tests use it to push first, as a concurrent human would).
pub type BeforePush = Arc<dyn Fn(&str) + Send + Sync>;

/// One reconcile cycle's shared context: the config, the tag source, and the caches that make one tag
/// listing per image and one resolution per policy serve every repository of the cycle.
pub struct Reconciler<S> {
    config: Config,
    environment: Environment,
    source: S,
    cache_root: PathBuf,
    now: DateTime<Utc>,
    tags: Mutex<HashMap<String, TagListing>>,
    resolutions: Mutex<HashMap<String, Result<Resolution, String>>>,
    before_push: Option<BeforePush>,
}

impl<S: TagSource + Sync> Reconciler<S> {
    /// The cached clones live in `STATE_DIR/git` (SPEC §3 `daemon.stateDir`), reused between runs.
    pub fn new(config: Config, environment: Environment, source: S, now: DateTime<Utc>) -> Self {
        let cache_root = config.daemon.state_dir.join(CACHE_DIRECTORY);
        Reconciler {
            config,
            environment,
            source,
            cache_root,
            now,
            tags: Mutex::new(HashMap::new()),
            resolutions: Mutex::new(HashMap::new()),
            before_push: None,
        }
    }

    pub fn with_before_push(mut self, hook: BeforePush) -> Self {
        self.before_push = Some(hook);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `plan`: every repository, nothing changed. One repository's failure never stops the others.
    pub async fn plan_all(&self) -> Vec<RepositoryOutcome> {
        self.each_repository(|repository| async move {
            RepositoryOutcome {
                repository: repository.name.clone(),
                plan: self.plan_only(repository).await,
                applied: None,
            }
        })
        .await
    }

    /// `run --once`: plan and write back every repository.
    pub async fn run_all(&self) -> Vec<RepositoryOutcome> {
        self.each_repository(|repository| self.run_repository(repository))
            .await
    }

    /// Runs `work` for every repository, in config order of the results. Repositories that share a
    /// remote and target branch (one cache clone) run one after the other — never two write-backs on
    /// one branch at once; the others run side by side, [`MAX_CONCURRENT_REPOSITORIES`] at a time.
    async fn each_repository<'a, F, Fut>(&'a self, work: F) -> Vec<RepositoryOutcome>
    where
        F: Fn(&'a RepositoryConfig) -> Fut,
        Fut: std::future::Future<Output = RepositoryOutcome> + 'a,
    {
        let mut lanes: Vec<(String, Vec<(usize, &RepositoryConfig)>)> = Vec::new();
        for (index, repository) in self.config.repositories.iter().enumerate() {
            let key = lane_key(repository);
            match lanes.iter_mut().find(|(known, _)| *known == key) {
                Some((_, lane)) => lane.push((index, repository)),
                None => lanes.push((key, vec![(index, repository)])),
            }
        }
        let work = &work;
        let lanes = lanes.into_iter().map(|(_, lane)| async move {
            let mut outcomes = Vec::new();
            for (index, repository) in lane {
                let span = tracing::info_span!("repository", repository = %repository.name);
                let outcome = tracing::Instrument::instrument(work(repository), span).await;
                outcomes.push((index, outcome));
            }
            outcomes
        });
        let mut outcomes: Vec<(usize, RepositoryOutcome)> =
            futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::buffer_unordered(
                futures_util::stream::iter(lanes),
                MAX_CONCURRENT_REPOSITORIES,
            ))
            .await
            .into_iter()
            .flatten()
            .collect();
        outcomes.sort_by_key(|(index, _)| *index);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    async fn plan_only(
        &self,
        repository: &RepositoryConfig,
    ) -> Result<RepositoryPlan, ReconcileError> {
        let workspace = self.prepare(repository).await?;
        let (_, plan) = self.plan_workspace(repository, workspace).await?;
        Ok(plan)
    }

    async fn run_repository(&self, repository: &RepositoryConfig) -> RepositoryOutcome {
        let name = repository.name.clone();
        let workspace = match self.prepare(repository).await {
            Ok(workspace) => workspace,
            Err(error) => {
                return RepositoryOutcome {
                    repository: name,
                    plan: Err(error),
                    applied: None,
                };
            }
        };
        match self.plan_workspace(repository, workspace).await {
            Err(error) => RepositoryOutcome {
                repository: name,
                plan: Err(error),
                applied: None,
            },
            Ok((workspace, plan)) => {
                let applied = self.write_back(repository, workspace, &plan).await;
                RepositoryOutcome {
                    repository: name,
                    plan: Ok(plan),
                    applied: Some(applied),
                }
            }
        }
    }
}

/// Repositories with the same remote and target branch share a cache clone and a branch.
fn lane_key(repository: &RepositoryConfig) -> String {
    let branch = match repository.write_back.mode {
        crate::config::WriteBackMode::Push => &repository.write_back.branch,
        crate::config::WriteBackMode::PullRequest => &repository.branch,
    };
    format!("{}\n{branch}", repository.url)
}

/// The group key of a bump under `grouping`.
pub(crate) fn group_of(grouping: Grouping, repository: &str, policy: &str, image: &str) -> String {
    match grouping {
        Grouping::Repository => repository.to_string(),
        Grouping::Policy => policy.to_string(),
        Grouping::Image => image.to_string(),
    }
}
