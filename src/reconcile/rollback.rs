//! Respecting rollbacks (SPEC §7): git history is the record. tagwatch's commits carry one
//! `Tagwatch-Bump: FILE IMAGE FROM -> TO` trailer per change. When the field now holds another version
//! than the one tagwatch last wrote there, someone else changed it after tagwatch (a revert, a manual
//! roll back): the field is held at its current version until a tag newer than the reverted one appears.
//!
//! One walk over the newest commit messages serves every target of the repository (no tree diffs per
//! file), so the check costs the same for 1 or 10,000 targets.

use std::collections::HashMap;

use crate::git::{DEFAULT_HISTORY_LIMIT, GitError, Workspace};

use super::message::{TRAILER_BUMP, parse_bump_trailer};

/// `(file, image)` → the version tagwatch wrote there last, from the newest
/// [`DEFAULT_HISTORY_LIMIT`] commits of the branch.
#[derive(Debug, Default)]
pub(crate) struct Written(HashMap<(String, String), String>);

impl Written {
    pub(crate) fn read(workspace: &Workspace) -> Result<Written, GitError> {
        let mut written = HashMap::new();
        for commit in workspace.recent_commits(DEFAULT_HISTORY_LIMIT)? {
            for (key, value) in &commit.trailers {
                if !key.eq_ignore_ascii_case(TRAILER_BUMP) {
                    continue;
                }
                let Some(bump) = parse_bump_trailer(value) else {
                    continue;
                };
                // Newest first: the first trailer seen for a field is tagwatch's last write.
                written.entry((bump.file, bump.image)).or_insert(bump.to);
            }
        }
        Ok(Written(written))
    }

    /// The version tagwatch wrote into `image` in `file` when the field now holds `current` instead.
    pub(crate) fn reverted(&self, file: &str, image: &str, current: &str) -> Option<&str> {
        self.0
            .get(&(file.to_string(), image.to_string()))
            .map(String::as_str)
            .filter(|written| *written != current)
    }
}
