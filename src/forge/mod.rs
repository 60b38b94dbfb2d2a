//! Forge adapter: the REST calls that open, find, update and close tagwatch's pull requests on GitHub,
//! GitLab (merge requests), Gitea and Forgejo, and the text of those pull requests ([`render`]).
//!
//! Owns: forge authentication, rate limits and retries, mapping each forge's wire format onto one
//! [`PullRequest`], pull-request titles, bodies and the hidden group marker.
//! Must not: touch git (branches are pushed by `git`), decide what to bump or when (that is `reconcile`),
//! or read the process environment (the token arrives as a [`Secret`] in [`ForgeSettings`]).
//!
//! Decisions and limitations: `docs/forge.md`.

pub mod error;
mod gitea;
mod github;
mod gitlab;
pub mod http;
pub mod render;

use std::future::Future;
use std::time::Duration;

pub use error::{ErrorClass, ForgeError};
pub use gitea::Gitea;
pub use github::GitHub;
pub use gitlab::GitLab;
pub use http::RetryPolicy;

use crate::secret::Secret;

/// Pages of a pull-request listing read before giving up: 10 pages of 50–100 open pull requests is far
/// more than one repository should have; past it tagwatch says so instead of reading forever.
pub const MAX_LIST_PAGES: usize = 10;

/// Which API a forge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
    /// Forgejo speaks the Gitea API with a few differences (list filters, no reviewers on create).
    Forgejo,
}

impl std::fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
        })
    }
}

impl std::str::FromStr for ForgeKind {
    type Err = ForgeError;

    /// The `kind` of `writeBack.forge` in `tagwatch.yaml`.
    fn from_str(text: &str) -> Result<Self, ForgeError> {
        match text {
            "github" => Ok(ForgeKind::GitHub),
            "gitlab" => Ok(ForgeKind::GitLab),
            "gitea" => Ok(ForgeKind::Gitea),
            "forgejo" => Ok(ForgeKind::Forgejo),
            other => Err(ForgeError::Settings(format!(
                "unknown forge kind {other:?}: expected github, gitlab, gitea or forgejo"
            ))),
        }
    }
}

/// How to reach one repository's forge (`writeBack.forge` in `tagwatch.yaml`), built by `config`.
#[derive(Clone)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// API base URL: `https://api.github.com` (GitHub Enterprise: `https://HOST/api/v3`); for GitLab,
    /// Gitea and Forgejo the instance URL, with or without `/api/v4` / `/api/v1`.
    pub api: String,
    /// `owner/name`; GitLab: the project path (`group/sub/project`) or its numeric id.
    pub repository: String,
    pub token: Secret,
    /// Labels put on every pull request tagwatch opens.
    pub labels: Vec<String>,
    /// Reviewers requested on every pull request: user logins, or `org/team` for a team (GitHub, Gitea,
    /// Forgejo); GitLab takes numeric user ids.
    pub reviewers: Vec<String>,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
}

impl ForgeSettings {
    /// Settings with default retry policy and timeout, no labels and no reviewers.
    pub fn new(
        kind: ForgeKind,
        api: impl Into<String>,
        repository: impl Into<String>,
        token: Secret,
    ) -> Self {
        ForgeSettings {
            kind,
            api: api.into(),
            repository: repository.into(),
            token,
            labels: Vec::new(),
            reviewers: Vec::new(),
            retry: RetryPolicy::default(),
            request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for ForgeSettings {
    // Written by hand so the token can never appear, even if `Secret` changed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeSettings")
            .field("kind", &self.kind)
            .field("api", &crate::secret::redact_url(&self.api))
            .field("repository", &self.repository)
            .field("labels", &self.labels)
            .field("reviewers", &self.reviewers)
            .finish_non_exhaustive()
    }
}

/// Where a pull request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestState {
    Open,
    /// Closed without merging.
    Closed,
    Merged,
}

/// A pull request (GitLab: merge request) as tagwatch sees it, whatever the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// GitHub number, GitLab iid, Gitea/Forgejo index: what the forge's web UI shows after `#` / `!`.
    pub number: u64,
    pub url: String,
    pub title: String,
    pub body: String,
    pub state: PullRequestState,
    pub head_branch: String,
    pub base_branch: String,
    pub head_sha: Option<String>,
    /// The commit the merge created on the base, when merged and the forge says.
    pub merge_commit_sha: Option<String>,
}

impl PullRequest {
    /// The group named by tagwatch's hidden marker in the body; `None` for a pull request tagwatch did
    /// not write (or whose marker a human removed).
    pub fn group(&self) -> Option<String> {
        render::parse_marker(&self.body)
    }

    /// `(repository entry, group)` from a marker written by [`render::entry_body`]; `None` for a pull
    /// request tagwatch did not write this way.
    pub fn owner(&self) -> Option<(String, String)> {
        let key = self.group()?;
        let (repository, group) = render::split_group_key(&key)?;
        Some((repository.to_string(), group.to_string()))
    }
}

/// A pull request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    /// Branch with the changes (already pushed).
    pub head: String,
    /// Branch to merge into.
    pub base: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
}

/// The pull-request operations `reconcile` needs. One implementation per forge API; tests can swap it.
pub trait Forge {
    fn kind(&self) -> ForgeKind;

    /// The open pull request from `head` into `base`, found on the forge (no local state needed).
    fn find_pull_request(
        &self,
        head: &str,
        base: &str,
    ) -> impl Future<Output = Result<Option<PullRequest>, ForgeError>> + Send;

    /// Every open pull request into `base` (tagwatch's own carry a group marker, see
    /// [`PullRequest::group`]): how `reconcile` finds pull requests of groups that no longer exist.
    fn list_open_pull_requests(
        &self,
        base: &str,
    ) -> impl Future<Output = Result<Vec<PullRequest>, ForgeError>> + Send;

    /// A pull request by number, in any state: how `reconcile` learns that one was merged or closed.
    fn get_pull_request(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<PullRequest, ForgeError>> + Send;

    /// Opens a pull request and applies its labels and reviewers. When the forge says one already exists
    /// for this head (a retry after a lost answer, a race), that one is returned instead.
    fn open_pull_request(
        &self,
        new: &NewPullRequest,
    ) -> impl Future<Output = Result<PullRequest, ForgeError>> + Send;

    /// Replaces title and body.
    fn update_pull_request(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> impl Future<Output = Result<PullRequest, ForgeError>> + Send;

    /// Posts `comment` (why it is closed), then closes the pull request. One that is already closed or
    /// merged is returned as it is, without a comment.
    fn close_pull_request(
        &self,
        number: u64,
        comment: &str,
    ) -> impl Future<Output = Result<PullRequest, ForgeError>> + Send;
}

/// Any of the supported forges, chosen at run time from [`ForgeSettings::kind`].
#[derive(Debug)]
pub enum AnyForge {
    GitHub(GitHub),
    GitLab(GitLab),
    Gitea(Gitea),
}

impl AnyForge {
    pub fn connect(settings: &ForgeSettings) -> Result<Self, ForgeError> {
        Ok(match settings.kind {
            ForgeKind::GitHub => AnyForge::GitHub(GitHub::new(settings)?),
            ForgeKind::GitLab => AnyForge::GitLab(GitLab::new(settings)?),
            ForgeKind::Gitea | ForgeKind::Forgejo => AnyForge::Gitea(Gitea::new(settings)?),
        })
    }
}

macro_rules! delegate {
    ($self:ident, $forge:ident => $call:expr) => {
        match $self {
            AnyForge::GitHub($forge) => $call.await,
            AnyForge::GitLab($forge) => $call.await,
            AnyForge::Gitea($forge) => $call.await,
        }
    };
}

impl Forge for AnyForge {
    fn kind(&self) -> ForgeKind {
        match self {
            AnyForge::GitHub(forge) => forge.kind(),
            AnyForge::GitLab(forge) => forge.kind(),
            AnyForge::Gitea(forge) => forge.kind(),
        }
    }

    async fn find_pull_request(
        &self,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        delegate!(self, forge => forge.find_pull_request(head, base))
    }

    async fn list_open_pull_requests(&self, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        delegate!(self, forge => forge.list_open_pull_requests(base))
    }

    async fn get_pull_request(&self, number: u64) -> Result<PullRequest, ForgeError> {
        delegate!(self, forge => forge.get_pull_request(number))
    }

    async fn open_pull_request(&self, new: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        delegate!(self, forge => forge.open_pull_request(new))
    }

    async fn update_pull_request(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        delegate!(self, forge => forge.update_pull_request(number, title, body))
    }

    async fn close_pull_request(
        &self,
        number: u64,
        comment: &str,
    ) -> Result<PullRequest, ForgeError> {
        delegate!(self, forge => forge.close_pull_request(number, comment))
    }
}

/// Splits `owner/name` (GitHub, Gitea, Forgejo).
fn owner_and_name(repository: &str) -> Result<(String, String), ForgeError> {
    match repository.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((owner.to_string(), name.to_string()))
        }
        _ => Err(ForgeError::Settings(format!(
            "repository {repository:?} is not of the form owner/name"
        ))),
    }
}

/// A reviewer `org/team` (or `@org/team`) names a team; the forge wants the team's slug.
fn split_reviewers(reviewers: &[String]) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut teams = Vec::new();
    for reviewer in reviewers {
        let reviewer = reviewer.trim_start_matches('@');
        match reviewer.split_once('/') {
            Some((_, team)) => teams.push(team.to_string()),
            None => users.push(reviewer.to_string()),
        }
    }
    (users, teams)
}

/// `first` then the items of `second` not already in it, in order.
fn union(first: &[String], second: &[String]) -> Vec<String> {
    let mut out = first.to_vec();
    for item in second {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

/// After a failed create: the pull request that already exists for this head (a retry after a lost
/// answer, a race with another tagwatch), or the error.
async fn existing_or<F: Forge>(
    forge: &F,
    error: ForgeError,
    new: &NewPullRequest,
) -> Result<PullRequest, ForgeError> {
    if !already_exists(&error) {
        return Err(error);
    }
    forge
        .find_pull_request(&new.head, &new.base)
        .await?
        .ok_or(error)
}

/// Closing the GitHub way, which Gitea and Forgejo copy: an open pull request gets `comment` on
/// `issues/N/comments` under `repository` (the `repos/OWNER/NAME` segments), then `close` runs (the
/// forge's own `PATCH pulls/N {state: closed}`, decoded into its wire type). One already closed or
/// merged — by a human, or a retry after a lost answer — is returned as it is, without a second comment.
async fn comment_then_close<F: Forge>(
    forge: &F,
    api: &http::Api,
    repository: &[&str],
    number: u64,
    comment: &str,
    close: impl Future<Output = Result<PullRequest, ForgeError>>,
) -> Result<PullRequest, ForgeError> {
    let current = forge.get_pull_request(number).await?;
    if current.state != PullRequestState::Open {
        return Ok(current);
    }
    let number = number.to_string();
    let mut segments = repository.to_vec();
    segments.extend_from_slice(&["issues", &number, "comments"]);
    let body = serde_json::json!({ "body": comment });
    api.send(reqwest::Method::POST, api.url(&segments, &[]), Some(&body))
        .await?;
    close.await
}

/// Labels and reviewers the GitHub way, which Gitea and Forgejo copy: `issues/N/labels` and
/// `pulls/N/requested_reviewers` under `repository` (the `repos/OWNER/NAME` segments). A failure is
/// logged, not returned: the pull request exists, and an error would make the caller open it again.
async fn add_labels_and_reviewers(
    api: &http::Api,
    repository: &[&str],
    number: u64,
    labels: &[String],
    reviewers: &[String],
) {
    let number = number.to_string();
    let url = |rest: &[&str]| {
        let mut segments = repository.to_vec();
        segments.extend_from_slice(rest);
        api.url(&segments, &[])
    };
    if !labels.is_empty() {
        let body = serde_json::json!({ "labels": labels });
        let target = url(&["issues", &number, "labels"]);
        if let Err(error) = api.send(reqwest::Method::POST, target, Some(&body)).await {
            tracing::warn!(pull_request = %number, error = %error, "could not add labels");
        }
    }
    let (users, teams) = split_reviewers(reviewers);
    if users.is_empty() && teams.is_empty() {
        return;
    }
    let mut body = serde_json::Map::new();
    if !users.is_empty() {
        body.insert("reviewers".into(), users.into());
    }
    if !teams.is_empty() {
        body.insert("team_reviewers".into(), teams.into());
    }
    let target = url(&["pulls", &number, "requested_reviewers"]);
    if let Err(error) = api
        .send(reqwest::Method::POST, target, Some(&body.into()))
        .await
    {
        tracing::warn!(pull_request = %number, error = %error, "could not request reviewers");
    }
}

/// `true` when a create call failed because a pull request for this head already exists.
fn already_exists(error: &ForgeError) -> bool {
    match error {
        ForgeError::Status {
            status, message, ..
        } => {
            let message = message.to_ascii_lowercase();
            matches!(status, 409 | 422) && message.contains("already exist")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_must_be_owner_slash_name() {
        assert_eq!(
            owner_and_name("acme/prod").unwrap(),
            ("acme".into(), "prod".into())
        );
        for bad in ["acme", "/x", "x/", "a/b/c"] {
            assert!(owner_and_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forge_kinds_parse_from_their_config_names() {
        for kind in [
            ForgeKind::GitHub,
            ForgeKind::GitLab,
            ForgeKind::Gitea,
            ForgeKind::Forgejo,
        ] {
            assert_eq!(kind.to_string().parse::<ForgeKind>().unwrap(), kind);
        }
        let error = "bitbucket".parse::<ForgeKind>().unwrap_err().to_string();
        assert!(
            error.contains("bitbucket") && error.contains("forgejo"),
            "{error}"
        );
    }

    #[test]
    fn teams_are_told_from_users() {
        let (users, teams) = split_reviewers(&["alice".into(), "@acme/platform".into()]);
        assert_eq!(users, ["alice"]);
        assert_eq!(teams, ["platform"]);
    }

    #[test]
    fn settings_debug_never_shows_the_token() {
        let settings = ForgeSettings::new(
            ForgeKind::GitHub,
            "https://u:p@api.github.com",
            "a/b",
            Secret::new("ghp_supersecret"),
        );
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("supersecret") && !shown.contains("u:p"),
            "{shown}"
        );
    }
}
