//! Reading trees straight from the object database: the regular files under configured paths, and
//! what one path names. Symlinks and submodules are reported, never followed — there is no work tree
//! for them to lead out of.

use git2::{FileMode, Oid, Repository, Tree, TreeEntry};

/// The regular files under some paths of one commit, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sorted by path, each path once.
    pub files: Vec<TreeFile>,
    /// Sorted by path, each path once.
    pub skipped: Vec<Skipped>,
}

/// One regular file (mode 100644 or 100755) of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub blob: Oid,
}

/// An entry that was not listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Mode 120000: a symbolic link, never followed.
    Symlink,
    /// Mode 160000 (a gitlink): another repository's commit, never entered. Entries of any other
    /// unknown type count as this too, as `git` itself reads them.
    Submodule,
    /// A name that is not UTF-8: it could not be named in a config or a commit.
    NotUtf8Name,
}

impl SkipReason {
    /// As a phrase: "`PATH` is a symbolic link".
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Symlink => "a symbolic link",
            SkipReason::Submodule => "a submodule",
            SkipReason::NotUtf8Name => "named in bytes that are not UTF-8",
        }
    }
}

/// What a tree entry is, judged like `git` does: by the type bits of the raw mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File(FileMode),
    Symlink,
    Submodule,
}

fn kind(entry: &TreeEntry<'_>) -> Kind {
    // libgit2's normalized `filemode()` turns a link or gitlink with stray execute bits into an
    // executable file; git reads the type bits, and so do we.
    let raw = u32::try_from(entry.filemode_raw()).unwrap_or_default();
    match raw & 0o170_000 {
        0o040_000 => Kind::Directory,
        0o100_000 if raw & 0o100 != 0 => Kind::File(FileMode::BlobExecutable),
        0o100_000 => Kind::File(FileMode::Blob),
        0o120_000 => Kind::Symlink,
        _ => Kind::Submodule,
    }
}

/// What a path names in a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    File {
        blob: Oid,
        mode: FileMode,
    },
    Directory(Oid),
    /// A symlink or submodule at `path`: the path itself, or a directory on the way to it.
    Link {
        path: String,
        reason: SkipReason,
    },
    Missing,
}

/// Looks `components` up from `root`, entering only real directories. No components: the root.
pub(crate) fn find(
    repository: &Repository,
    root: &Tree<'_>,
    components: &[&str],
) -> Result<Found, git2::Error> {
    let mut tree = root.clone();
    for (index, name) in components.iter().enumerate() {
        let Some(entry) = tree.get_name(name).map(|entry| entry.to_owned()) else {
            return Ok(Found::Missing);
        };
        let last = index + 1 == components.len();
        let here = || components[..=index].join("/");
        match kind(&entry) {
            Kind::Directory if last => return Ok(Found::Directory(entry.id())),
            Kind::Directory => tree = repository.find_tree(entry.id())?,
            Kind::File(mode) if last => {
                return Ok(Found::File {
                    blob: entry.id(),
                    mode,
                });
            }
            // `file.yaml/more`: nothing is there.
            Kind::File(_) => return Ok(Found::Missing),
            Kind::Symlink => {
                return Ok(Found::Link {
                    path: here(),
                    reason: SkipReason::Symlink,
                });
            }
            Kind::Submodule => {
                return Ok(Found::Link {
                    path: here(),
                    reason: SkipReason::Submodule,
                });
            }
        }
    }
    Ok(Found::Directory(tree.id()))
}

/// Adds every regular file under directory `tree` (at `prefix`, `""` for the root) to `listing`.
/// Hidden directories (`.github`, `.gitlab`, …) are not entered, as `manifest` never walked them in a
/// work tree; a hidden directory named explicitly is `tree` itself and is walked. Iterative, so a
/// deeply nested tree cannot exhaust the stack. Only trees are read: a file's size comes from its
/// object header when it is read (on the reading thread), so listing 10,000 files costs no blob access.
pub(crate) fn walk(
    repository: &Repository,
    tree: Oid,
    prefix: &str,
    listing: &mut Listing,
) -> Result<(), git2::Error> {
    let mut pending = vec![(tree, prefix.to_string())];
    while let Some((id, prefix)) = pending.pop() {
        let tree = repository.find_tree(id)?;
        for entry in tree.iter() {
            let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
                listing.skipped.push(Skipped {
                    path: join(&prefix, &String::from_utf8_lossy(entry.name_bytes())),
                    reason: SkipReason::NotUtf8Name,
                });
                continue;
            };
            let path = join(&prefix, name);
            match kind(&entry) {
                Kind::Directory if name.starts_with('.') => {}
                Kind::Directory => pending.push((entry.id(), path)),
                Kind::File(_) => listing.files.push(TreeFile {
                    path,
                    blob: entry.id(),
                }),
                Kind::Symlink => listing.skipped.push(Skipped {
                    path,
                    reason: SkipReason::Symlink,
                }),
                Kind::Submodule => listing.skipped.push(Skipped {
                    path,
                    reason: SkipReason::Submodule,
                }),
            }
        }
    }
    Ok(())
}

/// Sorts both lists by path and drops repeats (overlapping configured paths).
pub(crate) fn finish(listing: &mut Listing) {
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    listing.files.dedup_by(|a, b| a.path == b.path);
    listing.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    listing.skipped.dedup_by(|a, b| a.path == b.path);
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}
