//! The controller core: per repository, **gather** the facts (the branch's files read from git's object
//! database, the tag listings and policy choices, the history of tagwatch's own writes), **decide** the
//! bumps with a pure function, and **apply** them (commits and a push, or pull requests).
//!
//! Owns: the long-lived [`Context`] (tag cache, cached clones, forge clients, the image → repository
//! index), matching targets to policies, never downgrading, holds, rollbacks and windows ([`decide`]),
//! and write-back (one commit per group, one push per repository and branch, rejected pushes re-planned;
//! one head branch and pull request per group). Entry point for a scheduler:
//! [`Context::reconcile_repository`], which returns an [`Outcome`] with what should happen [`Next`].
//!
//! Fails closed: a target with any problem this cycle (a policy that did not resolve, a file that could
//! not be rewritten) is left as it is, history that could not be read defers every bump, and a pull
//! request whose group had any problem is left exactly as it is — not rebuilt, updated or closed.
//!
//! Must not: parse YAML itself (that is `manifest`), talk HTTP (that is `registry` through `TagSource`,
//! and `forge`), drive libgit2 (that is `git`), sleep between cycles (that is the daemon's scheduler), or
//! render an error chain (that is `commands`).
//!
//! Decisions: `docs/design/reconcile.md`.

mod context;
pub mod decide;
mod gather;
pub mod history;
pub mod merge;
mod message;
mod parallel;
pub mod promotion;
mod pull_request;
mod push;
pub mod rewrite;
pub mod rollback;
mod settings;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Grouping;
use crate::error::ErrorClass;

pub use context::{
    BeforePush, Context, FAULT_POINT_VARIABLE, Listing, Mode, RESOLVE_DEADLINE, Tags,
};
pub use decide::{Facts, ScannedFile, decide};
pub use message::{TRAILER_BUMP, TRAILER_POLICY, render_message};
pub use push::{Applied, MAX_PUSH_ATTEMPTS, PullRequestChange, PullRequestEvent, PullRequestRef};
pub use settings::{forge_settings, remote_settings};

/// Repositories reconciled side by side by `plan` and `run --once` (each mostly waits on git and
/// registries, not the CPU).
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
    /// The reference as written before and after (whole text, README.md "Using it").
    pub from: String,
    pub to: String,
    /// The versions alone (`tag` or `tag@digest`), for messages and trailers.
    pub from_version: String,
    pub to_version: String,
    /// The commit / pull-request group this bump belongs to.
    pub group: String,
    /// Index of the target in the file's discovery; checked against `from` and `image` before any edit.
    #[serde(skip)]
    pub target: usize,
    /// The change as `manifest` carries it out.
    #[serde(skip)]
    pub edit: crate::manifest::Bump,
    /// Promotion: what backs this version (the upstream stint and the statuses seen).
    #[serde(skip)]
    pub evidence: Option<promotion::Evidence>,
    /// Promotion: a better version still soaking upstream, and when it will be ready.
    #[serde(skip)]
    pub next: Option<Upcoming>,
}

/// A version that will be ready later (promotion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upcoming {
    /// The reference as it would be written.
    pub to: String,
    pub until: DateTime<Utc>,
}

/// Why a target that a policy owns is not bumped now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// Already what the policy chooses (not printed by `plan`; the daemon's status lists it).
    Current,
    /// `# tagwatch: hold` on the field.
    Held,
    /// A human set the field back from `reverted`, a tag tagwatch wrote; held until a newer tag appears.
    Rollback { reverted: String },
    /// Outside every window of the policy; lands at `until` (`None`: the schedule never fires again).
    Waiting { until: Option<DateTime<Utc>> },
    /// Promotion: the version it would become still soaks upstream until `until`.
    Soaking { until: DateTime<Utc> },
    /// The target is already newer than the policy's choice (never downgrade).
    Newer,
    /// Several policies track this image and no marker chooses one: left alone.
    Ambiguous { policies: Vec<String> },
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
    /// What it would become (absent for `held`, `newer` and `ambiguous`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(flatten)]
    pub status: Status,
}

/// Where a problem happened: what it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole repository (nothing was planned or written for it).
    Repository,
    /// One policy: its targets in this repository are left alone.
    Policy(String),
    /// One file: left unchanged.
    File(String),
    /// One commit / pull-request group.
    Group(String),
    /// One pull request (web address).
    PullRequest(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Repository => Ok(()),
            Scope::Policy(policy) => write!(f, "policy {policy}"),
            Scope::File(file) => write!(f, "{file}"),
            Scope::Group(group) => write!(f, "group {group}"),
            Scope::PullRequest(url) => write!(f, "pull request {url}"),
        }
    }
}

/// Something that went wrong in one repository, and what it stopped. Rendered once, by `commands`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub repository: String,
    pub scope: Scope,
    pub error: Arc<ReconcileError>,
}

impl Problem {
    pub fn new(repository: &str, scope: Scope, error: ReconcileError) -> Self {
        Problem {
            repository: repository.to_string(),
            scope,
            error: Arc::new(error),
        }
    }

    pub fn class(&self) -> ErrorClass {
        self.error.class()
    }
}

/// The plan of one repository, computed on one commit of its branch.
#[derive(Debug, Clone, Default)]
pub struct RepositoryPlan {
    pub repository: String,
    /// The commit planned on (hex).
    pub head: String,
    pub bumps: Vec<Bump>,
    pub notes: Vec<Note>,
    /// Problems that did not stop the rest of the repository; each counts as a failure.
    pub problems: Vec<Problem>,
    /// Groups with any problem this cycle: their pull requests are left exactly as they are (never
    /// rebuilt, opened, updated or closed).
    pub troubled: BTreeSet<String>,
    /// Every image a target of this repository names (normalized), for the daemon's image index.
    pub images: BTreeSet<String>,
    /// The version (`tag` or `tag@digest`) each policy used here chose.
    pub choices: std::collections::BTreeMap<String, String>,
    /// Something kept the plan from seeing everything (history unreadable, a file unreadable): no pull
    /// request is closed this cycle, since "nothing to bump" may be wrong.
    pub incomplete: bool,
}

impl RepositoryPlan {
    /// The earliest instant a waiting bump lands, for the scheduler.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.notes
            .iter()
            .filter_map(|note| match note.status {
                Status::Waiting { until } => until,
                Status::Soaking { until } => Some(until),
                _ => None,
            })
            .chain(
                self.bumps
                    .iter()
                    .filter_map(|bump| bump.next.as_ref().map(|next| next.until)),
            )
            .min()
    }
}

/// Why a repository is reconciled now (for logs and spans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `plan` / `run --once`.
    Once,
    /// The repository's regular re-read.
    Interval,
    /// An image it uses has a changed tag list.
    Image(String),
    /// A retry after a failure.
    Retry,
    /// A waiting bump's window opened, or a promoted version finished soaking.
    Window,
    /// The upstream it promotes from wrote a commit.
    Upstream(String),
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Once => f.write_str("once"),
            Trigger::Interval => f.write_str("interval"),
            Trigger::Image(image) => write!(f, "image {image}"),
            Trigger::Retry => f.write_str("retry"),
            Trigger::Window => f.write_str("window"),
            Trigger::Upstream(upstream) => write!(f, "upstream {upstream}"),
        }
    }
}

/// What the scheduler should do next with a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Done: re-read at the regular interval, or at `due` when something waits for that instant (a
    /// window opening), whichever comes first.
    Requeue { due: Option<DateTime<Utc>> },
    /// It failed: retry as the class says (backoff, the other side's wait, or not until the config
    /// changes).
    Retry(ErrorClass),
}

/// The outcome of one repository.
#[derive(Debug)]
pub struct Outcome {
    pub repository: String,
    pub plan: Result<RepositoryPlan, Problem>,
    /// [`Mode::Apply`] only: what was written back.
    pub applied: Option<Result<Applied, Problem>>,
    pub next: Next,
}

impl Outcome {
    /// Every problem, in the order they happened.
    pub fn problems(&self) -> Vec<&Problem> {
        let mut problems = Vec::new();
        match &self.plan {
            Ok(plan) => problems.extend(plan.problems.iter()),
            Err(problem) => problems.push(problem),
        }
        match &self.applied {
            Some(Ok(applied)) => problems.extend(applied.problems.iter()),
            Some(Err(problem)) => problems.push(problem),
            None => {}
        }
        problems
    }

    /// Number of failures: every problem counts once.
    pub fn failures(&self) -> usize {
        self.problems().len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("environment variable {variable} is not set or empty")]
    MissingSecret { variable: String },
    #[error("reading {}", path.display())]
    ReadSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writeBack.mode is pull-request but no writeBack.forge is set")]
    NoForge,
    #[error("no repository named {0} in the config")]
    UnknownRepository(String),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error("{0}")]
    Resolve(#[source] crate::policy::ResolveError),
    #[error("listing the tags of {image} took longer than {}s; this image is skipped this cycle", .after.as_secs())]
    Deadline {
        image: String,
        after: std::time::Duration,
    },
    #[error("reading the created time of {image}:{tag} (order: newest compares by it)")]
    Created {
        image: String,
        tag: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("line {line}: the marker names policy `{name}`, which the config does not define")]
    UnknownMarker { line: usize, name: String },
    #[error(
        "line {line}: the marker names policy `{name}`, which does not apply to this repository (its `repositories` leave it out)"
    )]
    MarkerElsewhere { line: usize, name: String },
    #[error("left unchanged: {reason}")]
    Rewrite { reason: String },
    #[error(
        "reading history for rollback detection failed; this repository's bumps wait for the next cycle"
    )]
    History(#[source] crate::git::GitError),
    #[error("the push was rejected {attempts} times (others keep pushing first)")]
    PushContention { attempts: usize },
    #[error(transparent)]
    Forge(#[from] crate::forge::ForgeError),
    #[error("internal: a blocking task failed: {0}")]
    Join(String),
}

impl ReconcileError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ReconcileError::Git(error) | ReconcileError::History(error) => error.class(),
            ReconcileError::Forge(error) => error.class(),
            ReconcileError::Resolve(error) => class_of_chain(error),
            ReconcileError::Created { source, .. } => class_of_chain(source.as_ref()),
            ReconcileError::Deadline { .. }
            | ReconcileError::PushContention { .. }
            | ReconcileError::Join(_) => ErrorClass::Transient,
            ReconcileError::MissingSecret { .. }
            | ReconcileError::ReadSecret { .. }
            | ReconcileError::NoForge
            | ReconcileError::UnknownRepository(_)
            | ReconcileError::UnknownMarker { .. }
            | ReconcileError::MarkerElsewhere { .. }
            | ReconcileError::Rewrite { .. } => ErrorClass::Permanent,
        }
    }
}

/// The class of the first adapter error in a chain of causes (a registry error boxed inside a
/// `ResolveError`); `Permanent` when none knows better.
fn class_of_chain(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(error) = error.downcast_ref::<crate::registry::RegistryError>() {
            return error.class();
        }
        if let Some(error) = error.downcast_ref::<crate::git::GitError>() {
            return error.class();
        }
        if let Some(error) = error.downcast_ref::<crate::forge::ForgeError>() {
            return error.class();
        }
        current = error.source();
    }
    ErrorClass::Permanent
}

/// An error and its causes on one line (for log fields; reports are rendered by `commands`).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The group key of a bump under `grouping`.
pub(crate) fn group_of(grouping: Grouping, repository: &str, policy: &str, image: &str) -> String {
    match grouping {
        Grouping::Repository => repository.to_string(),
        Grouping::Policy => policy.to_string(),
        Grouping::Image => image.to_string(),
    }
}
