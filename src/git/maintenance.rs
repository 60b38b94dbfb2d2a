//! Keeping a long-lived cache clone small: every fetch that brings something adds a pack file, and every
//! write-back adds loose objects; libgit2 has no `git gc`. A daemon that fetches each repository every
//! few minutes for weeks would otherwise collect thousands of packs — each one more index mapped into
//! memory and searched on every object lookup (the hour of soak measured one more pack a minute,
//! docs/reliability/load.md).
//!
//! [`consolidate`] writes one pack of everything reachable from the clone's references, checks that
//! every reference's commit is in it, and only then removes the other packs and the loose objects. A
//! kill at any point leaves a valid clone: before the new pack is complete nothing was removed, after
//! it every object a reference needs is in it. The caller holds the clone's lock and reopens the
//! repository afterwards (libgit2 never forgets a pack it has seen).
//!
//! Must not: touch anything outside the clone's `objects/` directory, or run while another
//! `Repository` of the same clone is in use.

use std::path::{Path, PathBuf};

use git2::{Repository, Revwalk, Sort};

/// Above this many pack files a clone is consolidated: as many as libgit2 keeps open at once
/// ([`super::MAX_OPEN_PACK_FILES`]), so one clone never needs to close and reopen its own packs. One
/// pack per fetch that brought something: in the hour of soak each clone gained about 15, so a busy
/// clone is consolidated every two hours or so; rewriting the pack costs about what one cold fetch of
/// the repository costs.
pub const MAX_PACK_FILES: usize = 32;

/// Above about this many loose objects a clone is consolidated too: git's own `gc.auto` default. Every
/// write-back leaves its commit, trees and blobs loose (four to five objects), and a repository that
/// only tagwatch commits to gains no pack files, so the pack count alone never consolidated it: the
/// soak with a push a second and few human commits left 1,300 loose objects a clone in 20 minutes
/// (docs/reliability/load.md). 6,700 is about 1,400 write-backs between consolidations.
pub const MAX_LOOSE_OBJECTS: usize = 6_700;

/// What [`super::Store::maintain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    /// Nothing was needed.
    Nothing,
    /// The object database was rewritten into one pack and the clone opened again.
    Consolidated(Consolidated),
    /// The clone was opened again; it holds `packs` pack files.
    Reopened { packs: usize },
}

/// What [`consolidate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consolidated {
    /// Pack files before (the new one not counted).
    pub packs_before: usize,
    /// Objects in the new pack.
    pub objects: usize,
    /// Pack and loose object files removed.
    pub removed_files: usize,
    /// Which limit the clone passed: [`MAX_LOOSE_OBJECTS`] (`true`) or [`MAX_PACK_FILES`] (`false`, also
    /// when both).
    pub for_loose_objects: bool,
}

/// Whether the clone at `directory` holds more than [`MAX_LOOSE_OBJECTS`] loose objects, estimated as
/// git estimates it: object names are uniform, so one of the 256 fan-out directories (`objects/17`)
/// holds about a 256th of them — one directory listed instead of 256.
pub fn too_many_loose_objects(directory: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(directory.join("objects/17")) else {
        return false;
    };
    let in_sample = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            name.len() == 38
                && name
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit())
        })
        .count();
    in_sample > MAX_LOOSE_OBJECTS.div_ceil(256)
}

/// The pack files (`*.pack`) in `directory`'s object database.
pub fn pack_files(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory.join("objects/pack")) else {
        return Vec::new();
    };
    let mut packs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "pack")
        })
        .collect();
    packs.sort();
    packs
}

/// Rewrites the object database of the bare clone at `directory` (opened as `repository`, holding the
/// pack files `old_packs`, as [`pack_files`] lists them) into one pack. The caller decides when (more
/// than [`MAX_PACK_FILES`] pack files or about [`MAX_LOOSE_OBJECTS`] loose objects) and must drop
/// `repository` and open the clone again afterwards; `for_loose_objects` is which limit it saw passed,
/// recorded in the result.
pub fn consolidate(
    repository: &Repository,
    directory: &Path,
    old_packs: &[PathBuf],
    for_loose_objects: bool,
) -> Result<Consolidated, git2::Error> {
    let tips = reference_tips(repository)?;
    let mut builder = repository.packbuilder()?;
    if !tips.is_empty() {
        let mut walk = walk_from(repository, &tips)?;
        builder.insert_walk(&mut walk)?;
    }
    let pack_directory = directory.join("objects/pack");
    builder.write(&pack_directory, 0)?;
    let objects = builder.written();
    let name = builder
        .name()?
        .ok_or_else(|| git2::Error::from_str("the pack builder wrote no pack"))?
        .to_string();
    let new_pack = pack_directory.join(format!("pack-{name}.pack"));
    // Every reference's commit and tree must be readable from the new pack alone before anything goes.
    let index = pack_directory.join(format!("pack-{name}.idx"));
    verify(directory, &[&index, &new_pack], &tips, repository)?;
    let mut removed_files = 0;
    for pack in old_packs.iter().filter(|pack| **pack != new_pack) {
        for extension in ["keep", "pack", "idx", "rev", "mtimes", "promisor"] {
            let file = pack.with_extension(extension);
            if extension == "keep" && file.exists() {
                // A `.keep` pack is someone's on purpose; none are made here, so leave the whole pack.
                break;
            }
            if std::fs::remove_file(&file).is_ok() {
                removed_files += 1;
            }
        }
    }
    removed_files += remove_loose_objects(&directory.join("objects"));
    Ok(Consolidated {
        packs_before: old_packs.len(),
        for_loose_objects,
        objects,
        removed_files,
    })
}

/// The commits every reference points to (directly or through an annotated tag).
fn reference_tips(repository: &Repository) -> Result<Vec<git2::Oid>, git2::Error> {
    let mut tips = Vec::new();
    for reference in repository.references()? {
        let reference = reference?;
        if let Ok(commit) = reference.peel_to_commit() {
            tips.push(commit.id());
        }
    }
    tips.sort();
    tips.dedup();
    Ok(tips)
}

fn walk_from<'r>(
    repository: &'r Repository,
    tips: &[git2::Oid],
) -> Result<Revwalk<'r>, git2::Error> {
    let mut walk = repository.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL)?;
    for tip in tips {
        walk.push(*tip)?;
    }
    Ok(walk)
}

/// Every tip's commit and root tree are in the new pack (`files`: its index and pack), read through an
/// object database that holds only that pack: a scratch `objects/pack` inside the clone, linked to it.
fn verify(
    directory: &Path,
    files: &[&Path],
    tips: &[git2::Oid],
    repository: &Repository,
) -> Result<(), git2::Error> {
    let scratch = directory.join("tagwatch-verify");
    let _ = std::fs::remove_dir_all(&scratch);
    let outcome = (|| {
        let pack_directory = scratch.join("objects/pack");
        std::fs::create_dir_all(&pack_directory).map_err(io)?;
        for file in files {
            let to = pack_directory.join(file.file_name().unwrap_or_default());
            std::fs::hard_link(file, &to)
                .or_else(|_| std::fs::copy(file, &to).map(|_| ()))
                .map_err(io)?;
        }
        let odb = git2::Odb::new()?;
        odb.add_disk_alternate(&scratch.join("objects").to_string_lossy())?;
        for tip in tips {
            let tree = repository.find_commit(*tip)?.tree_id();
            for id in [*tip, tree] {
                if !odb.exists(id) {
                    return Err(git2::Error::from_str(&format!(
                        "the new pack lacks object {id}"
                    )));
                }
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

/// Removes `objects/xx/…` loose object files (every reachable one is in the new pack); the count.
fn remove_loose_objects(objects: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(objects) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.len() != 2 || !name.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            continue;
        }
        if let Ok(files) = std::fs::read_dir(entry.path()) {
            for file in files.filter_map(Result::ok) {
                if std::fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        let _ = std::fs::remove_dir(entry.path());
    }
    removed
}

fn io(error: std::io::Error) -> git2::Error {
    git2::Error::from_str(&error.to_string())
}
