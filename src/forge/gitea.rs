//! Gitea and Forgejo REST v1 (Forgejo is a Gitea fork; its pull-request API differs in list filters and
//! in having no reviewers on create, which tagwatch does not use).

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};
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

/// Page size of pull-request listings: Gitea's default `MAX_RESPONSE_ITEMS` is 50.
const PAGE_LIMIT: &str = "50";

pub struct Gitea {
    api: Api,
    kind: ForgeKind,
    owner: String,
    name: String,
    labels: Vec<String>,
    reviewers: Vec<String>,
}

impl std::fmt::Debug for Gitea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}({}/{}, {:?})",
            self.kind, self.owner, self.name, self.api
        )
    }
}

#[derive(Deserialize)]
struct WirePull {
    number: u64,
    html_url: String,
    title: String,
    body: Option<String>,
    state: String,
    merged: Option<bool>,
    /// `false` while the head conflicts with the base (or Gitea is still checking).
    #[serde(default)]
    mergeable: Option<bool>,
    merge_commit_sha: Option<String>,
    head: WireBranch,
    base: WireBranch,
}

#[derive(Deserialize)]
struct WireBranch {
    #[serde(rename = "ref")]
    name: String,
    sha: Option<String>,
    repo_id: Option<i64>,
}

#[derive(Deserialize)]
struct WireReview {
    user: Option<WireUser>,
    state: String,
    #[serde(default)]
    dismissed: bool,
    #[serde(default)]
    official: bool,
}

#[derive(Deserialize)]
struct WireUser {
    login: String,
}

#[derive(Deserialize)]
struct WireCombinedStatus {
    statuses: Option<Vec<WireStatus>>,
}

#[derive(Deserialize)]
struct WireStatus {
    context: String,
    status: String,
}

/// A commit status: `warning` passes (Gitea's combined state counts it so), `skipped` says nothing.
fn status_state(status: &str) -> CheckState {
    match status {
        "success" | "warning" => CheckState::Success,
        "pending" => CheckState::Pending,
        "skipped" => CheckState::None,
        _ => CheckState::Failure,
    }
}

impl From<WirePull> for PullRequest {
    fn from(wire: WirePull) -> Self {
        let state = if wire.merged == Some(true) {
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

/// `https://host` or `https://host/api/v1` → `https://host/api/v1`.
fn api_base(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.ends_with("/api/v1") {
        api.to_string()
    } else {
        format!("{api}/api/v1")
    }
}

impl Gitea {
    /// For `ForgeKind::Gitea` and `ForgeKind::Forgejo`.
    pub fn new(settings: &ForgeSettings) -> Result<Self, ForgeError> {
        let (owner, name) = owner_and_name(&settings.repository)?;
        let api = Api::new(
            &api_base(&settings.api),
            AUTHORIZATION,
            format!("token {}", settings.token.expose()),
            settings.token.clone(),
            HeaderMap::new(),
            settings.retry.clone(),
            settings.request_timeout,
        )?;
        Ok(Gitea {
            api,
            kind: settings.kind,
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

    /// Open pull requests into `base` from a branch of this repository, named `head` when given.
    ///
    /// Gitea's list has no head filter (Forgejo's has); `pulls/{base}/{head}` would also return a
    /// closed pull request, so both list the open ones and match the head here.
    async fn open_pulls(
        &self,
        head: Option<&str>,
        base: &str,
        first_only: bool,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        let mut query = vec![("state", "open"), ("limit", PAGE_LIMIT)];
        match self.kind {
            ForgeKind::Forgejo => {
                query.push(("base", base));
                if let Some(head) = head {
                    query.push(("head", head));
                }
            }
            _ => query.push(("base_branch", base)),
        }
        let url = self.repo_url(&["pulls"], &query);
        // A fork's branch of the same name has another repo_id: not ours.
        let found = self
            .api
            .scan_pages::<WirePull>(
                url,
                |p| {
                    p.state == "open"
                        && p.base.name == base
                        && head.is_none_or(|head| p.head.name == head)
                        && (p.head.repo_id.is_none() || p.head.repo_id == p.base.repo_id)
                },
                first_only,
            )
            .await?;
        Ok(found.into_iter().map(PullRequest::from).collect())
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

impl Forge for Gitea {
    fn kind(&self) -> ForgeKind {
        self.kind
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
            "head": new.head,
            "base": new.base,
            "title": new.title,
            "body": new.body,
        });
        let pull: PullRequest = match self.api.send(Method::POST, url, Some(&body)).await {
            Ok(answer) => answer.json::<WirePull>()?.into(),
            Err(error) => return existing_or(self, error, new).await,
        };
        // IssueLabelsOption takes ids or names; names need no lookup.
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
            &[("limit", PAGE_LIMIT)],
        );
        let reviews = self
            .api
            .scan_pages::<WireReview>(url, |_| true, false)
            .await?;
        Ok(latest_reviews(reviews.iter().map(|review| ReviewEntry {
            reviewer: review.user.as_ref().map_or("", |user| user.login.as_str()),
            state: if review.dismissed {
                "DISMISSED"
            } else {
                review.state.as_str()
            },
            trusted: review.official,
        })))
    }

    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        // One page: the combined status is an object; see docs/design/forge.md.
        let url = self.repo_url(&["commits", sha, "status"], &[("limit", PAGE_LIMIT)]);
        let combined: WireCombinedStatus = self.api.send(Method::GET, url, None).await?.json()?;
        let reports = combined
            .statuses
            .unwrap_or_default()
            .into_iter()
            .map(|status| (status.context, status_state(&status.status)));
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
        // Forgejo's description spells the style `Do`, Gitea's `do`.
        let style_key = match self.kind {
            ForgeKind::Forgejo => "Do",
            _ => "do",
        };
        let mut body = json!({ "head_commit_id": expected_head_sha });
        body[style_key] = json!(method.to_string());
        if let Err(error) = self.api.send(Method::POST, url, Some(&body)).await {
            let refusal = merge_refusal(error, number, expected_head_sha);
            // Gitea refuses a conflicting pull request as not mergeable; the pull request tells.
            if let ForgeError::NotMergeable { message, .. } = &refusal {
                let url = self.repo_url(&["pulls", &number.to_string()], &[]);
                let current: WirePull = self.api.send(Method::GET, url, None).await?.json()?;
                if current.mergeable == Some(false) {
                    return Err(ForgeError::MergeConflict {
                        number,
                        message: message.clone(),
                    });
                }
            }
            return Err(refusal);
        }
        // The answer is empty; the pull request names the merge commit.
        let merged = self.get_pull_request(number).await?;
        Ok(MergeOutcome {
            merge_commit_sha: merged.merge_commit_sha,
            already_merged: false,
        })
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        self.issue_comments().list(number, &[]).await
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
            &[
                ("limit", PAGE_LIMIT),
                ("verification", "false"),
                ("files", "false"),
            ],
        );
        let commits = self
            .api
            .scan_pages::<WireCommit>(url, |_| true, false)
            .await?;
        Ok(commits.into_iter().map(CommitRef::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_appends_the_version_once() {
        assert_eq!(
            api_base("https://git.example"),
            "https://git.example/api/v1"
        );
        assert_eq!(
            api_base("https://git.example/api/v1/"),
            "https://git.example/api/v1"
        );
    }
}
