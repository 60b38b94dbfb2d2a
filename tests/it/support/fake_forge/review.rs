//! The review-to-merge half of the fake forge: reviews and approvals, commit statuses, check runs and
//! pipelines, merging through the API (into the real bare repository), comment listing and editing,
//! and a pull request's commits. Answers are built per forge and checked against the description by
//! the caller, like every other answer.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::serve::Reply;
use super::spec::Flavor;
use super::wire::{self, CREATED, UPDATED};
use super::{
    Check, CheckKind, FakeCheck, FakePull, Inner, MergeFailure, PullState, Verdict, git,
    merge_into_base,
};

/// The operations this module serves; `None` for any other.
pub(super) fn dispatch(
    inner: &Inner,
    operation: &str,
    params: &HashMap<String, String>,
    query: &[(String, String)],
    body: &Value,
    number: u64,
) -> Option<Reply> {
    let flavor = inner.spec.flavor;
    let text = |key: &str| body[key].as_str().map(str::to_string);
    let id_param = ["comment_id", "id", "note_id"]
        .iter()
        .filter(|name| !(flavor == Flavor::GitLab && **name == "id"))
        .find_map(|name| params.get(*name))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    Some(match operation {
        "pulls/list-reviews" | "repoListPullReviews" => reviews(inner, number),
        "getMergeRequestApprovals" => approvals(inner, number),
        "listMergeRequestReviewers" => gitlab_reviewers(inner, number),
        "repos/get-combined-status-for-ref" | "repoGetCombinedStatusByRef" => {
            combined_status(inner, params.get("ref").cloned().unwrap_or_default())
        }
        "checks/list-for-ref" => check_runs(inner, params.get("ref").cloned().unwrap_or_default()),
        "listCommitStatuses" => {
            gitlab_statuses(inner, params.get("sha").cloned().unwrap_or_default())
        }
        "listProjectPipelines" => pipelines(inner, get("sha"), get("per_page")),
        "pulls/merge" | "repoMergePullRequest" | "mergeMergeRequest" => {
            let method = match flavor {
                Flavor::GitHub => text("merge_method").unwrap_or_else(|| "merge".into()),
                Flavor::GitLab if body["squash"] == json!(true) => "squash".into(),
                Flavor::GitLab => "merge".into(),
                Flavor::Gitea => text("do").unwrap_or_default(),
                Flavor::Forgejo => text("Do").unwrap_or_default(),
            };
            let expected = match flavor {
                Flavor::GitHub | Flavor::GitLab => text("sha"),
                _ => text("head_commit_id"),
            };
            merge(inner, number, &method, expected)
        }
        "issues/list-comments" | "issueGetComments" | "listMergeRequestNotes" => {
            comments(inner, number)
        }
        "issues/update-comment" | "issueEditComment" | "updateMergeRequestNote" => {
            edit_comment(inner, id_param, text("body").unwrap_or_default())
        }
        "pulls/list-commits" | "repoGetPullRequestCommits" | "listMergeRequestCommits" => {
            commits(inner, number)
        }
        _ => return None,
    })
}

fn not_found(inner: &Inner) -> Reply {
    Reply::error(inner.spec.flavor, 404, "Not Found")
}

fn find_pull(inner: &Inner, number: u64) -> Option<FakePull> {
    let state = inner.state.lock().unwrap();
    state.pulls.iter().find(|p| p.number == number).cloned()
}

fn examples(inner: &Inner) -> &Value {
    &inner.spec.root()["components"]["examples"]
}

fn reviews(inner: &Inner, number: u64) -> Reply {
    let flavor = inner.spec.flavor;
    let Some(pull) = find_pull(inner, number) else {
        return not_found(inner);
    };
    let reviews = inner.state.lock().unwrap().reviews.clone();
    let repo = &inner.repository;
    let html = format!(
        "{}/{}/{}/pull/{number}",
        repo.web_url, repo.owner, repo.name
    );
    let items: Vec<Value> = reviews
        .iter()
        .filter(|r| r.pull == pull.number)
        .map(|review| match flavor {
            Flavor::GitHub => {
                let mut value = examples(inner)["pull-request-review-items"]["value"][0].clone();
                value["id"] = json!(review.id);
                value["user"]["login"] = json!(review.user);
                value["state"] = json!(match review.verdict {
                    Verdict::Approve | Verdict::OutsiderApprove => "APPROVED",
                    Verdict::RequestChanges => "CHANGES_REQUESTED",
                    Verdict::Comment => "COMMENTED",
                });
                if review.verdict == Verdict::OutsiderApprove {
                    value["author_association"] = json!("NONE");
                }
                value["commit_id"] = json!(review.commit);
                value["html_url"] = json!(format!("{html}#pullrequestreview-{}", review.id));
                value
            }
            _ => json!({
                "id": review.id,
                "user": wire::gitea_user(&review.user, 100 + review.id),
                "state": match review.verdict {
                    Verdict::Approve | Verdict::OutsiderApprove => "APPROVED",
                    Verdict::RequestChanges => "REQUEST_CHANGES",
                    Verdict::Comment => "COMMENT",
                },
                "body": "",
                "commit_id": review.commit,
                "official": review.verdict != Verdict::OutsiderApprove,
                "stale": false,
                "dismissed": false,
                "comments_count": 0,
                "html_url": html,
                "pull_request_url": html,
                "submitted_at": UPDATED,
                "updated_at": UPDATED,
            }),
        })
        .collect();
    Reply::json(200, Value::Array(items))
}

/// Each reviewer's latest verdict on pull request `number`, in the order they first reviewed.
fn verdicts(inner: &Inner, number: u64) -> Vec<(String, Verdict)> {
    let state = inner.state.lock().unwrap();
    let mut latest: Vec<(String, Verdict)> = Vec::new();
    for review in state.reviews.iter().filter(|r| r.pull == number) {
        match latest.iter_mut().find(|(user, _)| *user == review.user) {
            Some(entry) => entry.1 = review.verdict,
            None => latest.push((review.user.clone(), review.verdict)),
        }
    }
    latest
}

/// GitLab: the project requires one approval.
fn approvals(inner: &Inner, number: u64) -> Reply {
    let Some(pull) = find_pull(inner, number) else {
        return not_found(inner);
    };
    let approvers: Vec<Value> = verdicts(inner, number)
        .iter()
        .enumerate()
        .filter(|(_, (_, verdict))| *verdict == Verdict::Approve)
        .map(|(i, (user, _))| json!({ "user": wire::gitlab_user(user, 200 + i as u64) }))
        .collect();
    let approved = !approvers.is_empty();
    Reply::json(
        200,
        json!({
            "id": 3000 + number,
            "iid": number,
            "project_id": inner.repository.project_id,
            "title": pull.title,
            "description": pull.body,
            "state": if pull.state == PullState::Open { "opened" } else { "closed" },
            "created_at": CREATED,
            "updated_at": UPDATED,
            "merge_status": "can_be_merged",
            "approved": approved,
            "approvals_required": 1,
            "approvals_left": if approved { 0 } else { 1 },
            "approved_by": approvers,
        }),
    )
}

fn gitlab_reviewers(inner: &Inner, number: u64) -> Reply {
    if find_pull(inner, number).is_none() {
        return not_found(inner);
    }
    let items: Vec<Value> = verdicts(inner, number)
        .iter()
        .enumerate()
        .map(|(i, (user, verdict))| {
            json!({
                "user": wire::gitlab_user(user, 200 + i as u64),
                "state": match verdict {
                    Verdict::Approve => "approved",
                    Verdict::RequestChanges => "requested_changes",
                    Verdict::Comment | Verdict::OutsiderApprove => "reviewed",
                },
                "created_at": CREATED,
            })
        })
        .collect();
    Reply::json(200, Value::Array(items))
}

/// The latest check of `kind` per name on `sha`, newest first.
fn latest_checks(inner: &Inner, kind: CheckKind, sha: &str) -> Vec<FakeCheck> {
    let state = inner.state.lock().unwrap();
    let mut latest: Vec<FakeCheck> = Vec::new();
    for check in state
        .checks
        .iter()
        .rev()
        .filter(|c| c.kind == kind && c.sha == sha)
    {
        if !latest.iter().any(|c| c.name == check.name) {
            latest.push(check.clone());
        }
    }
    latest
}

fn status_word(flavor: Flavor, check: Check) -> &'static str {
    match (flavor, check) {
        (Flavor::GitLab, Check::Pending) => "running",
        (Flavor::GitLab, Check::Success) => "success",
        (Flavor::GitLab, Check::Failure) => "failed",
        (_, Check::Pending) => "pending",
        (_, Check::Success) => "success",
        (_, Check::Failure) => "failure",
    }
}

fn combined_status(inner: &Inner, sha: String) -> Reply {
    let flavor = inner.spec.flavor;
    let statuses = latest_checks(inner, CheckKind::Status, &sha);
    let combined = if statuses.iter().any(|s| s.state == Check::Failure) {
        "failure"
    } else if statuses.is_empty() || statuses.iter().any(|s| s.state == Check::Pending) {
        "pending"
    } else {
        "success"
    };
    let repo = &inner.repository;
    match flavor {
        Flavor::GitHub => {
            let mut value = examples(inner)["combined-commit-status"]["value"].clone();
            let template = value["statuses"][0].clone();
            value["state"] = json!(combined);
            value["sha"] = json!(sha);
            value["total_count"] = json!(statuses.len());
            value["statuses"] = Value::Array(
                statuses
                    .iter()
                    .map(|status| {
                        let mut item = template.clone();
                        item["id"] = json!(status.id);
                        item["context"] = json!(status.name);
                        item["state"] = json!(status_word(flavor, status.state));
                        item
                    })
                    .collect(),
            );
            Reply::json(200, value)
        }
        _ => Reply::json(
            200,
            json!({
                "state": combined,
                "sha": sha,
                "total_count": statuses.len(),
                "commit_url": format!("{}/api/v1/repos/{}/{}/git/commits/{sha}", repo.api_url, repo.owner, repo.name),
                "url": format!("{}/api/v1/repos/{}/{}/commits/{sha}/status", repo.api_url, repo.owner, repo.name),
                "statuses": statuses.iter().map(|status| json!({
                    "id": status.id,
                    "status": status_word(flavor, status.state),
                    "context": status.name,
                    "description": "",
                    "target_url": "https://ci.example/run",
                    "url": "https://ci.example/run",
                    "created_at": CREATED,
                    "updated_at": UPDATED,
                    "creator": wire::gitea_user("ci-bot", 9),
                })).collect::<Vec<_>>(),
            }),
        ),
    }
}

fn check_runs(inner: &Inner, sha: String) -> Reply {
    let runs = latest_checks(inner, CheckKind::CheckRun, &sha);
    let mut value = examples(inner)["check-run-paginated"]["value"].clone();
    let template = value["check_runs"][0].clone();
    value["total_count"] = json!(runs.len());
    value["check_runs"] = Value::Array(
        runs.iter()
            .map(|run| {
                let mut item = template.clone();
                item["id"] = json!(run.id);
                item["name"] = json!(run.name);
                item["head_sha"] = json!(sha);
                let (status, conclusion) = match run.state {
                    Check::Pending => ("in_progress", Value::Null),
                    Check::Success => ("completed", json!("success")),
                    Check::Failure => ("completed", json!("failure")),
                };
                item["status"] = json!(status);
                item["conclusion"] = conclusion;
                if run.state == Check::Pending {
                    item["completed_at"] = Value::Null;
                }
                item
            })
            .collect(),
    );
    Reply::json(200, value)
}

fn gitlab_statuses(inner: &Inner, sha: String) -> Reply {
    let items: Vec<Value> = latest_checks(inner, CheckKind::Status, &sha)
        .iter()
        .map(|status| {
            json!({
                "id": status.id,
                "sha": sha,
                "ref": "tagwatch/prod",
                "status": status_word(Flavor::GitLab, status.state),
                "name": status.name,
                "target_url": "https://ci.example/run",
                "description": null,
                "created_at": CREATED,
                "started_at": CREATED,
                "finished_at": if status.state == Check::Pending { Value::Null } else { json!(UPDATED) },
                "allow_failure": status.allow_failure,
                "coverage": null,
                "pipeline_id": null,
                "author": wire::gitlab_user("ci-bot", 9),
            })
        })
        .collect();
    Reply::json(200, Value::Array(items))
}

fn pipelines(inner: &Inner, sha: Option<String>, per_page: Option<String>) -> Reply {
    let repo = &inner.repository;
    let per_page: usize = per_page.and_then(|v| v.parse().ok()).unwrap_or(20);
    let state = inner.state.lock().unwrap();
    let items: Vec<Value> = state
        .checks
        .iter()
        .rev()
        .filter(|c| c.kind == CheckKind::Pipeline && sha.as_ref().is_none_or(|s| *s == c.sha))
        .take(per_page)
        .map(|pipeline| {
            json!({
                "id": pipeline.id,
                "iid": pipeline.id,
                "project_id": repo.project_id,
                "sha": pipeline.sha,
                "ref": "tagwatch/prod",
                "status": status_word(Flavor::GitLab, pipeline.state),
                "source": "push",
                "created_at": CREATED,
                "updated_at": UPDATED,
                "web_url": format!("{}/{}/{}/-/pipelines/{}", repo.web_url, repo.owner, repo.name, pipeline.id),
            })
        })
        .collect();
    Reply::json(200, Value::Array(items))
}

fn merge(inner: &Inner, number: u64, method: &str, expected: Option<String>) -> Reply {
    let flavor = inner.spec.flavor;
    let Some(pull) = find_pull(inner, number) else {
        return not_found(inner);
    };
    let race = inner.state.lock().unwrap().race_next_merge.take();
    if let Some(email) = race {
        super::push_foreign_commit(&inner.bare, &pull.head, &email);
    }
    let head = super::git_rev(&inner.bare, &pull.head);
    let blocked = inner.state.lock().unwrap().merge_blocked.clone();
    let not_mergeable = |message: &str| match flavor {
        Flavor::GitHub => Reply::json(
            405,
            json!({ "message": message, "documentation_url": "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request" }),
        ),
        Flavor::GitLab => Reply::error(flavor, 405, message),
        // Gitea's 405 is described without a body.
        _ => Reply {
            status: 405,
            headers: Vec::new(),
            body: None,
        },
    };
    if pull.state != PullState::Open {
        return not_mergeable("Pull Request is not mergeable");
    }
    if let Some(message) = blocked {
        return not_mergeable(&message);
    }
    if expected.is_some() && expected != head {
        return match flavor {
            Flavor::GitHub => Reply::json(
                409,
                json!({ "message": "Head branch was modified. Review and try the merge again.", "documentation_url": "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request" }),
            ),
            Flavor::GitLab => Reply::error(
                flavor,
                409,
                &format!(
                    "SHA does not match HEAD of source branch: {}",
                    head.unwrap_or_default()
                ),
            ),
            _ => Reply::error(flavor, 409, "head out of date"),
        };
    }
    let commit = match merge_into_base(&inner.bare, &pull, method) {
        Ok(commit) => commit,
        Err(MergeFailure::Conflict) => {
            return match flavor {
                Flavor::Gitea | Flavor::Forgejo => {
                    Reply::error(flavor, 409, "merge conflicts: CONFLICT (content)")
                }
                // GitHub and GitLab refuse as not mergeable; the pull request says it conflicts.
                _ => not_mergeable("Pull Request is not mergeable"),
            };
        }
    };
    {
        let mut state = inner.state.lock().unwrap();
        let stored = state.pulls.iter_mut().find(|p| p.number == number).unwrap();
        stored.state = PullState::Merged;
        stored.merge_commit_sha = Some(commit.clone());
        stored.merge_method = Some(method.to_string());
        if let Some(head) = head {
            stored.head_sha = head;
        }
    }
    match flavor {
        Flavor::GitHub => Reply::json(
            200,
            json!({ "sha": commit, "merged": true, "message": "Pull Request successfully merged" }),
        ),
        Flavor::GitLab => {
            let pull = find_pull(inner, number).unwrap();
            Reply::json(200, wire::gitlab_merge_request(&inner.repository, &pull))
        }
        _ => Reply {
            status: 200,
            headers: Vec::new(),
            body: None,
        },
    }
}

fn comment_json(inner: &Inner, id: u64, number: u64, body: &str) -> Value {
    let repository = &inner.repository;
    match inner.spec.flavor {
        Flavor::GitHub => wire::github_comment(examples(inner), repository, id, number, body),
        Flavor::GitLab => wire::gitlab_note(repository, id, number, body),
        Flavor::Gitea | Flavor::Forgejo => wire::gitea_comment(repository, id, number, body),
    }
}

fn comments(inner: &Inner, number: u64) -> Reply {
    let Some(pull) = find_pull(inner, number) else {
        return not_found(inner);
    };
    let items: Vec<Value> = pull
        .comment_ids
        .iter()
        .zip(&pull.comments)
        .map(|(id, body)| comment_json(inner, *id, number, body))
        .collect();
    Reply::json(200, Value::Array(items))
}

fn edit_comment(inner: &Inner, id: u64, body: String) -> Reply {
    let found = {
        let mut state = inner.state.lock().unwrap();
        state.pulls.iter_mut().find_map(|pull| {
            let index = pull.comment_ids.iter().position(|c| *c == id)?;
            pull.comments[index] = body.clone();
            Some(pull.number)
        })
    };
    match found {
        Some(number) => Reply::json(200, comment_json(inner, id, number, &body)),
        None => not_found(inner),
    }
}

fn commits(inner: &Inner, number: u64) -> Reply {
    let flavor = inner.spec.flavor;
    let Some(pull) = find_pull(inner, number) else {
        return not_found(inner);
    };
    let bare = &inner.bare;
    let head = super::git_rev(bare, &pull.head).unwrap_or(pull.head_sha.clone());
    let base = super::git_rev(bare, &pull.base).unwrap_or(pull.base_sha.clone());
    let range = if pull.state == PullState::Merged {
        format!("{}..{head}", pull.base_sha)
    } else {
        format!("{base}..{head}")
    };
    let log = git(
        bare,
        &[
            "log",
            "--reverse",
            "--format=%H%x00%an%x00%ae%x00%cn%x00%ce%x00%s",
            &range,
        ],
    );
    let repo = &inner.repository;
    let mut items: Vec<Value> = log
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\0').collect();
            let (sha, author, author_email, committer, committer_email, title) =
                (f[0], f[1], f[2], f[3], f[4], f[5]);
            match flavor {
                Flavor::GitHub => {
                    let mut value = examples(inner)["commit-items"]["value"][0].clone();
                    value["sha"] = json!(sha);
                    value["commit"]["author"]["name"] = json!(author);
                    value["commit"]["author"]["email"] = json!(author_email);
                    value["commit"]["committer"]["name"] = json!(committer);
                    value["commit"]["committer"]["email"] = json!(committer_email);
                    value["commit"]["message"] = json!(title);
                    value
                }
                Flavor::GitLab => json!({
                    "id": sha,
                    "short_id": &sha[..8],
                    "created_at": CREATED,
                    "parent_ids": [],
                    "title": title,
                    "message": title,
                    "author_name": author,
                    "author_email": author_email,
                    "authored_date": CREATED,
                    "committer_name": committer,
                    "committer_email": committer_email,
                    "committed_date": CREATED,
                    "web_url": format!("{}/{}/{}/-/commit/{sha}", repo.web_url, repo.owner, repo.name),
                }),
                _ => {
                    let url = format!("{}/{}/{}/commit/{sha}", repo.web_url, repo.owner, repo.name);
                    json!({
                        "sha": sha,
                        "url": url,
                        "html_url": url,
                        "created": CREATED,
                        "commit": {
                            "url": url,
                            "message": title,
                            "author": { "name": author, "email": author_email, "date": CREATED },
                            "committer": { "name": committer, "email": committer_email, "date": CREATED },
                            "tree": { "sha": sha, "url": url, "created": CREATED },
                        },
                        "parents": [],
                    })
                }
            }
        })
        .collect();
    if flavor == Flavor::GitLab {
        // GitLab lists the newest first.
        items.reverse();
    }
    Reply::json(200, Value::Array(items))
}
