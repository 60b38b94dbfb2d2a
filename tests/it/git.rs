//! The git adapter against real remotes: `file://`, smart HTTP (lighttpd + git http-backend, Basic auth,
//! token, TLS with a private CA) and SSH (a private sshd with known_hosts). Every outcome is checked
//! with the real `git` CLI on the remote's bare repository. Shared helpers live here; the tests are in
//! `remotes` (transports, auth, error kinds, secrets), `write_back` (commit, push, recovery, branches)
//! and `signing_history` (signatures, history access).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tagwatch::git::{
    CommitIdentity, ErrorClass, GitAuth, GitError, PushOutcome, RemoteSettings, Signing, Workspace,
};
use tagwatch::secret::Secret;

use crate::support::git_http::{
    GitHttpServer, SEED_CONTENT, SEED_FILE, git_bare, human_commit, seed_bare_repo,
};
use crate::support::sshd::{SshServer, keygen};

const PASSWORD: &str = "s3cret-Pa55word-for-tests";
const TOKEN: &str = "tok_7f3c9a1d2b8e4f60a5c3";

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

/// A seeded `file://` remote under `root` and a workspace on its `main`.
fn local_workspace(root: &Path) -> (PathBuf, Workspace) {
    let (bare, url) = local_remote(root);
    let workspace =
        Workspace::prepare(&root.join("cache"), &RemoteSettings::new(url, "main")).unwrap();
    (bare, workspace)
}

/// Rewrites the seed file's tag in the work tree (what `manifest` will do).
fn bump(workspace: &Workspace, to: &str) {
    let path = workspace.workdir().join(SEED_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("repo-0001:").unwrap() + "repo-0001:".len();
    let end = start + text[start..].find(' ').unwrap();
    std::fs::write(&path, format!("{}{to}{}", &text[..start], &text[end..])).unwrap();
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

/// Bumps the seed file to `to` and commits it (not pushed).
fn commit_bump(workspace: &Workspace, to: &str, signing: &Signing) -> tagwatch::git::Oid {
    bump(workspace, to);
    workspace
        .commit_files(&[SEED_FILE], &identity(), &message(to), signing)
        .unwrap()
        .expect("the bump changes the tree")
}

/// Commits and pushes one bump; returns the commit id.
fn bump_and_push(workspace: &Workspace, to: &str) -> String {
    let commit = commit_bump(workspace, to, &Signing::None);
    assert_eq!(workspace.push().unwrap(), PushOutcome::Pushed);
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

/// Prepares a workspace for `settings`, pushes a bump and checks it arrived in `bare`.
fn assert_round_trip(bare: &Path, settings: &RemoteSettings, to: &str) {
    let root = tempfile::tempdir().unwrap();
    let workspace = Workspace::prepare(root.path(), settings).unwrap();
    let commit = bump_and_push(&workspace, to);
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
mod write_back;
