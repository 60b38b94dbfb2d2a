//! Write-back in `pull-request` mode (SPEC §7): one head branch and one pull request per group.
//!
//! Every cycle rebuilds each group's head branch from the base (one commit), force-pushes it only when
//! its tree changed (only tagwatch's own branch is ever forced), and opens the pull request or refreshes
//! its title and body. Pull requests are found on the forge by head branch, so a restart with no local
//! state never opens a second one. An open pull request of tagwatch's (hidden group marker) whose group
//! has nothing left to bump is closed with a comment saying why.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::RepositoryConfig;
use crate::forge::render::{self, CloseReason};
use crate::forge::{AnyForge, Forge, NewPullRequest, PullRequest};
use crate::git::{CommitIdentity, Oid, Signing, Workspace};
use crate::source::TagSource;

use super::message::{TRAILER_BUMP, parse_bump_trailer};
use super::plan::blocking;
use super::writeback::{Applied, by_group, write_bumps};
use super::{Bump, ReconcileError, Reconciler, RepositoryPlan, render_message};

impl<S: TagSource + Sync> Reconciler<S> {
    pub(super) async fn pull_request_mode(
        &self,
        repository: &RepositoryConfig,
        mut workspace: Workspace,
        plan: &RepositoryPlan,
    ) -> Result<Applied, ReconcileError> {
        let forge_error = |source| ReconcileError::Forge {
            repository: repository.name.clone(),
            source,
        };
        let settings = super::forge_settings(repository, &self.environment)?;
        let forge = AnyForge::connect(&settings).map_err(forge_error)?;
        let base = repository.branch.clone();
        let mut applied = Applied::default();
        // A group whose bumps wait for a window keeps its pull request as it is: closing it would undo a
        // review in progress only because the clock moved out of the window.
        let mut active: BTreeSet<String> = plan
            .notes
            .iter()
            .filter(|note| matches!(note.status, super::Status::Waiting { .. }))
            .filter_map(|note| {
                let policy = note.policy.as_deref()?;
                Some(super::group_of(
                    repository.write_back.group,
                    &repository.name,
                    policy,
                    &note.image,
                ))
            })
            .collect();
        for (group, bumps) in by_group(&plan.bumps) {
            let head = head_branch(&repository.write_back.branch, &group);
            active.insert(group.clone());
            let identity = CommitIdentity::new(
                repository.write_back.author.name.clone(),
                repository.write_back.author.email.clone(),
            );
            let template = repository.write_back.message.clone();
            let signing = repository.write_back.signing.clone();
            let branch = head.clone();
            let group_bumps = bumps.clone();
            let (returned, result) = blocking(move || {
                let result = build_and_push(
                    &workspace,
                    &branch,
                    &group_bumps,
                    &identity,
                    &template,
                    &signing,
                );
                (workspace, result)
            })
            .await?;
            workspace = returned;
            let pushed = match result {
                Ok(pushed) => pushed,
                Err(source) => {
                    let error = ReconcileError::Git {
                        repository: repository.name.clone(),
                        source,
                    };
                    applied
                        .problems
                        .push(format!("group {group}: {}", chain(&error)));
                    continue;
                }
            };
            if let Some(commit) = pushed.commit {
                applied.commits.push(commit);
            }
            applied.pushes += usize::from(pushed.forced);
            match publish(&forge, &settings, &base, &head, &group, &bumps).await {
                Ok(url) => applied.pull_requests.push(url),
                Err(source) => {
                    applied
                        .problems
                        .push(format!("group {group}: {}", chain(&forge_error(source))));
                    continue;
                }
            }
            applied.bumps.extend(bumps);
        }
        let open = forge
            .list_open_pull_requests(&base)
            .await
            .map_err(forge_error)?;
        for stale in open {
            let Some(group) = stale.group() else { continue };
            if active.contains(&group) {
                continue;
            }
            let (returned, reason) = blocking(move || {
                let reason = close_reason(&workspace, &stale);
                (workspace, (stale, reason))
            })
            .await?;
            workspace = returned;
            let (stale, reason) = reason;
            if let Err(source) = forge
                .close_pull_request(stale.number, &render::close_comment(&reason))
                .await
            {
                applied.problems.push(format!(
                    "closing pull request {}: {}",
                    stale.url,
                    chain(&forge_error(source))
                ));
                continue;
            }
            tracing::info!(pull_request = stale.number, group = %group, reason = ?reason, "closed");
            applied.closed.push(stale.url);
        }
        Ok(applied)
    }
}

/// Opens the group's pull request, or refreshes its title and body; returns its address. The pull
/// request is found by head branch, so no local state is needed.
async fn publish(
    forge: &AnyForge,
    settings: &crate::forge::ForgeSettings,
    base: &str,
    head: &str,
    group: &str,
    bumps: &[Bump],
) -> Result<String, crate::forge::ForgeError> {
    let changes = changes(bumps);
    let title = render::title(group, &changes);
    let body = render::body(group, &changes);
    match forge.find_pull_request(head, base).await? {
        Some(existing) => {
            if existing.title != title || existing.body != body {
                forge
                    .update_pull_request(existing.number, &title, &body)
                    .await?;
                tracing::info!(pull_request = existing.number, group = %group, "updated");
            }
            Ok(existing.url)
        }
        None => {
            let opened = forge
                .open_pull_request(&NewPullRequest {
                    head: head.to_string(),
                    base: base.to_string(),
                    title,
                    body,
                    labels: settings.labels.clone(),
                    reviewers: settings.reviewers.clone(),
                })
                .await?;
            tracing::info!(pull_request = opened.number, group = %group, "opened");
            Ok(opened.url)
        }
    }
}

/// An error and its causes on one line.
fn chain(error: &ReconcileError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `writeBack.branch` with `{group}` replaced by the group, made safe for a branch name.
pub(crate) fn head_branch(template: &str, group: &str) -> String {
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let safe = safe.trim_matches(['-', '.']).replace("..", "-");
    template.replace("{group}", &safe)
}

struct Pushed {
    commit: Option<String>,
    forced: bool,
}

/// Rebuilds `branch` from the base with `bumps` in one commit; force-pushes it unless the remote
/// branch already holds the same tree.
fn build_and_push(
    workspace: &Workspace,
    branch: &str,
    bumps: &[Bump],
    identity: &CommitIdentity,
    template: &str,
    signing: &Signing,
) -> Result<Pushed, crate::git::GitError> {
    workspace.start_branch(branch)?;
    let changed = write_bumps(workspace.workdir(), bumps).map_err(|detail| {
        crate::git::GitError::Operation {
            operation: "write the bumps",
            url: workspace.settings().redacted_url(),
            detail,
            transient: false,
        }
    })?;
    let message = render_message(template, bumps);
    let Some(commit) = workspace.commit_files(&changed, identity, &message, signing)? else {
        return Ok(Pushed {
            commit: None,
            forced: false,
        });
    };
    if let Some(remote) = workspace.fetch_branch(branch)?
        && workspace.same_tree(remote, commit)?
        && remote_parent_is_base(workspace, remote)?
    {
        return Ok(Pushed {
            commit: None,
            forced: false,
        });
    }
    workspace.force_push_branch(branch, branch)?;
    Ok(Pushed {
        commit: Some(commit.to_string()),
        forced: true,
    })
}

/// Whether the remote head branch sits directly on the current base (else it must be rebuilt so the
/// pull request does not show stale base changes).
fn remote_parent_is_base(workspace: &Workspace, remote: Oid) -> Result<bool, crate::git::GitError> {
    let info = workspace.commit_info(remote)?;
    let base = workspace.fetch_branch(&workspace.settings().branch)?;
    Ok(base.is_some() && info.parents.first().copied() == base)
}

/// Why `stale` is closed: its changes are on the base already, or nobody wants them any more.
fn close_reason(workspace: &Workspace, stale: &PullRequest) -> CloseReason {
    let on_base = (|| -> Option<bool> {
        let head = workspace.fetch_branch(&stale.head_branch).ok()??;
        let base = workspace
            .fetch_branch(&workspace.settings().branch)
            .ok()??;
        let info = workspace.commit_info(head).ok()?;
        let files: BTreeSet<String> = info
            .trailers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(TRAILER_BUMP))
            .filter_map(|(_, value)| parse_bump_trailer(value))
            .map(|bump| bump.file)
            .collect();
        if files.is_empty() {
            return Some(false);
        }
        for file in files {
            let path = Path::new(&file);
            if workspace.file_at(head, path).ok()? != workspace.file_at(base, path).ok()? {
                return Some(false);
            }
        }
        Some(true)
    })();
    if on_base == Some(true) {
        CloseReason::AlreadyOnBase
    } else {
        CloseReason::NoLongerNeeded
    }
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
        assert_eq!(head_branch("tagwatch/{group}", "prod"), "tagwatch/prod");
        assert_eq!(
            head_branch("tagwatch/{group}", "ghcr.io/acme/api"),
            "tagwatch/ghcr.io-acme-api"
        );
        assert_eq!(
            head_branch("tagwatch/{group}", "127.0.0.1:5000/a..b"),
            "tagwatch/127.0.0.1-5000-a-b"
        );
    }
}
