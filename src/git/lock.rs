//! One workspace per cache directory at a time, across processes: `<directory>.lock` holds the owner's
//! PID. A lock whose process is gone (a killed run) is taken over, so recovery never waits for a human.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::error::GitError;

#[derive(Debug)]
pub(crate) struct CacheLock {
    path: PathBuf,
}

impl CacheLock {
    pub(crate) fn acquire(directory: &Path) -> Result<Self, GitError> {
        let mut name = directory.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let own = std::process::id();
        // Two rounds: the second follows the removal of a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(own.to_string().as_bytes())
                        .map_err(|source| cache_error(&path, source))?;
                    return Ok(CacheLock { path });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if process_alive(pid) => {
                            return Err(GitError::CacheBusy {
                                path: directory.to_path_buf(),
                                pid,
                            });
                        }
                        _ => {
                            tracing::warn!(lock = %path.display(), holder = ?holder, "taking over a stale cache lock");
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(source) => return Err(cache_error(&path, source)),
            }
        }
        Err(cache_error(
            &path,
            std::io::Error::other("another process keeps recreating the lock"),
        ))
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn cache_error(path: &Path, source: std::io::Error) -> GitError {
    GitError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `pid` names a running process (Linux `/proc`; elsewhere every holder counts as alive, so a
/// stale lock there needs removing by hand).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat"));
    // A zombie has exited; it only waits for its parent to reap it.
    stat.is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_released_on_drop_and_stale_ones_are_taken_over() {
        let root = tempfile::tempdir().unwrap();
        let directory = root.path().join("repo");
        let first = CacheLock::acquire(&directory).unwrap();
        match CacheLock::acquire(&directory) {
            Err(GitError::CacheBusy { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("unexpected: {other:?}"),
        }
        drop(first);
        let again = CacheLock::acquire(&directory).unwrap();
        drop(again);
        // A PID far above pid_max: the holder is gone.
        std::fs::write(root.path().join("repo.lock"), "4999999").unwrap();
        let taken = CacheLock::acquire(&directory).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("repo.lock")).unwrap(),
            std::process::id().to_string()
        );
        drop(taken);
        assert!(!root.path().join("repo.lock").exists());
    }
}
