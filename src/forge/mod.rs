//! Forge adapter: the REST calls that open, find, update, merge and close tagwatch's pull requests on
//! GitHub, GitLab (merge requests), Gitea and Forgejo, read their reviews and the checks on a commit,
//! and keep a comment current; and the text of those pull requests ([`render`]).
//!
//! Owns: forge authentication, rate limits and retries, mapping each forge's wire format onto one
//! [`PullRequest`], [`Approval`], [`Checks`] and [`MergeOutcome`], pull-request titles, bodies,
//! comments and the hidden markers.
//! Must not: touch git (branches are pushed by `git`), decide what to bump, when or whether to merge
//! (that is `reconcile`), or read the process environment (the token arrives as a [`Secret`] in
//! [`ForgeSettings`]).
//!
//! Decisions and limitations: `docs/design/forge.md`.

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

/// What reviewers said about a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Approval {
    /// The forge counts the pull request approved (GitHub, Gitea, Forgejo: someone's latest review
    /// approves; GitLab: the approval rules are satisfied).
    pub approved: bool,
    /// Someone's latest review asks for changes. A pull request can be both approved (by one reviewer)
    /// and have changes requested (by another): callers should not merge it.
    pub changes_requested: bool,
}

/// The state of one check, or of all checks on a commit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// Queued or running, or a status said `pending`.
    Pending,
    Success,
    /// Failed, errored, cancelled or timed out.
    Failure,
    /// Nothing reported: no status and no check on the commit (for the whole), or a check that was
    /// skipped or is neutral (for one).
    None,
}

impl CheckState {
    /// The state of several checks together: any failure fails, else anything pending is pending,
    /// else any success succeeds, else nothing was reported.
    pub fn combine(states: impl IntoIterator<Item = CheckState>) -> CheckState {
        let mut combined = CheckState::None;
        for state in states {
            combined = match (combined, state) {
                (CheckState::Failure, _) | (_, CheckState::Failure) => CheckState::Failure,
                (CheckState::Pending, _) | (_, CheckState::Pending) => CheckState::Pending,
                (CheckState::Success, _) | (_, CheckState::Success) => CheckState::Success,
                _ => CheckState::None,
            };
        }
        combined
    }
}

/// One named check on a commit: a commit status context, a check run (GitHub), or a CI job or
/// external status (GitLab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckContext {
    pub name: String,
    pub state: CheckState,
}

/// Everything the forge reports about a commit's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// All checks together ([`CheckState::combine`]; GitLab: with the newest pipeline's status).
    pub state: CheckState,
    /// Each check by name, the latest report per name, sorted by name.
    pub contexts: Vec<CheckContext>,
}

impl Checks {
    /// The state of the check called `name` (a status context, check run or job name), if reported:
    /// what promotion's `requireStatus` asks.
    pub fn context(&self, name: &str) -> Option<CheckState> {
        self.contexts
            .iter()
            .find(|context| context.name == name)
            .map(|context| context.state)
    }

    /// Builds the result from each reported `(name, state)`, the latest first per name (later ones
    /// with the same name are older reports and ignored); `extra` joins the overall state only.
    fn from_latest_first(
        reports: impl IntoIterator<Item = (String, CheckState)>,
        extra: Option<CheckState>,
    ) -> Checks {
        let mut contexts: Vec<CheckContext> = Vec::new();
        for (name, state) in reports {
            if !contexts.iter().any(|context| context.name == name) {
                contexts.push(CheckContext { name, state });
            }
        }
        contexts.sort_by(|a, b| a.name.cmp(&b.name));
        let state = CheckState::combine(contexts.iter().map(|c| c.state).chain(extra));
        Checks { state, contexts }
    }
}

/// How a pull request is merged (`writeBack.merge.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeMethod {
    /// A merge commit.
    #[default]
    Merge,
    /// One commit with every change of the pull request.
    Squash,
    /// The pull request's commits replayed on the base, no merge commit.
    Rebase,
}

impl std::fmt::Display for MergeMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        })
    }
}

impl std::str::FromStr for MergeMethod {
    type Err = ForgeError;

    fn from_str(text: &str) -> Result<Self, ForgeError> {
        match text {
            "merge" => Ok(MergeMethod::Merge),
            "squash" => Ok(MergeMethod::Squash),
            "rebase" => Ok(MergeMethod::Rebase),
            other => Err(ForgeError::Settings(format!(
                "unknown merge method {other:?}: expected merge, squash or rebase"
            ))),
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The commit the merge put on the base, when the forge says.
    pub merge_commit_sha: Option<String>,
    /// The pull request was merged already (a retry after a lost answer); nothing was done now.
    pub already_merged: bool,
}

/// A comment on a pull request (GitLab: a note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The forge's comment id: what [`Forge::edit_comment`] takes.
    pub id: u64,
    pub body: String,
}

/// A commit on a pull request's head branch, with the identities that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRef {
    pub sha: String,
    /// As recorded in the commit (not the forge account): empty when the forge does not say.
    pub author_email: String,
    pub committer_email: String,
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

    /// What the reviewers said: the latest review of each reviewer counts (GitLab: the approval state
    /// and the reviewers' states).
    fn review_state(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Approval, ForgeError>> + Send;

    /// The statuses and checks reported on commit `sha`.
    fn checks(&self, sha: &str) -> impl Future<Output = Result<Checks, ForgeError>> + Send;

    /// Merges pull request `number` with `method`, only while its head is still `expected_head_sha`
    /// (the forge checks it atomically), so a pull request a human pushed to is never merged.
    ///
    /// One already merged is reported as such ([`MergeOutcome::already_merged`]). A refusal is
    /// [`ForgeError::HeadMoved`], [`ForgeError::MergeConflict`] or [`ForgeError::NotMergeable`], all
    /// permanent: the caller decides again on the next cycle.
    fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> impl Future<Output = Result<MergeOutcome, ForgeError>> + Send;

    /// The comments on pull request `number`, oldest first (GitLab: its notes, without system
    /// notes).
    fn comments(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Vec<Comment>, ForgeError>> + Send;

    /// Posts a comment on pull request `number`.
    fn add_comment(
        &self,
        number: u64,
        body: &str,
    ) -> impl Future<Output = Result<Comment, ForgeError>> + Send;

    /// Replaces the text of comment `id` on pull request `number`.
    fn edit_comment(
        &self,
        number: u64,
        id: u64,
        body: &str,
    ) -> impl Future<Output = Result<Comment, ForgeError>> + Send;

    /// The commits of pull request `number` (head branch commits not on the base), oldest first: who
    /// wrote them tells a pull request a human pushed to.
    fn head_commits(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Vec<CommitRef>, ForgeError>> + Send;
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

    async fn review_state(&self, number: u64) -> Result<Approval, ForgeError> {
        delegate!(self, forge => forge.review_state(number))
    }

    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        delegate!(self, forge => forge.checks(sha))
    }

    async fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> Result<MergeOutcome, ForgeError> {
        delegate!(self, forge => forge.merge(number, method, expected_head_sha))
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        delegate!(self, forge => forge.comments(number))
    }

    async fn add_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        delegate!(self, forge => forge.add_comment(number, body))
    }

    async fn edit_comment(&self, number: u64, id: u64, body: &str) -> Result<Comment, ForgeError> {
        delegate!(self, forge => forge.edit_comment(number, id, body))
    }

    async fn head_commits(&self, number: u64) -> Result<Vec<CommitRef>, ForgeError> {
        delegate!(self, forge => forge.head_commits(number))
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
    // A run stopped (or failed) between the comment and the close posts no second comment.
    if !already_commented(forge, number, comment).await? {
        let number = number.to_string();
        let mut segments = repository.to_vec();
        segments.extend_from_slice(&["issues", &number, "comments"]);
        let body = serde_json::json!({ "body": comment });
        api.send(reqwest::Method::POST, api.url(&segments, &[]), Some(&body))
            .await?;
        crate::fault::point("pull-request-commented");
    }
    close.await
}

/// Whether the pull request already carries `comment` (an earlier closing attempt that did not get
/// to the close).
pub(crate) async fn already_commented<F: Forge>(
    forge: &F,
    number: u64,
    comment: &str,
) -> Result<bool, ForgeError> {
    Ok(forge
        .comments(number)
        .await?
        .iter()
        .any(|existing| existing.body.trim() == comment.trim()))
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

/// A comment as GitHub, Gitea and Forgejo send it.
#[derive(serde::Deserialize)]
struct WireComment {
    id: u64,
    body: Option<String>,
}

impl From<WireComment> for Comment {
    fn from(wire: WireComment) -> Self {
        Comment {
            id: wire.id,
            body: wire.body.unwrap_or_default(),
        }
    }
}

/// Pull-request comments the GitHub way, which Gitea and Forgejo copy: `issues/N/comments` and
/// `issues/comments/ID` under `repository` (the `repos/OWNER/NAME` segments).
struct IssueComments<'a> {
    api: &'a http::Api,
    repository: [&'a str; 3],
}

impl IssueComments<'_> {
    fn url(&self, rest: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut segments = self.repository.to_vec();
        segments.extend_from_slice(rest);
        self.api.url(&segments, query)
    }

    /// Every comment, oldest first; `query` is the forge's page-size parameter (none on Gitea, whose
    /// comment listing is not paginated).
    async fn list(&self, number: u64, query: &[(&str, &str)]) -> Result<Vec<Comment>, ForgeError> {
        let url = self.url(&["issues", &number.to_string(), "comments"], query);
        let comments = self
            .api
            .scan_pages::<WireComment>(url, |_| true, false)
            .await?;
        Ok(comments.into_iter().map(Comment::from).collect())
    }

    async fn add(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.url(&["issues", &number.to_string(), "comments"], &[]);
        let body = serde_json::json!({ "body": body });
        let comment: WireComment = self
            .api
            .send(reqwest::Method::POST, url, Some(&body))
            .await?
            .json()?;
        Ok(comment.into())
    }

    async fn edit(&self, id: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.url(&["issues", "comments", &id.to_string()], &[]);
        let request = serde_json::json!({ "body": body });
        let answer = self
            .api
            .send(reqwest::Method::PATCH, url, Some(&request))
            .await?;
        // Gitea answers 204 when the text did not change.
        if answer.body.is_empty() {
            return Ok(Comment {
                id,
                body: body.to_string(),
            });
        }
        Ok(answer.json::<WireComment>()?.into())
    }
}

/// A commit as GitHub, Gitea and Forgejo list a pull request's commits.
#[derive(serde::Deserialize)]
struct WireCommit {
    sha: String,
    commit: WireCommitDetail,
}

#[derive(serde::Deserialize)]
struct WireCommitDetail {
    author: Option<WireIdentity>,
    committer: Option<WireIdentity>,
}

#[derive(serde::Deserialize)]
struct WireIdentity {
    email: Option<String>,
}

impl From<WireCommit> for CommitRef {
    fn from(wire: WireCommit) -> Self {
        let email = |identity: Option<WireIdentity>| {
            identity
                .and_then(|identity| identity.email)
                .unwrap_or_default()
        };
        CommitRef {
            sha: wire.sha,
            author_email: email(wire.commit.author),
            committer_email: email(wire.commit.committer),
        }
    }
}

/// Before merging: the pull request as the forge has it now. `Ok(Some(outcome))` when it is merged
/// already (a retry after a lost answer); an error when it cannot be merged as asked (closed, or its
/// head is no longer `expected_head_sha`); `Ok(None)` to go ahead.
async fn merge_precheck<F: Forge>(
    forge: &F,
    number: u64,
    expected_head_sha: &str,
) -> Result<Option<MergeOutcome>, ForgeError> {
    let current = forge.get_pull_request(number).await?;
    match current.state {
        PullRequestState::Merged => Ok(Some(MergeOutcome {
            merge_commit_sha: current.merge_commit_sha,
            already_merged: true,
        })),
        PullRequestState::Closed => Err(ForgeError::NotMergeable {
            number,
            message: "the pull request is closed".into(),
        }),
        PullRequestState::Open => match current.head_sha {
            Some(head) if head == expected_head_sha => Ok(None),
            head => Err(ForgeError::HeadMoved {
                number,
                expected: expected_head_sha.to_string(),
                found: head,
            }),
        },
    }
}

/// One review as GitHub, Gitea and Forgejo list them, oldest first.
struct ReviewEntry<'a> {
    reviewer: &'a str,
    state: &'a str,
    /// The reviewer may approve: GitHub's `author_association` is OWNER, MEMBER or COLLABORATOR;
    /// Gitea's review is `official`. Anyone's request for changes counts (fail closed); only these
    /// reviewers' approvals do, so a passer-by's approval on a public repository merges nothing.
    trusted: bool,
}

/// The latest review of each reviewer, GitHub's and Gitea's way. Comments do not change a reviewer's
/// standing; a dismissal clears it.
fn latest_reviews<'a>(reviews: impl IntoIterator<Item = ReviewEntry<'a>>) -> Approval {
    let mut standing: Vec<(&str, &str, bool)> = Vec::new();
    for review in reviews {
        let state = match review.state.to_ascii_uppercase().as_str() {
            "APPROVED" => "approved",
            "CHANGES_REQUESTED" | "REQUEST_CHANGES" => "changes",
            "DISMISSED" => "none",
            // COMMENTED, COMMENT, PENDING, REQUEST_REVIEW: no verdict.
            _ => continue,
        };
        standing.retain(|(who, _, _)| *who != review.reviewer);
        standing.push((review.reviewer, state, review.trusted));
    }
    Approval {
        approved: standing
            .iter()
            .any(|(_, state, trusted)| *state == "approved" && *trusted),
        changes_requested: standing.iter().any(|(_, state, _)| *state == "changes"),
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

    fn review<'a>(reviewer: &'a str, state: &'a str) -> ReviewEntry<'a> {
        ReviewEntry {
            reviewer,
            state,
            trusted: true,
        }
    }

    #[test]
    fn the_latest_review_of_each_reviewer_counts() {
        let approval = latest_reviews([
            review("alice", "CHANGES_REQUESTED"),
            review("alice", "COMMENTED"),
            review("alice", "APPROVED"),
        ]);
        assert_eq!(
            approval,
            Approval {
                approved: true,
                changes_requested: false
            }
        );
        let split = latest_reviews([
            review("alice", "APPROVED"),
            review("bob", "REQUEST_CHANGES"),
        ]);
        assert!(split.approved && split.changes_requested);
        let dismissed = latest_reviews([review("alice", "APPROVED"), review("alice", "DISMISSED")]);
        assert_eq!(dismissed, Approval::default());
        let outsider = latest_reviews([ReviewEntry {
            trusted: false,
            ..review("mallory", "APPROVED")
        }]);
        assert!(!outsider.approved);
        let outsider_objects = latest_reviews([ReviewEntry {
            trusted: false,
            ..review("mallory", "CHANGES_REQUESTED")
        }]);
        assert!(outsider_objects.changes_requested);
    }

    #[test]
    fn a_failure_outweighs_pending_which_outweighs_success() {
        use CheckState::*;
        assert_eq!(CheckState::combine([Success, Pending, Failure]), Failure);
        assert_eq!(CheckState::combine([Success, Pending, None]), Pending);
        assert_eq!(CheckState::combine([None, Success]), Success);
        assert_eq!(CheckState::combine([]), None);
        let checks = Checks::from_latest_first(
            [
                ("ci".to_string(), Success),
                ("ci".to_string(), Failure),
                ("acceptance".to_string(), Pending),
            ],
            Option::None,
        );
        assert_eq!(checks.state, Pending);
        assert_eq!(checks.context("ci"), Some(Success));
        assert_eq!(checks.contexts[0].name, "acceptance");
        assert_eq!(checks.context("lint"), Option::None);
    }

    #[test]
    fn merge_methods_parse_from_their_config_names() {
        for method in [MergeMethod::Merge, MergeMethod::Squash, MergeMethod::Rebase] {
            assert_eq!(method.to_string().parse::<MergeMethod>().unwrap(), method);
        }
        assert!("octopus".parse::<MergeMethod>().is_err());
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
