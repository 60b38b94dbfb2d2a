//! The network side shared by every cache clone: the `origin` remote's configuration, fetching one
//! branch into its tracking ref, and pushing one refspec with the "someone pushed first" /
//! "refused" split.

use git2::{AutotagOption, FetchOptions, FetchPrune, Oid, PushOptions, Repository};

use super::error::{GitError, scrub};
use super::local::Cloned;
use super::settings::RemoteSettings;
use super::transport::Transport;
use super::{PushOutcome, REMOTE};

/// Adds `origin` (or points it at the configured URL) and pins the settings that keep bytes exact.
pub(crate) fn configure(
    repository: &Repository,
    settings: &RemoteSettings,
) -> Result<(), GitError> {
    let local = |operation| local_error(settings, operation);
    match repository.find_remote(REMOTE) {
        Ok(remote) if remote.url() == Ok(settings.url.as_str()) => {}
        Ok(_) => repository
            .remote_set_url(REMOTE, &settings.url)
            .map_err(local("set the remote URL"))?,
        Err(_) => {
            repository
                .remote(REMOTE, &settings.url)
                .map_err(local("add the remote"))?;
        }
    }
    let mut config = repository.config().map_err(local("open config"))?;
    // Files are read and written byte-exactly: no line-ending conversion, whatever the machine's
    // global git config says (it matters for a work tree; a bare store writes blobs as given anyway).
    for (key, value) in [("core.autocrlf", "false"), ("core.safecrlf", "false")] {
        config.set_str(key, value).map_err(local("write config"))?;
    }
    Ok(())
}

/// Fetches `branch` into `refs/remotes/origin/<branch>` (shallow to `settings.depth` for network
/// remotes, the first time; later fetches bring what is new). Its head, or `None` when the remote has
/// no such branch: the fetch prunes the tracking ref of a branch the remote no longer advertises, so a
/// deleted branch never survives as a stale one.
///
/// The tracking ref is kept between fetches because it is what the fetch offers the server as "have":
/// libgit2 offers the tips of the clone's references, and tagwatch's clones hold no other. (It was
/// deleted before each fetch until 2026-11-27, so every fetch that brought something downloaded the
/// whole history again, to the shallow edge or the root — docs/design/git.md, *Fetch*.)
pub(crate) fn fetch(
    repository: &Repository,
    settings: &RemoteSettings,
    branch: &str,
) -> Result<Option<Oid>, GitError> {
    if !valid_branch_name(branch) {
        return Ok(None);
    }
    let span =
        tracing::debug_span!("git.fetch", repository = %settings.redacted_url(), branch = %branch);
    let _entered = span.enter();
    let local = |operation| local_error(settings, operation);
    let tracking = tracking_ref(branch);
    let fetched_before = match repository.find_reference(&tracking) {
        Ok(_) => true,
        // A first fetch from a remote on this machine links its objects, as `git clone --local` does.
        Err(_) if is_local(&settings.url) => {
            match super::local::clone_objects(repository, &settings.url, branch) {
                Some(Cloned::NoBranch) => return Ok(None),
                Some(Cloned::Head(head)) => {
                    repository
                        .reference(&tracking, head, true, "tagwatch: clone --local")
                        .map_err(local("write tracking ref"))?;
                    return Ok(Some(head));
                }
                None => false,
            }
        }
        Err(_) => false,
    };
    let transport = Transport::new(settings)?;
    let mut remote = repository
        .find_remote(REMOTE)
        .map_err(local("find remote"))?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(transport.callbacks());
    options.download_tags(AutotagOption::None);
    options.prune(FetchPrune::On);
    // The depth applies to the first fetch of the branch only. Given a depth, libgit2 asks for every
    // advertised head again, even one it has, to recompute the shallow edge: each fetch would download
    // up to `depth` commits anew (≈ 150 ms per fetch of a 100-commit repository over `git http-backend`,
    // BENCHMARKS.md "Daemon"). Without one it sends the clone's shallow edge and its haves, and receives
    // only what is new; the edge stays where the first fetch put it.
    if let Some(depth) = settings.depth
        && !is_local(&settings.url)
        && !fetched_before
    {
        options.depth(i32::try_from(depth).unwrap_or(i32::MAX));
    }
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    remote
        .fetch(&[&refspec], Some(&mut options), None)
        .map_err(|error| transport.classify("fetch", &error))?;
    Ok(repository
        .refname_to_id(&tracking)
        .ok()
        .filter(|id| !id.is_zero()))
}

/// Pushes `refspec` (its destination is `refs/heads/<branch>`). libgit2's own fast-forward check and
/// the server's "fetch first" / "non-fast-forward" / lost ref lock are [`PushOutcome::Rejected`] (someone
/// else was first); any other refusal (a hook, a protection rule) is [`GitError::PushRefused`].
pub(crate) fn push(
    repository: &Repository,
    settings: &RemoteSettings,
    refspec: &str,
    branch: &str,
) -> Result<PushOutcome, GitError> {
    let span =
        tracing::info_span!("git.push", repository = %settings.redacted_url(), branch = %branch);
    let _entered = span.enter();
    let transport = Transport::new(settings)?;
    let mut remote = repository
        .find_remote(REMOTE)
        .map_err(local_error(settings, "find remote"))?;
    let mut callbacks = transport.callbacks();
    callbacks.push_negotiation(|_| {
        crate::fault::point("push-started");
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    match remote.push(&[refspec], Some(&mut options)) {
        Ok(()) => {}
        Err(error) if error.code() == git2::ErrorCode::NotFastForward => {
            let reason = scrub(error.message(), &settings.url, &[]);
            tracing::info!(%reason, "push rejected");
            return Ok(PushOutcome::Rejected { reason });
        }
        Err(error) => return Err(transport.classify("push", &error)),
    }
    if let Some((reference, status)) = transport.take_push_statuses().into_iter().next() {
        let status = scrub(&status, &settings.url, &settings.auth.secrets());
        let messages = transport.remote_messages();
        if moved_first(&status, &messages) {
            tracing::info!(reason = %status, "push rejected");
            return Ok(PushOutcome::Rejected { reason: status });
        }
        return Err(GitError::PushRefused {
            url: settings.redacted_url(),
            branch: reference.trim_start_matches("refs/heads/").to_string(),
            reason: with_messages(status, &messages),
        });
    }
    tracing::info!("pushed");
    crate::fault::point("push-done");
    Ok(PushOutcome::Pushed)
}

/// Whether a refused ref update means "someone else pushed first". The server checks fast-forward too,
/// and a push that lands between our negotiation and our update makes receive-pack's compare-and-swap
/// of the ref fail ("failed to update ref", its side band saying "cannot lock ref …: is at X but
/// expected Y").
fn moved_first(status: &str, messages: &[String]) -> bool {
    let said = |needles: &[&str], text: &str| needles.iter().any(|needle| text.contains(needle));
    said(
        &[
            "fetch first",
            "non-fast-forward",
            "failed to lock",
            "cannot lock",
        ],
        status,
    ) || (status.contains("failed to update ref")
        && messages
            .iter()
            .any(|line| said(&["cannot lock ref", "but expected"], line)))
}

/// A refusal's status followed by what the server said about it (a hook's explanation), bounded.
fn with_messages(status: String, messages: &[String]) -> String {
    const MAX_REASON_CHARS: usize = 500;
    if messages.is_empty() {
        return status;
    }
    let said: String = messages.join("; ").chars().take(MAX_REASON_CHARS).collect();
    format!("{status} (the server said: {said})")
}

/// Maps a failure of a local (non-network) operation.
pub(crate) fn local_error<'s>(
    settings: &'s RemoteSettings,
    operation: &'static str,
) -> impl Fn(git2::Error) -> GitError + 's {
    move |error| GitError::Operation {
        operation,
        url: settings.redacted_url(),
        detail: scrub(error.message(), &settings.url, &settings.auth.secrets()),
        transient: error.code() == git2::ErrorCode::Locked,
    }
}

pub(crate) fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/{REMOTE}/{branch}")
}

pub(crate) fn valid_branch_name(branch: &str) -> bool {
    !branch.is_empty() && git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
}

/// Whether libgit2 uses its local transport for `url` (which cannot fetch shallow).
fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || !url.contains(':')
}
