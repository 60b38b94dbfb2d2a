//! GitHub REST (api.github.com and GitHub Enterprise Server).

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use super::error::merge_refusal;
use super::http::Api;
use super::{
    Approval, CheckState, Checks, Comment, CommitRef, Forge, ForgeError, ForgeKind, ForgeSettings,
    IssueComments, MergeMethod, MergeOutcome, NewPullRequest, PullRequest, PullRequestState,
    ReviewEntry, WireCommit, add_labels_and_reviewers, comment_then_close, existing_or,
    latest_reviews, merge_precheck, owner_and_name, union,
};

/// The REST API version tagwatch is written against; GitHub answers 400 to versions it does not know.
pub const API_VERSION: &str = "2022-11-28";

pub struct GitHub {
    api: Api,
    owner: String,
    name: String,
    labels: Vec<String>,
    reviewers: Vec<String>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitHub({}/{}, {:?})", self.owner, self.name, self.api)
    }
}

#[derive(Deserialize)]
struct WirePull {
    number: u64,
    html_url: String,
    title: String,
    body: Option<String>,
    state: String,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
    head: WireRef,
    base: WireRef,
    /// `dirty` when the head conflicts with the base (only on a single pull request).
    #[serde(default)]
    mergeable_state: Option<String>,
}

#[derive(Deserialize)]
struct WireReview {
    /// Null for a deleted account.
    user: Option<WireUser>,
    state: String,
    author_association: Option<String>,
}

#[derive(Deserialize)]
struct WireUser {
    login: String,
}

#[derive(Deserialize)]
struct WireCombinedStatus {
    statuses: Vec<WireStatus>,
}

#[derive(Deserialize)]
struct WireStatus {
    context: String,
    state: String,
}

#[derive(Deserialize)]
struct WireCheckRuns {
    check_runs: Vec<WireCheckRun>,
}

#[derive(Deserialize)]
struct WireCheckRun {
    name: String,
    status: String,
    conclusion: Option<String>,
}

#[derive(Deserialize)]
struct WireMergeResult {
    sha: String,
    merged: bool,
    message: String,
}

/// A commit status: `error` and `failure` fail.
fn status_state(state: &str) -> CheckState {
    match state {
        "success" => CheckState::Success,
        "pending" => CheckState::Pending,
        _ => CheckState::Failure,
    }
}

/// A check run: not completed is pending; `neutral` and `skipped` say nothing; any other conclusion
/// (failure, cancelled, timed out, action required, stale) fails.
fn check_run_state(run: &WireCheckRun) -> CheckState {
    if run.status != "completed" {
        return CheckState::Pending;
    }
    match run.conclusion.as_deref() {
        Some("success") => CheckState::Success,
        Some("neutral" | "skipped") => CheckState::None,
        _ => CheckState::Failure,
    }
}

#[derive(Deserialize)]
struct WireRef {
    #[serde(rename = "ref")]
    name: String,
    sha: Option<String>,
    /// Null when a fork was deleted.
    repo: Option<WireRepository>,
}

#[derive(Deserialize)]
struct WireRepository {
    full_name: String,
}

impl From<WirePull> for PullRequest {
    fn from(wire: WirePull) -> Self {
        let state = if wire.merged_at.is_some() {
            PullRequestState::Merged
        } else if wire.state == "open" {
            PullRequestState::Open
        } else {
            PullRequestState::Closed
        };
        PullRequest {
            number: wire.number,
            url: wire.html_url,
            title: wire.title,
            body: wire.body.unwrap_or_default(),
            state,
            head_branch: wire.head.name,
            base_branch: wire.base.name,
            head_sha: wire.head.sha,
            merge_commit_sha: wire
                .merge_commit_sha
                .filter(|_| state == PullRequestState::Merged),
        }
    }
}

impl GitHub {
    pub fn new(settings: &ForgeSettings) -> Result<Self, ForgeError> {
        let (owner, name) = owner_and_name(&settings.repository)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static(API_VERSION),
        );
        let api = Api::new(
            &settings.api,
            AUTHORIZATION,
            format!("Bearer {}", settings.token.expose()),
            settings.token.clone(),
            headers,
            settings.retry.clone(),
            settings.request_timeout,
        )?;
        Ok(GitHub {
            api,
            owner,
            name,
            labels: settings.labels.clone(),
            reviewers: settings.reviewers.clone(),
        })
    }

    fn repo_url(&self, rest: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut segments = vec!["repos", self.owner.as_str(), self.name.as_str()];
        segments.extend_from_slice(rest);
        self.api.url(&segments, query)
    }

    /// Open pull requests into `base` whose head is a branch of this repository (not a fork), and
    /// named `head` when given.
    async fn open_pulls(
        &self,
        head: Option<&str>,
        base: &str,
        first_only: bool,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        let head_filter = head.map(|head| format!("{}:{head}", self.owner));
        let mut query = vec![("state", "open"), ("base", base), ("per_page", "100")];
        if let Some(filter) = &head_filter {
            query.push(("head", filter));
        }
        let url = self.repo_url(&["pulls"], &query);
        let full_name = format!("{}/{}", self.owner, self.name);
        // The filters are the forge's; check them anyway.
        let pulls = self
            .api
            .scan_pages::<WirePull>(
                url,
                |p| {
                    p.state == "open"
                        && p.base.name == base
                        && head.is_none_or(|head| p.head.name == head)
                        && p.head
                            .repo
                            .as_ref()
                            .is_some_and(|r| r.full_name.eq_ignore_ascii_case(&full_name))
                },
                first_only,
            )
            .await?;
        Ok(pulls.into_iter().map(PullRequest::from).collect())
    }

    fn issue_comments(&self) -> IssueComments<'_> {
        IssueComments {
            api: &self.api,
            repository: ["repos", &self.owner, &self.name],
        }
    }

    async fn patch(&self, number: u64, body: serde_json::Value) -> Result<PullRequest, ForgeError> {
        let url = self.repo_url(&["pulls", &number.to_string()], &[]);
        let pull: WirePull = self
            .api
            .send(Method::PATCH, url, Some(&body))
            .await?
            .json()?;
        Ok(pull.into())
    }
}

impl Forge for GitHub {
    fn kind(&self) -> ForgeKind {
        ForgeKind::GitHub
    }

    async fn find_pull_request(
        &self,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        Ok(self.open_pulls(Some(head), base, true).await?.pop())
    }

    async fn list_open_pull_requests(&self, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        self.open_pulls(None, base, false).await
    }

    async fn get_pull_request(&self, number: u64) -> Result<PullRequest, ForgeError> {
        let url = self.repo_url(&["pulls", &number.to_string()], &[]);
        let pull: WirePull = self.api.send(Method::GET, url, None).await?.json()?;
        Ok(pull.into())
    }

    async fn open_pull_request(&self, new: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        let url = self.repo_url(&["pulls"], &[]);
        let body = json!({
            "title": new.title,
            "head": new.head,
            "base": new.base,
            "body": new.body,
            "maintainer_can_modify": false,
        });
        let pull: PullRequest = match self.api.send(Method::POST, url, Some(&body)).await {
            Ok(answer) => answer.json::<WirePull>()?.into(),
            Err(error) => return existing_or(self, error, new).await,
        };
        add_labels_and_reviewers(
            &self.api,
            &["repos", &self.owner, &self.name],
            pull.number,
            &union(&self.labels, &new.labels),
            &union(&self.reviewers, &new.reviewers),
        )
        .await;
        Ok(pull)
    }

    async fn update_pull_request(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        self.patch(number, json!({ "title": title, "body": body }))
            .await
    }

    async fn close_pull_request(
        &self,
        number: u64,
        comment: &str,
    ) -> Result<PullRequest, ForgeError> {
        comment_then_close(
            self,
            &self.api,
            &["repos", &self.owner, &self.name],
            number,
            comment,
            self.patch(number, json!({ "state": "closed" })),
        )
        .await
    }

    async fn review_state(&self, number: u64) -> Result<Approval, ForgeError> {
        let url = self.repo_url(
            &["pulls", &number.to_string(), "reviews"],
            &[("per_page", "100")],
        );
        let reviews = self
            .api
            .scan_pages::<WireReview>(url, |_| true, false)
            .await?;
        Ok(latest_reviews(reviews.iter().map(|review| ReviewEntry {
            reviewer: review.user.as_ref().map_or("", |user| user.login.as_str()),
            state: review.state.as_str(),
            trusted: matches!(
                review.author_association.as_deref(),
                Some("OWNER" | "MEMBER" | "COLLABORATOR")
            ),
        })))
    }

    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        // Both answers are objects with one page of up to 100 entries; see docs/design/forge.md.
        let url = self.repo_url(&["commits", sha, "status"], &[("per_page", "100")]);
        let combined: WireCombinedStatus = self.api.send(Method::GET, url, None).await?.json()?;
        let url = self.repo_url(&["commits", sha, "check-runs"], &[("per_page", "100")]);
        let runs: WireCheckRuns = self.api.send(Method::GET, url, None).await?.json()?;
        let reports = combined
            .statuses
            .iter()
            .map(|status| (status.context.clone(), status_state(&status.state)))
            .chain(
                runs.check_runs
                    .iter()
                    .map(|run| (run.name.clone(), check_run_state(run))),
            );
        Ok(Checks::from_latest_first(reports, None))
    }

    async fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> Result<MergeOutcome, ForgeError> {
        if let Some(done) = merge_precheck(self, number, expected_head_sha).await? {
            return Ok(done);
        }
        let url = self.repo_url(&["pulls", &number.to_string(), "merge"], &[]);
        let body = json!({ "sha": expected_head_sha, "merge_method": method.to_string() });
        let result: WireMergeResult = match self.api.send(Method::PUT, url, Some(&body)).await {
            Ok(answer) => answer.json()?,
            Err(error) => {
                let refusal = merge_refusal(error, number, expected_head_sha);
                // GitHub says "not mergeable" for conflicts too; the pull request tells which.
                if let ForgeError::NotMergeable { message, .. } = &refusal {
                    let url = self.repo_url(&["pulls", &number.to_string()], &[]);
                    let pull: WirePull = self.api.send(Method::GET, url, None).await?.json()?;
                    if pull.mergeable_state.as_deref() == Some("dirty") {
                        return Err(ForgeError::MergeConflict {
                            number,
                            message: message.clone(),
                        });
                    }
                }
                return Err(refusal);
            }
        };
        if !result.merged {
            return Err(ForgeError::NotMergeable {
                number,
                message: result.message,
            });
        }
        Ok(MergeOutcome {
            merge_commit_sha: Some(result.sha),
            already_merged: false,
        })
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        self.issue_comments()
            .list(number, &[("per_page", "100")])
            .await
    }

    async fn add_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        self.issue_comments().add(number, body).await
    }

    async fn edit_comment(&self, _number: u64, id: u64, body: &str) -> Result<Comment, ForgeError> {
        self.issue_comments().edit(id, body).await
    }

    async fn head_commits(&self, number: u64) -> Result<Vec<CommitRef>, ForgeError> {
        let url = self.repo_url(
            &["pulls", &number.to_string(), "commits"],
            &[("per_page", "100")],
        );
        let commits = self
            .api
            .scan_pages::<WireCommit>(url, |_| true, false)
            .await?;
        Ok(commits.into_iter().map(CommitRef::from).collect())
    }
}
