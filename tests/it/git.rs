//! The git adapter against real remotes: `file://`, smart HTTP (lighttpd + git http-backend, Basic auth,
//! token, TLS with a private CA) and SSH (a private sshd with known_hosts). Every outcome is checked
//! with the real `git` CLI on the remote's bare repository. Shared helpers live here; the tests are in
//! `remotes` (transports, auth, error kinds, secrets), `write_back` (commit, push, recovery, branches),
//! `signing_history` (signatures, history access), `store` (listing, reading and writing trees without
//! a work tree: symlinks, modes, size cap) and `timeouts` (a stalled server, through the binary).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tagwatch::git::{
    CommitIdentity, ErrorClass, GitAuth, GitError, Oid, PushOutcome, RemoteSettings, Signing, Store,
};
use tagwatch::secret::Secret;

use crate::support::git_http::{
    GitHttpServer, SEED_CONTENT, SEED_FILE, git_bare, git_in, human_commit, seed_bare_repo,
};
use crate::support::sshd::{SshServer, keygen};

const PASSWORD: &str = "s3cret-Pa55word-for-tests";
const TOKEN: &str = "tok_7f3c9a1d2b8e4f60a5c3";

/// The size cap the tests read with: far above any test file.
const MAX_BYTES: u64 = 1 << 20;

fn identity() -> CommitIdentity {
    CommitIdentity::new("tagwatch", "tagwatch@localhost")
}

/// A bare repo on disk and its `file://` URL.
fn local_remote(root: &Path) -> (PathBuf, String) {
    let bare = root.join("remote.git");
    seed_bare_repo(&bare);
    let url = format!("file://{}", bare.display());
    (bare, url)
}

/// Opens the store for `settings` under `cache_root` and fetches the target branch: what a cycle
/// starts with. A branch the remote lacks is [`GitError::MissingBranch`].
fn open_and_fetch(cache_root: &Path, settings: &RemoteSettings) -> Result<(Store, Oid), GitError> {
    let store = Store::open(cache_root, settings)?;
    match store.fetch(&settings.branch)? {
        Some(head) => Ok((store, head)),
        None => Err(GitError::MissingBranch {
            url: settings.redacted_url(),
            branch: settings.branch.clone(),
        }),
    }
}

/// [`Store::open`] of a clone this thread just dropped. Another test's thread may fork (to run `git`)
/// while the clone's lock file is open, and the child holds the lock until its `exec` closes the
/// descriptor: a moment of `CacheBusy` that the daemon would retry; here it is waited out.
fn reopen(cache_root: &Path, settings: &RemoteSettings) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(cache_root, settings) {
            Err(GitError::CacheBusy { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.unwrap(),
        }
    }
}

/// A seeded `file://` remote under `root`, a store on its `main` (cache in `root/cache`) and its head.
fn local_store(root: &Path) -> (PathBuf, Store, Oid) {
    let (bare, url) = local_remote(root);
    let (store, head) =
        open_and_fetch(&root.join("cache"), &RemoteSettings::new(url, "main")).unwrap();
    (bare, store, head)
}

/// The seed file at `commit` with its tag changed to `to` (what `manifest` will do).
fn bumped(store: &Store, commit: Oid, to: &str) -> Vec<u8> {
    let bytes = store
        .file_at(commit, SEED_FILE, MAX_BYTES)
        .unwrap()
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let start = text.find("repo-0001:").unwrap() + "repo-0001:".len();
    let end = start + text[start..].find(' ').unwrap();
    format!("{}{to}{}", &text[..start], &text[end..]).into_bytes()
}

/// The `config` repository of `server` with Basic auth `git` / [`PASSWORD`].
fn basic_settings(server: &GitHttpServer) -> RemoteSettings {
    RemoteSettings::new(server.url("config"), "main").with_auth(GitAuth::Basic {
        username: "git".to_string(),
        password: Secret::new(PASSWORD),
    })
}

fn token_settings(server: &GitHttpServer, token: &str) -> RemoteSettings {
    RemoteSettings::new(server.url("config"), "main").with_auth(GitAuth::Token {
        token: Secret::new(token),
    })
}

fn message(to: &str) -> String {
    format!("chore(images): bump app to {to}\n\nTagwatch-Policy: seed-semver\nTagwatch-Tag: {to}\n")
}

/// Commits the seed file bumped to `to` on top of `parent` (not pushed).
fn commit_bump(store: &Store, parent: Oid, to: &str, signing: &Signing) -> Oid {
    let changes = [(SEED_FILE.to_string(), bumped(store, parent, to))];
    store
        .commit(parent, &changes, &identity(), &message(to), signing)
        .unwrap()
        .expect("the bump changes the tree")
}

/// Commits one bump on top of `parent` and pushes it; returns the commit id.
fn bump_and_push(store: &Store, parent: Oid, to: &str) -> String {
    let commit = commit_bump(store, parent, to, &Signing::None);
    assert_eq!(store.push(commit).unwrap(), PushOutcome::Pushed);
    commit.to_string()
}

fn remote_head(bare: &Path) -> String {
    git_bare(bare, &["rev-parse", "refs/heads/main"])
        .trim()
        .to_string()
}

fn commit_count(bare: &Path) -> usize {
    git_bare(bare, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .unwrap()
}

fn remote_file(bare: &Path, path: &str) -> String {
    git_bare(bare, &["show", &format!("main:{path}")])
}

/// Opens a store for `settings`, pushes a bump and checks it arrived in `bare`.
fn assert_round_trip(bare: &Path, settings: &RemoteSettings, to: &str) {
    let root = tempfile::tempdir().unwrap();
    let (store, head) = open_and_fetch(root.path(), settings).unwrap();
    let commit = bump_and_push(&store, head, to);
    assert_eq!(remote_head(bare), commit);
}

fn ssh_settings(
    server: &SshServer,
    bare: &Path,
    known_hosts: PathBuf,
    accept: bool,
) -> RemoteSettings {
    RemoteSettings::new(server.url(bare), "main").with_auth(GitAuth::Ssh {
        key_file: server.client_key(),
        known_hosts_file: Some(known_hosts),
        accept_unknown_hosts: accept,
    })
}

mod remotes;
mod signing_history;
mod store;
mod timeouts;
mod write_back;
