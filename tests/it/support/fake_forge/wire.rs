//! The JSON the fake forge answers with, per forge. GitHub answers start from the examples in GitHub's own
//! description; Gitea, Forgejo and GitLab answers are built field by field. Every answer is checked
//! against the description before it is sent, so a wrong shape here fails the test.

use serde_json::{Value, json};

use super::spec::Flavor;
use super::{FakePull, PullState, Repository};

/// Timestamps are fixed: the tests judge behaviour, not clocks.
pub const CREATED: &str = "2026-01-02T03:04:05Z";
pub const UPDATED: &str = "2026-01-02T04:05:06Z";

pub fn pull(flavor: Flavor, repo: &Repository, pull: &FakePull, examples: &Value) -> Value {
    match flavor {
        Flavor::GitHub => github_pull(repo, pull, examples),
        Flavor::GitLab => gitlab_merge_request(repo, pull),
        Flavor::Gitea | Flavor::Forgejo => gitea_pull(flavor, repo, pull),
    }
}

fn github_pull(repo: &Repository, pull: &FakePull, examples: &Value) -> Value {
    let mut value = examples["pull-request"]["value"].clone();
    let api = format!("{}/repos/{}/{}", repo.api_url, repo.owner, repo.name);
    let html = format!(
        "{}/{}/{}/pull/{}",
        repo.web_url, repo.owner, repo.name, pull.number
    );
    let set = |value: &mut Value, key: &str, v: Value| value[key] = v;
    set(&mut value, "id", json!(1000 + pull.number));
    set(&mut value, "number", json!(pull.number));
    set(
        &mut value,
        "url",
        json!(format!("{api}/pulls/{}", pull.number)),
    );
    set(&mut value, "html_url", json!(html));
    set(&mut value, "diff_url", json!(format!("{html}.diff")));
    set(&mut value, "patch_url", json!(format!("{html}.patch")));
    set(
        &mut value,
        "issue_url",
        json!(format!("{api}/issues/{}", pull.number)),
    );
    set(&mut value, "title", json!(pull.title));
    set(&mut value, "body", json!(pull.body));
    set(
        &mut value,
        "state",
        json!(if pull.state == PullState::Open {
            "open"
        } else {
            "closed"
        }),
    );
    set(&mut value, "created_at", json!(CREATED));
    set(&mut value, "updated_at", json!(UPDATED));
    let closed = pull.state != PullState::Open;
    let merged = pull.state == PullState::Merged;
    set(
        &mut value,
        "closed_at",
        if closed { json!(UPDATED) } else { Value::Null },
    );
    set(
        &mut value,
        "merged_at",
        if merged { json!(UPDATED) } else { Value::Null },
    );
    set(&mut value, "merged", json!(merged));
    set(&mut value, "merge_commit_sha", json!(pull.merge_commit_sha));
    set(&mut value, "draft", json!(false));
    if pull.state == PullState::Open {
        set(&mut value, "mergeable", json!(!pull.conflicted));
        set(
            &mut value,
            "mergeable_state",
            json!(if pull.conflicted { "dirty" } else { "clean" }),
        );
    }
    set(&mut value, "comments", json!(pull.comments.len()));
    let label_template = examples["label-items"]["value"][0].clone();
    set(
        &mut value,
        "labels",
        Value::Array(
            pull.labels
                .iter()
                .enumerate()
                .map(|(i, name)| github_label(&label_template, i, name))
                .collect(),
        ),
    );
    let user_template = value["user"].clone();
    set(
        &mut value,
        "requested_reviewers",
        Value::Array(
            pull.reviewers
                .iter()
                .map(|login| {
                    let mut user = user_template.clone();
                    user["login"] = json!(login);
                    user
                })
                .collect(),
        ),
    );
    let team_template = value["requested_teams"][0].clone();
    set(
        &mut value,
        "requested_teams",
        Value::Array(
            pull.team_reviewers
                .iter()
                .map(|slug| {
                    let mut team = team_template.clone();
                    team["slug"] = json!(slug);
                    team["name"] = json!(slug);
                    team["type"] = json!("organization");
                    // `pull-request-simple` lists teams as `team`, which requires `parent`.
                    team["parent"] = Value::Null;
                    team
                })
                .collect(),
        ),
    );
    for (side, branch, sha) in [
        ("head", &pull.head, &pull.head_sha),
        ("base", &pull.base, &pull.base_sha),
    ] {
        value[side]["ref"] = json!(branch);
        value[side]["sha"] = json!(sha);
        value[side]["label"] = json!(format!("{}:{branch}", repo.owner));
        value[side]["repo"]["name"] = json!(repo.name);
        value[side]["repo"]["full_name"] = json!(format!("{}/{}", repo.owner, repo.name));
        value[side]["user"]["login"] = json!(repo.owner);
    }
    value
}

fn github_label(template: &Value, index: usize, name: &str) -> Value {
    let mut label = template.clone();
    label["id"] = json!(500 + index);
    label["name"] = json!(name);
    label
}

/// GitHub's `pull-request-simple`: the full pull request cut down to the fields that schema names.
pub fn github_simple(full: &Value, root: &Value) -> Value {
    let properties = root["components"]["schemas"]["pull-request-simple"]["properties"]
        .as_object()
        .expect("pull-request-simple properties");
    let object = full.as_object().unwrap();
    Value::Object(
        object
            .iter()
            .filter(|(key, _)| properties.contains_key(*key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

pub fn github_comment(
    examples: &Value,
    repo: &Repository,
    id: u64,
    number: u64,
    body: &str,
) -> Value {
    let mut comment = examples["issue-comment"]["value"].clone();
    comment["id"] = json!(id);
    comment["body"] = json!(body);
    comment["html_url"] = json!(format!(
        "{}/{}/{}/pull/{number}#issuecomment-{id}",
        repo.web_url, repo.owner, repo.name
    ));
    comment
}

pub fn github_labels(examples: &Value, names: &[String]) -> Value {
    let template = &examples["label-items"]["value"][0];
    Value::Array(
        names
            .iter()
            .enumerate()
            .map(|(i, name)| github_label(template, i, name))
            .collect(),
    )
}

pub fn gitea_user(login: &str, id: u64) -> Value {
    json!({
        "id": id,
        "login": login,
        "login_name": "",
        "full_name": login,
        "email": format!("{login}@noreply.example"),
        "avatar_url": format!("https://git.example/avatars/{id}"),
        "html_url": format!("https://git.example/{login}"),
        "is_admin": false,
        "active": true,
        "created": CREATED,
    })
}

fn gitea_pull(flavor: Flavor, repo: &Repository, pull: &FakePull) -> Value {
    let html = format!(
        "{}/{}/{}/pulls/{}",
        repo.web_url, repo.owner, repo.name, pull.number
    );
    let branch = |name: &str, sha: &str| {
        json!({
            "label": name,
            "ref": name,
            "sha": sha,
            "repo_id": 1,
            "repo": {
                "id": 1,
                "name": repo.name,
                "full_name": format!("{}/{}", repo.owner, repo.name),
                "owner": gitea_user(&repo.owner, 1),
                "default_branch": "main",
                "html_url": format!("{}/{}/{}", repo.web_url, repo.owner, repo.name),
                "created_at": CREATED,
                "updated_at": UPDATED,
            },
        })
    };
    let mut value = json!({
        "id": 2000 + pull.number,
        "number": pull.number,
        "url": html,
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "title": pull.title,
        "body": pull.body,
        "state": if pull.state == PullState::Open { "open" } else { "closed" },
        "merged": pull.state == PullState::Merged,
        "mergeable": !pull.conflicted,
        "draft": false,
        "is_locked": false,
        "comments": pull.comments.len(),
        "review_comments": 0,
        "additions": 1,
        "deletions": 1,
        "changed_files": 1,
        "created_at": CREATED,
        "updated_at": UPDATED,
        "user": gitea_user("tagwatch-bot", 7),
        "labels": gitea_labels(&pull.labels),
        "assignees": [],
        "requested_reviewers": pull.reviewers.iter().enumerate()
            .map(|(i, login)| gitea_user(login, 100 + i as u64)).collect::<Vec<_>>(),
        "requested_reviewers_teams": [],
        "head": branch(&pull.head, &pull.head_sha),
        "base": branch(&pull.base, &pull.base_sha),
        "merge_base": pull.base_sha,
    });
    // Gitea sends `null` for unset times and shas; the Swagger types them as plain strings, so the fake
    // leaves them out (the client treats absent and null alike).
    if pull.state != PullState::Open {
        value["closed_at"] = json!(UPDATED);
    }
    if let Some(sha) = &pull.merge_commit_sha {
        value["merged_at"] = json!(UPDATED);
        value["merge_commit_sha"] = json!(sha);
        value["merged_by"] = gitea_user("alice", 3);
    }
    if flavor == Flavor::Forgejo {
        value["flow"] = json!(0);
    }
    value
}

pub fn gitea_labels(names: &[String]) -> Value {
    Value::Array(
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                json!({
                    "id": 300 + i,
                    "name": name,
                    "color": "00aabb",
                    "description": "",
                    "exclusive": false,
                    "is_archived": false,
                    "url": format!("https://git.example/api/v1/labels/{}", 300 + i),
                })
            })
            .collect(),
    )
}

pub fn gitea_comment(repo: &Repository, id: u64, number: u64, body: &str) -> Value {
    let html = format!(
        "{}/{}/{}/pulls/{number}",
        repo.web_url, repo.owner, repo.name
    );
    json!({
        "id": id,
        "body": body,
        "html_url": format!("{html}#issuecomment-{id}"),
        "issue_url": "",
        "pull_request_url": html,
        "created_at": CREATED,
        "updated_at": UPDATED,
        "user": gitea_user("tagwatch-bot", 7),
    })
}

pub fn gitea_review_requests(pull: &FakePull, repo: &Repository, logins: &[String]) -> Value {
    let html = format!(
        "{}/{}/{}/pulls/{}",
        repo.web_url, repo.owner, repo.name, pull.number
    );
    Value::Array(
        logins
            .iter()
            .enumerate()
            .map(|(i, login)| {
                json!({
                    "id": 900 + i,
                    "state": "REQUEST_REVIEW",
                    "body": "",
                    "user": gitea_user(login, 100 + i as u64),
                    "commit_id": pull.head_sha,
                    "official": false,
                    "stale": false,
                    "dismissed": false,
                    "comments_count": 0,
                    "html_url": html,
                    "pull_request_url": html,
                    "submitted_at": UPDATED,
                    "updated_at": UPDATED,
                })
            })
            .collect(),
    )
}

pub fn gitlab_user(username: &str, id: u64) -> Value {
    json!({
        "id": id,
        "username": username,
        "name": username,
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("https://gitlab.example/{username}"),
    })
}

pub fn gitlab_merge_request(repo: &Repository, pull: &FakePull) -> Value {
    let state = match pull.state {
        PullState::Open => "opened",
        PullState::Closed => "closed",
        PullState::Merged => "merged",
    };
    let full = format!("{}/{}", repo.owner, repo.name);
    let merged = pull.state == PullState::Merged;
    let closed = pull.state == PullState::Closed;
    let user_if = |yes: bool, name: &str, id: u64| {
        if yes {
            gitlab_user(name, id)
        } else {
            Value::Null
        }
    };
    let time_if = |yes: bool| if yes { json!(UPDATED) } else { Value::Null };
    let mut value = json!({
        "id": 3000 + pull.number,
        "iid": pull.number,
        "project_id": repo.project_id,
        "title": pull.title,
        "description": pull.body,
        "state": state,
        "created_at": CREATED,
        "updated_at": UPDATED,
        "merged_by": user_if(merged, "alice", 3),
        "merge_user": user_if(merged, "alice", 3),
        "merged_at": time_if(merged),
        "closed_by": user_if(closed, "tagwatch-bot", 7),
        "closed_at": time_if(closed),
        "target_branch": pull.base,
        "source_branch": pull.head,
        "user_notes_count": pull.comments.len(),
        "upvotes": 0,
        "downvotes": 0,
        "author": gitlab_user("tagwatch-bot", 7),
        "assignees": [],
        "assignee": null,
        "reviewers": pull.reviewers.iter()
            .map(|id| gitlab_user(&format!("user{id}"), id.parse().unwrap_or(0))).collect::<Vec<_>>(),
        "source_project_id": repo.project_id,
        "target_project_id": repo.project_id,
        "labels": pull.labels,
    });
    let more = json!({
        "draft": false,
        "work_in_progress": false,
        "milestone": null,
        "merge_when_pipeline_succeeds": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": if pull.state == PullState::Open { "mergeable" } else { "not_open" },
        "sha": pull.head_sha,
        "merge_commit_sha": pull.merge_commit_sha,
        "squash_commit_sha": null,
        "discussion_locked": null,
        "should_remove_source_branch": null,
        "force_remove_source_branch": pull.remove_source_branch,
        "reference": format!("!{}", pull.number),
        "web_url": format!("{}/{full}/-/merge_requests/{}", repo.web_url, pull.number),
        "squash": false,
        "squash_on_merge": false,
        "has_conflicts": pull.conflicted,
        "blocking_discussions_resolved": true,
    });
    let nested = json!({
        "references": {
            "short": format!("!{}", pull.number),
            "relative": format!("!{}", pull.number),
            "full": format!("{full}!{}", pull.number),
        },
        "time_stats": { "time_estimate": 0, "total_time_spent": 0,
                        "human_time_estimate": null, "human_total_time_spent": null },
        "task_completion_status": { "count": 0, "completed_count": 0 },
    });
    for extra in [more, nested] {
        for (key, v) in extra.as_object().unwrap() {
            value[key] = v.clone();
        }
    }
    value
}

pub fn gitlab_note(repo: &Repository, id: u64, number: u64, body: &str) -> Value {
    json!({
        "id": id,
        "type": null,
        "body": body,
        "author": gitlab_user("tagwatch-bot", 7),
        "created_at": CREATED,
        "updated_at": UPDATED,
        "system": false,
        "noteable_id": 3000 + number,
        "noteable_type": "MergeRequest",
        "noteable_iid": number,
        "project_id": repo.project_id,
        "resolvable": false,
        "confidential": false,
        "internal": false,
    })
}

/// The forge's error body for `status` with `message`.
pub fn error(flavor: Flavor, status: u16, message: &str) -> Value {
    match flavor {
        Flavor::GitHub if status == 422 => json!({
            "message": "Validation Failed",
            "errors": [{ "resource": "PullRequest", "code": "custom", "message": message }],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        }),
        Flavor::GitHub => json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.to_string(),
        }),
        Flavor::GitLab if status == 409 => json!({ "message": [message] }),
        Flavor::GitLab => json!({ "message": message }),
        Flavor::Forgejo if status == 404 => json!({
            "message": message, "url": "https://forgejo.example/api/swagger", "errors": [],
        }),
        Flavor::Gitea | Flavor::Forgejo => json!({
            "message": message, "url": "https://git.example/api/swagger",
        }),
    }
}
