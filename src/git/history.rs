//! Read access to history, so `reconcile` can tell tagwatch's commits (trailer, author) from a human's
//! revert. This file only reports what git says; it never decides what a commit means.

use std::path::Path;

use git2::{Oid, Repository, Sort};

/// Name and email as recorded in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// One commit, as reconcile needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: Oid,
    pub parents: Vec<Oid>,
    pub author: Person,
    pub committer: Person,
    /// Committer time, seconds since the epoch.
    pub time: i64,
    pub message: String,
    /// `Key: value` trailers of the message's last paragraph, in order.
    pub trailers: Vec<(String, String)>,
}

impl CommitInfo {
    /// The first value of trailer `key` (case-insensitive, as git compares trailer keys).
    pub fn trailer(&self, key: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }
}

/// Commits that changed one file, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHistory {
    pub commits: Vec<CommitInfo>,
    /// False when the walk stopped early (the limit, or the edge of a shallow clone) before reaching
    /// `since` or the root: older changes may exist that are not listed.
    pub complete: bool,
}

pub(crate) fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    let trailers = git2::message_trailers_strs(&message)
        .map(|trailers| {
            trailers
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let person = |signature: git2::Signature<'_>| Person {
        name: String::from_utf8_lossy(signature.name_bytes()).into_owned(),
        email: String::from_utf8_lossy(signature.email_bytes()).into_owned(),
    };
    CommitInfo {
        id: commit.id(),
        parents: commit.parent_ids().collect(),
        author: person(commit.author()),
        committer: person(commit.committer()),
        time: commit.time().seconds(),
        message,
        trailers,
    }
}

/// Commits reachable from `head` but not from `since` that changed `path` compared with their first
/// parent (a root commit changes every file it contains).
pub(crate) fn file_history(
    repository: &Repository,
    head: Oid,
    path: &Path,
    since: Option<Oid>,
    limit: usize,
) -> Result<FileHistory, git2::Error> {
    let mut walk = repository.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    walk.push(head)?;
    if let Some(since) = since {
        walk.hide(since)?;
    }
    let shallow_edge = shallow_commits(repository);
    let mut commits = Vec::new();
    let mut complete = true;
    for id in walk {
        let id = id?;
        if shallow_edge.contains(&id) {
            // libgit2 shows a shallow commit as parentless: its diff against the real parent is
            // unknown, and everything older is missing.
            complete = false;
            continue;
        }
        let commit = repository.find_commit(id)?;
        let blob = blob_at(&commit, path);
        let parent_blob = match commit.parent(0) {
            Ok(parent) => blob_at(&parent, path),
            Err(_) if commit.parent_count() > 0 => {
                // The parent is beyond a shallow clone's edge: this commit cannot be judged.
                complete = false;
                continue;
            }
            Err(_) => None,
        };
        if blob != parent_blob {
            if commits.len() == limit {
                complete = false;
                break;
            }
            commits.push(commit_info(&commit));
        }
    }
    Ok(FileHistory { commits, complete })
}

/// The commits listed in `.git/shallow`: the edge of a shallow clone.
pub(crate) fn shallow_commits(repository: &Repository) -> Vec<Oid> {
    std::fs::read_to_string(repository.path().join("shallow"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| Oid::from_str(line.trim()).ok())
        .collect()
}

pub(crate) fn blob_at(commit: &git2::Commit<'_>, path: &Path) -> Option<Oid> {
    let tree = commit.tree().ok()?;
    let entry = tree.get_path(path).ok()?;
    (entry.kind() == Some(git2::ObjectType::Blob)).then(|| entry.id())
}
