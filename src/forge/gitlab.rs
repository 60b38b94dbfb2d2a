//! GitLab REST v4 merge requests (gitlab.com and self-managed).

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName};
use serde::Deserialize;
use serde_json::json;

use super::error::merge_refusal;
use super::http::Api;
use super::{
    Approval, CheckState, Checks, Comment, CommitRef, Forge, ForgeError, ForgeKind, ForgeSettings,
    MergeMethod, MergeOutcome, NewPullRequest, PullRequest, PullRequestState, existing_or,
    merge_precheck, union,
};

pub struct GitLab {
    api: Api,
    /// Numeric id or `group/project` path; sent as one (percent-encoded) path segment.
    project: String,
    labels: Vec<String>,
    reviewer_ids: Vec<u64>,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitLab({}, {:?})", self.project, self.api)
    }
}

#[derive(Deserialize)]
struct WireMergeRequest {
    iid: u64,
    web_url: String,
    title: String,
    description: Option<String>,
    state: String,
    source_branch: String,
    target_branch: String,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
    sha: Option<String>,
    merge_commit_sha: Option<String>,
    squash_commit_sha: Option<String>,
    #[serde(default)]
    has_conflicts: Option<bool>,
}

#[derive(Deserialize)]
struct WireApprovals {
    approved: bool,
}

#[derive(Deserialize)]
struct WireReviewer {
    state: String,
}

#[derive(Deserialize)]
struct WireCommitStatus {
    name: String,
    status: String,
    #[serde(default)]
    allow_failure: bool,
}

#[derive(Deserialize)]
struct WirePipeline {
    status: String,
}

#[derive(Deserialize)]
struct WireNote {
    id: u64,
    body: String,
    #[serde(default)]
    system: bool,
}

#[derive(Deserialize)]
struct WireCommit {
    id: String,
    author_email: String,
    committer_email: String,
}

/// A job, external status or pipeline status. A job allowed to fail says nothing when it fails; a
/// manual job waits for a human, which is pending unless it is allowed to fail.
fn status_state(status: &str, allow_failure: bool) -> CheckState {
    match status {
        "success" => CheckState::Success,
        "failed" | "canceled" | "canceling" if allow_failure => CheckState::None,
        "failed" | "canceled" | "canceling" => CheckState::Failure,
        "skipped" => CheckState::None,
        "manual" if allow_failure => CheckState::None,
        // created, waiting_for_resource, preparing, pending, running, scheduled, manual, and
        // anything newer: not done.
        _ => CheckState::Pending,
    }
}

impl From<WireMergeRequest> for PullRequest {
    fn from(wire: WireMergeRequest) -> Self {
        let state = match wire.state.as_str() {
            "opened" | "locked" => PullRequestState::Open,
            "merged" => PullRequestState::Merged,
            _ => PullRequestState::Closed,
        };
        PullRequest {
            number: wire.iid,
            url: wire.web_url,
            title: wire.title,
            body: wire.description.unwrap_or_default(),
            state,
            head_branch: wire.source_branch,
            base_branch: wire.target_branch,
            head_sha: wire.sha,
            merge_commit_sha: wire.merge_commit_sha.or(wire.squash_commit_sha),
        }
    }
}

/// `https://host` or `https://host/api/v4` → `https://host/api/v4`.
fn api_base(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api.ends_with("/api/v4") {
        api.to_string()
    } else {
        format!("{api}/api/v4")
    }
}

/// The merge-request API takes reviewer ids only; resolving names needs the users API, which a project
/// token may not read.
fn reviewer_ids(reviewers: &[String]) -> Result<Vec<u64>, ForgeError> {
    reviewers
        .iter()
        .map(|reviewer| {
            reviewer.parse::<u64>().map_err(|_| {
                ForgeError::Settings(format!(
                    "GitLab reviewer {reviewer:?} must be a numeric user id"
                ))
            })
        })
        .collect()
}

impl GitLab {
    pub fn new(settings: &ForgeSettings) -> Result<Self, ForgeError> {
        let project = settings.repository.trim_matches('/').to_string();
        if project.is_empty() {
            return Err(ForgeError::Settings(
                "GitLab repository must be a project path or numeric id".into(),
            ));
        }
        let reviewer_ids = reviewer_ids(&settings.reviewers)?;
        let api = Api::new(
            &api_base(&settings.api),
            HeaderName::from_static("private-token"),
            settings.token.expose().to_string(),
            settings.token.clone(),
            HeaderMap::new(),
            settings.retry.clone(),
            settings.request_timeout,
        )?;
        Ok(GitLab {
            api,
            project,
            labels: settings.labels.clone(),
            reviewer_ids,
        })
    }

    fn url(&self, rest: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut segments = vec!["projects", self.project.as_str(), "merge_requests"];
        segments.extend_from_slice(rest);
        self.api.url(&segments, query)
    }

    /// Open merge requests into `base` from this project (not a fork), from `head` when given.
    async fn open_merge_requests(
        &self,
        head: Option<&str>,
        base: &str,
        first_only: bool,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        let mut query = vec![
            ("state", "opened"),
            ("target_branch", base),
            ("per_page", "100"),
        ];
        if let Some(head) = head {
            query.push(("source_branch", head));
        }
        let url = self.url(&[], &query);
        let found = self
            .api
            .scan_pages::<WireMergeRequest>(
                url,
                |mr| {
                    mr.state == "opened"
                        && mr.target_branch == base
                        && head.is_none_or(|head| mr.source_branch == head)
                        && mr.source_project_id == mr.target_project_id
                },
                first_only,
            )
            .await?;
        Ok(found.into_iter().map(PullRequest::from).collect())
    }

    fn project_url(&self, rest: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut segments = vec!["projects", self.project.as_str()];
        segments.extend_from_slice(rest);
        self.api.url(&segments, query)
    }

    async fn put(&self, number: u64, body: serde_json::Value) -> Result<PullRequest, ForgeError> {
        let url = self.url(&[&number.to_string()], &[]);
        let merge_request: WireMergeRequest =
            self.api.send(Method::PUT, url, Some(&body)).await?.json()?;
        Ok(merge_request.into())
    }
}

impl Forge for GitLab {
    fn kind(&self) -> ForgeKind {
        ForgeKind::GitLab
    }

    async fn find_pull_request(
        &self,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        Ok(self
            .open_merge_requests(Some(head), base, true)
            .await?
            .pop())
    }

    async fn list_open_pull_requests(&self, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        self.open_merge_requests(None, base, false).await
    }

    async fn get_pull_request(&self, number: u64) -> Result<PullRequest, ForgeError> {
        let url = self.url(&[&number.to_string()], &[]);
        let merge_request: WireMergeRequest =
            self.api.send(Method::GET, url, None).await?.json()?;
        Ok(merge_request.into())
    }

    async fn open_pull_request(&self, new: &NewPullRequest) -> Result<PullRequest, ForgeError> {
        let mut body = json!({
            "source_branch": new.head,
            "target_branch": new.base,
            "title": new.title,
            "description": new.body,
            // The head branch is tagwatch's; nobody needs it after the merge.
            "remove_source_branch": true,
        });
        let labels = union(&self.labels, &new.labels);
        if !labels.is_empty() {
            body["labels"] = json!(labels);
        }
        let mut reviewer_ids = self.reviewer_ids.clone();
        for id in self::reviewer_ids(&new.reviewers)? {
            if !reviewer_ids.contains(&id) {
                reviewer_ids.push(id);
            }
        }
        if !reviewer_ids.is_empty() {
            body["reviewer_ids"] = json!(reviewer_ids);
        }
        let url = self.url(&[], &[]);
        match self.api.send(Method::POST, url, Some(&body)).await {
            Ok(answer) => Ok(answer.json::<WireMergeRequest>()?.into()),
            Err(error) => existing_or(self, error, new).await,
        }
    }

    async fn update_pull_request(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        self.put(number, json!({ "title": title, "description": body }))
            .await
    }

    async fn close_pull_request(
        &self,
        number: u64,
        comment: &str,
    ) -> Result<PullRequest, ForgeError> {
        // Already closed or merged (by a human, or a retry after a lost answer): no second comment.
        let current = self.get_pull_request(number).await?;
        if current.state != PullRequestState::Open {
            return Ok(current);
        }
        // A run stopped (or failed) between the note and the close posts no second note.
        if !super::already_commented(self, number, comment).await? {
            let url = self.url(&[&number.to_string(), "notes"], &[]);
            self.api
                .send(Method::POST, url, Some(&json!({ "body": comment })))
                .await?;
            crate::fault::point("pull-request-commented");
        }
        self.put(number, json!({ "state_event": "close" })).await
    }

    async fn review_state(&self, number: u64) -> Result<Approval, ForgeError> {
        let iid = number.to_string();
        let url = self.url(&[&iid, "approvals"], &[]);
        let approvals: WireApprovals = self.api.send(Method::GET, url, None).await?.json()?;
        let url = self.url(&[&iid, "reviewers"], &[]);
        let reviewers: Vec<WireReviewer> = self.api.send(Method::GET, url, None).await?.json()?;
        Ok(Approval {
            approved: approvals.approved,
            changes_requested: reviewers
                .iter()
                .any(|reviewer| reviewer.state == "requested_changes"),
        })
    }

    async fn checks(&self, sha: &str) -> Result<Checks, ForgeError> {
        // The latest status per job or external name (GitLab's default, `all=false`).
        let url = self.project_url(
            &["repository", "commits", sha, "statuses"],
            &[("per_page", "100")],
        );
        let statuses = self
            .api
            .scan_pages::<WireCommitStatus>(url, |_| true, false)
            .await?;
        let url = self.project_url(
            &["pipelines"],
            &[
                ("sha", sha),
                ("order_by", "id"),
                ("sort", "desc"),
                ("per_page", "1"),
            ],
        );
        let pipelines: Vec<WirePipeline> = self.api.send(Method::GET, url, None).await?.json()?;
        let pipeline = pipelines
            .first()
            .map(|pipeline| status_state(&pipeline.status, false));
        let reports = statuses.iter().map(|status| {
            (
                status.name.clone(),
                status_state(&status.status, status.allow_failure),
            )
        });
        Ok(Checks::from_latest_first(reports, pipeline))
    }

    async fn merge(
        &self,
        number: u64,
        method: MergeMethod,
        expected_head_sha: &str,
    ) -> Result<MergeOutcome, ForgeError> {
        let squash = match method {
            MergeMethod::Merge => false,
            MergeMethod::Squash => true,
            MergeMethod::Rebase => {
                return Err(ForgeError::Settings(
                    "GitLab merges with the project's merge method; writeBack.merge.method must be \
                     merge or squash (a fast-forward project merges without a merge commit)"
                        .into(),
                ));
            }
        };
        if let Some(done) = merge_precheck(self, number, expected_head_sha).await? {
            return Ok(done);
        }
        let url = self.url(&[&number.to_string(), "merge"], &[]);
        let body = json!({
            "sha": expected_head_sha,
            "squash": squash,
            "should_remove_source_branch": true,
        });
        let merged: PullRequest = match self.api.send(Method::PUT, url, Some(&body)).await {
            Ok(answer) => answer.json::<WireMergeRequest>()?.into(),
            Err(error) => {
                let refusal = merge_refusal(error, number, expected_head_sha);
                // GitLab answers 405 for conflicts too; the merge request tells which.
                if let ForgeError::NotMergeable { message, .. } = &refusal {
                    let url = self.url(&[&number.to_string()], &[]);
                    let current: WireMergeRequest =
                        self.api.send(Method::GET, url, None).await?.json()?;
                    if current.has_conflicts == Some(true) {
                        return Err(ForgeError::MergeConflict {
                            number,
                            message: message.clone(),
                        });
                    }
                }
                return Err(refusal);
            }
        };
        Ok(MergeOutcome {
            merge_commit_sha: merged.merge_commit_sha,
            already_merged: false,
        })
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        let url = self.url(
            &[&number.to_string(), "notes"],
            &[
                ("sort", "asc"),
                ("order_by", "created_at"),
                ("per_page", "100"),
            ],
        );
        let notes = self
            .api
            .scan_pages::<WireNote>(url, |note| !note.system, false)
            .await?;
        Ok(notes
            .into_iter()
            .map(|note| Comment {
                id: note.id,
                body: note.body,
            })
            .collect())
    }

    async fn add_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.url(&[&number.to_string(), "notes"], &[]);
        let note: WireNote = self
            .api
            .send(Method::POST, url, Some(&json!({ "body": body })))
            .await?
            .json()?;
        Ok(Comment {
            id: note.id,
            body: note.body,
        })
    }

    async fn edit_comment(&self, number: u64, id: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.url(&[&number.to_string(), "notes", &id.to_string()], &[]);
        let note: WireNote = self
            .api
            .send(Method::PUT, url, Some(&json!({ "body": body })))
            .await?
            .json()?;
        Ok(Comment {
            id: note.id,
            body: note.body,
        })
    }

    async fn head_commits(&self, number: u64) -> Result<Vec<CommitRef>, ForgeError> {
        let url = self.url(&[&number.to_string(), "commits"], &[("per_page", "100")]);
        let commits = self
            .api
            .scan_pages::<WireCommit>(url, |_| true, false)
            .await?;
        // GitLab lists the newest first.
        Ok(commits
            .into_iter()
            .rev()
            .map(|commit| CommitRef {
                sha: commit.id,
                author_email: commit.author_email,
                committer_email: commit.committer_email,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_appends_the_version_once() {
        assert_eq!(api_base("https://gl.example/"), "https://gl.example/api/v4");
        assert_eq!(
            api_base("https://gl.example/api/v4"),
            "https://gl.example/api/v4"
        );
    }
}
