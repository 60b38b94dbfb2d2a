//! Git adapter (on `git2`): owns the cache clones, fetch, commit, signing, push and history access.
//!
//! A [`Store`] is one cached **bare** clone of one remote branch, used through the object database
//! only: files are read as blobs from a commit's tree ([`Store::list_files`], [`Store::read_blob`]), a
//! write-back is a new tree built from the parent's with the changed blobs swapped in
//! ([`Store::commit`]), and [`Store::push`] sends that commit from a private ref. There is no work tree
//! to check out, reset or clean, so a killed run leaves nothing to recover but lock files, and a
//! symlink in the repository cannot lead a read or a write outside the clone. The clone is guarded by
//! a kernel lock (`flock`) that dies with its process.
//!
//! Must not: decide what to change, which commit is a human's revert, or when to retry — that is
//! `reconcile`. Must not: force-push the protected target branch, follow a symlink, or put a
//! credential in a log line or an error. The API is blocking (libgit2 is); async callers wrap it in
//! `spawn_blocking`.

mod error;
mod history;
mod known_hosts;
mod local;
mod lock;
mod maintenance;
mod remote;
mod settings;
mod sign;
mod socket;
mod store;
mod transport;
mod tree;

use std::path::{Component, Path};
use std::sync::Mutex;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

pub use error::{ErrorClass, GitError};
pub use git2::Oid;
pub use history::{CommitInfo, FileHistory, Person};
pub use known_hosts::{HostKeyStatus, KnownHosts};
pub use maintenance::{
    Consolidated, MAX_LOOSE_OBJECTS, MAX_PACK_FILES, Maintenance, pack_files,
    too_many_loose_objects,
};
pub use settings::{
    CommitIdentity, DEFAULT_SSH_USERNAME, DEFAULT_TOKEN_USERNAME, GitAuth, RemoteSettings, Signing,
};
pub use store::Store;
pub use tree::{Listing, SkipReason, Skipped, TreeFile};

/// The remote name inside every cache clone.
const REMOTE: &str = "origin";

/// Upper bound on commits returned by [`Store::file_history`] when the caller passes no limit of its
/// own: rollback detection only looks back to tagwatch's last commit on a file.
pub const DEFAULT_HISTORY_LIMIT: usize = 1000;

/// How long libgit2 waits for a TCP connection to a remote (HTTP(S) and SSH alike). Without it the
/// kernel's SYN retries decide (about two minutes on Linux). 10 s is far above any loopback or
/// data-centre round trip and a slow forge's handshake, and short enough that an unreachable remote
/// fails a cycle quickly and is retried with backoff.
///
/// libgit2 settings are process-global and `unsafe` to change: `main` sets them once, before any
/// thread uses libgit2 (see `src/main.rs`). Library users (and tests) keep libgit2's defaults.
pub const CONNECT_TIMEOUT_MILLISECONDS: i32 = 10_000;

/// How long libgit2 waits for one read or write on an open connection (HTTP(S) sockets through
/// `poll`; SSH through libssh2's session timeout, which libgit2 sets from the same value). Without it
/// a server that accepts and then stalls pins a blocking thread forever. 60 s: a healthy server is
/// never silent that long — `upload-pack` sends keep-alives every 5 s while it prepares a pack and
/// progress while it sends one — so only a dead or stalled server reaches it.
pub const SERVER_TIMEOUT_MILLISECONDS: i32 = 60_000;

/// libgit2's start-up, begun on another thread by `main` ([`initializing`]) and waited for by every
/// [`Store`] before its first libgit2 call ([`initialized`]).
static INITIALIZING: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Hands over the thread that initializes libgit2 (and sets [`CONNECT_TIMEOUT_MILLISECONDS`] and
/// [`SERVER_TIMEOUT_MILLISECONDS`]): libgit2's start-up loads the system's CA bundle through OpenSSL
/// (35–45 ms on every process start), which then overlaps with reading the config, starting the runtime
/// and the first registry requests. Nothing in `tagwatch` calls libgit2 before a [`Store`] is opened, and
/// [`Store::open`] waits for the thread first.
pub fn initializing(thread: JoinHandle<()>) {
    *INITIALIZING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread);
}

/// Waits for the start-up handed to [`initializing`], if any (held under the lock, so a second caller
/// waits too); a panic there is resumed here.
pub(crate) fn initialized() {
    let mut pending = INITIALIZING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(thread) = pending.take()
        && let Err(panic) = thread.join()
    {
        std::panic::resume_unwind(panic);
    }
}

/// The (connect, server) timeouts `main` gives libgit2: [`CONNECT_TIMEOUT_MILLISECONDS`] and
/// [`SERVER_TIMEOUT_MILLISECONDS`], or both shortened by a test in a debug build
/// ([`crate::fault::GIT_TIMEOUT_VARIABLE`]).
pub fn network_timeouts() -> (i32, i32) {
    match crate::fault::git_timeout_milliseconds() {
        Some(milliseconds) => (milliseconds, milliseconds),
        None => (CONNECT_TIMEOUT_MILLISECONDS, SERVER_TIMEOUT_MILLISECONDS),
    }
}

/// How many pack files libgit2 keeps open at once, across every repository of the process; beyond it
/// the least recently used one is closed, and opened again when an object is read from it. libgit2's
/// default is no limit, and every fetch into a cache clone adds a pack file that stays open as long as
/// the daemon holds the clone: one more file descriptor per fetch, for ever (`bench/soak.sh` measured
/// +60 in a minute of pushes). Pack indexes are mapped separately, so a lookup does not need the pack
/// open; 32 covers the packs that [`crate::daemon::MAX_REPOSITORY_WORK`] reconciles at once read from.
pub const MAX_OPEN_PACK_FILES: usize = 32;

/// Whether libgit2 keeps the objects it parsed in its object cache: no. libgit2 keeps each commit,
/// tree and tag it reads (raw and parsed) for as long as the repository is open, up to a global size
/// that it counts in raw bytes only; the daemon holds its cache clones for days and reads every new
/// commit, so that cache grew through every soak, and a smaller bound only moved where it stops. Soaks
/// of 20 minutes side by side (docs/reliability/load.md): anonymous memory +1.6 MB with the cache
/// bounded to 4 MiB, +1.6 MB bounded to 1 MiB, +0.4 MB without it — heaptrack put the live part of the
/// growth under `git_commit__parse` and the history walk's reads. What the cache saved is one read
/// from a memory-mapped pack per commit of the history walk (≤ 1,000 per reconcile).
pub const OBJECT_CACHE: bool = false;

/// After this many pack files more than it had when it was opened, a cache clone is opened again
/// ([`Store::maintain`]). libgit2 gives every pack file of an open repository a cache of the
/// delta bases it unpacked (up to 16 MB each, `GIT_PACK_CACHE_MEMORY_LIMIT` in its `pack.h`), freed
/// only with the repository, and each fetch that brings a commit adds a pack: without this, what a
/// clone keeps grows with every fetched pack until [`MAX_PACK_FILES`] consolidates it. The soak's
/// packs (a human's one-file notes) are too small to show it: 10 minutes with a human commit every
/// 5 s grew anonymous memory by 0.7 MB with this and 0.9 MB without (docs/reliability/load.md); it
/// bounds clones whose fetched packs carry large trees. Opening a clone again costs a few `open`s.
pub const REOPEN_AFTER_PACKS: usize = 8;

/// Gives libgit2 its process-wide settings: the [`network_timeouts`] (without them libgit2 waits for
/// ever on a server that accepts and then stalls), [`MAX_OPEN_PACK_FILES`], [`OBJECT_CACHE`], and
/// the TCP stream of every network remote (`socket.rs`: libgit2's, with `TCP_NODELAY` and those
/// timeouts). `tagwatch`'s `main` calls it on the thread it hands to
/// [`initializing`]; the integration-test binary before its `main`.
///
/// # Safety
/// libgit2's settings are plain globals: the caller makes sure no other thread uses libgit2 while this
/// runs (in `tagwatch`, nothing calls libgit2 before a [`Store`] is opened, and [`Store::open`] waits
/// for the thread handed to [`initializing`]).
#[allow(unsafe_code)]
pub unsafe fn set_process_options() -> Result<(), git2::Error> {
    let (connect, server) = network_timeouts();
    // SAFETY: the caller's promise above; the values are all positive, the only ones refused being
    // negative.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(connect)?;
        git2::opts::set_server_timeout_in_milliseconds(server)?;
        git2::opts::set_mwindow_file_limit(MAX_OPEN_PACK_FILES)?;
        socket::register(connect, server)?;
    }
    git2::opts::enable_caching(OBJECT_CACHE);
    Ok(())
}

/// Result of a push that reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed,
    /// The branch moved on the remote (someone else pushed first): fetch, re-plan, commit again.
    Rejected {
        reason: String,
    },
}

/// `<name>-<hash>`: readable, and distinct for every (URL without credentials, branch).
fn cache_key(settings: &RemoteSettings) -> String {
    let url = settings.redacted_url();
    let name: String = url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(url.as_bytes());
    hasher.update(b"\n");
    hasher.update(settings.branch.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

/// A path relative to the repository root that cannot leave it.
fn relative_path(path: &Path) -> Result<&Path, GitError> {
    let escapes = path.as_os_str().is_empty()
        || path
            .components()
            .any(|component| !matches!(component, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(GitError::PathOutsideRepository {
            path: path.display().to_string(),
        });
    }
    Ok(path)
}

/// The names along a relative path (`.` dropped), for looking it up in a tree. Escapes (`..`, absolute,
/// empty) are [`GitError::PathOutsideRepository`].
fn path_components(path: &Path) -> Result<Vec<&str>, GitError> {
    let outside = || GitError::PathOutsideRepository {
        path: path.display().to_string(),
    };
    relative_path(path)?
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_str().ok_or_else(outside)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_ignores_credentials_and_separates_branches() {
        let with_user = RemoteSettings::new("https://bot:tok@example.com/acme/prod.git", "main");
        let without = RemoteSettings::new("https://example.com/acme/prod.git", "main");
        let other_branch = RemoteSettings::new("https://example.com/acme/prod.git", "staging");
        assert!(cache_key(&with_user).starts_with("prod-"));
        assert!(!cache_key(&with_user).contains("tok"));
        assert_ne!(cache_key(&without), cache_key(&other_branch));
    }

    #[test]
    fn relative_path_rejects_escapes() {
        assert!(relative_path(Path::new("clusters/prod/app.yaml")).is_ok());
        assert!(relative_path(Path::new("../etc/passwd")).is_err());
        assert!(relative_path(Path::new("/etc/passwd")).is_err());
        assert!(relative_path(Path::new("a/../../b")).is_err());
    }

    #[test]
    fn path_components_drop_dots_and_refuse_escapes() {
        assert_eq!(
            path_components(Path::new("./clusters//prod/")).unwrap(),
            vec!["clusters", "prod"]
        );
        assert_eq!(path_components(Path::new(".")).unwrap(), Vec::<&str>::new());
        for escaping in ["", "..", "a/../b", "/etc/passwd"] {
            assert!(
                matches!(
                    path_components(Path::new(escaping)),
                    Err(GitError::PathOutsideRepository { .. })
                ),
                "{escaping}"
            );
        }
    }
}
