//! What the daemon knows, as `GET /api/v1/status` serves it and `tagwatch status` prints it (README.md "Using it",
//! §8, a contract): per policy the chosen tag and when it was checked; per target its state; open pull
//! requests; the last error per scope. Built from reconcile outcomes by pure functions.
//!
//! Must not: reach into reconcile or the registry; it only reads what an `Outcome` says.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::reconcile::{Outcome, Status};

/// The whole report. Extra keys beyond the contract's are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub policies: Vec<PolicyStatus>,
    /// Shared with the per-repository parts they come from (one copy of each target, however often the
    /// report is rebuilt).
    pub targets: Vec<Arc<TargetStatus>>,
    pub pull_requests: Vec<PullRequestStatus>,
    pub errors: Vec<ErrorStatus>,
    /// Every repository completed one cycle since the daemon started.
    #[serde(default)]
    pub ready: bool,
    /// This replica polls and writes (always true without leader election).
    #[serde(default = "yes")]
    pub leader: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub name: String,
    pub image: String,
    /// `tag` or `tag@digest`; absent when the policy has not chosen yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    pub repository: String,
    pub file: String,
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub image: String,
    /// The reference as written now.
    pub current: String,
    /// `current`, `pending` (with `to`), `waiting` / `soaking` (with `until`), `held`, `rollback`,
    /// `newer`, `ambiguous`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The pull request that carries a pending bump.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestStatus {
    pub repository: String,
    pub group: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorStatus {
    /// `repository NAME`, `repository NAME: policy P`, `image IMAGE`, …
    pub scope: String,
    pub message: String,
    /// When this error was first seen (it has not stopped since).
    pub since: String,
    /// `transient`, `rate-limited` or `permanent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The parts of the report one repository's last outcome contributes.
#[derive(Debug, Clone, Default)]
pub struct RepositoryPart {
    pub targets: Vec<Arc<TargetStatus>>,
    pub pull_requests: Vec<PullRequestStatus>,
    /// Policy name → (image, chosen version).
    pub choices: BTreeMap<String, String>,
    /// (scope, message, class) of every problem.
    pub problems: Vec<(String, String, String)>,
}

/// What one outcome says, for the report.
pub fn repository_part(outcome: &Outcome) -> RepositoryPart {
    let mut part = RepositoryPart::default();
    let repository = &outcome.repository;
    for problem in outcome.problems() {
        let mut scope = format!("repository {repository}");
        if problem.scope != crate::reconcile::Scope::Repository {
            scope.push_str(&format!(": {}", problem.scope));
        }
        part.problems.push((
            scope,
            crate::reconcile::chain(problem.error.as_ref()),
            problem.class().name().to_string(),
        ));
    }
    let Ok(plan) = &outcome.plan else {
        return part;
    };
    part.choices = plan.choices.clone();
    let applied = outcome
        .applied
        .as_ref()
        .and_then(|applied| applied.as_ref().ok());
    // Pushed to the branch (push mode): the target reads the new value now.
    let written = |file: &str, line: usize| {
        applied.is_some_and(|applied| {
            !applied.commits.is_empty()
                && applied.pull_requests.is_empty()
                && applied
                    .bumps
                    .iter()
                    .any(|bump| bump.file == file && bump.line == line)
        })
    };
    if let Some(applied) = applied {
        for pull_request in &applied.pull_requests {
            part.pull_requests.push(PullRequestStatus {
                repository: repository.clone(),
                group: pull_request.group.clone(),
                url: pull_request.url.clone(),
            });
        }
    }
    for bump in &plan.bumps {
        let pushed = written(&bump.file, bump.line);
        let pull_request = applied.and_then(|applied| {
            applied
                .pull_requests
                .iter()
                .find(|pull_request| pull_request.group == bump.group)
                .map(|pull_request| pull_request.url.clone())
        });
        part.targets.push(Arc::new(TargetStatus {
            repository: repository.clone(),
            file: bump.file.clone(),
            line: bump.line,
            policy: Some(bump.policy.clone()),
            image: bump.image.clone(),
            current: if pushed {
                bump.to.clone()
            } else {
                bump.from.clone()
            },
            state: if pushed { "current" } else { "pending" }.to_string(),
            to: (!pushed).then(|| bump.to.clone()),
            until: None,
            pull_request,
        }));
    }
    for note in &plan.notes {
        let (state, until) = match &note.status {
            Status::Current => ("current", None),
            Status::Held => ("held", None),
            Status::Rollback { .. } => ("rollback", None),
            Status::Waiting { until } => ("waiting", until.map(timestamp)),
            Status::Soaking { until } => ("soaking", Some(timestamp(*until))),
            Status::Newer => ("newer", None),
            Status::Ambiguous { .. } => ("ambiguous", None),
        };
        part.targets.push(Arc::new(TargetStatus {
            repository: repository.clone(),
            file: note.file.clone(),
            line: note.line,
            policy: note.policy.clone(),
            image: note.image.clone(),
            current: note.from.clone(),
            state: state.to_string(),
            to: note.to.clone(),
            until,
            pull_request: None,
        }));
    }
    part.targets
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    part
}
