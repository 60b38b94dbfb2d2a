//! Write-back in `pull-request` mode (docs/design/reconcile.md): one head branch and one pull request per group.
//!
//! Every cycle each group's head commit is rebuilt on the base in git's object database, force-pushed
//! to its head branch only when its tree or its base changed (only tagwatch's own branch is ever
//! forced), and the pull request is opened or its title and body refreshed. Pull requests are found on
//! the forge by head branch and carry a hidden marker naming the repository entry and the group, so a
//! restart with no local state never opens a second one, and entries sharing a remote never touch each
//! other's. An open pull request of this entry whose group has nothing left to bump is closed with a
//! comment — unless the group is troubled this cycle, or the plan is incomplete: then it is left exactly
//! as it is.

use std::collections::BTreeSet;

use crate::config::RepositoryConfig;
use crate::forge::render::{self, CloseReason};
use crate::forge::{AnyForge, Forge, NewPullRequest, PullRequest};
use crate::git::{GitError, Oid, Store};
use crate::manifest;
use crate::source::TagSource;

use super::context::{Context, SharedStore, blocking};
use super::gather::lock;
use super::merge::{self, Merged};
use super::message::{TRAILER_BUMP, parse_bump_trailer};
use super::push::{
    Applied, PullRequestChange, PullRequestEvent, PullRequestRef, Write, by_group, commit_groups,
};
use super::{Bump, Problem, ReconcileError, RepositoryPlan, Scope, Status, group_of};

pub(super) async fn pull_request_mode<S: TagSource + Send + Sync + 'static>(
    context: &Context<S>,
    repository: &RepositoryConfig,
    store: &SharedStore,
    plan: &RepositoryPlan,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Applied, Problem> {
    let name = repository.name.as_str();
    let forge = context
        .forge(repository)
        .map_err(|error| Problem::new(name, Scope::Repository, error))?;
    let base_branch = repository.branch.clone();
    let Ok(base) = Oid::from_str(&plan.head) else {
        return Err(Problem::new(
            name,
            Scope::Repository,
            ReconcileError::Join("no planned head".into()),
        ));
    };
    let mut applied = Applied::default();
    // Groups whose pull request stays: those with bumps, those whose bumps wait for a window (closing
    // would undo a review in progress only because the clock moved out of the window), and troubled ones.
    let mut active: BTreeSet<String> = plan.troubled.clone();
    for note in &plan.notes {
        if let (Status::Waiting { .. }, Some(policy)) = (&note.status, &note.policy) {
            active.insert(group_of(
                repository.write_back.group,
                name,
                policy,
                &note.image,
            ));
        }
    }
    for (group, bumps) in by_group(&plan.bumps) {
        if context.stopping() {
            tracing::info!("stopping: no new pull-request change starts");
            return Ok(applied);
        }
        if plan.troubled.contains(&group) {
            tracing::info!(group = %group, "left as it is: this group had a problem this cycle");
            continue;
        }
        active.insert(group.clone());
        let head = head_branch(&repository.write_back.branch, name, &group);
        let group_problem =
            |error: ReconcileError| Problem::new(name, Scope::Group(group.clone()), error);
        // The head branch must be this group's own: a pull request on it with another owner is left alone.
        let existing = match forge.find_pull_request(&head, &base_branch).await {
            Ok(Some(existing)) if existing.owner() != Some((name.to_string(), group.clone())) => {
                applied.problems.push(group_problem(ReconcileError::Rewrite {
                    reason: format!(
                        "head branch {head} belongs to pull request {} of another group or repository entry; \
                         give writeBack.branch a `{{repository}}` or `{{group}}` that tells them apart",
                        existing.url
                    ),
                }));
                continue;
            }
            Ok(existing) => existing,
            Err(error) => {
                applied.problems.push(group_problem(error.into()));
                continue;
            }
        };
        let write = Write::of(repository);
        let shared = store.clone();
        let branch = head.clone();
        let group_bumps = bumps.clone();
        let group_name = group.clone();
        let built = blocking(move || {
            let store = lock(&shared);
            build_and_push(&store, base, &branch, &group_name, &group_bumps, &write)
        })
        .await;
        let pushed = match built {
            Ok(Ok(pushed)) => pushed,
            Ok(Err(error)) | Err(error) => {
                applied.problems.push(group_problem(error));
                continue;
            }
        };
        if let Some(commit) = pushed.commit {
            applied.commits.push(commit);
            applied.pushes += 1;
        }
        context.fault("before-pull-request");
        let reviewed = reviewed(context, &bumps).await;
        match publish(
            &forge,
            repository,
            &reviewed,
            now,
            existing,
            &base_branch,
            &head,
            &group,
            &bumps,
        )
        .await
        {
            Ok((pull_request, change)) => {
                let url = pull_request.url.clone();
                let event = |change| PullRequestEvent {
                    change,
                    number: pull_request.number,
                    url: url.clone(),
                    title: pull_request.title.clone(),
                };
                match change {
                    Change::Opened => context.fault("pull-request-created"),
                    Change::Updated => context.fault("pull-request-updated"),
                    Change::Unchanged => {}
                }
                match change {
                    Change::Opened => {
                        applied.opened.push(url.clone());
                        applied.events.push(event(PullRequestChange::Opened));
                    }
                    Change::Updated => {
                        applied.updated.push(url.clone());
                        applied.events.push(event(PullRequestChange::Updated));
                    }
                    Change::Unchanged => {}
                }
                applied.pull_requests.push(PullRequestRef {
                    group: group.clone(),
                    url: url.clone(),
                });
                if let Some(settings) = &repository.write_back.merge {
                    let head = pushed.head.to_string();
                    match merge::merge_pull_request(
                        &forge,
                        settings,
                        pull_request.number,
                        &head,
                        pushed.ours,
                        now,
                    )
                    .await
                    {
                        Ok(Merged::Merged) => {
                            applied.events.push(event(PullRequestChange::Merged));
                            applied.merged.push(url);
                        }
                        Ok(Merged::Waiting(why)) => {
                            tracing::info!(pull_request = pull_request.number, %why, "not merged yet");
                        }
                        Ok(Merged::Announced) => {
                            tracing::info!(
                                pull_request = pull_request.number,
                                "outside the merge windows; the comment says when it merges"
                            );
                        }
                        Ok(Merged::Refused(why)) => {
                            tracing::warn!(pull_request = pull_request.number, %why, "never merged as it stands");
                        }
                        Err(error) => applied.problems.push(group_problem(error.into())),
                    }
                }
            }
            Err(error) => {
                applied.problems.push(group_problem(error.into()));
                continue;
            }
        }
        applied.bumps.extend(bumps);
    }
    if plan.incomplete || context.stopping() {
        tracing::info!(
            "the plan is incomplete this cycle (or stopping): no pull request is closed"
        );
        return Ok(applied);
    }
    let open = match forge.list_open_pull_requests(&base_branch).await {
        Ok(open) => open,
        Err(error) => {
            // What was pushed and opened above stays in the report.
            applied.problems.push(Problem::new(
                name,
                Scope::Repository,
                ReconcileError::Forge(error),
            ));
            return Ok(applied);
        }
    };
    for stale in open {
        let Some((owner, group)) = stale.owner() else {
            continue;
        };
        if owner != name || active.contains(&group) {
            continue;
        }
        let shared = store.clone();
        let head_branch = stale.head_branch.clone();
        let reason = blocking(move || close_reason(&lock(&shared), base, &head_branch))
            .await
            .unwrap_or(CloseReason::NoLongerNeeded);
        match forge
            .close_pull_request(stale.number, &render::close_comment(&reason))
            .await
        {
            Ok(_) => {
                tracing::info!(pull_request = stale.number, group = %group, reason = ?reason, "closed");
                applied.events.push(PullRequestEvent {
                    change: PullRequestChange::Closed(render::close_comment(&reason)),
                    number: stale.number,
                    url: stale.url.clone(),
                    title: stale.title.clone(),
                });
                applied.closed.push(stale.url);
            }
            Err(error) => applied.problems.push(Problem::new(
                name,
                Scope::PullRequest(stale.url.clone()),
                ReconcileError::Forge(error),
            )),
        }
    }
    Ok(applied)
}

/// What publishing did to a pull request.
enum Change {
    Opened,
    Updated,
    Unchanged,
}

/// Opens the group's pull request, or refreshes its title and body; returns its address and what
/// changed. `existing` is the one found by head branch, so no local state is needed.
#[allow(clippy::too_many_arguments)]
async fn publish(
    forge: &AnyForge,
    repository: &RepositoryConfig,
    reviewed: &[render::Reviewed],
    now: chrono::DateTime<chrono::Utc>,
    existing: Option<PullRequest>,
    base: &str,
    head: &str,
    group: &str,
    bumps: &[Bump],
) -> Result<(PullRequest, Change), crate::forge::ForgeError> {
    let changes = changes(bumps);
    let title = render::title(group, &changes);
    let body = render::review_body(&repository.name, group, reviewed, now);
    match existing {
        Some(existing) => {
            if existing.title == title && existing.body == body {
                return Ok((existing, Change::Unchanged));
            }
            let updated = forge
                .update_pull_request(existing.number, &title, &body)
                .await?;
            tracing::info!(pull_request = existing.number, group = %group, "updated");
            Ok((updated, Change::Updated))
        }
        None => {
            let (labels, reviewers) = repository
                .write_back
                .forge
                .as_ref()
                .map(|forge| (forge.labels.clone(), forge.reviewers.clone()))
                .unwrap_or_default();
            let opened = forge
                .open_pull_request(&NewPullRequest {
                    head: head.to_string(),
                    base: base.to_string(),
                    title,
                    body,
                    labels,
                    reviewers,
                })
                .await?;
            tracing::info!(pull_request = opened.number, group = %group, "opened");
            Ok((opened, Change::Opened))
        }
    }
}

/// `writeBack.branch` with `{repository}` replaced by the entry's name and `{group}` by the group —
/// qualified by the entry's name when the group is a policy or an image and the template does not name
/// the entry, so entries sharing a remote never share a head branch — made safe for a branch name.
pub(crate) fn head_branch(template: &str, repository: &str, group: &str) -> String {
    let group_text = if template.contains("{repository}") || group == repository {
        group.to_string()
    } else {
        format!("{repository}-{group}")
    };
    template
        .replace("{repository}", &safe(repository))
        .replace("{group}", &safe(&group_text))
}

fn safe(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    safe.trim_matches(['-', '.']).replace("..", "-")
}

struct Pushed {
    /// The commit pushed now, if one was.
    commit: Option<String>,
    /// The head branch's commit after this cycle.
    head: Oid,
    /// The head is tagwatch's one commit (its identity) directly on the current base.
    ours: bool,
}

/// Builds the group's commit on `base`; force-pushes it to `branch` unless the remote branch already
/// holds the same tree directly on `base`.
fn build_and_push(
    store: &Store,
    base: Oid,
    branch: &str,
    group: &str,
    bumps: &[Bump],
    write: &Write,
) -> Result<Pushed, ReconcileError> {
    let groups = vec![(group.to_string(), bumps.to_vec())];
    let Some((commit, _)) = commit_groups(store, base, &groups, write)? else {
        // Nothing to write on the base: whatever the branch holds is not a change of tagwatch's.
        let head = store.fetch(branch)?.unwrap_or(base);
        return Ok(Pushed {
            commit: None,
            head,
            ours: false,
        });
    };
    if let Some(remote) = store.fetch(branch)? {
        let info = store.commit_info(remote)?;
        let ours = info.author.email == write.identity.email
            && info.committer.email == write.identity.email
            && info.parents.len() == 1;
        if !ours {
            // Someone else pushed to tagwatch's branch: never overwrite (nor merge) their work.
            return Err(ReconcileError::Rewrite {
                reason: format!(
                    "head branch {branch} has a commit tagwatch did not make ({}); it is left alone until its pull request is closed or the branch is reset",
                    &remote.to_string()[..12]
                ),
            });
        }
        if store.same_tree(remote, commit)? && info.parents == [base] {
            return Ok(Pushed {
                commit: None,
                head: remote,
                ours: true,
            });
        }
    }
    store.force_push(commit, branch)?;
    Ok(Pushed {
        commit: Some(commit.to_string()),
        head: commit,
        ours: true,
    })
}

/// Why a stale pull request is closed: its changes are on the base already, or nobody wants them any
/// more.
fn close_reason(store: &Store, base: Oid, head_branch: &str) -> CloseReason {
    let on_base = (|| -> Result<bool, GitError> {
        let Some(head) = store.fetch(head_branch)? else {
            return Ok(false);
        };
        let info = store.commit_info(head)?;
        let files: BTreeSet<String> = info
            .trailers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(TRAILER_BUMP))
            .filter_map(|(_, value)| parse_bump_trailer(value))
            .map(|bump| bump.file)
            .collect();
        if files.is_empty() {
            return Ok(false);
        }
        let limit = manifest::discover::MAX_FILE_SIZE as u64;
        for file in files {
            if store.file_at(head, &file, limit)? != store.file_at(base, &file, limit)? {
                return Ok(false);
            }
        }
        Ok(true)
    })();
    if on_base.unwrap_or(false) {
        CloseReason::AlreadyOnBase
    } else {
        CloseReason::NoLongerNeeded
    }
}

/// What a reviewer needs per change: why this version (the policy's rule, or the promotion evidence),
/// and the facts of both images (read through the registry client, cached per digest; unknown facts
/// stay empty rather than failing the pull request).
async fn reviewed<S: TagSource + Send + Sync + 'static>(
    context: &Context<S>,
    bumps: &[Bump],
) -> Vec<render::Reviewed> {
    let mut reviewed = Vec::with_capacity(bumps.len());
    for (bump, change) in bumps.iter().zip(changes(bumps)) {
        let why = match (&bump.evidence, context.config().policy(&bump.policy)) {
            (Some(evidence), _) => format!("promoted: {evidence}"),
            (None, Some(policy)) => rule(policy),
            (None, None) => String::new(),
        };
        let facts = |version: &str| {
            let tag = version.split('@').next().unwrap_or_default().to_string();
            async move {
                let Ok(image) = crate::reference::ImageReference::parse(&bump.image) else {
                    return crate::source::ImageFacts::default();
                };
                if tag.is_empty() {
                    return crate::source::ImageFacts::default();
                }
                match tokio::time::timeout(
                    context.resolve_deadline(),
                    context.source().image_facts(&image, &tag),
                )
                .await
                {
                    Ok(Ok(facts)) => facts,
                    Ok(Err(error)) => {
                        tracing::debug!(image = %bump.image, tag = %tag, error = %crate::reconcile::chain(&error), "no image facts for the pull-request body");
                        crate::source::ImageFacts::default()
                    }
                    Err(_) => crate::source::ImageFacts::default(),
                }
            }
        };
        let from_image = facts(&bump.from_version).await;
        let to_image = facts(&bump.to_version).await;
        reviewed.push(render::Reviewed {
            change,
            why,
            from_image,
            to_image,
        });
    }
    reviewed
}

/// The rule a policy chose by, in a few words: `semver ^1.2`, `semver ^1 (alpine)`, `newest`,
/// `filter + numerical`, with `+ digest` when it pins digests.
fn rule(policy: &crate::policy::Policy) -> String {
    use crate::policy::{Direction, Order};
    let direction = |direction: &Direction| match direction {
        Direction::Ascending => "",
        Direction::Descending => " (desc)",
    };
    let mut text = match &policy.order {
        Order::Semver(order) => match &order.variant {
            Some(variant) => format!("semver {} ({variant})", order.range),
            None => format!("semver {}", order.range),
        },
        Order::Numerical(order) => format!("numerical{}", direction(order)),
        Order::Alphabetical(order) => format!("alphabetical{}", direction(order)),
        Order::Newest => "newest".to_string(),
    };
    if policy.filter.is_some() {
        text = format!("filter + {text}");
    }
    if policy.digest {
        text.push_str(" + digest");
    }
    text
}

fn changes(bumps: &[Bump]) -> Vec<render::Change> {
    bumps
        .iter()
        .map(|bump| render::Change {
            file: bump.file.clone(),
            line: u32::try_from(bump.line).unwrap_or(u32::MAX),
            image: bump.image.clone(),
            from: bump.from_version.clone(),
            to: bump.to_version.clone(),
            policy: bump.policy.clone(),
            registry_link: render::registry_link(
                &bump.image,
                bump.to_version.split('@').next().unwrap_or_default(),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::head_branch;

    #[test]
    fn head_branch_names_are_safe() {
        assert_eq!(
            head_branch("tagwatch/{group}", "prod", "prod"),
            "tagwatch/prod"
        );
        assert_eq!(
            head_branch("tagwatch/{group}", "prod", "ghcr.io/acme/api"),
            "tagwatch/prod-ghcr.io-acme-api"
        );
        assert_eq!(
            head_branch("tagwatch/{group}", "prod", "127.0.0.1:5000/a..b"),
            "tagwatch/prod-127.0.0.1-5000-a-b"
        );
    }

    #[test]
    fn entries_sharing_a_remote_get_their_own_head_branches() {
        let template = "tagwatch/{group}";
        assert_ne!(
            head_branch(template, "staging", "ghcr.io/acme/api"),
            head_branch(template, "prod", "ghcr.io/acme/api")
        );
        assert_eq!(
            head_branch("bot/{repository}/{group}", "prod", "api"),
            "bot/prod/api"
        );
    }
}
