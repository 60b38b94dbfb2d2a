//! Respecting rollbacks (SPEC §7): git history is the record. tagwatch's commits carry one
//! `Tagwatch-Bump: FILE IMAGE FROM -> TO` trailer per change; a later commit by anyone else that leaves
//! the field at another version than the one tagwatch wrote is a human's rollback, and the field is held
//! at that version until a tag newer than the reverted one appears.

use std::path::Path;

use crate::git::{DEFAULT_HISTORY_LIMIT, GitError, Workspace};

use super::message::{TRAILER_BUMP, parse_bump_trailer};

/// The version tagwatch last wrote into `image` in `file` when a newer commit (not tagwatch's) changed
/// the file and the field now holds `current` instead; `None` when there is nothing to respect.
pub(crate) fn reverted_version(
    workspace: &Workspace,
    file: &str,
    image: &str,
    current: &str,
) -> Result<Option<String>, GitError> {
    let history = workspace.file_history(Path::new(file), None, DEFAULT_HISTORY_LIMIT)?;
    for (index, commit) in history.commits.iter().enumerate() {
        let written = commit
            .trailers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(TRAILER_BUMP))
            .filter_map(|(_, value)| parse_bump_trailer(value))
            .find(|bump| bump.file == file && bump.image == image)
            .map(|bump| bump.to);
        let Some(written) = written else { continue };
        // tagwatch's own commit is the newest on the file: nobody changed it since.
        if index == 0 || written == current {
            return Ok(None);
        }
        return Ok(Some(written));
    }
    Ok(None)
}
