//! Read access to history, so `reconcile` can tell tagwatch's commits (trailer, author) from a human's
//! revert. This file only reports what git says; it never decides what a commit means.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
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

/// The newest `limit` commits reachable from `head` (first-parent and merged ones alike), each before
/// its ancestors; and whether the walk reached every root (`false` when it stopped at `limit` or at
/// the edge of a shallow fetch).
///
/// Reads about `limit` commits however long the history is: a walk in committer-time order that
/// reads a commit when a child of it is taken (git's default `log` order, done lazily), then the
/// commits taken are put children first ([`children_first`]). libgit2's sorted revwalk cannot be used
/// here: any sorting makes it read the whole reachable history before it returns the first commit,
/// so each reconcile of a repository tagwatch commits to read one commit more than the last, and
/// libgit2's per-pack cache of delta bases kept what those reads unpacked (the soak's memory growth,
/// docs/reliability/load.md).
pub(crate) fn recent_commits(
    repository: &Repository,
    head: Oid,
    limit: usize,
) -> Result<(Vec<CommitInfo>, bool), git2::Error> {
    let shallow_edge = shallow_commits(repository);
    // Every commit read, in read order; the queue holds (committer time, first read first) of those
    // not taken yet.
    let mut read = vec![commit_info(&repository.find_commit(head)?)];
    let mut seen = HashSet::from([head]);
    let mut queue = BinaryHeap::from([(read[0].time, Reverse(0_usize))]);
    let mut taken = Vec::new();
    let mut complete = true;
    while let Some((_, Reverse(index))) = queue.pop() {
        if taken.len() == limit {
            complete = false;
            break;
        }
        taken.push(index);
        if shallow_edge.contains(&read[index].id) {
            // Listed, but its parents were never fetched.
            complete = false;
            continue;
        }
        for parent in read[index].parents.clone() {
            if seen.insert(parent) {
                let info = commit_info(&repository.find_commit(parent)?);
                queue.push((info.time, Reverse(read.len())));
                read.push(info);
            }
        }
    }
    let mut read: Vec<Option<CommitInfo>> = read.into_iter().map(Some).collect();
    let walked = taken
        .into_iter()
        .filter_map(|index| read[index].take())
        .collect();
    Ok((children_first(walked), complete))
}

/// `commits` (in walk order) reordered so that each comes before its parents among them; of the
/// commits whose children have all been placed, the earliest in walk order goes next. A time-ordered
/// walk is already in this order unless committer clocks disagree or a merge joins two lines within
/// one second; this makes "the first trailer seen for a field is the newest" hold in those cases too.
pub(crate) fn children_first(commits: Vec<CommitInfo>) -> Vec<CommitInfo> {
    let position: HashMap<Oid, usize> = commits
        .iter()
        .enumerate()
        .map(|(index, commit)| (commit.id, index))
        .collect();
    let parents = |index: usize| {
        commits[index]
            .parents
            .iter()
            .filter_map(|parent| position.get(parent).copied())
    };
    let mut children = vec![0_usize; commits.len()];
    for index in 0..commits.len() {
        for parent in parents(index) {
            children[parent] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..commits.len())
        .filter(|&index| children[index] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(commits.len());
    while let Some(Reverse(index)) = ready.pop() {
        order.push(index);
        for parent in parents(index) {
            children[parent] -= 1;
            if children[parent] == 0 {
                ready.push(Reverse(parent));
            }
        }
    }
    let mut slots: Vec<Option<CommitInfo>> = commits.into_iter().map(Some).collect();
    let mut ordered: Vec<CommitInfo> = order
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect();
    // Git's hashes rule out cycles; should one appear anyway, its commits follow in walk order.
    ordered.extend(slots.into_iter().flatten());
    ordered
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    /// Commit `n` with `parents`, committed at `time`.
    fn commit(n: u8, parents: &[u8], time: i64) -> CommitInfo {
        let person = Person {
            name: "t".into(),
            email: "t@localhost".into(),
        };
        CommitInfo {
            id: id(n),
            parents: parents.iter().map(|&parent| id(parent)).collect(),
            author: person.clone(),
            committer: person,
            time,
            message: format!("commit {n}\n"),
            trailers: Vec::new(),
        }
    }

    fn ids(commits: &[CommitInfo]) -> Vec<Oid> {
        commits.iter().map(|commit| commit.id).collect()
    }

    #[test]
    fn a_walk_already_children_first_keeps_its_order() {
        // 4 merges 3 and 2, both children of 1.
        let walked = vec![
            commit(4, &[3, 2], 40),
            commit(3, &[1], 30),
            commit(2, &[1], 20),
            commit(1, &[], 10),
        ];
        let expected = ids(&walked);
        assert_eq!(ids(&children_first(walked)), expected);
    }

    #[test]
    fn an_ancestor_taken_before_its_descendant_moves_after_it() {
        // A merge within one second: 5 merges 4 and 3; 3's parent is 2, whose parent is 1, and 4's
        // parent is 1 as well. The time-ordered walk took 1 (through 4) before 2 (through 3), so 1's
        // trailers would have been read before those of its descendant 2.
        let walked = vec![
            commit(5, &[4, 3], 100),
            commit(4, &[1], 100),
            commit(3, &[2], 100),
            commit(1, &[], 100),
            commit(2, &[1], 100),
        ];
        let ordered = ids(&children_first(walked));
        assert_eq!(ordered, vec![id(5), id(4), id(3), id(2), id(1)]);
    }

    #[test]
    fn a_clock_behind_its_parent_still_comes_first() {
        // 3's committer clock was behind: it is older by time than its parent 2.
        let walked = vec![commit(2, &[1], 50), commit(1, &[], 40), commit(3, &[2], 30)];
        let ordered = ids(&children_first(walked));
        assert_eq!(ordered, vec![id(3), id(2), id(1)]);
    }

    #[test]
    fn parents_outside_the_walk_are_ignored() {
        // The walk stopped at its limit: 2's parent 1 and 3's second parent 9 were not taken.
        let walked = vec![commit(3, &[2, 9], 30), commit(2, &[1], 20)];
        let ordered = ids(&children_first(walked));
        assert_eq!(ordered, vec![id(3), id(2)]);
    }
}
