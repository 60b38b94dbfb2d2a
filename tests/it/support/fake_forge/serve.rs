//! How the fake forge answers: request and response checks around each operation's behaviour.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::spec::Flavor;
use super::{
    FakePull, Inner, Logged, NAME, OWNER, PROJECT_ID, PullState, RateLimit, git_rev, wire,
};

/// An answer before it is checked and sent.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Value>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(super) fn error(flavor: Flavor, status: u16, message: &str) -> Reply {
        Reply::json(status, wire::error(flavor, status, message))
    }
}

pub(super) async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let flavor = inner.spec.flavor;
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            reqwest::Url::parse(&format!("http://x/?{q}"))
                .unwrap()
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let Some((operation, path_params)) = inner.spec.find(method.as_str(), uri.path()) else {
        let violation = format!(
            "{method} {} is not an operation of the description",
            uri.path()
        );
        inner.state.lock().unwrap().violations.push(violation);
        return (StatusCode::NOT_FOUND, "not described").into_response();
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let mut violations =
        inner
            .spec
            .check_request(operation, &path_params, &query, content_type, &body);
    violations.extend(check_headers(flavor, &headers));

    let authorization = presented_token(flavor, &headers);
    let reply = if authorization.as_deref() != Some(inner.token.as_str()) {
        let message = match flavor {
            Flavor::GitHub => "Bad credentials",
            Flavor::GitLab => "401 Unauthorized",
            Flavor::Gitea | Flavor::Forgejo => "token is required",
        };
        Reply::error(flavor, 401, message)
    } else if let Some(reply) = rate_limited(&inner, &mut violations) {
        reply
    } else if let Some(status) = server_error(&inner) {
        Reply::error(flavor, status, "the server is having a bad day")
    } else {
        let json_body = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        dispatch(&inner, &operation.id, &path_params, &query, &json_body)
    };
    violations.extend(
        inner
            .spec
            .check_response(operation, reply.status, reply.body.as_ref()),
    );
    {
        let mut state = inner.state.lock().unwrap();
        state.violations.extend(
            violations
                .into_iter()
                .map(|v| format!("{}: {v}", operation.id)),
        );
        state.log.push(Logged {
            operation: operation.id.clone(),
            status: reply.status,
            authorization: headers
                .get("authorization")
                .or_else(|| headers.get("private-token"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    }
    let mut response = match &reply.body {
        Some(body) => (
            StatusCode::from_u16(reply.status).unwrap(),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response(),
        None => StatusCode::from_u16(reply.status).unwrap().into_response(),
    };
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// The token the request presents, the way this forge's description says to send it.
fn presented_token(flavor: Flavor, headers: &HeaderMap) -> Option<String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match flavor {
        Flavor::GitHub => get("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("token "))
            })
            .map(str::to_string),
        Flavor::GitLab => get("private-token").map(str::to_string),
        Flavor::Gitea | Flavor::Forgejo => get("authorization")
            .and_then(|v| v.strip_prefix("token "))
            .map(str::to_string),
    }
}

/// Headers the forges' docs require of every call.
fn check_headers(flavor: Flavor, headers: &HeaderMap) -> Vec<String> {
    let mut violations = Vec::new();
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if get("user-agent").is_none_or(str::is_empty) {
        violations.push("no User-Agent (GitHub rejects such requests)".to_string());
    }
    if flavor == Flavor::GitHub {
        if get("accept") != Some("application/vnd.github+json") {
            violations.push(format!(
                "Accept {:?} is not application/vnd.github+json",
                get("accept")
            ));
        }
        if get("x-github-api-version") != Some("2022-11-28") {
            violations.push("X-GitHub-Api-Version is not 2022-11-28".to_string());
        }
    }
    violations
}

/// Refuses the request while a rate-limit plan is active; flags a retry that came before the time the
/// previous refusal announced.
fn rate_limited(inner: &Inner, violations: &mut Vec<String>) -> Option<Reply> {
    let flavor = inner.spec.flavor;
    let now = SystemTime::now();
    let mut state = inner.state.lock().unwrap();
    if let Some(not_before) = state.not_before.take()
        && now < not_before
    {
        violations.push(format!(
            "retried {} ms before the announced time",
            not_before.duration_since(now).unwrap().as_millis()
        ));
    }
    let (limit, remaining) = state.rate_limit.as_mut()?;
    if *remaining == 0 {
        return None;
    }
    *remaining -= 1;
    let limit = *limit;
    let epoch_now = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (status, mut headers, not_before) = match limit {
        RateLimit::RetryAfter { status, seconds } => (
            status,
            vec![("retry-after".to_string(), seconds.to_string())],
            now + Duration::from_secs(seconds),
        ),
        RateLimit::Reset { status, seconds } => {
            let reset = epoch_now + 1 + seconds;
            let names = match flavor {
                Flavor::GitLab => ["ratelimit-remaining", "ratelimit-reset"],
                _ => ["x-ratelimit-remaining", "x-ratelimit-reset"],
            };
            (
                status,
                vec![
                    (names[0].to_string(), "0".to_string()),
                    (names[1].to_string(), reset.to_string()),
                ],
                UNIX_EPOCH + Duration::from_secs(reset),
            )
        }
    };
    if flavor == Flavor::GitHub {
        headers.push(("x-ratelimit-limit".into(), "5000".into()));
        headers.push(("x-ratelimit-resource".into(), "core".into()));
    }
    state.not_before = Some(not_before);
    let message = match flavor {
        Flavor::GitHub => "API rate limit exceeded for user ID 1.",
        Flavor::GitLab => "Retry later",
        _ => "rate limit exceeded",
    };
    let mut reply = Reply::error(flavor, status, message);
    reply.headers = headers;
    Some(reply)
}

fn server_error(inner: &Inner) -> Option<u16> {
    let mut state = inner.state.lock().unwrap();
    state.server_errors.as_ref()?;
    if state.server_errors_skip > 0 {
        state.server_errors_skip -= 1;
        return None;
    }
    let (status, remaining) = state.server_errors.as_mut()?;
    if *remaining == 0 {
        return None;
    }
    *remaining -= 1;
    Some(*status)
}

fn param_number(params: &HashMap<String, String>) -> u64 {
    ["pull_number", "issue_number", "index", "merge_request_iid"]
        .iter()
        .find_map(|name| params.get(*name))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The one repository this fake serves, named the way this forge names it.
fn is_our_repository(flavor: Flavor, params: &HashMap<String, String>) -> bool {
    match flavor {
        Flavor::GitLab => params
            .get("id")
            .is_some_and(|id| *id == format!("{OWNER}/{NAME}") || *id == PROJECT_ID.to_string()),
        _ => {
            params.get("owner").map(String::as_str) == Some(OWNER)
                && params.get("repo").map(String::as_str) == Some(NAME)
        }
    }
}

fn dispatch(
    inner: &Inner,
    operation: &str,
    params: &HashMap<String, String>,
    query: &[(String, String)],
    body: &Value,
) -> Reply {
    let flavor = inner.spec.flavor;
    if !is_our_repository(flavor, params) {
        return Reply::error(flavor, 404, "Not Found");
    }
    let number = param_number(params);
    let text = |key: &str| body[key].as_str().map(str::to_string);
    match operation {
        "pulls/list" | "repoListPullRequests" | "listMergeRequests" => list(inner, query),
        "pulls/create" | "repoCreatePullRequest" | "createMergeRequest" => create(inner, body),
        "pulls/get" | "repoGetPullRequest" | "getMergeRequest" => with_pull(inner, number, |_| {}),
        "repoGetPullRequestByBaseHead" => {
            let found = inner
                .state
                .lock()
                .unwrap()
                .pulls
                .iter()
                .rev()
                .find(|p| {
                    Some(&p.base) == params.get("base") && Some(&p.head) == params.get("head")
                })
                .map(|p| p.number);
            match found {
                Some(number) => with_pull(inner, number, |_| {}),
                None => Reply::error(flavor, 404, "The target couldn't be found."),
            }
        }
        "pulls/update" | "repoEditPullRequest" | "updateMergeRequest" => {
            let mut reply = with_pull(inner, number, |pull| {
                if let Some(title) = text("title") {
                    pull.title = title;
                }
                if let Some(description) = text("body").or_else(|| text("description")) {
                    pull.body = description;
                }
                let closing = text("state").as_deref() == Some("closed")
                    || text("state_event").as_deref() == Some("close");
                if closing && pull.state == PullState::Open {
                    pull.state = PullState::Closed;
                }
            });
            // Gitea answers an edit with 201 (its description says so).
            if reply.status == 200 && matches!(flavor, Flavor::Gitea | Flavor::Forgejo) {
                reply.status = 201;
            }
            reply
        }
        "issues/create-comment" | "issueCreateComment" | "createMergeRequestNote" => {
            comment(inner, number, text("body").unwrap_or_default())
        }
        "issues/add-labels" | "issueAddLabel" => {
            let names: Vec<String> = body["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect();
            let mut all = Vec::new();
            let reply = with_pull(inner, number, |pull| {
                for name in &names {
                    if !pull.labels.contains(name) {
                        pull.labels.push(name.clone());
                    }
                }
                all = pull.labels.clone();
            });
            if reply.status != 200 {
                return reply;
            }
            let examples = &inner.spec_root()["components"]["examples"];
            match flavor {
                Flavor::GitHub => Reply::json(200, wire::github_labels(examples, &all)),
                _ => Reply::json(200, wire::gitea_labels(&all)),
            }
        }
        "pulls/request-reviewers" | "repoCreatePullReviewRequests" => {
            let list = |key: &str| -> Vec<String> {
                body[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            let (users, teams) = (list("reviewers"), list("team_reviewers"));
            let mut reply = with_pull(inner, number, |pull| {
                pull.reviewers.extend(users.iter().cloned());
                pull.team_reviewers.extend(teams.iter().cloned());
            });
            if reply.status == 200 {
                reply.status = 201;
                if flavor != Flavor::GitHub {
                    let pull = inner
                        .state
                        .lock()
                        .unwrap()
                        .pulls
                        .iter()
                        .find(|p| p.number == number)
                        .cloned()
                        .unwrap();
                    reply.body = Some(wire::gitea_review_requests(
                        &pull,
                        &inner.repository,
                        &users,
                    ));
                } else {
                    reply.body = reply
                        .body
                        .map(|full| wire::github_simple(&full, inner.spec_root()));
                }
            }
            reply
        }
        other => match super::review::dispatch(inner, other, params, query, body, number) {
            Some(reply) => reply,
            None => Reply::error(
                flavor,
                404,
                &format!("the fake forge does not serve {other}"),
            ),
        },
    }
}

impl Inner {
    fn spec_root(&self) -> &Value {
        self.spec.root()
    }

    fn render(&self, pull: &FakePull) -> Value {
        wire::pull(
            self.spec.flavor,
            &self.repository,
            pull,
            &self.spec_root()["components"]["examples"],
        )
    }
}

/// Applies `change` to pull request `number` and answers with it (404 when there is none).
fn with_pull(inner: &Inner, number: u64, change: impl FnOnce(&mut FakePull)) -> Reply {
    let mut state = inner.state.lock().unwrap();
    let Some(pull) = state.pulls.iter_mut().find(|p| p.number == number) else {
        return Reply::error(inner.spec.flavor, 404, "Not Found");
    };
    change(pull);
    // A force-pushed head moves the pull request along, as on a real forge.
    if pull.state == PullState::Open
        && let Some(sha) = git_rev(&inner.bare, &pull.head)
    {
        pull.head_sha = sha;
        pull.conflicted = git_rev(&inner.bare, &pull.base)
            .is_some_and(|base| super::conflicts(&inner.bare, &base, &pull.head_sha));
    }
    Reply::json(200, inner.render(pull))
}

fn list(inner: &Inner, query: &[(String, String)]) -> Reply {
    let flavor = inner.spec.flavor;
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let state_filter = get("state").unwrap_or(match flavor {
        Flavor::GitLab => "all",
        _ => "open",
    });
    let head_filter: Option<String> = match flavor {
        Flavor::GitHub => get("head").map(|h| match h.split_once(':') {
            Some((owner, branch)) if owner == OWNER => branch.to_string(),
            // Another owner's branch, or no `user:` prefix: GitHub matches nothing of ours.
            _ => "\0".to_string(),
        }),
        Flavor::GitLab => get("source_branch").map(str::to_string),
        Flavor::Forgejo => get("head").map(str::to_string),
        Flavor::Gitea => None,
    };
    let base_filter = match flavor {
        Flavor::GitLab => get("target_branch"),
        Flavor::Gitea => get("base_branch"),
        _ => get("base"),
    };
    let per_page: usize = get("per_page")
        .or_else(|| get("limit"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if flavor == Flavor::GitLab { 20 } else { 30 })
        .clamp(1, 100);
    let page: usize = get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let state = inner.state.lock().unwrap();
    let matching: Vec<&FakePull> = state
        .pulls
        .iter()
        .rev()
        .filter(|p| match (flavor, state_filter) {
            (_, "all") => true,
            (Flavor::GitLab, "opened") | (_, "open") => p.state == PullState::Open,
            (Flavor::GitLab, "merged") => p.state == PullState::Merged,
            (_, "closed") => p.state != PullState::Open,
            _ => false,
        })
        .filter(|p| head_filter.as_ref().is_none_or(|h| *h == p.head))
        .filter(|p| base_filter.is_none_or(|b| b == p.base))
        .collect();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| {
            let full = inner.render(p);
            match flavor {
                Flavor::GitHub => wire::github_simple(&full, inner.spec_root()),
                _ => full,
            }
        })
        .collect();
    let mut reply = Reply::json(200, Value::Array(items));
    if matching.len() > page * per_page {
        let mut next = reqwest::Url::parse(&format!(
            "{}{}",
            inner.repository.api_url,
            list_path(flavor)
        ))
        .unwrap();
        {
            let mut pairs = next.query_pairs_mut();
            for (k, v) in query.iter().filter(|(k, _)| k != "page") {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("page", &(page + 1).to_string());
        }
        reply
            .headers
            .push(("link".into(), format!("<{next}>; rel=\"next\"")));
    }
    reply
}

fn list_path(flavor: Flavor) -> String {
    match flavor {
        Flavor::GitHub => format!("/repos/{OWNER}/{NAME}/pulls"),
        Flavor::GitLab => format!("/api/v4/projects/{PROJECT_ID}/merge_requests"),
        Flavor::Gitea | Flavor::Forgejo => format!("/api/v1/repos/{OWNER}/{NAME}/pulls"),
    }
}

fn create(inner: &Inner, body: &Value) -> Reply {
    let flavor = inner.spec.flavor;
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
    let (head, base) = match flavor {
        Flavor::GitLab => (text("source_branch"), text("target_branch")),
        _ => (text("head"), text("base")),
    };
    let (Some(head_sha), Some(base_sha)) =
        (git_rev(&inner.bare, &head), git_rev(&inner.bare, &base))
    else {
        return match flavor {
            Flavor::GitHub | Flavor::GitLab => {
                Reply::error(flavor, 422, "head or base branch does not exist")
            }
            _ => Reply::error(flavor, 404, "The target couldn't be found."),
        };
    };
    let mut state = inner.state.lock().unwrap();
    if let Some(existing) = state
        .pulls
        .iter()
        .find(|p| p.state == PullState::Open && p.head == head && p.base == base)
    {
        let message = match flavor {
            Flavor::GitHub => format!("A pull request already exists for {OWNER}:{head}."),
            Flavor::GitLab => format!(
                "Another open merge request already exists for this source branch: !{}",
                existing.number
            ),
            _ => format!(
                "pull request already exists for these targets [id: {}, issue_id: {}, head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: {base}]",
                existing.number, existing.number
            ),
        };
        let status = if flavor == Flavor::GitHub { 422 } else { 409 };
        return Reply::error(flavor, status, &message);
    }
    if flavor == Flavor::GitHub && head_sha == base_sha {
        return Reply::error(
            flavor,
            422,
            &format!("No commits between {base} and {head}"),
        );
    }
    let labels: Vec<String> = body["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let reviewers: Vec<String> = body["reviewer_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.to_string())
        .collect();
    let pull = FakePull {
        number: state.pulls.len() as u64 + 1,
        title: text("title"),
        body: if flavor == Flavor::GitLab {
            text("description")
        } else {
            text("body")
        },
        head,
        base,
        head_sha,
        base_sha,
        state: PullState::Open,
        labels,
        reviewers,
        team_reviewers: Vec::new(),
        comments: Vec::new(),
        comment_ids: Vec::new(),
        merge_commit_sha: None,
        remove_source_branch: body["remove_source_branch"].as_bool(),
        merge_method: None,
        conflicted: false,
    };
    let mut reply = Reply::json(201, inner.render(&pull));
    if flavor == Flavor::GitHub {
        reply.headers.push((
            "location".into(),
            format!(
                "{}/repos/{OWNER}/{NAME}/pulls/{}",
                inner.repository.api_url, pull.number
            ),
        ));
    }
    state.pulls.push(pull);
    reply
}

fn comment(inner: &Inner, number: u64, body: String) -> Reply {
    let flavor = inner.spec.flavor;
    let mut state = inner.state.lock().unwrap();
    state.next_comment += 1;
    let id = state.next_comment;
    let Some(pull) = state.pulls.iter_mut().find(|p| p.number == number) else {
        return Reply::error(flavor, 404, "Not Found");
    };
    pull.comments.push(body.clone());
    pull.comment_ids.push(id);
    let repository = &inner.repository;
    let value = match flavor {
        Flavor::GitHub => wire::github_comment(
            &inner.spec_root()["components"]["examples"],
            repository,
            id,
            number,
            &body,
        ),
        Flavor::GitLab => wire::gitlab_note(repository, id, number, &body),
        Flavor::Gitea | Flavor::Forgejo => wire::gitea_comment(repository, id, number, &body),
    };
    Reply::json(201, value)
}
