//! Respecting rollbacks (docs/design/reconcile.md): git history is the record. tagwatch's commits carry one
//! `Tagwatch-Bump: FILE IMAGE FROM -> TO` trailer per change. When the field now holds another version
//! than the one tagwatch last wrote there, someone else changed it after tagwatch (a revert, a manual
//! roll back): the field is held at its current version until a tag newer than the reverted one appears.
//!
//! One walk over the newest commit messages serves every target of the repository (no tree diffs per
//! file), so the check costs the same for 1 or 10,000 targets. Pure: built from commits `git` read.

use std::collections::HashMap;

use crate::git::CommitInfo;

use super::message::{TRAILER_BUMP, parse_bump_trailer};

/// Commits read for rollback detection: far more than the commits between two tagwatch writes of one
/// field in any real repository, few enough that the walk costs milliseconds.
pub const HISTORY_LIMIT: usize = crate::git::DEFAULT_HISTORY_LIMIT;

/// `(file, image)` → the version tagwatch wrote there last.
#[derive(Debug, Default, Clone)]
pub struct Written(HashMap<(String, String), String>);

impl Written {
    /// From commits newest first (the first trailer seen for a field is tagwatch's last write).
    pub fn from_commits<'a>(commits: impl IntoIterator<Item = &'a CommitInfo>) -> Written {
        let mut written = HashMap::new();
        for commit in commits {
            for (key, value) in &commit.trailers {
                if !key.eq_ignore_ascii_case(TRAILER_BUMP) {
                    continue;
                }
                let Some(bump) = parse_bump_trailer(value) else {
                    continue;
                };
                written.entry((bump.file, bump.image)).or_insert(bump.to);
            }
        }
        Written(written)
    }

    /// The version tagwatch wrote into `image` in `file` when the field now holds `current` instead.
    pub fn reverted(&self, file: &str, image: &str, current: &str) -> Option<&str> {
        self.0
            .get(&(file.to_string(), image.to_string()))
            .map(String::as_str)
            .filter(|written| *written != current)
    }
}

/// A commit with `message` (tests of rollback decisions).
#[cfg(test)]
pub(crate) fn commit(message: &str) -> CommitInfo {
    let person = crate::git::Person {
        name: "tagwatch".into(),
        email: "tagwatch@localhost".into(),
    };
    CommitInfo {
        id: crate::git::Oid::ZERO_SHA1,
        parents: Vec::new(),
        author: person.clone(),
        committer: person,
        time: 0,
        message: message.to_string(),
        trailers: git2::message_trailers_strs(message)
            .map(|trailers| {
                trailers
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_write_of_a_field_counts() {
        let newest = commit("bump\n\nTagwatch-Bump: a.yaml r/app 1.1.0 -> 1.2.0\n");
        let older = commit("bump\n\nTagwatch-Bump: a.yaml r/app 1.0.0 -> 1.1.0\n");
        let written = Written::from_commits([&newest, &older]);
        assert_eq!(written.reverted("a.yaml", "r/app", "1.1.0"), Some("1.2.0"));
        assert_eq!(written.reverted("a.yaml", "r/app", "1.2.0"), None);
        assert_eq!(written.reverted("b.yaml", "r/app", "1.0.0"), None);
    }
}
